package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// ledgerValue reads key straight from the bucket (0, false when absent).
func ledgerValue(t *testing.T, js jetstream.JetStream, key string) (Count, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, DefaultLedgerBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return Count{}, false
	}
	if err != nil {
		t.Fatalf("bucket: %v", err)
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Count{}, false
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	var c Count
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		t.Fatalf("value of %s: %v", key, err)
	}
	return c, true
}

func waitCount(t *testing.T, js jetstream.JetStream, key string, want int64) {
	t.Helper()
	eventually(t, 10*time.Second, "ledger count", func() bool {
		c, _ := ledgerValue(t, js, key)
		return c.DeadLettered == want
	})
}

// startLedger runs a ledger watch until the end of the test and waits for
// its first replay.
func startLedger(t *testing.T, l *Ledger) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ledger Start returned %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-l.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("ledger watch not ready within 10s")
	}
	return stop
}

func newLedger(t *testing.T, e *env, opts ...LedgerOption) *Ledger {
	return NewLedger(e.nc, append([]LedgerOption{WithLedgerLogger(testr.New(t))}, opts...)...)
}

// TestCountExactlyOnceWhenKilledBeforeAck kills a forwarder between the
// ledger write and the advisory's ack (the hook abandons the advisory and the
// forwarder is stopped). A new forwarder gets the advisory again after the
// capture consumer's ack wait; its increment is a duplicate and the dead
// letter stays counted once. Both paths are exercised: a dead letter the
// forwarder publishes, and one pkg/events announces as sent.
func TestCountExactlyOnceWhenKilledBeforeAck(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	e.dlq(t)
	const ackWait = time.Second

	var killed atomic.Int32
	kill := func() bool { killed.Add(1); return true }
	first := start(t, e.nc, billingResolver, false, WithLedger(newLedger(t, e)), WithConsumerAckWait(ackWait),
		func(o *options) { o.afterCount = kill })

	// 1. Terminated with a reason: the forwarder publishes the dead letter.
	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "counted, then killed", func() bool { return killed.Load() == 1 })
	first.stop()
	waitCount(t, e.js, billingKey, 1)
	if s := first.f.Stats(); s.Counted != 1 || s.CountDuplicates != 0 {
		t.Errorf("first forwarder stats = %+v", s)
	}

	second := start(t, e.nc, billingResolver, false, WithLedger(newLedger(t, e)), WithConsumerAckWait(ackWait))
	onlyDeadLetter(t, e.js) // waits until the advisory is acknowledged
	if s := second.f.Stats(); s.CountDuplicates != 1 || s.Counted != 0 || s.AlreadyDeadLettered != 1 {
		t.Errorf("second forwarder stats = %+v, want the redelivered advisory found counted", s)
	}
	if got, _ := ledgerValue(t, e.js, billingKey); got.DeadLettered != 1 {
		t.Errorf("ledger = %+v, want 1", got)
	}
	second.stop()

	// 2. Dead-lettered by the library: the advisory is only counted.
	third := start(t, e.nc, billingResolver, false, WithLedger(newLedger(t, e)), WithConsumerAckWait(ackWait),
		func(o *options) { o.afterCount = kill })
	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason(events.TermReasonDeadLettered + ": boom"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "counted, then killed", func() bool { return killed.Load() == 2 })
	third.stop()
	waitCount(t, e.js, billingKey, 2)

	fourth := start(t, e.nc, billingResolver, false, WithLedger(newLedger(t, e)), WithConsumerAckWait(ackWait))
	eventually(t, 10*time.Second, "redelivered advisory handled", func() bool { return fourth.f.Stats().CountDuplicates == 1 })
	advisoriesDone(t, e.js)
	if got, _ := ledgerValue(t, e.js, billingKey); got.DeadLettered != 2 {
		t.Errorf("ledger = %+v, want 2", got)
	}
	if s := fourth.f.Stats(); s.Counted != 0 || s.NotCounted != 0 {
		t.Errorf("fourth forwarder stats = %+v", s)
	}
}

