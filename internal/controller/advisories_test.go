package controller

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// These tests run the Triggers alone against an embedded nats-server: the
// controllers' side is played by the test, which can stall it at will. The
// advisories are published on JetStream's advisory subjects by a second
// connection, as fast as it can, so a burst is as dense as the server
// delivers it.

// startTriggers runs Triggers on a fresh connection to srv until the test
// ends, and returns them once their subscriptions are in place.
func startTriggers(t *testing.T, srv *eventstest.Server, setup ...func(*Triggers)) (*Triggers, *nats.Conn) {
	t.Helper()
	nc := srv.Conn(t)
	tr := NewTriggers(nc, logr.Discard())
	for _, fn := range setup {
		fn(tr)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Triggers.Start: %v", err)
		}
	})
	waitFor(t, 10*time.Second, "advisory subscriptions", func() bool { return len(tr.subscriptions()) == len(advisorySubjects) })
	return tr, nc
}

func (t *Triggers) subscriptions() []*nats.Subscription {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*nats.Subscription
	for _, subs := range t.subs {
		out = append(out, subs...)
	}
	return out
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// delivered sums the messages the advisory subscriptions handed to their
// callbacks.
func delivered(t *testing.T, tr *Triggers) int {
	t.Helper()
	n := 0
	for _, s := range tr.subscriptions() {
		d, err := s.Delivered()
		if err != nil {
			t.Fatalf("Delivered: %v", err)
		}
		n += int(d)
	}
	return n
}

// pendingAndDropped sums the advisory subscriptions' pending messages and
// the messages nats.go dropped from them.
func pendingAndDropped(t *testing.T, tr *Triggers) (pending, dropped int) {
	t.Helper()
	for _, s := range tr.subscriptions() {
		p, _, err := s.Pending()
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		d, err := s.Dropped()
		if err != nil {
			t.Fatalf("Dropped: %v", err)
		}
		pending += p
		dropped += d
	}
	return pending, dropped
}

// triggerName renders a trigger as the tests compare them: "S" for a
// stream, "S/C" for a consumer of a stream, "ns/name!" for a direct one.
func triggerName(ev event.GenericEvent) string {
	o := ev.Object
	if o.GetLabels()[triggerDirectLabel] != "" {
		return o.GetNamespace() + "/" + o.GetName() + "!"
	}
	if s, ok := o.GetLabels()[triggerStreamLabel]; ok {
		return s + "/" + o.GetName()
	}
	return o.GetName()
}

// drain reads ch until it has been quiet for quiet, and counts what came.
func drain(ch <-chan event.GenericEvent, quiet time.Duration) map[string]int {
	got := map[string]int{}
	for {
		select {
		case ev := <-ch:
			got[triggerName(ev)]++
		case <-time.After(quiet):
			return got
		}
	}
}

func total(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

func publish(t *testing.T, nc *nats.Conn, subjects ...string) {
	t.Helper()
	for _, s := range subjects {
		if err := nc.Publish(s, []byte(`{"type":"io.nats.jetstream.advisory.v1.stream_action"}`)); err != nil {
			t.Fatalf("publish %s: %v", s, err)
		}
	}
	if err := nc.FlushTimeout(30 * time.Second); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

func TestAdvisoryBurstWhileControllersStallNeverBlocksTheCallback(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	tr, _ := startTriggers(t, srv)
	pub := srv.Conn(t)

	// N advisories about M streams and M consumers, far more than the
	// trigger channels and the controllers' buffers hold, while nothing
	// reads the triggers.
	const m, rounds = 500, 40 // 2 × 20 000 advisories
	var subjects []string
	for r := range rounds {
		for i := range m {
			action := []string{"DELETED", "UPDATED"}[r%2]
			subjects = append(subjects,
				fmt.Sprintf("$JS.EVENT.ADVISORY.STREAM.%s.S%d", action, i),
				fmt.Sprintf("$JS.EVENT.ADVISORY.CONSUMER.DELETED.CS%d.C%d", i, i))
		}
	}
	epoch0 := tr.StreamsEpoch()
	publish(t, pub, subjects...)

	// The callbacks keep up although no trigger is consumed: every advisory
	// reaches its callback and nats.go drops nothing. (Waiting for an empty
	// client backlog alone is not enough: on a loaded machine the server may
	// still be delivering, and triggers drained meanwhile are counted twice.)
	waitFor(t, 60*time.Second, "every advisory delivered while the controllers are stalled", func() bool {
		p, _ := pendingAndDropped(t, tr)
		return p == 0 && delivered(t, tr) == len(subjects)
	})
	if _, dropped := pendingAndDropped(t, tr); dropped != 0 {
		t.Fatalf("nats.go dropped %d advisories (slow consumer)", dropped)
	}

	// The controllers resume: every name arrives, repeats collapsed. At most
	// a name is delivered twice plus what was in the channel: once from the
	// batch the dispatcher held when it stalled, once from the set that
	// built up meanwhile (slack: the last callbacks may still be finishing
	// when the backlog reads empty).
	const slack = 8
	streams := drain(tr.Streams(), 500*time.Millisecond)
	consumers := drain(tr.Consumers(), 500*time.Millisecond)
	if got := tr.StreamsEpoch() - epoch0; got != m*rounds {
		t.Errorf("StreamsEpoch moved by %d, want one per stream advisory (%d)", got, m*rounds)
	}
	for i := range m {
		if streams[fmt.Sprintf("S%d", i)] == 0 {
			t.Errorf("stream S%d never triggered", i)
		}
		if consumers[fmt.Sprintf("S%d/*", i)] == 0 {
			t.Errorf("consumers of stream S%d never triggered", i)
		}
		if consumers[fmt.Sprintf("CS%d/C%d", i, i)] == 0 {
			t.Errorf("consumer CS%d/C%d never triggered", i, i)
		}
	}
	if n, limit := total(streams), 2*m+triggerChanSize+slack; n > limit {
		t.Errorf("%d stream triggers for %d advisories about %d streams, want at most %d", n, m*rounds, m, limit)
	}
	if n, limit := total(consumers), 2*2*m+triggerChanSize+slack; n > limit {
		t.Errorf("%d consumer triggers for %d advisories about %d names, want at most %d", n, 2*m*rounds, 2*m, limit)
	}
	t.Logf("%d advisories → %d stream triggers, %d consumer triggers", 2*m*rounds, total(streams), total(consumers))
}

func TestDirectTriggersAndResyncAreNeverDropped(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	tr, _ := startTriggers(t, srv)

	// Far more direct requests than any buffer, while nothing reads them:
	// none blocks, none is lost.
	const n = 10_000
	for i := range n {
		tr.Reconcile(types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("c%d", i)})
	}
	tr.Reconcile(types.NamespacedName{Namespace: "ns", Name: "c0"}) // a repeat
	got := drain(tr.Consumers(), 500*time.Millisecond)
	for i := range n {
		if got[fmt.Sprintf("ns/c%d!", i)] == 0 {
			t.Fatalf("direct trigger ns/c%d lost (%d of %d delivered)", i, len(got), n)
		}
	}
	if total(got) > n+1 {
		t.Errorf("%d direct triggers for %d objects", total(got), n)
	}

	// A resync is delivered too, and moves the streams epoch.
	epoch0 := tr.StreamsEpoch()
	tr.ResyncAll()
	if tr.StreamsEpoch() == epoch0 {
		t.Error("ResyncAll did not move StreamsEpoch")
	}
	streams := drain(tr.Streams(), 500*time.Millisecond)
	consumers := drain(tr.Consumers(), 500*time.Millisecond)
	if streams[All] != 1 || consumers[All+"/"+All] != 1 {
		t.Fatalf("after ResyncAll: %d stream and %d consumer triggers for everything, want 1 each", streams[All], consumers[All+"/"+All])
	}
}

func TestTriggerSetCoalesces(t *testing.T) {
	names := func(evs []event.GenericEvent) map[string]int {
		m := map[string]int{}
		for _, ev := range evs {
			m[triggerName(ev)]++
		}
		return m
	}
	var s triggerSet
	for range 3 {
		s.addStream("A")
		s.addStream("B")
		s.addConsumer("A", "c1")
		s.addConsumer("A", "c2")
		s.addConsumer("B", "c1")
		s.addDirect(types.NamespacedName{Namespace: "ns", Name: "x"})
	}
	s.addConsumer("A", All)  // absorbs A/c1 and A/c2 ...
	s.addConsumer("A", "c3") // ... and what comes after
	if got, want := names(s.take(streamKind)), map[string]int{"A": 1, "B": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("streams: %v, want %v", got, want)
	}
	if got, want := names(s.take(consumerKind)), map[string]int{"A/*": 1, "B/c1": 1, "ns/x!": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("consumers: %v, want %v", got, want)
	}
	if len(s.take(streamKind))+len(s.take(consumerKind)) != 0 {
		t.Error("take left triggers behind")
	}

	// "All" absorbs everything of its kind, before and after.
	for i := range 1000 {
		s.addStream(fmt.Sprintf("S%d", i))
		s.addConsumer(fmt.Sprintf("S%d", i), All)
		s.addDirect(types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("c%d", i)})
	}
	s.addStream(All)
	s.addConsumer(All, All)
	s.addStream("late")
	s.addConsumer("late", "c")
	s.addDirect(types.NamespacedName{Namespace: "ns", Name: "late"})
	if got := names(s.take(streamKind)); fmt.Sprint(got) != fmt.Sprint(map[string]int{All: 1}) {
		t.Errorf("streams after All: %v", got)
	}
	if got := names(s.take(consumerKind)); fmt.Sprint(got) != fmt.Sprint(map[string]int{All + "/" + All: 1}) {
		t.Errorf("consumers after All: %v", got)
	}
}

func TestOwnWritesAreNotTriggeredButDeletionsAre(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	tr, _ := startTriggers(t, srv)
	pub := srv.Conn(t)

	tr.ExpectOwnWrite("MINE", "")
	tr.ExpectOwnWrite("MINE", "dur")
	publish(t, pub, "$JS.EVENT.ADVISORY.STREAM.CREATED.MINE", "$JS.EVENT.ADVISORY.CONSUMER.CREATED.MINE.dur")
	streams := drain(tr.Streams(), 300*time.Millisecond)
	consumers := drain(tr.Consumers(), 300*time.Millisecond)
	if len(streams) != 0 {
		t.Errorf("the operator's own stream create triggered %v", streams)
	}
	// Consumers are checked whoever changed a stream; the own consumer
	// create is not triggered.
	if consumers["MINE/*"] != 1 || len(consumers) != 1 {
		t.Errorf("consumer triggers %v, want only MINE/*", consumers)
	}

	// The expectation is used up; a deletion is never the operator's own.
	tr.ExpectOwnWrite("MINE", "")
	publish(t, pub, "$JS.EVENT.ADVISORY.STREAM.DELETED.MINE", "$JS.EVENT.ADVISORY.STREAM.UPDATED.MINE",
		"$JS.EVENT.ADVISORY.STREAM.UPDATED.MINE")
	if got := drain(tr.Streams(), 300*time.Millisecond); got["MINE"] == 0 {
		t.Errorf("an out-of-band change after the own write was not triggered: %v", got)
	}
}

func TestDroppedAdvisoriesTriggerAFullResync(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	tr, _ := startTriggers(t, srv)
	pub := srv.Conn(t)

	// Make nats.go drop: tiny pending limits, and the callback held up by
	// the own-write lock it takes for CREATED advisories.
	for _, s := range tr.subscriptions() {
		if err := s.SetPendingLimits(1, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	tr.ownMu.Lock()
	var subjects []string
	for i := range 20 {
		subjects = append(subjects, fmt.Sprintf("$JS.EVENT.ADVISORY.STREAM.CREATED.S%d", i))
	}
	publish(t, pub, subjects...)
	waitFor(t, 10*time.Second, "nats.go dropping advisories", func() bool {
		_, d := pendingAndDropped(t, tr)
		return d > 0
	})
	tr.ownMu.Unlock()

	// The dropped names are unknown: everything is reconciled.
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case ev := <-tr.Streams():
			seen = triggerName(ev) == All
		case <-deadline:
			t.Fatal("no resync of every EventStream after advisories were dropped")
		}
	}
	waitFor(t, 5*time.Second, "a resync of every EventConsumer", func() bool {
		return drain(tr.Consumers(), 100*time.Millisecond)[All+"/"+All] > 0
	})
}

// The deletion audit runs on its own clock, advisory or not: nats-server can
// lose a DELETED advisory under load, and a lone deletion whose advisory is
// lost must not wait for the resync. It triggers a missing stream once while
// it stays missing (a reconcile that cannot recreate it retries on its own
// backoff), and never a stream whose DELETED advisory arrived: that one is
// already triggered, and it is not counted as lost.
func TestDeletionAuditFindsStreamsWhoseAdvisoryWasLost(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	const every = 200 * time.Millisecond
	var (
		mu      sync.Mutex
		missing = []string{"LOST"}
		audits  atomic.Int32
	)
	setMissing := func(names ...string) { mu.Lock(); missing = names; mu.Unlock() }
	tr, _ := startTriggers(t, srv, func(tr *Triggers) {
		tr.SetDeletionAudit(func(context.Context) ([]string, error) {
			audits.Add(1)
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), missing...), nil
		}, every)
	})
	pub := srv.Conn(t)
	lostBefore := testutil.ToFloat64(lostDeletions)

	// A lone deletion, no advisory at all: found by the audit, once.
	got := drain(tr.Streams(), 10*every)
	if got["LOST"] != 1 || audits.Load() < 5 {
		t.Fatalf("a lone deletion without an advisory: triggers %v after %d audits; want LOST once", got, audits.Load())
	}
	if n := testutil.ToFloat64(lostDeletions) - lostBefore; n != 1 {
		t.Errorf("lost deletions counted %v, want 1", n)
	}

	// Deletions whose advisories arrived: triggered by them, not again by
	// the audit, and not counted as lost.
	var deleted []string
	for i := range 20 {
		name := fmt.Sprintf("S%d", i)
		deleted = append(deleted, name)
		publish(t, pub, "$JS.EVENT.ADVISORY.STREAM.DELETED."+name)
	}
	setMissing(append([]string{"LOST"}, deleted...)...)
	got = drain(tr.Streams(), 10*every)
	for _, name := range deleted {
		if got[name] != 1 {
			t.Errorf("%s, deleted with an advisory, was triggered %d times, want 1 (%v)", name, got[name], got)
		}
	}
	if got["LOST"] != 0 {
		t.Errorf("LOST, still missing, was triggered again by the audit: %v", got)
	}
	if n := testutil.ToFloat64(lostDeletions) - lostBefore; n != 1 {
		t.Errorf("lost deletions counted %v, want still 1", n)
	}

	// LOST is recreated, then deleted again without an advisory: found again.
	setMissing()
	drain(tr.Streams(), 3*every)
	setMissing("LOST")
	if got := drain(tr.Streams(), 10*every); got["LOST"] != 1 {
		t.Errorf("LOST deleted a second time: triggers %v, want LOST once", got)
	}
}

