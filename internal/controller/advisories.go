package controller

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// AllStreams is the trigger name that asks for every EventStream to be
// reconciled (sent after NATS reconnects).
const AllStreams = "*"

// streamAdvisorySubject is where JetStream announces stream changes:
// $JS.EVENT.ADVISORY.STREAM.<CREATED|UPDATED|DELETED>.<stream>.
const streamAdvisorySubject = "$JS.EVENT.ADVISORY.STREAM.>"

// StreamTriggers turns JetStream stream advisories and NATS reconnects into
// reconcile triggers, so that a stream deleted or changed out of band is put
// back in about a second instead of at the next resync. It runs only on the
// leader.
type StreamTriggers struct {
	NATS *nats.Conn
	Log  logr.Logger
	ch   chan event.GenericEvent

	mu  sync.Mutex
	own map[string]ownWrite // streams the operator itself just wrote
}

// ownWrite counts the advisories the operator's own writes to a stream will
// cause, until a deadline.
type ownWrite struct {
	n     int
	until time.Time
}

// ownWriteWindow is how long an advisory is expected after a write. An
// out-of-band change inside this window is still caught at the resync.
const ownWriteWindow = 3 * time.Second

// NewStreamTriggers returns triggers for conn; pass Channel() to the
// EventStreamReconciler and add the value to the manager.
func NewStreamTriggers(conn *nats.Conn, log logr.Logger) *StreamTriggers {
	return &StreamTriggers{NATS: conn, Log: log, ch: make(chan event.GenericEvent, 4096), own: map[string]ownWrite{}}
}

// Channel is the source of triggers for the controller.
func (t *StreamTriggers) Channel() <-chan event.GenericEvent { return t.ch }

// NeedLeaderElection: only the leader reacts to advisories.
func (t *StreamTriggers) NeedLeaderElection() bool { return true }

// Start subscribes to stream advisories until ctx ends.
func (t *StreamTriggers) Start(ctx context.Context) error {
	sub, err := t.NATS.Subscribe(streamAdvisorySubject, func(m *nats.Msg) {
		// $JS.EVENT.ADVISORY.STREAM.<KIND>.<stream>
		tokens := strings.Split(m.Subject, ".")
		if len(tokens) != 6 {
			return
		}
		switch tokens[4] {
		case "CREATED", "UPDATED":
			if t.consumeOwnWrite(tokens[5]) {
				return // the reconcile that wrote it already recorded the result
			}
		case "DELETED":
		default:
			return
		}
		select {
		case t.ch <- trigger(tokens[5]):
		case <-ctx.Done():
		}
	})
	if err != nil {
		return err
	}
	t.Log.Info("watching JetStream stream advisories", "subject", streamAdvisorySubject)
	<-ctx.Done()
	return sub.Unsubscribe()
}

// ResyncAll asks for every EventStream to be reconciled; it never blocks
// (a full queue already holds work that will read fresh state).
func (t *StreamTriggers) ResyncAll() {
	select {
	case t.ch <- trigger(AllStreams):
	default:
	}
}

func trigger(streamName string) event.GenericEvent {
	return event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: streamName}}}
}

// ExpectOwnWrite records that the operator is about to create or update
// stream, so that the advisory this causes does not trigger a reconcile that
// would read its own write back (from a cache that may not have the status it
// just wrote yet).
func (t *StreamTriggers) ExpectOwnWrite(stream string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.own[stream]
	w.n++
	w.until = time.Now().Add(ownWriteWindow)
	t.own[stream] = w
}

func (t *StreamTriggers) consumeOwnWrite(stream string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.own[stream]
	if !ok {
		return false
	}
	if w.n <= 1 || time.Now().After(w.until) {
		delete(t.own, stream)
	} else {
		w.n--
		t.own[stream] = w
	}
	return !time.Now().After(w.until)
}
