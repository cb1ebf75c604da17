package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Ledger defaults.
const (
	// DefaultLedgerBucket is the JetStream KeyValue bucket that holds the
	// dead-lettered count of each consumer (its stream is KV_<bucket>).
	DefaultLedgerBucket = "EVENTSTREAM_OPERATOR_DEADLETTERS"
	// DefaultLedgerMaxBytes bounds the ledger's stream. One write is about
	// 300 bytes; with LedgerHistory of them per key, 64 MiB hold some
	// 13,000 consumers.
	DefaultLedgerMaxBytes = int64(64 << 20)
	// LedgerHistory is how many writes the ledger keeps per key. Only the
	// last is read; the others keep the dead-letter identities of recent
	// increments on disk, which is where nats-server rebuilds its duplicate
	// detection from after a restart (it keeps the IDs of messages that
	// were replaced only in memory). With one, an increment replaced by the
	// next of the same consumer and a server restart before the first
	// one's advisory comes back would count that dead letter twice.
	LedgerHistory = 16
	// LedgerDuplicateWindow is how long the ledger recognises a dead letter
	// it counted already. An advisory whose count was written but whose ack
	// was lost (the operator was killed or lost its leadership in between)
	// comes back after the capture consumer's AckWait (DefaultAckWait, 30s)
	// to whichever replica leads then; its increment must still be known
	// as a duplicate then. Advisories negatively acknowledged because the
	// dead letter could not be stored retry for up to DefaultMaxRetryDelay
	// (5m) apart, but they write no count before they are stored. One hour
	// covers the ack wait, a leader election (seconds to a minute) and an
	// operator that is entirely down for most of an hour; it costs the
	// server one small map entry per dead letter of the last hour. An
	// operator down longer than that after a kill in that very window can
	// count one dead letter twice.
	LedgerDuplicateWindow = time.Hour

	kvOperationHeader = "KV-Operation"
)

// Count is the value the ledger stores for a key.
type Count struct {
	// DeadLettered is the number of distinct dead letters counted.
	DeadLettered int64 `json:"deadLettered"`
	// UID is the owning resource's UID; a count stored under another UID
	// belongs to an older resource of the same name and is not continued.
	UID string `json:"uid,omitempty"`
}

// validLedgerKey is what a JetStream KeyValue key may hold (nats.go's
// keyValid): "namespace/name" of a Kubernetes resource always is.
var validLedgerKey = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// ValidLedgerKey reports whether key can be a ledger key.
func ValidLedgerKey(key string) bool { return validLedgerKey.MatchString(key) }

// Ledger is the durable record of how many messages were dead-lettered per
// consumer: a JetStream KeyValue bucket, one key per Target.Key, value JSON
// Count. The Forwarder increments a key once per dead letter (see Forwarder
// for how it stays exactly once); Start watches the bucket and keeps the
// latest value of every key in memory for Get, calling OnChange when one
// changes. It is a controller-runtime Runnable that runs on the leader only.
type Ledger struct {
	nc *nats.Conn
	o  ledgerOptions

	mu     sync.RWMutex
	counts map[string]Count

	started   atomic.Bool
	readyOnce sync.Once
	ready     chan struct{}
}

type ledgerOptions struct {
	bucket     string
	log        logr.Logger
	onChange   func(key string, c Count)
	storage    jetstream.StorageType
	replicas   int
	maxBytes   int64
	opTimeout  time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
}

// LedgerOption configures a Ledger.
type LedgerOption func(*ledgerOptions)

// WithLedgerBucket sets the bucket's name (default DefaultLedgerBucket).
func WithLedgerBucket(name string) LedgerOption { return func(o *ledgerOptions) { o.bucket = name } }

// WithLedgerLogger sets the logger (default: discard).
func WithLedgerLogger(l logr.Logger) LedgerOption { return func(o *ledgerOptions) { o.log = l } }

// WithOnChange is called from the watch with a key whose value changed
// (also for every key when the watch starts or restarts). It must not block
// for long.
func WithOnChange(fn func(key string, c Count)) LedgerOption {
	return func(o *ledgerOptions) { o.onChange = fn }
}