// A bucket is a stream: the advisories of KV_<bucket> and OBJ_<bucket>, and
// the deletion audit's findings, also reach the bucket kinds' channels (and
// only theirs: a plain stream's never does), the operator's own writes
// excepted; a resync reaches every kind.
func TestBucketStreamsTriggerTheBucketKinds(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	const every = 200 * time.Millisecond
	var audited atomic.Bool
	tr, _ := startTriggers(t, srv, func(tr *Triggers) {
		tr.SetDeletionAudit(func(context.Context) ([]string, error) {
			if audited.Load() {
				return []string{"KV_LOST", "OBJ_GONE"}, nil
			}
			return nil, nil
		}, every)
	})
	pub := srv.Conn(t)

	tr.ExpectOwnWrite("KV_MINE", "")
	publish(t, pub, "$JS.EVENT.ADVISORY.STREAM.UPDATED.KV_CONFIG", "$JS.EVENT.ADVISORY.STREAM.DELETED.OBJ_FILES",
		"$JS.EVENT.ADVISORY.STREAM.CREATED.ORDERS", "$JS.EVENT.ADVISORY.STREAM.CREATED.KV_MINE")
	kvs, objs := drain(tr.KeyValues(), 300*time.Millisecond), drain(tr.ObjectStores(), 300*time.Millisecond)
	if fmt.Sprint(kvs) != fmt.Sprint(map[string]int{"KV_CONFIG": 1}) {
		t.Errorf("KeyValue triggers %v, want KV_CONFIG once (not ORDERS, not the own write KV_MINE)", kvs)
	}
	if fmt.Sprint(objs) != fmt.Sprint(map[string]int{"OBJ_FILES": 1}) {
		t.Errorf("ObjectStore triggers %v, want OBJ_FILES once", objs)
	}

	audited.Store(true)
	kvs, objs = drain(tr.KeyValues(), 5*every), drain(tr.ObjectStores(), 5*every)
	if kvs["KV_LOST"] != 1 || objs["OBJ_GONE"] != 1 {
		t.Errorf("audit findings: KeyValue %v, ObjectStore %v; want KV_LOST and OBJ_GONE", kvs, objs)
	}

	tr.ResyncAll()
	kvs, objs = drain(tr.KeyValues(), 300*time.Millisecond), drain(tr.ObjectStores(), 300*time.Millisecond)
	if kvs[All] != 1 || objs[All] != 1 {
		t.Errorf("a resync: KeyValue %v, ObjectStore %v; want All for both", kvs, objs)
	}
}
