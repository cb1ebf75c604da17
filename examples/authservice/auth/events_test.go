package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

var fixedClock = events.ClockFunc(func() time.Time { return time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC) })

// The subject constants are the seed's {service}.{type}.
func TestSubjects(t *testing.T) {
	for typ, subject := range map[string]string{
		auth.TypeUserCreated:        auth.SubjectUserCreated,
		auth.TypeUserLoginSucceeded: auth.SubjectUserLoginSucceeded,
		auth.TypeUserLoginFailed:    auth.SubjectUserLoginFailed,
		auth.TypeUserRoleAssigned:   auth.SubjectUserRoleAssigned,
	} {
		if want := events.SubjectFor("auth", typ); subject != want || subject != "auth."+typ {
			t.Errorf("subject of %s = %s, want %s", typ, subject, want)
		}
	}
}

// With the Recorder (no server): every event carries the service's source,
// organization and clock, its data is the snake_case JSON of the typed
// payload, and DataAs gives the payload back.
func TestCatalogWithRecorder(t *testing.T) {
	rec := eventstest.NewRecorder()
	p := auth.NewPublisher(rec, fixedClock, "org-42")
	ctx := context.Background()
	created := auth.UserCreated{UserID: "u-1", Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Status: "active"}
	failed := auth.UserLoginFailed{Email: "ada@example.com", Reason: auth.ReasonInvalidPassword}
	succeeded := auth.UserLoginSucceeded{UserID: "u-1", Email: "ada@example.com"}
	assigned := auth.UserRoleAssigned{UserID: "u-1", UserEmail: "ada@example.com", RoleID: "r-7", RoleName: "admin"}
	if _, err := p.UserCreated(ctx, created); err != nil {
		t.Fatal(err)
	}
	if _, err := p.LoginFailed(ctx, failed); err != nil {
		t.Fatal(err)
	}
	if _, err := p.LoginSucceeded(ctx, succeeded); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RoleAssigned(ctx, assigned); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		subject, typ, about, json string
	}{
		{"auth.user.created", "user.created", "u-1",
			`{"user_id":"u-1","email":"ada@example.com","first_name":"Ada","last_name":"Lovelace","status":"active"}`},
		{"auth.user.login.failed", "user.login.failed", "ada@example.com",
			`{"email":"ada@example.com","reason":"invalid_password"}`},
		{"auth.user.login.succeeded", "user.login.succeeded", "u-1",
			`{"user_id":"u-1","email":"ada@example.com"}`},
		{"auth.user.role.assigned", "user.role.assigned", "u-1",
			`{"user_id":"u-1","user_email":"ada@example.com","role_id":"r-7","role_name":"admin"}`},
	}
	got := rec.Events()
	if len(got) != len(want) {
		t.Fatalf("recorded %d events, want %d", len(got), len(want))
	}
	for i, w := range want {
		e := got[i].Event
		if got[i].Subject != w.subject || e.Type != w.typ || e.Source != "auth-service" || e.OrganizationID != "org-42" ||
			e.Subject != w.about || !e.Timestamp.Equal(fixedClock.Now()) || got[i].Async {
			t.Errorf("event %d: %s %+v", i, got[i].Subject, e)
		}
		if string(e.Data) != w.json {
			t.Errorf("event %d data: %s, want %s", i, e.Data, w.json)
		}
	}
	if d, err := events.DataAs[auth.UserCreated](got[0].Event); err != nil || d != created {
		t.Errorf("DataAs[UserCreated] = %+v, %v", d, err)
	}
	if d, err := events.DataAs[auth.UserLoginFailed](got[1].Event); err != nil || d != failed {
		t.Errorf("DataAs[UserLoginFailed] = %+v, %v", d, err)
	}
	if d, err := events.DataAs[auth.UserLoginSucceeded](got[2].Event); err != nil || d != succeeded {
		t.Errorf("DataAs[UserLoginSucceeded] = %+v, %v", d, err)
	}
	if d, err := events.DataAs[auth.UserRoleAssigned](got[3].Event); err != nil || d != assigned {
		t.Errorf("DataAs[UserRoleAssigned] = %+v, %v", d, err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(got[0].Event.Data, &keys); err != nil || len(keys) != 5 {
		t.Errorf("user.created keys %v, %v", keys, err)
	}
}

// A reason outside the catalog is refused before anything is published,
// with an error naming the field.
func TestLoginFailedRefusesUnknownReason(t *testing.T) {
	rec := eventstest.NewRecorder()
	p := auth.NewPublisher(rec, fixedClock, "org-42")
	for _, reason := range []string{"", "bad_password", "account_locked", "USER_NOT_FOUND"} {
		_, err := p.LoginFailed(context.Background(), auth.UserLoginFailed{Email: "ada@example.com", Reason: reason})
		var ve *events.ValidationError
		if !errors.As(err, &ve) || ve.Field != "data.reason" || !errors.Is(err, events.ErrValidation) {
			t.Errorf("reason %q: err %v, want a ValidationError naming data.reason", reason, err)
		}
	}
	for _, reason := range []string{auth.ReasonUserNotFound, auth.ReasonInvalidPassword, auth.ReasonInactiveAccount} {
		if _, err := p.LoginFailed(context.Background(), auth.UserLoginFailed{Email: "ada@example.com", Reason: reason}); err != nil {
			t.Errorf("reason %q: %v", reason, err)
		}
	}
	if n := rec.Len(); n != 3 {
		t.Errorf("recorded %d events, want the 3 valid ones", n)
	}
	reasons := []string{}
	for _, e := range rec.ByType(auth.TypeUserLoginFailed) {
		d, err := events.DataAs[auth.UserLoginFailed](e)
		if err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, d.Reason)
	}
	if want := []string{"user_not_found", "invalid_password", "inactive_account"}; !reflect.DeepEqual(reasons, want) {
		t.Errorf("reasons %v, want %v", reasons, want)
	}
}

// A publish failure reaches the caller and no event is returned.
func TestPublishFailure(t *testing.T) {
	rec := eventstest.NewRecorder()
	boom := &events.OpError{Op: "publish", Name: "auth.user.created", Kind: events.ErrConnection, Err: errors.New("no servers")}
	rec.FailWith(boom)
	e, err := auth.NewPublisher(rec, fixedClock, "org-42").UserCreated(context.Background(), auth.UserCreated{UserID: "u-1", Email: "a@example.com"})
	if e != nil || !errors.Is(err, events.ErrConnection) {
		t.Fatalf("event %v, err %v", e, err)
	}
}