// WithLedgerStorage sets the bucket's storage, replicas and max bytes
// (defaults: file, 1, DefaultLedgerMaxBytes). Storage and replicas only
// apply when the bucket is created.
func WithLedgerStorage(storage jetstream.StorageType, replicas int, maxBytes int64) LedgerOption {
	return func(o *ledgerOptions) { o.storage, o.replicas, o.maxBytes = storage, replicas, maxBytes }
}

// NewLedger returns the ledger on nc (which may still be connecting).
func NewLedger(nc *nats.Conn, opts ...LedgerOption) *Ledger {
	o := ledgerOptions{
		bucket:     DefaultLedgerBucket,
		log:        logr.Discard(),
		storage:    jetstream.FileStorage,
		replicas:   1,
		maxBytes:   DefaultLedgerMaxBytes,
		opTimeout:  DefaultOpTimeout,
		backoffMin: 200 * time.Millisecond,
		backoffMax: 10 * time.Second,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return &Ledger{nc: nc, o: o, counts: map[string]Count{}, ready: make(chan struct{})}
}

// Bucket returns the bucket's name.
func (l *Ledger) Bucket() string { return l.o.bucket }

func (l *Ledger) streamName() string { return "KV_" + l.o.bucket }

func (l *Ledger) subject(key string) string { return "$KV." + l.o.bucket + "." + key }

// StreamConfig is the bucket's stream: what nats.go's CreateKeyValue makes
// (so that it is a valid KeyValue bucket for any client) with LedgerHistory,
// LedgerDuplicateWindow and the operator's owner metadata.
func (l *Ledger) StreamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              l.streamName(),
		Description:       "Dead-lettered counts of the eventstream-operator's EventConsumers",
		Subjects:          []string{l.subject(">")},
		MaxMsgsPerSubject: LedgerHistory,
		MaxBytes:          l.o.maxBytes,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           l.o.storage,
		Replicas:          max(l.o.replicas, 1),
		AllowRollup:       true,
		DenyDelete:        true,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
		Duplicates:        LedgerDuplicateWindow,
		Metadata:          map[string]string{OwnerMetadataKey: OwnerMetadataValue},
	}
}

// ensure creates the bucket's stream, or updates what differs from
// StreamConfig (storage and replicas excepted), and returns it.
func (l *Ledger) ensure(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*l.o.opTimeout)
	defer cancel()
	want := l.StreamConfig()
	st, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = js.CreateStream(ctx, want)
		if err == nil {
			l.o.log.Info("created dead-letter count bucket", "bucket", l.o.bucket)
			return st, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("dlq: create bucket %s: %w", l.o.bucket, err)
		}
		st, err = js.Stream(ctx, want.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: bucket %s: %w", l.o.bucket, err)
	}
	have := st.CachedInfo().Config
	want.Storage, want.Replicas = have.Storage, have.Replicas
	if diff := ledgerDiff(want, have); len(diff) > 0 {
		if st, err = js.UpdateStream(ctx, want); err != nil {
			return nil, fmt.Errorf("dlq: update bucket %s (%v): %w", l.o.bucket, diff, err)
		}
		l.o.log.Info("updated dead-letter count bucket", "bucket", l.o.bucket, "fields", diff)
	}
	return st, nil
}

// ledgerDiff names the fields of the bucket's stream that differ from want.
func ledgerDiff(want, have jetstream.StreamConfig) []string {
	var d []string
	add := func(differs bool, field string) {
		if differs {
			d = append(d, field)
		}
	}
	add(len(have.Subjects) != 1 || have.Subjects[0] != want.Subjects[0], "subjects")
	add(have.MaxMsgsPerSubject != want.MaxMsgsPerSubject, "maxMsgsPerSubject")
	add(have.MaxBytes != want.MaxBytes, "maxBytes")
	add(have.Duplicates != want.Duplicates, "duplicates")
	add(have.Discard != want.Discard, "discard")
	add(!have.AllowRollup || !have.DenyDelete || !have.AllowDirect, "kvFlags")
	add(have.MaxAge != 0, "maxAge")
	add(have.Description != want.Description, "description")
	add(have.Metadata[OwnerMetadataKey] != want.Metadata[OwnerMetadataKey], "metadata")
	return d
}

