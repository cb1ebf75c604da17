package controller

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// All is the trigger name that asks for every object of a kind to be
// reconciled (sent after NATS reconnects).
const All = "*"

// JetStream announces changes on $JS.EVENT.ADVISORY.STREAM.<KIND>.<stream>
// and $JS.EVENT.ADVISORY.CONSUMER.<KIND>.<stream>.<consumer>.
var advisorySubjects = []string{
	"$JS.EVENT.ADVISORY.STREAM.CREATED.*",
	"$JS.EVENT.ADVISORY.STREAM.UPDATED.*",
	"$JS.EVENT.ADVISORY.STREAM.DELETED.*",
	"$JS.EVENT.ADVISORY.CONSUMER.CREATED.*.*",
	"$JS.EVENT.ADVISORY.CONSUMER.DELETED.*.*",
}

// Triggers turns JetStream advisories, NATS reconnects and dead-letter
// forwarding into reconcile triggers, so that a stream or consumer deleted or
// changed out of band is put back in about a second instead of at the next
// resync. It runs only on the leader.
//
// The NATS subscription callbacks never block: they record the name in a
// coalescing set (queued) and wake the dispatcher, which hands the set to the
// controllers' sources and is the only one that waits when they are busy. A
// burst of advisories about the same names collapses into one trigger per
// name, and nothing asked for is ever dropped.
type Triggers struct {
	nc  *nats.Conn
	log logr.Logger
	out [numKinds]chan event.GenericEvent // by kind: streamKind, consumerKind, ...

	// epoch counts stream changes seen (created, updated, deleted), so that
	// what depends on the set of streams can be cached until it moves.
	epoch atomic.Uint64

	qmu    sync.Mutex
	queued triggerSet              // not yet handed to the controllers
	wake   [numKinds]chan struct{} // by kind; capacity 1: a pending wake-up is enough

	ownMu sync.Mutex
	own   map[string]ownWrite // "stream" or "stream/consumer" the operator itself just wrote
	clock clock.PassiveClock  // times the own-write window; tests inject a fake one

	// The deletion audit (see StreamAudit).
	audit      StreamAudit
	auditEvery time.Duration
	auditMu    sync.Mutex
	deleted    map[string]time.Time // streams named by a DELETED advisory, when
	missing    map[string]bool      // what the previous audit found missing

	mu      sync.Mutex
	ctx     context.Context // set by Start
	pending []*nats.Conn    // attached before Start
	subs    map[*nats.Conn][]*nats.Subscription
	dropped map[*nats.Subscription]int // the subscription's Dropped() last seen
}

// triggerSet holds the triggers waiting for the dispatcher, each once. An
// "all" flag absorbs every entry of its kind.
type triggerSet struct {
	allStreams   bool
	streams      map[string]struct{}
	allConsumers bool
	consumers    map[consumerKey]struct{} // consumer All: every consumer of the stream
	direct       map[types.NamespacedName]struct{}
	// Bucket streams (KV_x, OBJ_x) by bucket kind (keyValueKind - bucketKinds, ...).
	allBuckets [2]bool
	buckets    [2]map[string]struct{}
}

type consumerKey struct{ stream, consumer string }

// The kinds of triggers, each with its own channel and dispatcher. Stream
// triggers for a bucket's stream (KV_x, OBJ_x) go to its bucket kind too.
const (
	streamKind = iota
	consumerKind
	keyValueKind
	objectStoreKind
	numKinds
	bucketKinds = keyValueKind // the first bucket kind
)

var kindNames = [numKinds]string{"eventstream", "eventconsumer", "eventkeyvalue", "eventobjectstore"}

// bucketStreamPrefixes are the stream name prefixes of the bucket kinds.
var bucketStreamPrefixes = [2]string{"KV_", "OBJ_"}

// take removes the triggers of one kind from the set and returns them.
func (s *triggerSet) take(kind int) []event.GenericEvent {
	var out []event.GenericEvent
	if kind >= bucketKinds {
		b := kind - bucketKinds
		if s.allBuckets[b] {
			out = append(out, streamTrigger(All))
		}
		for n := range s.buckets[b] {
			out = append(out, streamTrigger(n))
		}
		s.allBuckets[b], s.buckets[b] = false, nil
		return out
	}
	if kind == streamKind {
		if s.allStreams {
			out = append(out, streamTrigger(All))
		}
		for n := range s.streams {
			out = append(out, streamTrigger(n))
		}
		s.allStreams, s.streams = false, nil
		return out
	}
	if s.allConsumers {
		out = append(out, consumerTrigger(All, All))
	}
	for k := range s.consumers {
		out = append(out, consumerTrigger(k.stream, k.consumer))
	}
	for k := range s.direct {
		out = append(out, directTrigger(k))
	}
	s.allConsumers, s.consumers, s.direct = false, nil, nil
	return out
}

