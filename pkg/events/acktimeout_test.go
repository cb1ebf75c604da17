package events_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
)

// lostAcks stands between the publisher and the stream on "held.>": it stores
// every message it receives in the stream (on "auth.<rest>", same headers, so
// the same Nats-Msg-Id) but swallows the stream's ack the first time it sees
// a message ID — the message is stored, its ack never arrives, as when a
// server stalls past the ack timeout. On "dropped.>" it answers nothing and
// stores nothing. It counts what it received per message ID.
func lostAcks(t *testing.T, nc *nats.Conn) (seen func(id string) int) {
	t.Helper()
	var mu sync.Mutex
	count := map[string]int{}
	sub, err := nc.Subscribe(">", func(m *nats.Msg) {
		held, dropped := strings.HasPrefix(m.Subject, "held."), strings.HasPrefix(m.Subject, "dropped.")
		if !held && !dropped {
			return
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		mu.Lock()
		count[id]++
		n := count[id]
		mu.Unlock()
		if dropped {
			return
		}
		// Forward concurrently: one message waiting for the stream must not
		// hold up the others past their ack timeout.
		go func() {
			ack, err := nc.RequestMsg(&nats.Msg{Subject: "auth." + strings.TrimPrefix(m.Subject, "held."), Header: m.Header, Data: m.Data}, 5*time.Second)
			if err != nil {
				t.Errorf("storing %s: %v", id, err)
				return
			}
			if n > 1 {
				_ = m.Respond(ack.Data)
			}
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		return count[id]
	}
}

// TestAckTimeoutIsRetriedNotReported: every first ack is lost although the
// message was stored. Async publishes are retried after the ack timeout with
// the same message ID, stored once, and none reaches the error handler; sync
// publishes likewise return nil.
func TestAckTimeoutIsRetriedNotReported(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var failed []error
	srv, js, pub := setup(t, events.WithRetry(3, 50*time.Millisecond), events.WithPublishTimeout(time.Second),
		events.WithErrorHandler(func(_ string, _ *events.Event, err error) {
			mu.Lock()
			failed = append(failed, err)
			mu.Unlock()
		}))
	seen := lostAcks(t, srv.Conn(t))
	ctx := ctxT(t, 30*time.Second)
	const nAsync, nSync = 200, 5
	var ids []string
	for range nAsync {
		e := newEvent(t, "user.created", nil)
		if err := pub.PublishAsync(ctx, "held.user.created", e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	for range nSync {
		e := newEvent(t, "user.created", nil)
		if err := pub.Publish(ctx, "held.user.created", e); err != nil {
			t.Fatalf("sync publish whose first ack was lost: %v", err)
		}
		ids = append(ids, e.ID)
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(failed) != 0 {
		t.Fatalf("%d stored events reported to the error handler; first: %v", len(failed), failed[0])
	}
	mu.Unlock()
	// Each event is sent at least twice: its first ack was lost. A third
	// send is right too when the second ack also came later than the ack
	// timeout (a loaded machine): the test once asserted exactly two sends
	// and failed that way under load although nothing was lost, duplicated
	// or reported — which the checks here and below are about.
	late := 0
	for _, id := range ids {
		switch n := seen(id); {
		case n < 2:
			t.Fatalf("event %s sent %d times, want at least 2 (its first ack was lost)", id, n)
		case n > 2:
			late++
		}
	}
	if late > 0 {
		t.Logf("%d of %d events were sent more than twice (a retried ack was late too)", late, len(ids))
	}
	info, err := js.Stream(ctx, "AUTH_EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().State.Msgs; got != nAsync+nSync {
		t.Fatalf("stream holds %d messages, want %d (each stored once)", got, nAsync+nSync)
	}
}

// TestAckNeverComesIsReportedAfterRetries: an async publish whose ack never
// comes is tried 1+retries times, then reported as a timeout.
func TestAckNeverComesIsReportedAfterRetries(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var failed []error
	srv, _, pub := setup(t, events.WithRetry(2, 20*time.Millisecond), events.WithPublishTimeout(100*time.Millisecond),
		events.WithErrorHandler(func(_ string, _ *events.Event, err error) {
			mu.Lock()
			failed = append(failed, err)
			mu.Unlock()
		}))
	seen := lostAcks(t, srv.Conn(t))
	ctx := ctxT(t, 30*time.Second)
	e := newEvent(t, "user.created", nil)
	if err := pub.PublishAsync(ctx, "dropped.user.created", e); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 1 || !errors.Is(failed[0], events.ErrTimeout) || !errors.Is(failed[0], jetstream.ErrAsyncPublishTimeout) {
		t.Fatalf("error handler got %v, want one ErrTimeout (ack timeout)", failed)
	}
	if n := seen(e.ID); n != 3 {
		t.Fatalf("sent %d times, want 3 (1 + 2 retries)", n)
	}
}