// errNotCounted wraps a failure to write a count.
var errNotCounted = errors.New("dead letter not counted")

// add counts the dead letter id for key exactly once: it reads the key's
// latest value and publishes value+1 to the key's subject with Nats-Msg-Id
// id and Nats-Expected-Last-Subject-Sequence set to the revision read. A
// wrong-last-sequence answer (someone wrote the key meanwhile) reads again
// and retries; a duplicate answer means id was counted before, and nothing
// is written. A key that does not exist yet, or was written for another
// UID (uid non-empty), starts at base.
//
// Why this is exactly once, from nats-server v2.15.2's source: a publish is
// checked against the stream's duplicate window by Nats-Msg-Id — in
// processClusteredInboundMsg (checkMsgHeadersPreClusteredProposal,
// jetstream_batching.go) before its expected-sequence checks for replicated
// streams, in processJetStreamMsg (stream.go) after the
// expected-last-subject-sequence check for R1 streams. In the R1 order a
// repeated increment whose revision is stale fails the sequence check first;
// the retry reads the current revision, passes it, and is then found a
// duplicate. Either way the answer is a PubAck with "duplicate": true and
// the sequence of the message first stored under that ID (the server keeps
// that ID in memory for the whole window even after the message itself was
// replaced), and nothing is stored.
func (l *Ledger) add(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, key, uid string, base int64, id string) (counted bool, n int64, err error) {
	if !ValidLedgerKey(key) {
		return false, 0, fmt.Errorf("%w: invalid key %q", errNotCounted, key)
	}
	subject := l.subject(key)
	const attempts = 20
	for i := 1; ; i++ {
		cur, rev, err := l.read(ctx, st, subject, uid)
		if err != nil {
			return false, 0, fmt.Errorf("%w: read %s: %w", errNotCounted, key, err)
		}
		next := Count{DeadLettered: base + 1, UID: uid}
		if cur != nil {
			next.DeadLettered = cur.DeadLettered + 1
		}
		data, err := json.Marshal(next)
		if err != nil {
			return false, 0, err
		}
		msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		pctx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
		ack, err := js.PublishMsg(pctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectLastSequencePerSubject(rev))
		cancel()
		if err == nil {
			if ack.Duplicate {
				return false, 0, nil
			}
			return true, next.DeadLettered, nil
		}
		var apiErr *jetstream.APIError
		retry := errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant ||
			apiErr.ErrorCode == jsErrCodeDuplicateMessageConflict)
		if !retry || i >= attempts || ctx.Err() != nil {
			return false, 0, fmt.Errorf("%w: write %s: %w", errNotCounted, key, err)
		}
		// A direct get may be served by a replica that is a little behind.
		time.Sleep(time.Duration(i) * 10 * time.Millisecond)
	}
}

// jsErrCodeDuplicateMessageConflict (nats-server JSStreamDuplicateMessageConflict):
// the same Nats-Msg-Id is being proposed on a replicated stream right now.
const jsErrCodeDuplicateMessageConflict jetstream.ErrorCode = 10158

