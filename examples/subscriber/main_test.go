package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/examples/internal/schemafiles"
	"github.com/giia/eventstream-operator/internal/testutil/repo"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
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

// With the seed's EventSchemas registered from config/samples, the command
// handles valid events and dead-letters, on their first delivery, an event
// whose data breaks its schema (sent past the library with plain nats.go)
// with the validator's message as Dlq-Reason, and an event of a schema
// major it does not accept.
func TestRunDeadLettersInvalidData(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, events.StreamAuth, []string{"auth.>"})
	eventstest.CreateStream(t, js, events.StreamDLQ, []string{"dlq.>"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	samples, err := repo.Path("config", "samples")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := schemafiles.Register(ctx, js, samples); err != nil || n != 4 {
		t.Fatalf("registered %d schemas: %v", n, err)
	}
	registry, err := schemas.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	defer registry.Close()
	pub, err := events.NewPublisher(srv.Conn(t), events.WithDataValidator(registry))
	if err != nil {
		t.Fatal(err)
	}
	svc := auth.NewPublisher(pub, events.SystemClock{}, "org-7")
	if _, err := svc.UserCreated(ctx, auth.UserCreated{UserID: "u-1", Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Status: "active"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.LoginFailed(ctx, auth.UserLoginFailed{Email: "ada@example.com", Reason: auth.ReasonInvalidPassword}); err != nil {
		t.Fatal(err)
	}
	// Past the library: no user_id, a numeric email.
	rawEvent := func(version string, data string) {
		t.Helper()
		e, err := events.NewEvent(auth.TypeUserCreated, "raw-producer", "org-7", time.Now(), json.RawMessage(data))
		if err != nil {
			t.Fatal(err)
		}
		e.SchemaVersion = version
		msg, err := events.Encode(e, events.ModeBinary)
		if err != nil {
			t.Fatal(err)
		}
		msg.Subject = "auth.user.created"
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	rawEvent("1.0", `{"email":42,"first_name":"No","last_name":"Id","status":"active"}`)
	rawEvent("2.0", `{"user_id":"u-9","email":"x@example.com","name":"X","status":"active"}`)

	log := &syncBuffer{}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"-nats-url", srv.URL(), "-consumer", "auth-audit", "-drain-timeout", "5s"}, log)
	}()
	eventstest.WaitForMsgs(t, js, events.StreamDLQ, 2, 20*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := js.Consumer(ctx, events.StreamAuth, "auth-audit")
		if err == nil {
			if info, err := c.Info(ctx); err == nil && info.AckFloor.Stream == 4 && info.NumAckPending == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber did not settle 4 events:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	reasons := map[string]string{}
	for seq := uint64(1); seq <= 2; seq++ {
		m := eventstest.GetMsg(t, js, events.StreamDLQ, seq)
		reasons[m.Header.Get(events.HeaderSchemaVersion)] = m.Header.Get(events.HeaderDLQReason)
		if d := m.Header.Get(events.HeaderDLQDeliveries); d != "1" {
			t.Errorf("dead-lettered after %s deliveries", d)
		}
	}
	if r := reasons["1.0"]; r != "events: invalid data: missing property 'user_id'; at /email: got number, want string (schema urn:events:schema:user.created:1.0)" {
		t.Errorf("invalid data: reason %q", r)
	}
	if r := reasons["2.0"]; r != "events: invalid schemaversion: major version 2 (2.0) is not one this consumer accepts (1)" {
		t.Errorf("major 2: reason %q", r)
	}
	out := log.String()
	for _, want := range []string{
		`msg="user created" user=u-1`,
		`msg="failed login" email=ada@example.com reason=invalid_password`,
		`msg="invalid event data: dead-lettering" type=user.created schemaversion=1.0`,
		`msg=stopped acked=2 dead-lettered=2 skipped=0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestRunRefusesBadMajors(t *testing.T) {
	err := run(context.Background(), []string{"-accept-majors", "1,x"}, &syncBuffer{})
	if err == nil || !strings.Contains(err.Error(), `-accept-majors: "x"`) {
		t.Fatalf("err %v", err)
	}
}
