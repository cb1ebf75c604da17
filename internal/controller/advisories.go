package controller

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
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
type Triggers struct {
	nc        *nats.Conn
	log       logr.Logger
	streams   chan event.GenericEvent
	consumers chan event.GenericEvent

	// epoch counts stream changes seen (created, updated, deleted), so that
	// what depends on the set of streams can be cached until it moves.
	epoch atomic.Uint64

	mu      sync.Mutex
	own     map[string]ownWrite // "stream" or "stream/consumer" the operator itself just wrote
	ctx     context.Context     // set by Start
	pending []*nats.Conn        // attached before Start
	subs    map[*nats.Conn][]*nats.Subscription
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

// NewTriggers returns the triggers for conn; add them to the manager and hand
// Streams() and Consumers() to the reconcilers.
func NewTriggers(conn *nats.Conn, log logr.Logger) *Triggers {
	return &Triggers{
		nc: conn, log: log,
		streams:   make(chan event.GenericEvent, 4096),
		consumers: make(chan event.GenericEvent, 4096),
		own:       map[string]ownWrite{},
		subs:      map[*nats.Conn][]*nats.Subscription{},
	}
}

// Streams is the source of triggers for the EventStream controller: objects
// named after a JetStream stream (or All).
func (t *Triggers) Streams() <-chan event.GenericEvent { return t.streams }

// Consumers is the source of triggers for the EventConsumer controller; see
// consumerTrigger.
func (t *Triggers) Consumers() <-chan event.GenericEvent { return t.consumers }

// NeedLeaderElection: only the leader reacts to advisories.
func (t *Triggers) NeedLeaderElection() bool { return true }

// Start subscribes to the advisories, on the default connection and on every
// attached one, until ctx ends.
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
	<-ctx.Done()
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
	ctx := t.ctx
	for _, subj := range advisorySubjects {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) { t.handle(ctx, m.Subject) })
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
	}
	delete(t.subs, nc)
}

func (t *Triggers) handle(ctx context.Context, subject string) {
	tokens := strings.Split(subject, ".")
	if len(tokens) < 6 {
		return
	}
	kind, action, stream := tokens[3], tokens[4], tokens[5]
	send := func(ch chan event.GenericEvent, ev event.GenericEvent) {
		select {
		case ch <- ev:
		case <-ctx.Done():
		}
	}
	switch {
	case kind == "STREAM":
		t.epoch.Add(1)
		// A stream created or deleted takes its consumers with it, and a
		// stream's subjects decide where dead letters are stored: consumers
		// are checked whoever did it.
		send(t.consumers, consumerTrigger(stream, All))
		if action != "DELETED" && t.consumeOwnWrite(stream) {
			return // the reconcile that wrote it already recorded the result
		}
		send(t.streams, streamTrigger(stream))
	case kind == "CONSUMER" && len(tokens) == 7:
		consumer := tokens[6]
		if action == "CREATED" && t.consumeOwnWrite(stream+"/"+consumer) {
			return
		}
		send(t.consumers, consumerTrigger(stream, consumer))
	}
}

// StreamsEpoch changes whenever a stream is created, updated or deleted, or
// NATS reconnects.
func (t *Triggers) StreamsEpoch() uint64 { return t.epoch.Load() }

// ResyncAll asks for every object to be reconciled; it never blocks (a full
// queue already holds work that will read fresh state).
func (t *Triggers) ResyncAll() {
	t.epoch.Add(1)
	for ch, ev := range map[chan event.GenericEvent]event.GenericEvent{
		t.streams: streamTrigger(All), t.consumers: consumerTrigger(All, All),
	} {
		select {
		case ch <- ev:
		default:
		}
	}
}

// Reconcile asks for one EventConsumer to be reconciled now (the dead-letter
// forwarder uses it to get its count into status); it never blocks.
func (t *Triggers) Reconcile(key types.NamespacedName) {
	select {
	case t.consumers <- directTrigger(key):
	default:
	}
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
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.own[key]
	w.n++
	w.until = time.Now().Add(ownWriteWindow)
	t.own[key] = w
}

func (t *Triggers) consumeOwnWrite(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.own[key]
	if !ok {
		return false
	}
	if w.n <= 1 || time.Now().After(w.until) {
		delete(t.own, key)
	} else {
		w.n--
		t.own[key] = w
	}
	return !time.Now().After(w.until)
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
