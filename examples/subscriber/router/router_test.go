package router_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/examples/subscriber/router"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

func TestRouterOnJetStream(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, events.StreamAuth, []string{"auth.>"})
	eventstest.CreateStream(t, js, events.StreamDLQ, []string{"dlq.>"})
	pub, err := events.NewPublisher(srv.Conn(t))
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string][]string{}
	record := func(ctx context.Context, e *events.Event) error {
		mu.Lock()
		seen[e.Type] = append(seen[e.Type], e.ID)
		mu.Unlock()
		return nil
	}
	r := router.New(nil)
	r.Handle(auth.TypeUserCreated, record)
	r.Handle(auth.TypeUserLoginFailed, record)
	// user.login.succeeded and user.role.assigned have no handler: skipped.

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, err := events.SubscribeDurable(ctx, js, events.StreamAuth, "audit", r.Handler(), events.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p := auth.NewPublisher(pub, events.SystemClock{}, "org-1")
	if _, err := p.UserCreated(ctx, auth.UserCreated{UserID: "u-1", Email: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.LoginSucceeded(ctx, auth.UserLoginSucceeded{UserID: "u-1", Email: "a@example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.LoginFailed(ctx, auth.UserLoginFailed{Email: "a@example.com", Reason: auth.ReasonInactiveAccount}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for sub.Stats().Acked < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", sub.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := sub.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen[auth.TypeUserCreated]) != 1 || len(seen[auth.TypeUserLoginFailed]) != 1 || len(seen) != 2 {
		t.Fatalf("routed %v", seen)
	}
}
