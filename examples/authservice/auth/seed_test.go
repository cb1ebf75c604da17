package auth_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/examples/subscriber/audit"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// EventPublisher is the seed's provider interface, declared by the service
// itself as the seed does; *events.Publisher satisfies it as it is.
type EventPublisher interface {
	Publish(ctx context.Context, subject string, event *events.Event) error
	PublishAsync(ctx context.Context, subject string, event *events.Event) error
	Close() error
}

var _ EventPublisher = (*events.Publisher)(nil)

// user is the seed's domain user, as far as the events need it.
type user struct {
	ID, Email, FirstName, LastName, Status string
}

// authEventPublisher is the seed's publisher pattern, verbatim in shape:
// events.NewEvent with a map[string]interface{} payload, then PublishAsync
// on the {service}.{type} subject.
type authEventPublisher struct {
	publisher EventPublisher
}

func (p *authEventPublisher) PublishUserCreated(ctx context.Context, orgID string, user *user) error {
	event, err := events.NewEvent("user.created", "auth-service", orgID, time.Now(), map[string]interface{}{
		"user_id":    user.ID,
		"email":      user.Email,
		"first_name": user.FirstName,
		"last_name":  user.LastName,
		"status":     user.Status,
	})
	if err != nil {
		return err
	}
	if err := p.publisher.PublishAsync(ctx, "auth.user.created", event); err != nil {
		return err
	}
	return nil
}

func (p *authEventPublisher) PublishUserLoginSucceeded(ctx context.Context, orgID string, user *user) error {
	event, err := events.NewEvent("user.login.succeeded", "auth-service", orgID, time.Now(), map[string]interface{}{
		"user_id": user.ID,
		"email":   user.Email,
	})
	if err != nil {
		return err
	}
	if err := p.publisher.PublishAsync(ctx, "auth.user.login.succeeded", event); err != nil {
		return err
	}
	return nil
}

func (p *authEventPublisher) PublishUserLoginFailed(ctx context.Context, orgID, email, reason string) error {
	event, err := events.NewEvent("user.login.failed", "auth-service", orgID, time.Now(), map[string]interface{}{
		"email":  email,
		"reason": reason,
	})
	if err != nil {
		return err
	}
	if err := p.publisher.PublishAsync(ctx, "auth.user.login.failed", event); err != nil {
		return err
	}
	return nil
}

func (p *authEventPublisher) PublishUserRoleAssigned(ctx context.Context, orgID string, user *user, roleID, roleName string) error {
	event, err := events.NewEvent("user.role.assigned", "auth-service", orgID, time.Now(), map[string]interface{}{
		"user_id":    user.ID,
		"user_email": user.Email,
		"role_id":    roleID,
		"role_name":  roleName,
	})
	if err != nil {
		return err
	}
	if err := p.publisher.PublishAsync(ctx, "auth.user.role.assigned", event); err != nil {
		return err
	}
	return nil
}

// TestSeedPublisherPattern runs the seed's provider code unchanged against
// the library's Publisher and an embedded JetStream server, closes the
// publisher as the seed does (Close() error, waiting for the async
// publishes), and receives every event through the example subscriber's
// typed handlers: the seed's maps and the catalog's structs are the same
// JSON.
func TestSeedPublisherPattern(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, events.StreamAuth, []string{"auth.>"})
	eventstest.CreateStream(t, js, events.StreamDLQ, []string{"dlq.>"})
	reported := make(chan error, 10)
	pub, err := events.NewPublisher(srv.Conn(t), events.WithErrorHandler(func(_ string, _ *events.Event, err error) { reported <- err }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p := &authEventPublisher{publisher: pub}
	ada := &user{ID: "3f0c4d7e-1b2a-4c5d-8e9f-0a1b2c3d4e5f", Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Status: "active"}
	const org = "org-42"
	if err := p.PublishUserCreated(ctx, org, ada); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishUserLoginFailed(ctx, org, "ada@example.com", "invalid_password"); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishUserLoginSucceeded(ctx, org, ada); err != nil {
		t.Fatal(err)
	}
	if err := p.PublishUserRoleAssigned(ctx, org, ada, "r-7", "admin"); err != nil {
		t.Fatal(err)
	}
	var closer EventPublisher = pub
	if err := closer.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-reported:
		t.Fatalf("error handler: %v", err)
	default:
	}
	if n := eventstest.StreamMsgs(t, js, events.StreamAuth); n != 4 {
		t.Fatalf("stream holds %d events, want 4", n)
	}

	trail := audit.New(nil)
	sub, err := events.SubscribeDurable(ctx, js, events.StreamAuth, "seed-audit", trail.Router().Handler(),
		events.SubscriberConfig{FilterSubjects: []string{audit.FilterSubject}})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := trail.WaitFor(ctx, 4)
	if err != nil {
		t.Fatalf("%v: %+v", err, entries)
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// PublishAsync may store them in any order: index by type.
	byType := map[string]any{}
	for _, e := range entries {
		if e.OrganizationID != org {
			t.Errorf("%s: organization %q", e.Type, e.OrganizationID)
		}
		byType[e.Type] = e.Data
	}
	want := map[string]any{
		"user.created":         auth.UserCreated{UserID: ada.ID, Email: ada.Email, FirstName: "Ada", LastName: "Lovelace", Status: "active"},
		"user.login.failed":    auth.UserLoginFailed{Email: "ada@example.com", Reason: auth.ReasonInvalidPassword},
		"user.login.succeeded": auth.UserLoginSucceeded{UserID: ada.ID, Email: ada.Email},
		"user.role.assigned":   auth.UserRoleAssigned{UserID: ada.ID, UserEmail: ada.Email, RoleID: "r-7", RoleName: "admin"},
	}
	if !reflect.DeepEqual(byType, want) {
		t.Errorf("received %+v\nwant     %+v", byType, want)
	}
	if n := eventstest.StreamMsgs(t, js, events.StreamDLQ); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}
