package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

var fixed = events.ClockFunc(func() time.Time { return time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC) })

func publishAll(t *testing.T, p *auth.Publisher) {
	t.Helper()
	ctx := context.Background()
	steps := []func() (*events.Event, error){
		func() (*events.Event, error) { return p.UserCreated(ctx, "u-1", "ada@example.com") },
		func() (*events.Event, error) {
			return p.LoginFailed(ctx, "ada@example.com", "10.0.0.1", auth.ReasonBadPassword)
		},
		func() (*events.Event, error) { return p.LoginSucceeded(ctx, "u-1", "10.0.0.1") },
		func() (*events.Event, error) { return p.RoleAssigned(ctx, "u-1", "admin", "u-0") },
	}
	for _, step := range steps {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCatalogWithRecorder(t *testing.T) {
	rec := eventstest.NewRecorder()
	publishAll(t, auth.NewPublisher(rec, fixed, "org-42"))
	got := rec.Events()
	want := []struct{ subject, typ string }{
		{"auth.user.created", auth.TypeUserCreated},
		{"auth.user.login.failed", auth.TypeUserLoginFailed},
		{"auth.user.login.succeeded", auth.TypeUserLoginSucceeded},
		{"auth.user.role.assigned", auth.TypeUserRoleAssigned},
	}
	if len(got) != len(want) {
		t.Fatalf("recorded %d events", len(got))
	}
	for i, w := range want {
		e := got[i].Event
		if got[i].Subject != w.subject || e.Type != w.typ || e.OrganizationID != "org-42" ||
			e.Source != auth.Source || !e.Timestamp.Equal(fixed.Now()) {
			t.Errorf("event %d: %s %+v", i, got[i].Subject, e)
		}
	}
	if r := rec.ByType(auth.TypeUserLoginFailed)[0].Data["reason"]; r != auth.ReasonBadPassword {
		t.Errorf("reason %v", r)
	}
}

func TestCatalogOnJetStream(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, events.StreamAuth, []string{"auth.user.>"})
	pub, err := events.NewPublisher(srv.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	publishAll(t, auth.NewPublisher(pub, fixed, "org-42"))
	if n := eventstest.StreamMsgs(t, js, events.StreamAuth); n != 4 {
		t.Fatalf("stream holds %d events, want 4", n)
	}
	m := eventstest.GetMsg(t, js, events.StreamAuth, 2)
	e, err := events.DecodeParts(m.Header, m.Data)
	if err != nil || e.Type != auth.TypeUserLoginFailed || e.Data["reason"] != auth.ReasonBadPassword {
		t.Fatalf("%+v %v", e, err)
	}
}
