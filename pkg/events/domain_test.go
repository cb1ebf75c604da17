package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// A service connected to the hub uses a stream that lives in a leaf node's
// JetStream domain: it creates it and subscribes through a JetStream context
// for that domain (jetstream.NewWithDomain), publishes with the ordinary
// Publisher (publishing goes by subject, so it needs no domain), and its
// dead letters land in the leaf's dead-letter stream.
func TestServiceUsesALeafDomainStream(t *testing.T) {
	hub := eventstest.RunJetStream(t, eventstest.WithLeafNodes())
	leaf := eventstest.RunLeaf(t, hub, "leaf")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	nc := hub.Conn(t)
	js, err := jetstream.NewWithDomain(nc, "leaf")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ name, subject string }{{"ORDERS", "orders.>"}, {events.StreamDLQ, "dlq.>"}} {
		cfg := events.NewStreamConfig(s.name, s.subject)
		cfg.MaxBytes, cfg.Storage = 64<<20, jetstream.MemoryStorage
		if _, err := events.CreateStream(ctx, js, cfg); err != nil {
			t.Fatalf("creating %s in the leaf's domain: %v", s.name, err)
		}
	}
	leafJS := leaf.JetStream(t)
	if _, err := leafJS.Stream(ctx, "ORDERS"); err != nil {
		t.Fatalf("ORDERS is not in the leaf's JetStream: %v", err)
	}
	if _, err := hub.JetStream(t).Stream(ctx, "ORDERS"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("ORDERS should not be in the hub's JetStream, got %v", err)
	}
	// Without the domain the hub's own JetStream answers: no such stream.
	hubOwn, _ := jetstream.New(nc)
	if _, err := events.SubscribeDurable(ctx, hubOwn, "ORDERS", "billing", func(context.Context, *events.Event) error { return nil },
		events.SubscriberConfig{}); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("subscribing without the domain: want ErrNotFound, got %v", err)
	}

	pub, err := events.NewPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	good, _ := events.NewEvent("order.placed", "shop", "org-1", time.Now(), map[string]any{"id": 1})
	bad, _ := events.NewEvent("order.placed", "shop", "org-1", time.Now(), map[string]any{"id": 2})
	for _, e := range []*events.Event{good, bad} {
		if err := pub.Publish(ctx, "orders.placed", e); err != nil {
			t.Fatalf("publishing to a leaf stream from the hub: %v", err)
		}
	}

	handled := make(chan string, 2)
	sub, err := events.SubscribeDurable(ctx, js, "ORDERS", "billing", func(_ context.Context, e *events.Event) error {
		handled <- e.ID
		if e.ID == bad.ID {
			return events.Permanent(errors.New("order 2 cannot be billed"))
		}
		return nil
	}, events.SubscriberConfig{})
	if err != nil {
		t.Fatalf("subscribing through the leaf's domain: %v", err)
	}
	defer func() { _ = sub.Stop(context.Background()) }()
	for range 2 {
		select {
		case <-handled:
		case <-ctx.Done():
			t.Fatal("the handler did not get both events")
		}
	}
	if _, err := leafJS.Consumer(ctx, "ORDERS", "billing"); err != nil {
		t.Fatalf("the durable consumer is not in the leaf's JetStream: %v", err)
	}
	// The dead letter is stored in the leaf's DLQ_EVENTS.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := leafJS.Stream(ctx, events.StreamDLQ)
		if err != nil {
			t.Fatal(err)
		}
		if st.CachedInfo().State.Msgs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leaf's %s holds %d dead letters, want 1", events.StreamDLQ, st.CachedInfo().State.Msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	msg := eventstest.GetMsg(t, leafJS, events.StreamDLQ, 1)
	if msg.Subject != "dlq.orders.placed" {
		t.Errorf("dead letter subject %q, want dlq.orders.placed", msg.Subject)
	}
}
