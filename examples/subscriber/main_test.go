package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// syncBuffer is a log destination safe for the subscriber's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The command runs against an embedded JetStream server: it consumes the
// catalog published by the example service through its typed handlers,
// acknowledges every event, and returns nil once its context ends and it
// has drained.
func TestRun(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, events.StreamAuth, []string{"auth.>"})
	eventstest.CreateStream(t, js, events.StreamDLQ, []string{"dlq.>"})
	pub, err := events.NewPublisher(srv.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := auth.NewPublisher(pub, events.SystemClock{}, "org-7")
	if _, err := svc.UserCreated(ctx, auth.UserCreated{UserID: "u-1", Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.LoginFailed(ctx, auth.UserLoginFailed{Email: "ada@example.com", Reason: auth.ReasonInactiveAccount}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.LoginSucceeded(ctx, auth.UserLoginSucceeded{UserID: "u-1", Email: "ada@example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RoleAssigned(ctx, auth.UserRoleAssigned{UserID: "u-1", UserEmail: "ada@example.com", RoleID: "r-7", RoleName: "admin"}); err != nil {
		t.Fatal(err)
	}

	log := &syncBuffer{}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"-nats-url", srv.URL(), "-consumer", "auth-audit", "-drain-timeout", "5s"}, log)
	}()

	// Wait until the durable consumer has acknowledged all four events.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := js.Consumer(ctx, events.StreamAuth, "auth-audit"); err == nil {
			if info, err := c.Info(ctx); err == nil && info.AckFloor.Stream == 4 && info.NumAckPending == 0 {
				if f := append([]string{info.Config.FilterSubject}, info.Config.FilterSubjects...); !slices.Contains(f, "auth.user.>") {
					t.Errorf("consumer filter %v, want auth.user.>", f)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber did not acknowledge 4 events in time:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, log.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	out := log.String()
	for _, want := range []string{
		`msg="user created" user=u-1 email=ada@example.com status=active org=org-7`,
		`msg="failed login" email=ada@example.com reason=inactive_account`,
		`msg=login user=u-1 email=ada@example.com`,
		`msg="role assigned" user=u-1 role=admin`,
		`msg="shutting down: draining"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if n := eventstest.StreamMsgs(t, js, events.StreamDLQ); n != 0 {
		t.Errorf("%d dead letters", n)
	}
}
