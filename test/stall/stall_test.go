// Package stall holds the stall test of issue 12: the real nats-server
// binary (natsproc: $NATS_SERVER, which `make test` sets to bin/nats-server)
// stopped with SIGSTOP while publishers run. It has no build tag: `make test`
// runs it.
package stall

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
	"github.com/giia/eventstream-operator/pkg/events"
)

const (
	freezeAsyncEvents = 10000
	freezeSyncEvents  = 1000
	freezeFor         = 7 * time.Second
	// freezeAckTimeout is each attempt's wait for its ack: shorter than the
	// freeze, so publishes in flight time out while the server is stopped.
	// With the default retries (3, after 1 s, 2 s, 4 s ±20 %) an event has
	// 4 attempts × 3 s + ≥ 5.6 s of pauses ≈ 17.6 s: longer than the freeze.
	freezeAckTimeout = 3 * time.Second
)

// TestNATSFrozenWhilePublishing: nats-server is stopped with SIGSTOP for 7 s
// (no crash, no disconnection: it just does not answer) while an async
// publisher (10,000 events) and a sync one (1,000) run, then resumed with
// SIGCONT. Acks time out during the freeze (the ack timeout is 3 s); they are
// retried with the same message ID, so no event reaches the error handler,
// no sync publish fails, and every event is stored exactly once.
func TestNATSFrozenWhilePublishing(t *testing.T) {
	dir := t.TempDir()
	// Its cleanup thaws it before stopping it, so a failed test never leaves
	// a stopped server behind.
	srv := natsproc.StartStandalone(t, dir)
	adminNC, err := events.Connect(srv.URL(), events.WithName("freeze-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer adminNC.Close()
	js, err := jetstream.New(adminNC)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := events.CreateStream(ctx, js, events.NewStreamConfig("CHAOS_FREEZE", "freeze.>")); err != nil {
		t.Fatal(err)
	}
	syncNC, err := events.Connect(srv.URL(), events.WithName("freeze-sync"))
	if err != nil {
		t.Fatal(err)
	}
	defer syncNC.Close()
	asyncNC, err := events.Connect(srv.URL(), events.WithName("freeze-async"))
	if err != nil {
		t.Fatal(err)
	}
	defer asyncNC.Close()
	// Default retries and jitter; only the ack timeout is set (default 5 s).
	syncPub, err := events.NewPublisher(syncNC, events.WithPublishTimeout(freezeAckTimeout))
	if err != nil {
		t.Fatal(err)
	}
	var failMu sync.Mutex
	var handlerErrs []error
	asyncPub, err := events.NewPublisher(asyncNC, events.WithPublishTimeout(freezeAckTimeout),
		events.WithErrorHandler(func(_ string, _ *events.Event, err error) {
			failMu.Lock()
			handlerErrs = append(handlerErrs, err)
			failMu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}

	// Both publishers are paced (async ~2,000/s, sync one per ~5 ms) so that
	// both are mid-run when the server freezes 1.5 s in; the async one keeps
	// publishing during the freeze until its 4,000-event window is full.
	var syncDone, asyncDone atomic.Int64
	var atFreezeSync, atFreezeAsync, atThawAsync int64
	frozen := make(chan struct{})
	fdone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(fdone)
		time.Sleep(1500 * time.Millisecond)
		atFreezeSync, atFreezeAsync = syncDone.Load(), asyncDone.Load()
		if err := srv.Freeze(); err != nil {
			t.Errorf("SIGSTOP: %v", err)
		}
		close(frozen)
		time.Sleep(freezeFor)
		atThawAsync = asyncDone.Load()
		if err := srv.Thaw(); err != nil {
			t.Errorf("SIGCONT: %v", err)
		}
	}()

	asyncIDs := make([]string, 0, freezeAsyncEvents)
	var asyncRejected []error
	var awg sync.WaitGroup
	awg.Add(1)
	go func() {
		defer awg.Done()
		for i := range freezeAsyncEvents {
			if ahead := time.Until(start.Add(time.Duration(i) * 500 * time.Microsecond)); ahead > 0 {
				time.Sleep(ahead)
			}
			e := newEvent("async", i)
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := asyncPub.PublishAsync(pctx, "freeze.async", e)
			cancel()
			if err != nil {
				asyncRejected = append(asyncRejected, err)
				continue
			}
			asyncIDs = append(asyncIDs, e.ID)
			asyncDone.Add(1)
		}
	}()

	syncIDs := make([]string, 0, freezeSyncEvents)
	var syncErrs []error
	var maxLat time.Duration
	for i := range freezeSyncEvents {
		time.Sleep(5 * time.Millisecond)
		e := newEvent("sync", i)
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		t0 := time.Now()
		err := syncPub.Publish(pctx, "freeze.sync", e)
		maxLat = max(maxLat, time.Since(t0))
		cancel()
		if err != nil {
			syncErrs = append(syncErrs, err)
		}
		syncIDs = append(syncIDs, e.ID)
		syncDone.Add(1)
	}
	awg.Wait()
	fctx, fcancel := context.WithTimeout(ctx, 2*time.Minute)
	if err := asyncPub.Flush(fctx); err != nil {
		t.Errorf("async flush: %v", err)
	}
	fcancel()
	elapsed := time.Since(start)
	<-fdone

	stored, ids := natsproc.EventIDs(t, js, "CHAOS_FREEZE")
	dupIDs, extra := natsproc.Dupes(ids)
	lost := 0
	for _, id := range append(append([]string{}, syncIDs...), asyncIDs...) {
		if ids[id] == 0 {
			lost++
		}
	}
	failMu.Lock()
	reported := len(handlerErrs)
	var firstReported error
	if reported > 0 {
		firstReported = handlerErrs[0]
	}
	failMu.Unlock()
	syncRetries := int(syncNC.Stats().OutMsgs) - freezeSyncEvents
	asyncRetries := int(asyncNC.Stats().OutMsgs) - freezeAsyncEvents

	fmt.Printf("FIGURES nats-frozen: SIGSTOP %v at %v (sync %d/%d, async %d/%d accepted; %d accepted by SIGCONT), ack timeout %v, retries 3 after 1s/2s/4s ±20%%; "+
		"sync: %d errors, %d retries, max latency %v; async: %d rejected, %d to the error handler, %d retries; "+
		"stream: %d messages, %d distinct IDs (want %d), %d duplicates, %d lost; all done in %v\n",
		freezeFor, 1500*time.Millisecond, atFreezeSync, freezeSyncEvents, atFreezeAsync, freezeAsyncEvents, atThawAsync, freezeAckTimeout,
		len(syncErrs), syncRetries, maxLat.Round(time.Millisecond), len(asyncRejected), reported, asyncRetries,
		stored, len(ids), freezeSyncEvents+freezeAsyncEvents, extra, lost, elapsed.Round(time.Millisecond))

	select {
	case <-frozen:
	default:
		t.Fatal("the server was never frozen")
	}
	if atFreezeSync >= freezeSyncEvents || atFreezeAsync >= freezeAsyncEvents {
		t.Errorf("the freeze came after a publisher finished (sync %d, async %d)", atFreezeSync, atFreezeAsync)
	}
	// The test means something only if acks really timed out and were retried.
	if asyncRetries <= 0 || syncRetries <= 0 {
		t.Errorf("no retries (sync %d, async %d): no ack timed out during the freeze, or a timed-out one was not retried", syncRetries, asyncRetries)
	}
	if reported != 0 {
		t.Errorf("%d async events reported to the error handler; first: %v", reported, firstReported)
	}
	if len(syncErrs) != 0 {
		t.Errorf("%d sync publishes failed; first: %v", len(syncErrs), syncErrs[0])
	}
	if len(asyncRejected) != 0 {
		t.Errorf("%d PublishAsync calls refused; first: %v", len(asyncRejected), asyncRejected[0])
	}
	if lost != 0 || extra != 0 || stored != freezeSyncEvents+freezeAsyncEvents || len(ids) != freezeSyncEvents+freezeAsyncEvents {
		t.Errorf("stream: %d messages, %d distinct IDs (want %d each), %d lost, %d IDs stored more than once (%d extra copies)",
			stored, len(ids), freezeSyncEvents+freezeAsyncEvents, lost, dupIDs, extra)
	}
}

func newEvent(kind string, i int) *events.Event {
	e, err := events.NewEvent("order.created", "stall-"+kind, "org-1", time.Now().UTC(), map[string]any{"i": i})
	if err != nil {
		panic(err) // only a broken UUID source fails here
	}
	return e
}
