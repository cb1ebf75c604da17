//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
	"github.com/giia/eventstream-operator/pkg/events"
)

const (
	syncEvents  = 5000
	asyncEvents = 20000
)

// publishRetry: more attempts than the default 3 so a publish outlives a
// server restart; the whole span (~24 s of pauses + attempts) stays well
// inside the stream's 2-minute duplicate window.
func publishRetry() []events.PublisherOption {
	return []events.PublisherOption{
		events.WithRetry(8, 500*time.Millisecond),
		events.WithMaxBackoff(4 * time.Second),
		events.WithPublishTimeout(2 * time.Second),
	}
}

func newEvent(kind string, i int) *events.Event {
	e, err := events.NewEvent("order.created", "chaos-"+kind, "org-1", time.Now().UTC(), map[string]any{"i": i})
	if err != nil {
		panic(err) // only a broken UUID source fails here
	}
	return e
}

// killer SIGKILLs and restarts a server when progress() crosses each of the
// points (fractions of the work), staying down a random 0.5–2 s each time.
type killer struct {
	points   []float64
	downs    []time.Duration
	at       []float64 // progress when killed
	restarts []time.Duration
	err      error
}

func (k *killer) run(ctx context.Context, srv *natsproc.Server, progress func() float64, rnd *rand.Rand) {
	for _, p := range k.points {
		for progress() < p {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
		k.at = append(k.at, progress())
		srv.Kill()
		down := time.Duration(500+rnd.IntN(1500)) * time.Millisecond
		k.downs = append(k.downs, down)
		time.Sleep(down)
		t0 := time.Now()
		if err := srv.Start(); err != nil {
			k.err = err
			return
		}
		k.restarts = append(k.restarts, time.Since(t0))
	}
}

// TestNATSKilledWhilePublishing: a sync publisher (5,000 events) and an
// async publisher (20,000) run while nats-server is SIGKILLed and restarted
// twice on the same store and port. Every event the library reported as
// published is stored, and stored exactly once.
func TestNATSKilledWhilePublishing(t *testing.T) {
	dir := t.TempDir()
	srv := natsproc.StartStandalone(t, dir)
	_, js := connect(t, srv.URL(), "chaos-admin")
	ctx := context.Background()
	cfg := events.NewStreamConfig("CHAOS_PUB", "chaos.>")
	if cfg.DuplicateWindow < 2*time.Minute {
		t.Fatalf("duplicate window %s does not cover the retry span", cfg.DuplicateWindow)
	}
	if _, err := events.CreateStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	syncNC, err := events.Connect(srv.URL(), events.WithName("chaos-sync"), events.WithReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer syncNC.Close()
	asyncNC, err := events.Connect(srv.URL(), events.WithName("chaos-async"), events.WithReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer asyncNC.Close()
	syncPub, err := events.NewPublisher(syncNC, publishRetry()...)
	if err != nil {
		t.Fatal(err)
	}
	var failMu sync.Mutex
	asyncFailed := map[string]error{}
	asyncPub, err := events.NewPublisher(asyncNC, append(publishRetry(),
		events.WithErrorHandler(func(_ string, e *events.Event, err error) {
			failMu.Lock()
			asyncFailed[e.ID] = err
			failMu.Unlock()
		}))...)
	if err != nil {
		t.Fatal(err)
	}

	rnd, seed := chaosRand(t)
	k := &killer{points: []float64{0.15 + 0.25*rnd.Float64(), 0.55 + 0.25*rnd.Float64()}}
	t.Logf("seed %d: kills at %.0f%% and %.0f%% of the sync publishes", seed, 100*k.points[0], 100*k.points[1])

	var syncDone, asyncDone atomic.Int64
	progress := func() float64 { return float64(syncDone.Load()) / syncEvents }
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	kdone := make(chan struct{})
	go func() { defer close(kdone); k.run(kctx, srv, progress, rnd) }()

	start := time.Now()
	// Async publisher: paced to stay just ahead of the sync one, so that
	// both are mid-run when the server dies.
	asyncIDs := make([]string, 0, asyncEvents)
	var asyncRejected []error
	awg := sync.WaitGroup{}
	awg.Add(1)
	go func() {
		defer awg.Done()
		deadline := time.Now().Add(4 * time.Minute)
		for i := range asyncEvents {
			for float64(i)/asyncEvents > progress()+0.02 && syncDone.Load() < syncEvents && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			e := newEvent("async", i)
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			err := asyncPub.PublishAsync(pctx, "chaos.async", e)
			cancel()
			if err != nil {
				asyncRejected = append(asyncRejected, err)
				continue
			}
			asyncIDs = append(asyncIDs, e.ID)
			asyncDone.Add(1)
		}
	}()

	syncOK := make([]string, 0, syncEvents)
	var syncErrs []error
	var maxLat time.Duration
	slow := 0
	for i := range syncEvents {
		e := newEvent("sync", i)
		pctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		t0 := time.Now()
		err := syncPub.Publish(pctx, "chaos.sync", e)
		lat := time.Since(t0)
		cancel()
		maxLat = max(maxLat, lat)
		if lat > 400*time.Millisecond {
			slow++
		}
		if err != nil {
			syncErrs = append(syncErrs, err)
		} else {
			syncOK = append(syncOK, e.ID)
		}
		syncDone.Add(1)
	}
	syncTime := time.Since(start)
	awg.Wait()
	fctx, fcancel := context.WithTimeout(ctx, 3*time.Minute)
	if err := asyncPub.Flush(fctx); err != nil {
		t.Errorf("async flush: %v", err)
	}
	fcancel()
	asyncTime := time.Since(start)
	kcancel()
	<-kdone
	if k.err != nil {
		t.Fatalf("restarting nats-server: %v", k.err)
	}

	stored, ids := eventIDs(t, js, "CHAOS_PUB")
	dupIDs, extra := dupes(ids)
	lostSync := 0
	for _, id := range syncOK {
		if ids[id] == 0 {
			lostSync++
		}
	}
	failMu.Lock()
	handlerErrs := len(asyncFailed)
	var firstHandlerErr error
	for _, err := range asyncFailed {
		firstHandlerErr = err
		break
	}
	lostAsync := 0
	for _, id := range asyncIDs {
		if _, failed := asyncFailed[id]; !failed && ids[id] == 0 {
			lostAsync++
		}
	}
	failMu.Unlock()
	published := map[string]bool{}
	for _, id := range syncOK {
		published[id] = true
	}
	for _, id := range asyncIDs {
		published[id] = true
	}
	unknown := 0
	for id := range ids {
		if !published[id] {
			unknown++ // a sync publish that returned an error but was stored
		}
	}

	fmt.Printf("FIGURES nats-killed: seed %d; %d sync + %d async events, %d kill(s) at %s of the run (down %v, restart %v); "+
		"sync: %d ok, %d errors, %d slow (>400ms), max latency %v, %v; async: %d accepted, %d rejected, %d to the error handler, %v; "+
		"stream: %d messages, %d distinct IDs, %d duplicates, %d lost (sync %d, async %d), %d stored though reported failed; "+
		"publish attempts (client OutMsgs): sync %d (%d retries), async %d (%d retries)\n",
		seed, syncEvents, asyncEvents, len(k.at), pct(k.at), k.downs, k.restarts,
		len(syncOK), len(syncErrs), slow, maxLat.Round(time.Millisecond), syncTime.Round(time.Millisecond),
		len(asyncIDs), len(asyncRejected), handlerErrs, asyncTime.Round(time.Millisecond),
		stored, len(ids), extra, lostSync+lostAsync, lostSync, lostAsync, unknown,
		syncNC.Stats().OutMsgs, int(syncNC.Stats().OutMsgs)-syncEvents, asyncNC.Stats().OutMsgs, int(asyncNC.Stats().OutMsgs)-asyncEvents)

	if len(k.at) == 0 {
		t.Errorf("the server was never killed during the run")
	}
	if extra != 0 || stored != len(ids) {
		t.Errorf("duplicates: %d IDs stored more than once (%d extra copies); %d messages for %d IDs", dupIDs, extra, stored, len(ids))
	}
	if lostSync != 0 {
		t.Errorf("%d events whose Publish returned nil are not in the stream", lostSync)
	}
	if lostAsync != 0 {
		t.Errorf("%d async events never reported to the error handler are not in the stream", lostAsync)
	}
	// The retry span (~40 s) dwarfs the outages (≤ 2 s + restart): a publish
	// that still fails is a misclassified error.
	if len(syncErrs) != 0 {
		t.Errorf("%d sync publishes failed despite retries; first: %v", len(syncErrs), syncErrs[0])
	}
	if handlerErrs != 0 {
		t.Errorf("%d async publishes failed for good despite retries; one: %v", handlerErrs, firstHandlerErr)
	}
	if len(asyncRejected) != 0 {
		t.Errorf("%d PublishAsync calls refused; first: %v", len(asyncRejected), asyncRejected[0])
	}
	var perr *events.OpError
	for _, err := range syncErrs {
		if !errors.As(err, &perr) {
			t.Errorf("sync publish error is not an *events.OpError: %v", err)
			break
		}
	}
}

func pct(fs []float64) string {
	s := ""
	for i, f := range fs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%.0f%%", 100*f)
	}
	return "[" + s + "]"
}
