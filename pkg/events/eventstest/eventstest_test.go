package eventstest_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	rec := eventstest.NewRecorder()
	e, err := events.NewEvent("user.created", "auth-service", "org", time.Unix(1, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Publish(ctx, "auth.user.created", e); err != nil {
		t.Fatal(err)
	}
	go func() { _ = rec.PublishAsync(ctx, "auth.user.login.failed", e) }()
	got, ok := rec.WaitFor(2, 5*time.Second)
	if !ok || len(got) != 2 || !got[1].Async || len(rec.BySubject("auth.user.created")) != 1 || len(rec.ByType("user.created")) != 2 {
		t.Fatalf("recorded %+v", got)
	}
	bad := *e
	bad.Type = ""
	if err := rec.Publish(ctx, "auth.x", &bad); !errors.Is(err, events.ErrValidation) {
		t.Fatalf("invalid event: %v", err)
	}
	if err := rec.Publish(ctx, "auth.*", e); !errors.Is(err, events.ErrValidation) {
		t.Fatalf("wildcard subject: %v", err)
	}
	notJSON := *e
	notJSON.Data = json.RawMessage(`{"user_id":`)
	var verr *events.ValidationError
	if err := rec.Publish(ctx, "auth.x", &notJSON); !errors.As(err, &verr) || verr.Field != "data" {
		t.Fatalf("data that is not JSON: %v", err)
	}
	rec.FailWith(events.ErrConnection)
	if err := rec.Publish(ctx, "auth.x", e); !errors.Is(err, events.ErrConnection) {
		t.Fatalf("FailWith: %v", err)
	}
	rec.Reset()
	if rec.Len() != 0 {
		t.Fatal("Reset kept events")
	}
	// The seed's provider interface, as a service declares it.
	var provider interface {
		Publish(ctx context.Context, subject string, event *events.Event) error
		PublishAsync(ctx context.Context, subject string, event *events.Event) error
		Close() error
	} = rec
	if err := provider.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rec.Publish(ctx, "auth.x", e); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if _, ok := rec.WaitFor(1, 10*time.Millisecond); ok {
		t.Fatal("WaitFor succeeded on an empty recorder")
	}
}

func TestServerRestartKeepsStore(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, "S", []string{"s.>"}, func(c *events.StreamConfig) { c.Storage = jetstream.FileStorage })
	url := srv.URL()
	if _, err := js.Publish(context.Background(), "s.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	if srv.URL() != url {
		t.Fatalf("URL changed: %s → %s", url, srv.URL())
	}
	// The old connection reconnects; the stream and its message survived.
	eventstest.WaitForMsgs(t, js, "S", 1, 10*time.Second)
}
