package natsconn_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReadinessFollowsTheConnectionAndReconnectsAreAnnounced(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	srv.Shutdown() // the manager must start while NATS is down

	c, err := natsconn.Connect(natsconn.Options{URL: srv.URL(), Name: "test"}, logr.Discard())
	if err != nil {
		t.Fatalf("Connect must not fail while NATS is down: %v", err)
	}
	defer c.Close()
	var connects atomic.Int32
	c.OnReconnect(func() { connects.Add(1) })
	connected := c.Connected()
	up := func() float64 { return testutil.ToFloat64(connected) }
	if up() != 0 {
		t.Error("eventstream_operator_nats_connected is 1 while NATS is down")
	}

	if err := c.ReadyCheck(nil); err == nil {
		t.Fatal("ready while NATS is down")
	}
	if _, err := c.JetStream(); !errors.Is(err, events.ErrConnection) {
		t.Fatalf("JetStream() while down = %v, want ErrConnection at once", err)
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "readiness after NATS started", func() bool { return c.ReadyCheck(nil) == nil })
	waitFor(t, "the first-connect callback", func() bool { return connects.Load() == 1 })
	if up() != 1 {
		t.Error("eventstream_operator_nats_connected is 0 while connected")
	}
	if _, err := c.JetStream(); err != nil {
		t.Fatalf("JetStream() while connected: %v", err)
	}

	srv.Shutdown()
	waitFor(t, "not ready after NATS stopped", func() bool { return c.ReadyCheck(nil) != nil })
	if up() != 0 {
		t.Error("eventstream_operator_nats_connected is 1 after NATS stopped")
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reconnect callback", func() bool { return connects.Load() == 2 })
}

func TestCredentialsFromFilesThatDoNotExistAreRefused(t *testing.T) {
	_, err := natsconn.Connect(natsconn.Options{URL: "nats://127.0.0.1:1", CredsFile: "/does/not/exist.creds"}, logr.Discard())
	if !errors.Is(err, events.ErrValidation) {
		t.Fatalf("Connect with a missing creds file = %v, want ErrValidation", err)
	}
}
