package natsconn_test

import (
	"context"
	"errors"
	"testing"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// A connection to the hub reaches a leaf node's JetStream through the
// leaf's domain, with one context per domain; a pooled connection carries
// its Secret's domain for resources that name none.
func TestJetStreamInADomain(t *testing.T) {
	hub := eventstest.RunJetStream(t, eventstest.WithLeafNodes())
	leaf := eventstest.RunLeaf(t, hub, "leaf")
	ctx := context.Background()

	c, err := natsconn.Connect(natsconn.Options{URL: hub.URL(), Name: "test"}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "the connection", func() bool { return c.ReadyCheck(nil) == nil })
	if c.Domain() != "" {
		t.Errorf("the default connection has domain %q, want none", c.Domain())
	}
	js, err := c.JetStreamIn("leaf")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.JetStreamIn("leaf"); again != js {
		t.Error("a second JetStreamIn(\"leaf\") made a new context")
	}
	if own, _ := c.JetStreamIn(""); own == js {
		t.Error("JetStreamIn(\"\") is the leaf's context, want the connection's own")
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "IN_LEAF", Subjects: []string{"leaf.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.JetStream(t).Stream(ctx, "IN_LEAF"); err != nil {
		t.Fatalf("the stream is not in the leaf's JetStream: %v", err)
	}
	if _, err := hub.JetStream(t).Stream(ctx, "IN_LEAF"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the stream should not be in the hub's JetStream: %v", err)
	}

	p, _, _ := newTestPool(t)
	pc, err := p.Get("tenant-ns/nats", "1", secretData("url", hub.URL(), "domain", "leaf"), "EventStream:tenant-ns/s")
	if err != nil {
		t.Fatal(err)
	}
	if pc.Domain() != "leaf" {
		t.Errorf("pooled connection domain %q, want leaf (the Secret's domain key)", pc.Domain())
	}

	hub.Shutdown()
	waitFor(t, "the disconnection", func() bool { return c.ReadyCheck(nil) != nil })
	if _, err := c.JetStreamIn("leaf"); !errors.Is(err, events.ErrConnection) {
		t.Fatalf("JetStreamIn while NATS is down = %v, want ErrConnection at once", err)
	}
}