func (s *triggerSet) addStream(stream string) {
	s.addBucket(stream)
	switch {
	case s.allStreams:
	case stream == All:
		s.allStreams, s.streams = true, nil
	default:
		if s.streams == nil {
			s.streams = map[string]struct{}{}
		}
		s.streams[stream] = struct{}{}
	}
}

// addBucket routes a stream trigger to the bucket kind whose stream it
// names (or to every bucket kind for All).
func (s *triggerSet) addBucket(stream string) {
	for b, prefix := range bucketStreamPrefixes {
		switch {
		case s.allBuckets[b]:
		case stream == All:
			s.allBuckets[b], s.buckets[b] = true, nil
		case strings.HasPrefix(stream, prefix):
			if s.buckets[b] == nil {
				s.buckets[b] = map[string]struct{}{}
			}
			s.buckets[b][stream] = struct{}{}
		}
	}
}

func (s *triggerSet) addConsumer(stream, consumer string) {
	switch {
	case s.allConsumers:
	case stream == All:
		s.allConsumers, s.consumers, s.direct = true, nil, nil
	default:
		if _, ok := s.consumers[consumerKey{stream, All}]; ok {
			return
		}
		if s.consumers == nil {
			s.consumers = map[consumerKey]struct{}{}
		}
		if consumer == All {
			for k := range s.consumers {
				if k.stream == stream {
					delete(s.consumers, k)
				}
			}
		}
		s.consumers[consumerKey{stream, consumer}] = struct{}{}
	}
}

func (s *triggerSet) addDirect(key types.NamespacedName) {
	if s.allConsumers {
		return // every EventConsumer is reconciled anyway
	}
	if s.direct == nil {
		s.direct = map[types.NamespacedName]struct{}{}
	}
	s.direct[key] = struct{}{}
}

// ownWrite counts the advisories the operator's own writes to an object will
// cause, until a deadline.
type ownWrite struct {
	n     int
	until time.Time
}

// ownWriteWindow is how long an advisory is expected after a write. An
// out-of-band change inside this window is still caught at the resync.
const ownWriteWindow = 3 * time.Second

// The advisory subscriptions' pending limits. The callbacks only record a
// name, so the backlog stays near zero; the limits bound the memory a stalled
// process could hold (100 000 advisories is ten times the 10 000-stream
// benchmark burst, at well under 1 KiB each). Beyond them nats.go drops
// messages (a slow consumer); the dispatcher notices and asks for a full
// resync, since the dropped names are unknown.
const (
	advisoryPendingMsgs  = 100_000
	advisoryPendingBytes = 64 << 20
)

// triggerChanSize: the controllers' sources read the triggers from channels.
// The coalescing set is the buffer; a small channel keeps triggers in the set,
// where repeats of a name collapse, rather than queued up twice.
const triggerChanSize = 64

// NewTriggers returns the triggers for conn; add them to the manager and hand
// Streams() and Consumers() to the reconcilers.
func NewTriggers(conn *nats.Conn, log logr.Logger) *Triggers {
	t := &Triggers{
		nc: conn, log: log,
		own:     map[string]ownWrite{},
		clock:   clock.RealClock{},
		subs:    map[*nats.Conn][]*nats.Subscription{},
		dropped: map[*nats.Subscription]int{},
	}
	for k := range t.out {
		t.out[k] = make(chan event.GenericEvent, triggerChanSize)
		t.wake[k] = make(chan struct{}, 1)
	}
	return t
}

// Streams is the source of triggers for the EventStream controller: objects
// named after a JetStream stream (or All).
func (t *Triggers) Streams() <-chan event.GenericEvent { return t.out[streamKind] }

// Consumers is the source of triggers for the EventConsumer controller; see
// consumerTrigger.
func (t *Triggers) Consumers() <-chan event.GenericEvent { return t.out[consumerKind] }

// KeyValues is the source of triggers for the EventKeyValue controller:
// objects named after a bucket's stream, KV_<bucket> (or All).
func (t *Triggers) KeyValues() <-chan event.GenericEvent { return t.out[keyValueKind] }

