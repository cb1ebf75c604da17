package examples_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/examples/subscriber/audit"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

var fixed = events.ClockFunc(func() time.Time { return time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC) })

// TestCatalog publishes every event of the seed's auth-service catalog
// through the example service (auth.Publisher, on a real Publisher and an
// embedded JetStream server) and receives them through the example
// subscriber (audit.Trail's typed handlers on a durable consumer of
// auth.user.>). It checks the NATS subjects and the raw JSON the stream
// stores — snake_case keys, nothing more, nothing less — and the typed
// values and failure reasons the subscriber decoded.
func TestCatalog(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, events.StreamAuth, []string{"auth.>"})
	eventstest.CreateStream(t, js, events.StreamDLQ, []string{"dlq.>"})
	pub, err := events.NewPublisher(srv.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := pub.Close(); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := auth.NewPublisher(pub, fixed, "org-42")

	created := auth.UserCreated{UserID: "u-1", Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Status: "active"}
	succeeded := auth.UserLoginSucceeded{UserID: "u-1", Email: "ada@example.com"}
	notFound := auth.UserLoginFailed{Email: "nobody@example.com", Reason: auth.ReasonUserNotFound}
	badPassword := auth.UserLoginFailed{Email: "ada@example.com", Reason: auth.ReasonInvalidPassword}
	inactive := auth.UserLoginFailed{Email: "gone@example.com", Reason: auth.ReasonInactiveAccount}
	assigned := auth.UserRoleAssigned{UserID: "u-1", UserEmail: "ada@example.com", RoleID: "r-7", RoleName: "admin"}
	catalog := []struct {
		publish func() (*events.Event, error)
		typ     string
		subject string
		raw     map[string]string // the data as the stream stores it
		typed   any               // what the subscriber's typed handler got
	}{
		{func() (*events.Event, error) { return svc.UserCreated(ctx, created) },
			"user.created", "auth.user.created",
			map[string]string{"user_id": "u-1", "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "status": "active"},
			created},
		{func() (*events.Event, error) { return svc.LoginSucceeded(ctx, succeeded) },
			"user.login.succeeded", "auth.user.login.succeeded",
			map[string]string{"user_id": "u-1", "email": "ada@example.com"},
			succeeded},
		{func() (*events.Event, error) { return svc.LoginFailed(ctx, notFound) },
			"user.login.failed", "auth.user.login.failed",
			map[string]string{"email": "nobody@example.com", "reason": "user_not_found"},
			notFound},
		{func() (*events.Event, error) { return svc.LoginFailed(ctx, badPassword) },
			"user.login.failed", "auth.user.login.failed",
			map[string]string{"email": "ada@example.com", "reason": "invalid_password"},
			badPassword},
		{func() (*events.Event, error) { return svc.LoginFailed(ctx, inactive) },
			"user.login.failed", "auth.user.login.failed",
			map[string]string{"email": "gone@example.com", "reason": "inactive_account"},
			inactive},
		{func() (*events.Event, error) { return svc.RoleAssigned(ctx, assigned) },
			"user.role.assigned", "auth.user.role.assigned",
			map[string]string{"user_id": "u-1", "user_email": "ada@example.com", "role_id": "r-7", "role_name": "admin"},
			assigned},
	}
	ids := make([]string, len(catalog))
	for i, c := range catalog {
		e, err := c.publish()
		if err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		ids[i] = e.ID
		if got := events.SubjectFor(auth.Service, c.typ); got != c.subject {
			t.Errorf("SubjectFor(auth, %s) = %s, want %s", c.typ, got, c.subject)
		}
	}

	// What the stream stores: subject, type, source, and the data's JSON.
	for i, c := range catalog {
		m := eventstest.GetMsg(t, js, events.StreamAuth, uint64(i+1))
		if m.Subject != c.subject {
			t.Errorf("message %d: subject %s, want %s", i+1, m.Subject, c.subject)
		}
		if got := m.Header.Get("ce-type"); got != c.typ {
			t.Errorf("message %d: ce-type %s, want %s", i+1, got, c.typ)
		}
		if got := m.Header.Get("ce-source"); got != "auth-service" {
			t.Errorf("message %d: ce-source %s", i+1, got)
		}
		var raw map[string]string
		if err := json.Unmarshal(m.Data, &raw); err != nil {
			t.Fatalf("message %d: body %s: %v", i+1, m.Data, err)
		}
		if !reflect.DeepEqual(raw, c.raw) {
			t.Errorf("message %d (%s): data %s, want %v", i+1, c.typ, m.Data, c.raw)
		}
	}

	// What the example subscriber receives.
	trail := audit.New(nil)
	sub, err := events.SubscribeDurable(ctx, js, events.StreamAuth, "auth-audit", trail.Router().Handler(),
		events.SubscriberConfig{FilterSubjects: []string{audit.FilterSubject}})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := trail.WaitFor(ctx, len(catalog))
	if err != nil {
		t.Fatalf("%v: got %+v", err, entries)
	}
	for i, c := range catalog {
		got := entries[i]
		if got.ID != ids[i] || got.Type != c.typ || got.OrganizationID != "org-42" || !reflect.DeepEqual(got.Data, c.typed) {
			t.Errorf("entry %d: %+v, want id %s type %s data %+v", i, got, ids[i], c.typ, c.typed)
		}
	}

	// A login failure whose reason is not in the catalog, and a user.created
	// whose data does not fit auth.UserCreated, are dead-lettered at once
	// (published here as another producer could: maps, no typed struct).
	foreign := []struct{ typ, subject, reason string }{
		{"user.login.failed", "auth.user.login.failed", "data.reason"},
		{"user.created", "auth.user.created", "user_id"},
	}
	for _, f := range foreign {
		data := map[string]interface{}{"email": "eve@example.com", "reason": "bad_password"}
		if f.typ == "user.created" {
			data = map[string]interface{}{"user_id": 42, "email": "eve@example.com"}
		}
		e, err := events.NewEvent(f.typ, "auth-service", "org-42", fixed.Now(), data)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, f.subject, e); err != nil {
			t.Fatal(err)
		}
	}
	eventstest.WaitForMsgs(t, js, events.StreamDLQ, 2, 10*time.Second)
	for i, f := range foreign {
		m := eventstest.GetMsg(t, js, events.StreamDLQ, uint64(i+1))
		if m.Subject != "dlq."+f.subject || m.Header.Get(events.HeaderDLQDeliveries) != "1" {
			t.Errorf("dead letter %d: %s, deliveries %s", i+1, m.Subject, m.Header.Get(events.HeaderDLQDeliveries))
		}
		if reason := m.Header.Get(events.HeaderDLQReason); !strings.Contains(reason, f.reason) {
			t.Errorf("dead letter %d: reason %q does not name %s", i+1, reason, f.reason)
		}
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(trail.Entries()); n != len(catalog) {
		t.Errorf("trail holds %d entries, want %d", n, len(catalog))
	}
}