// TestCountsSurviveRestart: counts are in the bucket, not in a forwarder; a
// restarted forwarder continues them, and a ledger watch started afterwards
// sees them. Two consumers dead-lettering the same message each count it.
func TestCountsSurviveRestart(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	other := e.consumer(t, "reporting")
	e.dlq(t)
	resolve := func(stream, consumer string) (Target, bool) {
		if stream == ordersStream && (consumer == billing || consumer == "reporting") {
			return Target{Key: "shop/" + consumer, UID: "uid-" + consumer}, true
		}
		return Target{}, false
	}
	r := start(t, e.nc, resolve, false, WithLedger(newLedger(t, e)))
	e.publishOrder(t, "orders.created")
	e.publishOrder(t, "orders.created")
	for range 2 {
		if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
			t.Fatal(err)
		}
	}
	waitCount(t, e.js, "shop/billing", 2)
	r.stop()

	r = start(t, e.nc, resolve, false, WithLedger(newLedger(t, e)))
	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, e.js, "shop/billing", 3)
	// The same message (sequence 1) given up by another consumer: one dead
	// letter in the DLQ, one count for each consumer.
	if err := fetchOne(t, other).TermWithReason("not for me"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, e.js, "shop/reporting", 1)
	advisoriesDone(t, e.js)
	if n := eventstest.StreamMsgs(t, e.js, dlqStream); n != 3 {
		t.Errorf("DLQ holds %d, want 3", n)
	}
	if s := r.f.Stats(); s.Counted != 2 || s.CountDuplicates != 0 {
		t.Errorf("stats = %+v", s)
	}

	var mu sync.Mutex
	changes := map[string]Count{}
	l := newLedger(t, e, WithOnChange(func(key string, c Count) { mu.Lock(); changes[key] = c; mu.Unlock() }))
	startLedger(t, l)
	if got, ok := l.Get("shop/billing"); !ok || got != (Count{DeadLettered: 3, UID: "uid-billing"}) {
		t.Errorf("Get(shop/billing) = %+v %v", got, ok)
	}
	if got, ok := l.Get("shop/reporting"); !ok || got.DeadLettered != 1 {
		t.Errorf("Get(shop/reporting) = %+v %v", got, ok)
	}
	mu.Lock()
	if len(changes) != 2 || changes["shop/billing"].DeadLettered != 3 {
		t.Errorf("OnChange at start: %v", changes)
	}
	mu.Unlock()

	// The watch follows new counts.
	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "watch sees 4", func() bool {
		got, _ := l.Get("shop/billing")
		mu.Lock()
		defer mu.Unlock()
		return got.DeadLettered == 4 && changes["shop/billing"].DeadLettered == 4
	})
}