// ObjectStores is the source of triggers for the EventObjectStore
// controller: objects named after a bucket's stream, OBJ_<bucket> (or All).
func (t *Triggers) ObjectStores() <-chan event.GenericEvent { return t.out[objectStoreKind] }

// NeedLeaderElection: only the leader reacts to advisories.
func (t *Triggers) NeedLeaderElection() bool { return true }

// Start subscribes to the advisories, on the default connection and on every
// attached one, and dispatches the triggers until ctx ends.
func (t *Triggers) Start(ctx context.Context) error {
	t.mu.Lock()
	t.ctx = ctx
	conns := append([]*nats.Conn{t.nc}, t.pending...)
	t.pending = nil
	var err error
	for _, nc := range conns {
		if err = t.subscribeLocked(nc); err != nil {
			break
		}
	}
	t.mu.Unlock()
	if err != nil {
		return err
	}
	t.log.Info("watching JetStream advisories", "subjects", advisorySubjects)
	var wg sync.WaitGroup
	if t.audit != nil {
		wg.Add(1)
		go func() { defer wg.Done(); t.auditLoop(ctx) }()
	}
	for kind := range t.out {
		wg.Add(1)
		go func() { defer wg.Done(); t.dispatch(ctx, kind) }()
	}
	tick := time.NewTicker(time.Second)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			t.checkDropped()
		}
	}
	tick.Stop()
	wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	for nc := range t.subs {
		t.unsubscribeLocked(nc)
	}
	return nil
}

// Attach watches the advisories of another connection (a per-resource one)
// too; the returned function stops that.
func (t *Triggers) Attach(nc *nats.Conn) (detach func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx == nil {
		t.pending = append(t.pending, nc)
	} else if err := t.subscribeLocked(nc); err != nil {
		t.log.Error(err, "watching the advisories of a per-resource connection")
	}
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.unsubscribeLocked(nc)
		for i, p := range t.pending {
			if p == nc {
				t.pending = append(t.pending[:i], t.pending[i+1:]...)
				break
			}
		}
	}
}

func (t *Triggers) subscribeLocked(nc *nats.Conn) error {
	for _, subj := range advisorySubjects {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) { t.handle(m.Subject) })
		if err == nil {
			err = sub.SetPendingLimits(advisoryPendingMsgs, advisoryPendingBytes)
		}
		if err != nil {
			t.unsubscribeLocked(nc)
			return err
		}
		t.subs[nc] = append(t.subs[nc], sub)
	}
	// Make sure the server has the subscriptions before the first write
	// made over this connection, whose advisory must not be missed.
	if nc.IsConnected() {
		if err := nc.FlushTimeout(2 * time.Second); err != nil {
			t.log.Info("advisory subscriptions not confirmed yet", "error", err.Error())
		}
	}
	return nil
}

func (t *Triggers) unsubscribeLocked(nc *nats.Conn) {
	for _, s := range t.subs[nc] {
		_ = s.Unsubscribe()
		delete(t.dropped, s)
	}
	delete(t.subs, nc)
}

// handle runs on nats.go's subscription goroutine: it must never wait for the
// controllers (a blocked callback makes the subscription a slow consumer).
// It takes two short locks and never blocks otherwise.
func (t *Triggers) handle(subject string) {
	start := time.Now()
	defer observeAdvisory(start)
	tokens := strings.Split(subject, ".")
	if len(tokens) < 6 {
		return
	}
	kind, action, stream := tokens[3], tokens[4], tokens[5]
	switch {
	case kind == "STREAM":
		t.epoch.Add(1)
		// A stream created or deleted takes its consumers with it, and a
		// stream's subjects decide where dead letters are stored: consumers
		// are checked whoever did it.
		if action != "DELETED" && t.consumeOwnWrite(stream) {
			// The reconcile that wrote it already recorded the result.
			t.enqueue(func(s *triggerSet) { s.addConsumer(stream, All) })
			return
		}
		t.enqueue(func(s *triggerSet) { s.addConsumer(stream, All); s.addStream(stream) })
		if action == "DELETED" {
			t.noteDeleted(stream)
		}
	case kind == "CONSUMER" && len(tokens) == 7:
		consumer := tokens[6]
		if action == "CREATED" && t.consumeOwnWrite(stream+"/"+consumer) {
			return
		}
		t.enqueue(func(s *triggerSet) { s.addConsumer(stream, consumer) })
	}
}

// StreamAudit returns the JetStream names of the streams that EventStreams
// expect and JetStream no longer has.
type StreamAudit func(ctx context.Context) ([]string, error)

