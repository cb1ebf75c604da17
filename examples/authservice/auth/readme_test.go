package auth_test

// The two tests of pkg/events/README.md's "Testing with eventstest" section.

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

func TestSignup(t *testing.T) {
	rec := eventstest.NewRecorder() // unit test: no server
	svc := auth.NewPublisher(rec, fixedClock, "org-1")
	_, err := svc.UserCreated(context.Background(), auth.UserCreated{UserID: "u-1", Email: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	got := rec.BySubject("auth.user.created")
	if len(got) != 1 {
		t.Fatal(got)
	}
	if d, err := events.DataAs[auth.UserCreated](got[0]); err != nil || d.Email != "ada@example.com" {
		t.Fatal(d, err)
	}
}

func TestSignupOnJetStream(t *testing.T) {
	srv := eventstest.RunJetStream(t) // embedded nats-server, temp store, random port
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, events.StreamAuth, []string{"auth.>"}, func(c *events.StreamConfig) { c.Storage = jetstream.FileStorage })
	pub, err := events.NewPublisher(srv.Conn(t), events.WithRetry(3, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	svc := auth.NewPublisher(pub, fixedClock, "org-1")
	ctx := context.Background()
	if _, err := svc.UserCreated(ctx, auth.UserCreated{UserID: "u-1", Email: "ada@example.com"}); err != nil {
		t.Fatal(err)
	}
	eventstest.WaitForMsgs(t, js, events.StreamAuth, 1, 5*time.Second)
	srv.Restart(t) // same port and store: the publisher reconnects
	if _, err := svc.LoginSucceeded(ctx, auth.UserLoginSucceeded{UserID: "u-1", Email: "ada@example.com"}); err != nil {
		t.Fatal(err)
	}
	eventstest.WaitForMsgs(t, js, events.StreamAuth, 2, 10*time.Second)
}