// TestLedgerAdd exercises the increment directly: base for a new key or
// another UID, duplicates, a concurrent writer, deletion.
func TestLedgerAdd(t *testing.T) {
	e := newEnv(t)
	l := newLedger(t, e)
	ctx := context.Background()
	st, err := l.ensure(ctx, e.js)
	if err != nil {
		t.Fatal(err)
	}
	add := func(key, uid string, base int64, id string) (bool, int64) {
		t.Helper()
		counted, n, err := l.add(ctx, e.js, st, key, uid, base, id)
		if err != nil {
			t.Fatalf("add(%s, %s): %v", key, id, err)
		}
		return counted, n
	}
	// A key with no count starts at base (an older operator's status count).
	if counted, n := add("ns/a", "u1", 5, "d1"); !counted || n != 6 {
		t.Errorf("first add = %v %d, want true 6", counted, n)
	}
	if counted, _ := add("ns/a", "u1", 5, "d1"); counted {
		t.Error("the same dead letter was counted twice")
	}
	if counted, n := add("ns/a", "u1", 5, "d2"); !counted || n != 7 {
		t.Errorf("second dead letter = %v %d, want true 7", counted, n)
	}
	// Someone else wrote the key meanwhile (the revision moved): the
	// increment continues from what is there.
	kv, err := e.js.KeyValue(ctx, DefaultLedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "ns/a", []byte(`{"deadLettered":10,"uid":"u1"}`)); err != nil {
		t.Fatal(err)
	}
	if counted, n := add("ns/a", "u1", 5, "d3"); !counted || n != 11 {
		t.Errorf("after a concurrent write = %v %d, want true 11", counted, n)
	}
	// A new resource of the same name (another UID) starts at its base.
	if counted, n := add("ns/a", "u2", 0, "d4"); !counted || n != 1 {
		t.Errorf("new UID = %v %d, want true 1", counted, n)
	}
	if got, _ := ledgerValue(t, e.js, "ns/a"); got != (Count{DeadLettered: 1, UID: "u2"}) {
		t.Errorf("value = %+v", got)
	}
	// Delete leaves nothing behind; the key starts again at base.
	if err := l.Delete(ctx, "ns/a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := ledgerValue(t, e.js, "ns/a"); ok {
		t.Error("key still there after Delete")
	}
	if counted, n := add("ns/a", "u3", 0, "d5"); !counted || n != 1 {
		t.Errorf("after Delete = %v %d, want true 1", counted, n)
	}
	if _, _, err := l.add(ctx, e.js, st, "bad key", "", 0, "d6"); !errors.Is(err, errNotCounted) {
		t.Errorf("invalid key: %v", err)
	}
	if err := l.Delete(ctx, "bad key"); err == nil {
		t.Error("Delete accepted an invalid key")
	}
}

func TestLedgerBucketConfig(t *testing.T) {
	e := newEnv(t)
	l := newLedger(t, e)
	startLedger(t, l)
	ctx := context.Background()
	info, err := events.GetStreamInfo(ctx, e.js, "KV_"+DefaultLedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	if cfg.Duplicates != time.Hour || cfg.MaxMsgsPerSubject != LedgerHistory || cfg.Storage != jetstream.FileStorage ||
		cfg.MaxBytes != DefaultLedgerMaxBytes || cfg.Discard != jetstream.DiscardNew || !cfg.AllowRollup || !cfg.DenyDelete ||
		cfg.Metadata[OwnerMetadataKey] != OwnerMetadataValue {
		t.Errorf("config = %+v", cfg)
	}
	// It is a KeyValue bucket any client can read.
	kv, err := e.js.KeyValue(ctx, DefaultLedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(ctx); err != nil || st.History() != LedgerHistory {
		t.Errorf("status %v %v", st, err)
	}
	// Changed by hand, it is put back at the next start; nothing is written
	// when it matches.
	cfg.Duplicates = 2 * time.Minute
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := newLedger(t, e).ensure(ctx, e.js); err != nil {
		t.Fatal(err)
	}
	info, _ = events.GetStreamInfo(ctx, e.js, "KV_"+DefaultLedgerBucket)
	if info.Config.Duplicates != time.Hour {
		t.Errorf("duplicates = %s after ensure", info.Config.Duplicates)
	}
	if d := ledgerDiff(newLedger(t, e).StreamConfig(), info.Config); len(d) != 0 {
		t.Errorf("diff after ensure: %v", d)
	}
	if err := l.Start(ctx); err == nil {
		t.Error("second Start returned nil")
	}
}

// TestLedgerBucketDeleted: a bucket deleted under a running forwarder is
// created again at the next dead letter, which starts from the target's base
// (the count the resource's status holds).
func TestLedgerBucketDeleted(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	e.dlq(t)
	resolve := func(stream, consumer string) (Target, bool) {
		t, ok := billingResolver(stream, consumer)
		t.Base = 7
		return t, ok
	}
	r := start(t, e.nc, resolve, false, WithLedger(newLedger(t, e)))
	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, e.js, billingKey, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.js.DeleteKeyValue(ctx, DefaultLedgerBucket); err != nil {
		t.Fatal(err)
	}
	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	waitCount(t, e.js, billingKey, 8)
	advisoriesDone(t, e.js)
	if s := r.f.Stats(); s.Counted != 2 {
		t.Errorf("stats = %+v", s)
	}
}