// Lost deletion advisories: nats-server (2.15) queues a stream's DELETED
// advisory on the stream's own send loop just before it closes that loop
// (stream.stop), and under load the loop can quit first, so the advisory is
// never sent. In a burst of out-of-band deletions one stream of 300 was seen
// never repaired before the resync, and a lone deletion on a loaded CI
// machine went unrepaired for longer than five seconds. So the leader also
// audits, every auditEvery: it lists the streams JetStream has (one
// STREAM.NAMES request per 1024 streams, per connection that has
// EventStreams) and triggers every EventStream whose stream is gone and that
// no DELETED advisory named in the last deletedGrace. A stream is triggered
// by the audit once while it stays missing: a reconcile that cannot recreate
// it retries on its own backoff, not on the audit's clock.
const (
	defaultAuditEvery = 3 * time.Second
	deletedGrace      = 30 * time.Second
)

// SetDeletionAudit sets the function the deletion audit calls and how often
// it runs (0: every 3 s); without one there is no audit. Call it before
// Start.
func (t *Triggers) SetDeletionAudit(fn StreamAudit, every time.Duration) {
	if every <= 0 {
		every = defaultAuditEvery
	}
	t.audit, t.auditEvery = fn, every
}

// noteDeleted records a DELETED advisory, so that the audit does not count
// that deletion as one whose advisory was lost; it never blocks for long.
func (t *Triggers) noteDeleted(stream string) {
	t.auditMu.Lock()
	defer t.auditMu.Unlock()
	if t.deleted == nil {
		t.deleted = map[string]time.Time{}
	}
	t.deleted[stream] = t.clock.Now()
}

// auditLoop runs the deletion audit every auditEvery until ctx ends.
func (t *Triggers) auditLoop(ctx context.Context) {
	tick := time.NewTicker(t.auditEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.runAudit(ctx)
		}
	}
}

func (t *Triggers) runAudit(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	missing, err := t.audit(ctx)
	if err != nil {
		if ctx.Err() == nil {
			t.log.Info("deletion audit failed; the resync will repair what it would have found", "error", err.Error())
		}
		return
	}
	now := t.clock.Now()
	t.auditMu.Lock()
	var lost []string
	seen := make(map[string]bool, len(missing))
	for _, name := range missing {
		seen[name] = true
		if at, ok := t.deleted[name]; t.missing[name] || ok && now.Sub(at) < deletedGrace {
			continue // already triggered, by its advisory or an earlier audit
		}
		lost = append(lost, name)
	}
	t.missing = seen
	for name, at := range t.deleted {
		if now.Sub(at) >= deletedGrace {
			delete(t.deleted, name)
		}
	}
	t.auditMu.Unlock()
	if len(lost) == 0 {
		return
	}
	t.log.Info("streams deleted without an advisory, reconciling them", "streams", len(lost))
	lostDeletions.Add(float64(len(lost)))
	t.enqueue(func(s *triggerSet) {
		for _, name := range lost {
			s.addStream(name)
			s.addConsumer(name, All)
		}
	})
}

// enqueue records triggers in the coalescing set and wakes the dispatcher;
// it never blocks.
func (t *Triggers) enqueue(add func(*triggerSet)) {
	t.qmu.Lock()
	add(&t.queued)
	t.qmu.Unlock()
	for _, w := range t.wake {
		select {
		case w <- struct{}{}:
		default: // a wake-up is already pending; it will see this too
		}
	}
}

// dispatch hands the queued triggers of one kind to its controller's source
// until ctx ends. Sending may wait for the controller: that only holds back
// the dispatcher (and lets more triggers coalesce), never a NATS callback,
// nor the other kind's dispatcher.
func (t *Triggers) dispatch(ctx context.Context, kind int) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.wake[kind]:
		}
		t.qmu.Lock()
		batch := t.queued.take(kind)
		t.qmu.Unlock()
		for _, ev := range batch {
			select {
			case t.out[kind] <- ev:
				triggersDispatched.WithLabelValues(kindNames[kind]).Inc()
			case <-ctx.Done():
				return
			}
		}
	}
}

// checkDropped looks for advisories nats.go dropped because a subscription
// hit its pending limits. Which names they carried is unknown, so everything
// is reconciled again.
func (t *Triggers) checkDropped() {
	t.mu.Lock()
	lost := 0
	for _, subs := range t.subs {
		for _, s := range subs {
			n, err := s.Dropped()
			if err != nil {
				continue
			}
			if n > t.dropped[s] {
				lost += n - t.dropped[s]
			}
			t.dropped[s] = n
		}
	}
	t.mu.Unlock()
	if lost > 0 {
		advisoriesDropped.Add(float64(lost))
		t.log.Error(nats.ErrSlowConsumer, "JetStream advisories dropped; reconciling every resource", "dropped", lost)
		t.ResyncAll()
	}
}

