package controller

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// validBucketName is what JetStream accepts as a KeyValue bucket name.
var validBucketName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// schemaWatch watches the schema registry's bucket on the default
// connection and triggers the EventSchemas of a type whenever one of its
// keys is put, deleted or purged by anyone but the operator itself: drift
// (a key deleted or changed out of band) is repaired within moments, and
// schemas left Conflict or Incompatible by a key are re-evaluated when it
// changes. Registries on per-resource connections are not watched; their
// drift is repaired at the resync. It is a controller-runtime Runnable that
// runs on the leader only.
type schemaWatch struct {
	nc       *nats.Conn
	bucket   string
	log      logr.Logger
	triggers chan event.GenericEvent
	nudge    chan struct{}

	mu sync.Mutex
	// own counts the operator's writes to each key whose echo is expected
	// (see expectOwnWrite).
	own map[string]ownWrite
}

func newSchemaWatch(nc *nats.Conn, bucket string, log logr.Logger) *schemaWatch {
	return &schemaWatch{
		nc: nc, bucket: bucket, log: log.WithValues("bucket", bucket),
		triggers: make(chan event.GenericEvent, triggerChanSize),
		nudge:    make(chan struct{}, 1),
		own:      map[string]ownWrite{},
	}
}

// NeedLeaderElection: its triggers feed the leader's reconciles.
func (w *schemaWatch) NeedLeaderElection() bool { return true }

// expectOwnWrite records that the operator is about to put key, so that
// the watch's echo of it triggers nothing (a reconcile right after the
// write would read the resource from a cache that may not hold its new
// status yet). Told before the write, since the echo may come before the
// write's reply.
func (w *schemaWatch) expectOwnWrite(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.own[key]
	e.n++
	e.until = time.Now().Add(ownWriteWindow)
	w.own[key] = e
}

// forgetOwnWrite withdraws one expectation of expectOwnWrite whose write
// failed (no echo will come): left in place, it would take the next change
// made out of band for the operator's own and leave it to the resync.
func (w *schemaWatch) forgetOwnWrite(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.own[key]
	if !ok {
		return
	}
	if e.n <= 1 {
		delete(w.own, key)
		return
	}
	e.n--
	w.own[key] = e
}

// isOwnWrite reports whether a put of key is the echo of an expected own
// write, and consumes the expectation. A change out of band that lands in
// the same moment is repaired at the resync.
func (w *schemaWatch) isOwnWrite(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.own[key]
	if !ok {
		return false
	}
	if e.n <= 1 || time.Now().After(e.until) {
		delete(w.own, key)
	} else {
		e.n--
		w.own[key] = e
	}
	return !time.Now().After(e.until)
}

// bucketCreated wakes a watch waiting for the bucket to exist.
func (w *schemaWatch) bucketCreated() {
	select {
	case w.nudge <- struct{}{}:
	default:
	}
}

// Start watches the bucket until ctx ends. Until the bucket exists (the
// first EventSchema's reconcile creates it) it waits, checking again with
// backoff or as soon as the operator creates it.
func (w *schemaWatch) Start(ctx context.Context) error {
	if w.nc == nil {
		return errors.New("schema registry watch: no NATS connection")
	}
	js, err := jetstream.New(w.nc)
	if err != nil {
		return fmt.Errorf("schema registry watch: %w", err)
	}
	const minDelay, maxDelay = 500 * time.Millisecond, 10 * time.Second
	delay := minDelay
	for {
		w.watchOnce(ctx, js, func() { delay = minDelay }, delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-w.nudge:
		}
		t.Stop()
		delay = min(delay*2, maxDelay)
	}
}

// watchOnce runs one watch and logs why it ended (the bucket's absence is
// not worth a line: it is waited for).
func (w *schemaWatch) watchOnce(ctx context.Context, js jetstream.JetStream, healthy func(), retryIn time.Duration) {
	err := w.watch(ctx, js, healthy)
	if ctx.Err() == nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		w.log.Info("schema registry watch interrupted; starting it again", "error", fmt.Sprint(err), "retryIn", retryIn.String())
	}
}

// watch runs one KeyValue watch until it fails or ctx ends. The values
// replayed when it starts trigger nothing (the resync covers what changed
// while no watch ran).
func (w *schemaWatch) watch(ctx context.Context, js jetstream.JetStream, healthy func()) error {
	kctx, cancel := context.WithTimeout(ctx, requestTimeout)
	kv, err := js.KeyValue(kctx, w.bucket)
	cancel()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kw, err := kv.WatchAll(wctx, jetstream.MetaOnly())
	if err != nil {
		return err
	}
	defer func() { _ = kw.Stop() }()
	replaying := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-kw.Updates():
			if !ok {
				return errors.New("watch closed")
			}
			if e == nil {
				replaying = false
				healthy()
				continue
			}
			if replaying || (e.Operation() == jetstream.KeyValuePut && w.isOwnWrite(e.Key())) {
				continue
			}
			t, ok := keyType(e.Key())
			if !ok {
				continue
			}
			w.log.V(1).Info("registry key changed out of band", "key", e.Key(), "operation", e.Operation().String())
			select {
			case w.triggers <- typeTrigger(t):
			case <-ctx.Done():
				return nil
			}
		}
	}
}