// read returns the latest value of subject and its revision (the message's
// stream sequence; 0 when the subject holds nothing). cur is nil when there
// is no value to continue: none, a delete or purge marker, unreadable, or
// another resource's (uid non-empty and different).
func (l *Ledger) read(ctx context.Context, st jetstream.Stream, subject, uid string) (cur *Count, rev uint64, err error) {
	rctx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
	defer cancel()
	m, err := st.GetLastMsgForSubject(rctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if m.Header.Get(kvOperationHeader) != "" || len(m.Data) == 0 {
		return nil, m.Sequence, nil
	}
	var c Count
	if err := json.Unmarshal(m.Data, &c); err != nil {
		l.o.log.Error(err, "unreadable dead-letter count; starting again from the resource's status", "subject", subject)
		return nil, m.Sequence, nil
	}
	if uid != "" && c.UID != uid {
		return nil, m.Sequence, nil
	}
	return &c, m.Sequence, nil
}

// Get returns the latest count of key the watch has seen.
func (l *Ledger) Get(key string) (Count, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	c, ok := l.counts[key]
	return c, ok
}

// Delete removes key from the bucket (every stored value, no marker left)
// and from memory. An increment racing with it can write the key again
// under the old UID; Get's callers compare UIDs, and the next resource of
// that name starts from its own status.
func (l *Ledger) Delete(ctx context.Context, key string) error {
	if !ValidLedgerKey(key) {
		return fmt.Errorf("dlq: invalid ledger key %q", key)
	}
	l.mu.Lock()
	delete(l.counts, key)
	l.mu.Unlock()
	js, err := jetstream.New(l.nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
	defer cancel()
	st, err := js.Stream(ctx, l.streamName())
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dlq: bucket %s: %w", l.o.bucket, err)
	}
	if err := st.Purge(ctx, jetstream.WithPurgeSubject(l.subject(key))); err != nil {
		return fmt.Errorf("dlq: delete count %s: %w", key, err)
	}
	return nil
}

// NeedLeaderElection: the counts are read by the leader's reconciles.
func (l *Ledger) NeedLeaderElection() bool { return true }

// Ready is closed once the watch has delivered every key's value for the
// first time.
func (l *Ledger) Ready() <-chan struct{} { return l.ready }

// Start creates the bucket if needed and watches it until ctx ends, keeping
// every key's latest value for Get. Failures are logged and retried with
// backoff; it returns an error only without a connection or when started
// twice.
func (l *Ledger) Start(ctx context.Context) error {
	if l.nc == nil {
		return errors.New("dlq: no NATS connection")
	}
	if !l.started.CompareAndSwap(false, true) {
		return errors.New("dlq: ledger already started")
	}
	js, err := jetstream.New(l.nc)
	if err != nil {
		return fmt.Errorf("dlq: jetstream: %w", err)
	}
	status := l.nc.StatusChanged(nats.CONNECTED)
	defer l.nc.RemoveStatusListener(status)
	log := l.o.log.WithValues("bucket", l.o.bucket)
	delay := l.o.backoffMin
	for ctx.Err() == nil {
		err := l.watch(ctx, js, func() { delay = l.o.backoffMin })
		if ctx.Err() != nil {
			break
		}
		log.Info("dead-letter count watch interrupted; starting it again", "error", fmt.Sprint(err), "retryIn", delay.String())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-status:
		}
		t.Stop()
		delay = min(delay*2, l.o.backoffMax)
	}
	return nil
}

// watch runs one KeyValue watch until it fails or ctx ends.
func (l *Ledger) watch(ctx context.Context, js jetstream.JetStream, healthy func()) error {
	if _, err := l.ensure(ctx, js); err != nil {
		return err
	}
	kctx, cancel := context.WithTimeout(ctx, l.o.opTimeout)
	kv, err := js.KeyValue(kctx, l.o.bucket)
	cancel()
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := kv.WatchAll(wctx)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	seen := map[string]bool{}
	replaying := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch closed")
			}
			if e == nil { // every current value delivered
				if replaying {
					replaying = false
					l.forgetUnseen(seen)
					l.readyOnce.Do(func() { close(l.ready) })
					healthy()
				}
				continue
			}
			if replaying {
				seen[e.Key()] = true
			}
			l.apply(e)
		}
	}
}

// forgetUnseen drops keys that a restarted watch did not replay (deleted
// meanwhile).
func (l *Ledger) forgetUnseen(seen map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.counts {
		if !seen[k] {
			delete(l.counts, k)
		}
	}
}

func (l *Ledger) apply(e jetstream.KeyValueEntry) {
	key := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		l.mu.Lock()
		delete(l.counts, key)
		l.mu.Unlock()
		return
	}
	var c Count
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		l.o.log.Error(err, "unreadable dead-letter count; ignoring it", "key", key, "revision", strconv.FormatUint(e.Revision(), 10))
		return
	}
	l.mu.Lock()
	old, had := l.counts[key]
	l.counts[key] = c
	l.mu.Unlock()
	if (!had || old != c) && l.o.onChange != nil {
		func() {
			defer func() {
				if r := recover(); r != nil {
					l.o.log.Error(fmt.Errorf("panic: %v", r), "dlq: OnChange panicked")
				}
			}()
			l.o.onChange(key, c)
		}()
	}
}