// StreamsEpoch changes whenever a stream is created, updated or deleted, or
// NATS reconnects.
func (t *Triggers) StreamsEpoch() uint64 { return t.epoch.Load() }

// ResyncAll asks for every object to be reconciled; it never blocks and is
// never lost.
func (t *Triggers) ResyncAll() {
	t.epoch.Add(1)
	t.enqueue(func(s *triggerSet) { s.addStream(All); s.addConsumer(All, All) })
}

// Reconcile asks for one EventConsumer to be reconciled soon (the
// dead-letter forwarder uses it to get its count into status); it never
// blocks and is never lost.
func (t *Triggers) Reconcile(key types.NamespacedName) {
	t.enqueue(func(s *triggerSet) { s.addDirect(key) })
}

// ExpectOwnWrite records that the operator is about to create or update a
// stream (consumer == "") or a consumer, so that the advisory this causes does
// not trigger a reconcile that would read its own write back from a cache
// that may not have the status it just wrote yet.
func (t *Triggers) ExpectOwnWrite(stream, consumer string) {
	key := stream
	if consumer != "" {
		key += "/" + consumer
	}
	t.ownMu.Lock()
	defer t.ownMu.Unlock()
	w := t.own[key]
	w.n++
	w.until = t.clock.Now().Add(ownWriteWindow)
	t.own[key] = w
}

func (t *Triggers) consumeOwnWrite(key string) bool {
	t.ownMu.Lock()
	defer t.ownMu.Unlock()
	w, ok := t.own[key]
	if !ok {
		return false
	}
	now := t.clock.Now()
	if w.n <= 1 || now.After(w.until) {
		delete(t.own, key)
	} else {
		w.n--
		t.own[key] = w
	}
	return !now.After(w.until)
}

// Trigger objects carry what the map functions need in their metadata.
const (
	triggerStreamLabel = "jetstream.events.giia.io/stream"
	triggerDirectLabel = "events.giia.io/direct"
)

func streamTrigger(stream string) event.GenericEvent {
	return event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: stream}}}
}

// consumerTrigger names a JetStream consumer (or All) of a stream (or All).
func consumerTrigger(stream, consumer string) event.GenericEvent {
	return event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: consumer, Labels: map[string]string{triggerStreamLabel: stream},
	}}}
}

// directTrigger names an EventConsumer resource.
func directTrigger(key types.NamespacedName) event.GenericEvent {
	return event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{triggerDirectLabel: "true"},
	}}}
}

// Advisory metrics: the callbacks' own time (they must stay in the
// microseconds), what nats.go dropped, and the triggers left after
// coalescing.
var (
	advisoryHandleSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eventstream_operator_advisory_callback_duration_seconds",
		Help:    "Time the NATS subscription callback spends on one JetStream advisory.",
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 1e-3, 1e-2, 0.1, 1},
	})
	advisoryHandleMax = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "eventstream_operator_advisory_callback_max_seconds",
		Help: "Longest time the NATS subscription callback spent on one JetStream advisory since the process started.",
	}, func() float64 { return time.Duration(maxHandled.Load()).Seconds() })
	advisoriesDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eventstream_operator_advisories_dropped_total",
		Help: "JetStream advisories the NATS client dropped because a subscription reached its pending limits (slow consumer); each drop triggers a full resync.",
	})
	triggersDispatched = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventstream_operator_triggers_dispatched_total",
		Help: "Reconcile triggers handed to a controller after coalescing (advisories, reconnects, dead letters), by controller.",
	}, []string{"controller"})
	lostDeletions = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eventstream_operator_stream_deletions_without_advisory_total",
		Help: "Streams the deletion audit found gone although no DELETED advisory named them (nats-server can lose it under load); each is reconciled.",
	})

	maxHandled atomic.Int64 // nanoseconds
)

func init() {
	metrics.Registry.MustRegister(advisoryHandleSeconds, advisoryHandleMax, advisoriesDropped, triggersDispatched, lostDeletions)
}

func observeAdvisory(start time.Time) {
	d := time.Since(start)
	advisoryHandleSeconds.Observe(d.Seconds())
	for {
		cur := maxHandled.Load()
		if int64(d) <= cur || maxHandled.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}
