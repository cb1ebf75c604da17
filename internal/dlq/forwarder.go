// Package dlq is the operator's dead-letter forwarder (docs/design.md,
// "Dead letters (operator side)").
//
// JetStream has no native dead-letter queue. It announces that a consumer gave
// up on a message with two advisories that point at the message's stream
// sequence:
//
//	$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>
//	$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.<stream>.<consumer>
//
// The Forwarder captures both in a stream the operator owns (so that none is
// lost while the operator is down or not the leader), consumes that stream
// with a durable pull consumer, and for every advisory of a consumer the
// Resolver knows fetches the original message by sequence and publishes it,
// with the library's dead-letter headers (events.NewDeadLetterMsg), to the
// consumer's dead-letter subject. The advisory is acknowledged only once the
// dead letter is stored. The dead letter's Nats-Msg-Id is
// events.DeadLetterMsgID(stream, seq), the one pkg/events uses too, so a
// message that both paths dead-letter is stored once (within the DLQ stream's
// duplicate window).
//
// What happens to each advisory:
//
//   - Malformed (not JSON, no stream/consumer/sequence, wrong type): logged
//     and acknowledged.
//   - From the capture stream's own consumers, or of a (stream, consumer) the
//     Resolver does not know: acknowledged and skipped.
//   - MSG_TERMINATED whose reason starts with events.TermReasonDeadLettered:
//     pkg/events has already published the dead letter itself, so nothing is
//     sent; the advisory is acknowledged and OnAlreadyDeadLettered is called.
//   - The original message no longer exists (removed by limits, deleted,
//     purged, its stream deleted; this is also what JetStream's own
//     terminations "Message deleted by stream limits" and "Unacknowledged
//     message was deleted" report): there is nothing to dead-letter and no
//     original subject to route a placeholder by, so it is logged, counted
//     (Stats.OriginalGone) and acknowledged. No dead letter is published.
//   - Otherwise the dead letter is published with JetStream and the ack
//     awaited. Stored → OnForwarded; stored before by someone else
//     (PubAck.Duplicate, e.g. pkg/events won a race) → OnAlreadyDeadLettered.
//     Either way the advisory is acknowledged.
//   - Not stored: when no stream captures the dead-letter subject (no
//     responders) or JetStream refuses the message, OnNotStored is called;
//     then, as for transient errors (timeouts, disconnects), the advisory is
//     negatively acknowledged with a capped exponential delay (WithRetryDelay,
//     default 30s doubling to 5m) and retried until it is stored or the
//     capture stream's MaxAge (7 days) drops it.
//
// Counting (WithLedger): every dead letter stored by the forwarder, found
// already stored (PubAck.Duplicate) or announced as sent by pkg/events is
// counted in the Ledger, a JetStream KeyValue bucket, under Target.Key, before
// the advisory is acknowledged. The increment carries the dead letter's
// identity (events.DeadLetterMsgID of the original stream and sequence, plus
// the target's key and UID) as its Nats-Msg-Id and the key's revision as its
// expected last subject sequence, so an advisory that comes back after its
// count was written (the operator was killed or lost its leadership before
// the ack) is not counted again within LedgerDuplicateWindow; the tests kill
// a forwarder between the two and start a new one. A count that cannot be
// written because NATS is unreachable is retried with the advisory (the dead
// letter is not published again by this forwarder); one JetStream refuses
// (bucket full, say) is logged, counted in Stats.NotCounted and given up:
// counts never hold up dead-lettering. OnForwarded and OnAlreadyDeadLettered
// are notifications; they run once per handled advisory, after the ack.
//
// For pull consumers nats-server (2.15) sends MAX_DELIVERIES when the last
// delivery's AckWait has passed and a pull request is waiting, i.e. as soon
// as the consumer's client pulls again; a client that stopped pulling for
// good produces the advisory only when it pulls next.
//
// The capture stream uses work-queue retention: an acknowledged advisory is
// removed, so a recreated consumer (after someone deleted it) resumes with
// exactly the advisories not yet handled instead of re-forwarding a week of
// history past the DLQ's duplicate window.
package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// Defaults.
const (
	// DefaultStreamName is the stream that captures the advisories.
	DefaultStreamName = "EVENTSTREAM_OPERATOR_ADVISORIES"
	// DefaultConsumerName is the durable pull consumer on it.
	DefaultConsumerName = "dlq-forwarder"
	// DefaultStreamMaxBytes bounds the capture stream.
	DefaultStreamMaxBytes = int64(256 << 20)
	// DefaultStreamMaxAge is how long an advisory that cannot be forwarded
	// is kept and retried.
	DefaultStreamMaxAge = 7 * 24 * time.Hour
	// DefaultAckWait is the capture consumer's ack wait.
	DefaultAckWait = 30 * time.Second
	// DefaultMaxAckPending is the capture consumer's max ack pending.
	DefaultMaxAckPending = 64
	// DefaultFetchBatch is how many advisories one pull asks for.
	DefaultFetchBatch = 16
	// DefaultFetchWait is how long one pull waits for advisories.
	DefaultFetchWait = 5 * time.Second
	// DefaultRetryDelay and DefaultMaxRetryDelay bound the delay before an
	// advisory whose dead letter could not be stored is retried.
	DefaultRetryDelay    = 30 * time.Second
	DefaultMaxRetryDelay = 5 * time.Minute
	// DefaultOpTimeout bounds each JetStream call the forwarder makes.
	DefaultOpTimeout = 5 * time.Second

	// OwnerMetadataKey / OwnerMetadataValue mark the capture stream and
	// consumer as the operator's.
	OwnerMetadataKey   = "events.giia.io/owner"
	OwnerMetadataValue = "eventstream-operator"
)

// Advisory subjects (nats-server's JSAdvisoryConsumerMaxDeliveryExceedPre and
// JSAdvisoryConsumerMsgTerminatedPre) and the wildcards the capture stream
// holds.
const (
	MaxDeliveriesAdvisoryPrefix = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
	TerminatedAdvisoryPrefix    = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED"
)

// Advisory schema types (nats-server's JSConsumerDeliveryExceededAdvisoryType
// and JSConsumerDeliveryTerminatedAdvisoryType).
const (
	maxDeliverAdvisoryType = "io.nats.jetstream.advisory.v1.max_deliver"
	terminatedAdvisoryType = "io.nats.jetstream.advisory.v1.terminated"
)

// JetStream's own termination reasons when a pending message was removed
// from the stream (nats-server consumer.go).
const (
	serverTermLimitsReason        = "Message deleted by stream limits"
	serverTermUnackedLimitsReason = "Unacknowledged message was deleted"
)

// Target says where dead letters of one JetStream consumer go.
type Target struct {
	// Key is an opaque id of the owning resource, e.g. "ns/name", passed
	// back to the hooks.
	Key string
	// Subject returns the dead-letter subject for a message first published
	// on original; nil means events.DeadLetterSubject ("dlq.<original>").
	Subject func(original string) string
	// UID identifies the owning resource for the ledger: a count stored
	// under another UID (an older resource with the same key) is not
	// continued. Empty: any stored count is continued.
	UID string
	// Base is where the ledger starts a key that holds no count yet (or
	// another UID's), e.g. a count an older operator kept elsewhere.
	Base int64
}

// Resolver finds the Target of a (stream, consumer), or ok=false when that
// consumer has no dead-lettering (its advisories are acknowledged and
// skipped). It is called once per advisory from one goroutine; it must be
// cheap (back it with an informer cache, not an API call).
type Resolver func(stream, consumer string) (target Target, ok bool)

// Stats counts what the forwarder did since New.
type Stats struct {
	Forwarded           uint64 // dead letters stored by the forwarder
	AlreadyDeadLettered uint64 // dead-lettered by pkg/events (skipped or duplicate)
	Unmanaged           uint64 // advisories of consumers the resolver does not know
	OriginalGone        uint64 // originals no longer in their stream
	Malformed           uint64 // advisories that could not be parsed
	NotStored           uint64 // dead-letter publishes that failed (each attempt)
	Retried             uint64 // advisories negatively acknowledged for a retry
	Counted             uint64 // dead letters counted in the ledger
	CountDuplicates     uint64 // ledger increments found counted already
	NotCounted          uint64 // ledger increments that failed (each attempt)
}

// Forwarder turns JetStream's MAX_DELIVERIES and MSG_TERMINATED advisories
// into dead letters. It is a controller-runtime Runnable that runs on the
// leader only. Start it once.
type Forwarder struct {
	nc      *nats.Conn
	resolve Resolver
	o       options

	streams map[string]jetstream.Stream // handles by name; only the Start goroutine uses it

	forwarded, already, unmanaged, gone, malformed, notStored, retried atomic.Uint64
	counted, countDups, notCounted                                     atomic.Uint64

	ledgerStream jetstream.Stream // set by setup when counting
	// domain is the JetStream domain of the forwarder's connection (set by
	// setup): advisories of another domain (a leaf node's, which cross a
	// leaf node connection) name streams this connection does not see.
	domain string
	// storedUncounted holds the ledger IDs of dead letters stored whose
	// count failed transiently: their retry only counts. Only the Start
	// goroutine uses it.
	storedUncounted map[string]bool

	started   atomic.Bool
	readyOnce sync.Once
	ready     chan struct{}
}

type options struct {
	stream, consumer      string
	log                   logr.Logger
	clock                 events.Clock
	onForwarded           func(key string)
	onAlready             func(key string)
	onNotStored           func(key, subject string, err error)
	batch                 int
	fetchWait             time.Duration
	retryMin, retryMax    time.Duration
	backoffMin            time.Duration
	backoffMax            time.Duration
	opTimeout             time.Duration
	storage               jetstream.StorageType
	streamMaxBytes        int64
	streamReplicas        int
	consumerAckWait       time.Duration
	consumerMaxAckPending int
	ledger                *Ledger
	// afterCount, in tests, runs after a dead letter was counted and
	// before its advisory is acknowledged; true abandons the advisory
	// there, as a kill would.
	afterCount func() bool
}

// Option configures a Forwarder.
type Option func(*options)

// WithStreamName sets the capture stream's name (default
// DefaultStreamName).
func WithStreamName(name string) Option { return func(o *options) { o.stream = name } }

// WithConsumerName sets the capture consumer's durable name (default
// DefaultConsumerName).
func WithConsumerName(name string) Option { return func(o *options) { o.consumer = name } }

// WithLogger sets the logger (default: discard).
func WithLogger(l logr.Logger) Option { return func(o *options) { o.log = l } }

// WithClock sets the clock that stamps Dlq-Time (default events.SystemClock).
func WithClock(c events.Clock) Option { return func(o *options) { o.clock = c } }

// WithOnForwarded is called with the target's key after the forwarder
// stored a dead letter.
func WithOnForwarded(fn func(key string)) Option { return func(o *options) { o.onForwarded = fn } }

// WithOnAlreadyDeadLettered is called with the target's key when the message
// had been dead-lettered already by pkg/events: its MSG_TERMINATED reason
// starts with events.TermReasonDeadLettered, or the forwarder's publish was
// a duplicate.
func WithOnAlreadyDeadLettered(fn func(key string)) Option {
	return func(o *options) { o.onAlready = fn }
}

// WithOnNotStored is called when a dead letter could not be stored because
// no stream captures subject (err matches jetstream.ErrNoStreamResponse),
// JetStream refused it (a *jetstream.APIError), the message is too large or
// the Target's subject is invalid. The advisory is retried later. It is not
// called for timeouts and disconnects, which are only logged and retried.
func WithOnNotStored(fn func(key, subject string, err error)) Option {
	return func(o *options) { o.onNotStored = fn }
}

// WithLedger counts every dead letter in l (see the package doc). Without it
// nothing is counted.
func WithLedger(l *Ledger) Option { return func(o *options) { o.ledger = l } }

// WithFetchBatch sets how many advisories one pull asks for (default
// DefaultFetchBatch).
func WithFetchBatch(n int) Option { return func(o *options) { o.batch = n } }

// WithFetchWait sets how long one pull waits for advisories (default
// DefaultFetchWait; at least 1s).
func WithFetchWait(d time.Duration) Option { return func(o *options) { o.fetchWait = d } }

// WithRetryDelay sets the delay before an advisory whose dead letter was not
// stored is redelivered: min after the first attempt, doubling up to max
// (defaults DefaultRetryDelay, DefaultMaxRetryDelay).
func WithRetryDelay(minDelay, maxDelay time.Duration) Option {
	return func(o *options) { o.retryMin, o.retryMax = minDelay, maxDelay }
}

// WithReconnectBackoff sets the delay between attempts to set up the
// capture stream and consumer after a failure (default 200ms doubling up to
// 10s; a NATS reconnect cuts the wait short).
func WithReconnectBackoff(minDelay, maxDelay time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax = minDelay, maxDelay }
}

// WithOpTimeout bounds each JetStream call (default DefaultOpTimeout).
func WithOpTimeout(d time.Duration) Option { return func(o *options) { o.opTimeout = d } }

// WithStreamStorage sets the capture stream's storage, replicas and max
// bytes (defaults: file, 1, DefaultStreamMaxBytes). Storage and replicas
// only apply when the stream is created.
func WithStreamStorage(storage jetstream.StorageType, replicas int, maxBytes int64) Option {
	return func(o *options) { o.storage, o.streamReplicas, o.streamMaxBytes = storage, replicas, maxBytes }
}

// WithConsumerAckWait sets the capture consumer's ack wait (default
// DefaultAckWait).
func WithConsumerAckWait(d time.Duration) Option { return func(o *options) { o.consumerAckWait = d } }

// New returns a forwarder that talks to NATS over nc (which may still be
// connecting) and asks resolve where each consumer's dead letters go.
func New(nc *nats.Conn, resolve Resolver, opts ...Option) *Forwarder {
	o := options{
		stream:                DefaultStreamName,
		consumer:              DefaultConsumerName,
		log:                   logr.Discard(),
		clock:                 events.SystemClock{},
		batch:                 DefaultFetchBatch,
		fetchWait:             DefaultFetchWait,
		retryMin:              DefaultRetryDelay,
		retryMax:              DefaultMaxRetryDelay,
		backoffMin:            200 * time.Millisecond,
		backoffMax:            10 * time.Second,
		opTimeout:             DefaultOpTimeout,
		storage:               jetstream.FileStorage,
		streamMaxBytes:        DefaultStreamMaxBytes,
		streamReplicas:        1,
		consumerAckWait:       DefaultAckWait,
		consumerMaxAckPending: DefaultMaxAckPending,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.batch <= 0 {
		o.batch = DefaultFetchBatch
	}
	o.consumerMaxAckPending = max(o.consumerMaxAckPending, o.batch)
	o.fetchWait = max(o.fetchWait, time.Second)
	if o.retryMin <= 0 {
		o.retryMin = DefaultRetryDelay
	}
	o.retryMax = max(o.retryMax, o.retryMin)
	if o.backoffMin <= 0 {
		o.backoffMin = 200 * time.Millisecond
	}
	o.backoffMax = max(o.backoffMax, o.backoffMin)
	if o.opTimeout <= 0 {
		o.opTimeout = DefaultOpTimeout
	}
	if o.clock == nil {
		o.clock = events.SystemClock{}
	}
	return &Forwarder{nc: nc, resolve: resolve, o: o, streams: map[string]jetstream.Stream{}, storedUncounted: map[string]bool{},
		ready: make(chan struct{})}
}

// NeedLeaderElection: only the leader forwards; the capture stream keeps the
// advisories meanwhile.
func (f *Forwarder) NeedLeaderElection() bool { return true }

// Ready is closed once the capture stream and consumer have been set up for
// the first time (useful in tests and readiness checks).
func (f *Forwarder) Ready() <-chan struct{} { return f.ready }

// Stats returns the counters.
func (f *Forwarder) Stats() Stats {
	return Stats{
		Forwarded: f.forwarded.Load(), AlreadyDeadLettered: f.already.Load(), Unmanaged: f.unmanaged.Load(),
		OriginalGone: f.gone.Load(), Malformed: f.malformed.Load(), NotStored: f.notStored.Load(),
		Retried: f.retried.Load(), Counted: f.counted.Load(), CountDuplicates: f.countDups.Load(), NotCounted: f.notCounted.Load(),
	}
}

// StreamConfig is the capture stream the forwarder creates: the two
// advisory wildcards, work-queue retention, 7 days, discard old, owned by
// the operator.
func (f *Forwarder) StreamConfig() events.StreamConfig {
	cfg := events.NewStreamConfig(f.o.stream, MaxDeliveriesAdvisoryPrefix+".>", TerminatedAdvisoryPrefix+".>")
	cfg.Description = "JetStream consumer advisories captured for the eventstream-operator's dead-letter forwarder"
	cfg.Retention = jetstream.WorkQueuePolicy
	cfg.MaxAge = DefaultStreamMaxAge
	cfg.MaxBytes = f.o.streamMaxBytes
	cfg.Discard = jetstream.DiscardOld
	cfg.Storage = f.o.storage
	cfg.Replicas = max(f.o.streamReplicas, 1)
	cfg.Metadata = map[string]string{OwnerMetadataKey: OwnerMetadataValue}
	return cfg
}

func (f *Forwarder) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       f.o.consumer,
		Description:   "eventstream-operator dead-letter forwarder",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       f.o.consumerAckWait,
		MaxDeliver:    -1,
		MaxAckPending: f.o.consumerMaxAckPending,
		Metadata:      map[string]string{OwnerMetadataKey: OwnerMetadataValue},
	}
}

// Start sets up the capture stream and consumer and forwards advisories
// until ctx ends; it then returns nil. NATS being unreachable, the stream or
// consumer being deleted, and other failures are logged and retried with
// backoff; they never end Start. It returns an error only when the forwarder
// was built without a connection or resolver, with invalid names, or is
// started a second time.
func (f *Forwarder) Start(ctx context.Context) error {
	if f.nc == nil {
		return errors.New("dlq: no NATS connection")
	}
	if f.resolve == nil {
		return errors.New("dlq: no resolver")
	}
	if !f.started.CompareAndSwap(false, true) {
		return errors.New("dlq: forwarder already started")
	}
	if err := events.ValidateName(f.o.stream); err != nil {
		return fmt.Errorf("dlq: stream name: %w", err)
	}
	if err := events.ValidateName(f.o.consumer); err != nil {
		return fmt.Errorf("dlq: consumer name: %w", err)
	}
	js, err := jetstream.New(f.nc)
	if err != nil {
		return fmt.Errorf("dlq: jetstream: %w", err)
	}
	log := f.o.log.WithValues("stream", f.o.stream, "consumer", f.o.consumer)

	// A reconnect wakes up a waiting retry at once.
	status := f.nc.StatusChanged(nats.CONNECTED)
	defer f.nc.RemoveStatusListener(status)

	delay := f.o.backoffMin
	wait := func() bool {
		t := time.NewTimer(delay)
		defer t.Stop()
		delay = min(delay*2, f.o.backoffMax)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		case <-status:
		}
		return true
	}
	log.Info("dead-letter forwarder starting")
	for ctx.Err() == nil {
		cons, err := f.setup(ctx, js)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			log.Error(err, "cannot set up the advisory stream and consumer; retrying", "retryIn", delay.String())
			if !wait() {
				break
			}
			continue
		}
		f.readyOnce.Do(func() { close(f.ready) })
		err = f.run(ctx, js, cons, func() { delay = f.o.backoffMin })
		if ctx.Err() != nil {
			break
		}
		log.Info("advisory consumer interrupted; setting it up again", "error", err.Error(), "retryIn", delay.String())
		if !wait() {
			break
		}
	}
	log.Info("dead-letter forwarder stopped")
	return nil
}

// setup creates or updates the capture stream and consumer.
func (f *Forwarder) setup(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*f.o.opTimeout)
	defer cancel()
	cfg := f.StreamConfig()
	info, err := events.GetStreamInfo(ctx, js, cfg.Name)
	switch {
	case errors.Is(err, events.ErrNotFound):
		_, cerr := events.CreateStream(ctx, js, cfg)
		switch {
		case cerr == nil:
			f.o.log.Info("created advisory stream", "stream", cfg.Name)
		case errors.Is(cerr, events.ErrConflict):
			// Created meanwhile with another configuration, or another
			// stream captures the advisory subjects already.
			info, err = events.GetStreamInfo(ctx, js, cfg.Name)
			if err != nil {
				return nil, cerr
			}
			if err := f.updateStream(ctx, js, cfg, info); err != nil {
				return nil, err
			}
		default:
			return nil, cerr
		}
	case err != nil:
		return nil, err
	default:
		if err := f.updateStream(ctx, js, cfg, info); err != nil {
			return nil, err
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, cfg.Name, f.consumerConfig())
	if err != nil {
		return nil, fmt.Errorf("dlq: create consumer %q on %q: %w", f.o.consumer, cfg.Name, err)
	}
	acct, err := js.AccountInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("dlq: reading the JetStream domain: %w", err)
	}
	f.domain = acct.Domain
	if f.o.ledger != nil {
		// Counting never holds up dead-lettering: a bucket that cannot be
		// set up now is tried again at the first count.
		if f.ledgerStream, err = f.o.ledger.ensure(ctx, js); err != nil {
			f.o.log.Error(err, "cannot set up the dead-letter count bucket; trying again at the next dead letter")
		}
	}
	return cons, nil
}

func (f *Forwarder) updateStream(ctx context.Context, js jetstream.JetStream, cfg events.StreamConfig, info *jetstream.StreamInfo) error {
	// Storage and replicas are left as they are: they are chosen at creation.
	cfg.Storage = info.Config.Storage
	cfg.Replicas = max(info.Config.Replicas, 1)
	if diff := admin.DiffStream(cfg, info.Config); len(diff) > 0 {
		if err := admin.CheckStreamUpdate(cfg, info.Config); err != nil {
			// E.g. created with another retention by hand: it still captures
			// the advisories, so use it as it is rather than stop forwarding.
			f.o.log.Error(err, "advisory stream differs from the desired configuration and cannot be changed in place; using it as it is",
				"stream", cfg.Name, "fields", diff)
			return nil
		}
		if _, err := events.UpdateStream(ctx, js, cfg); err != nil {
			return err
		}
		f.o.log.Info("updated advisory stream", "stream", cfg.Name, "fields", diff)
	}
	return nil
}

// run fetches and handles advisories until ctx ends or a fetch fails.
func (f *Forwarder) run(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer, healthy func()) error {
	hb := max(f.o.fetchWait/5, 200*time.Millisecond)
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, f.o.fetchWait)
		batch, err := cons.Fetch(f.o.batch, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(hb))
		if err != nil {
			cancel()
			return err
		}
		for m := range batch.Messages() {
			f.handle(ctx, js, m)
		}
		err = batch.Error()
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		healthy()
	}
	return nil
}

// advisory holds the fields of JSConsumerDeliveryExceededAdvisory and
// JSConsumerDeliveryTerminatedAdvisory the forwarder uses.
type advisory struct {
	Type        string `json:"type"`
	Timestamp   string `json:"timestamp"` // RFC 3339; only for the lag metric, so a bad one drops nothing
	Stream      string `json:"stream"`
	Consumer    string `json:"consumer"`
	ConsumerSeq uint64 `json:"consumer_seq"`
	StreamSeq   uint64 `json:"stream_seq"`
	Deliveries  uint64 `json:"deliveries"`
	Reason      string `json:"reason"`
	Domain      string `json:"domain"`
}

// parseAdvisory decodes an advisory received on subject.
func parseAdvisory(subject string, data []byte) (adv advisory, terminated bool, err error) {
	var wantType string
	switch {
	case strings.HasPrefix(subject, MaxDeliveriesAdvisoryPrefix+"."):
		wantType = maxDeliverAdvisoryType
	case strings.HasPrefix(subject, TerminatedAdvisoryPrefix+"."):
		wantType, terminated = terminatedAdvisoryType, true
	default:
		return adv, false, fmt.Errorf("unexpected subject %q", subject)
	}
	if err := json.Unmarshal(data, &adv); err != nil {
		return adv, false, fmt.Errorf("invalid JSON: %w", err)
	}
	switch {
	case adv.Type != "" && adv.Type != wantType:
		return adv, false, fmt.Errorf("type %q on a %s subject", adv.Type, wantType)
	case events.ValidateName(adv.Stream) != nil:
		return adv, false, fmt.Errorf("invalid stream %q", adv.Stream)
	case events.ValidateName(adv.Consumer) != nil:
		return adv, false, fmt.Errorf("invalid consumer %q", adv.Consumer)
	case adv.StreamSeq == 0:
		return adv, false, errors.New("no stream_seq")
	}
	return adv, terminated, nil
}

// handle processes one advisory and acknowledges it, or negatively
// acknowledges it with a delay when the dead letter could not be stored.
// It never panics on what the advisory contains.
func (f *Forwarder) handle(ctx context.Context, js jetstream.JetStream, m jetstream.Msg) {
	log := f.o.log
	adv, terminated, err := parseAdvisory(m.Subject(), m.Data())
	if err != nil {
		f.malformed.Add(1)
		malformedTotal.Inc()
		log.Error(err, "malformed advisory; dropping it", "subject", m.Subject(), "size", len(m.Data()))
		f.ack(m)
		return
	}
	defer func() { observeLag(adv.Timestamp, f.o.clock.Now()) }()
	log = log.WithValues("originStream", adv.Stream, "originConsumer", adv.Consumer, "sequence", adv.StreamSeq)
	if adv.Stream == f.o.stream {
		f.unmanaged.Add(1)
		f.ack(m)
		return
	}
	if adv.Domain != f.domain {
		// A leaf node's JetStream: its stream of that name is not the one
		// this connection reads, so forwarding by sequence would send
		// another message.
		f.unmanaged.Add(1)
		log.V(1).Info("advisory from another JetStream domain; skipping", "domain", adv.Domain)
		f.ack(m)
		return
	}
	target, ok := f.resolve(adv.Stream, adv.Consumer)
	if !ok {
		f.unmanaged.Add(1)
		log.V(1).Info("advisory for a consumer without dead-lettering; skipping")
		f.ack(m)
		return
	}
	log = log.WithValues("key", target.Key)
	var reason string
	if terminated {
		if strings.HasPrefix(adv.Reason, events.TermReasonDeadLettered) {
			if !f.count(ctx, js, m, adv, target, log) {
				return
			}
			f.already.Add(1)
			log.V(1).Info("already dead-lettered by the client library")
			f.ack(m)
			f.call(func() {
				if f.o.onAlready != nil {
					f.o.onAlready(target.Key)
				}
			})
			return
		}
		reason = adv.Reason
		if reason == "" {
			reason = "terminated by the consumer"
		}
	} else {
		reason = fmt.Sprintf("max deliveries reached (%d)", adv.Deliveries)
	}

	if f.storedUncounted[ledgerID(adv, target)] {
		// Stored by an earlier attempt whose count failed: only count.
		if f.count(ctx, js, m, adv, target, log) {
			f.ack(m)
		}
		return
	}
	orig, err := f.getMsg(ctx, js, adv.Stream, adv.StreamSeq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		f.gone.Add(1)
		if adv.Reason == serverTermLimitsReason || adv.Reason == serverTermUnackedLimitsReason {
			log.V(1).Info("message removed from its stream; nothing to dead-letter", "reason", adv.Reason)
		} else {
			log.Info("original message no longer exists; nothing to dead-letter", "reason", reason, "error", err.Error())
		}
		f.ack(m)
		return
	case err != nil:
		if ctx.Err() != nil {
			return // shutting down: redelivered after AckWait
		}
		log.Error(err, "cannot read the original message; retrying later")
		f.retry(m, log)
		return
	}

	subjectFn := target.Subject
	if subjectFn == nil {
		subjectFn = events.DeadLetterSubject
	}
	var subject string
	f.call(func() { subject = subjectFn(orig.Subject) })
	if events.ValidateSubject(subject) != nil {
		err := fmt.Errorf("dlq: invalid dead-letter subject %q for %q", subject, orig.Subject)
		f.notStored.Add(1)
		notStoredTotal.Inc()
		log.Error(err, "cannot dead-letter; retrying later")
		f.call(func() {
			if f.o.onNotStored != nil {
				f.o.onNotStored(target.Key, subject, err)
			}
		})
		f.retry(m, log)
		return
	}
	dl := events.NewDeadLetterMsg(subject, orig.Header, orig.Data, events.DeadLetterInfo{
		Stream: adv.Stream, Consumer: adv.Consumer, Subject: orig.Subject, Sequence: adv.StreamSeq,
		Deliveries: adv.Deliveries, Reason: reason, Time: f.o.clock.Now(),
	})
	pctx, cancel := context.WithTimeout(ctx, f.o.opTimeout)
	ack, err := js.PublishMsg(pctx, dl)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		f.notStored.Add(1)
		notStoredTotal.Inc()
		if !isTransient(err) {
			log.Error(err, "dead letter not stored; retrying later", "subject", subject)
			f.call(func() {
				if f.o.onNotStored != nil {
					f.o.onNotStored(target.Key, subject, err)
				}
			})
		} else {
			log.Info("dead-letter publish failed; retrying later", "subject", subject, "error", err.Error())
		}
		f.retry(m, log)
		return
	}
	if !f.count(ctx, js, m, adv, target, log) {
		return
	}
	f.ack(m)
	if ack.Duplicate {
		f.already.Add(1)
		log.V(1).Info("dead letter was stored already", "subject", subject)
		f.call(func() {
			if f.o.onAlready != nil {
				f.o.onAlready(target.Key)
			}
		})
		return
	}
	f.forwarded.Add(1)
	forwardedTotal.Inc()
	log.Info("dead-lettered", "subject", subject, "dlqStream", ack.Stream, "dlqSequence", ack.Sequence, "reason", reason)
	f.call(func() {
		if f.o.onForwarded != nil {
			f.o.onForwarded(target.Key)
		}
	})
}

// ledgerID is the identity of one dead letter of one target: the dead
// letter's own Nats-Msg-Id, qualified by the target, since two consumers of
// one stream can dead-letter the same message and each counts it.
func ledgerID(adv advisory, target Target) string {
	return events.DeadLetterMsgID(adv.Stream, adv.StreamSeq) + "@" + target.Key + "/" + target.UID
}

// count records the dead letter of adv in the ledger, if there is one. It
// returns false when the advisory must not be acknowledged now: it has been
// negatively acknowledged for a retry (NATS unreachable), or abandoned
// (shutting down, or the test hook).
func (f *Forwarder) count(ctx context.Context, js jetstream.JetStream, m jetstream.Msg, adv advisory, target Target, log logr.Logger) bool {
	l := f.o.ledger
	if l == nil {
		return true
	}
	id := ledgerID(adv, target)
	var (
		counted bool
		n       int64
		err     error
	)
	if f.ledgerStream == nil {
		f.ledgerStream, err = l.ensure(ctx, js)
	}
	if err == nil {
		counted, n, err = l.add(ctx, js, f.ledgerStream, target.Key, target.UID, target.Base, id)
		if err != nil && (errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
			errors.Is(err, nats.ErrNoResponders)) && ctx.Err() == nil {
			// The bucket was deleted: create it again and retry once.
			if st, eerr := l.ensure(ctx, js); eerr == nil {
				f.ledgerStream = st
				counted, n, err = l.add(ctx, js, f.ledgerStream, target.Key, target.UID, target.Base, id)
			}
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		f.notCounted.Add(1)
		if isTransient(err) {
			if len(f.storedUncounted) >= 4096 {
				clear(f.storedUncounted)
			}
			f.storedUncounted[id] = true
			log.Info("cannot count the dead letter; retrying later", "error", err.Error())
			f.retry(m, log)
			return false
		}
		log.Error(err, "dead letter stored but not counted; status.state.deadLettered will miss it", "ledgerKey", target.Key)
		delete(f.storedUncounted, id)
		return true
	}
	delete(f.storedUncounted, id)
	if counted {
		f.counted.Add(1)
		log.V(1).Info("dead letter counted", "ledgerKey", target.Key, "deadLettered", n)
	} else {
		f.countDups.Add(1)
		log.Info("dead letter was counted already", "ledgerKey", target.Key)
	}
	if f.o.afterCount != nil && f.o.afterCount() {
		return false
	}
	return true
}

// getMsg reads message seq of stream, caching the stream handles.
func (f *Forwarder) getMsg(ctx context.Context, js jetstream.JetStream, stream string, seq uint64) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, f.o.opTimeout)
	defer cancel()
	st, ok := f.streams[stream]
	if !ok {
		var err error
		if st, err = js.Stream(ctx, stream); err != nil {
			return nil, err
		}
		if len(f.streams) >= 1024 { // bound the cache; handles are cheap to get again
			clear(f.streams)
		}
		f.streams[stream] = st
	}
	msg, err := st.GetMsg(ctx, seq)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		// Look the stream up again next time: it may have been deleted, or
		// recreated with direct gets switched on or off.
		delete(f.streams, stream)
	}
	return msg, err
}

// isTransient reports a failure that says nothing about the dead letter
// itself: a timeout or a connection problem.
func isTransient(err error) bool {
	for _, e := range []error{
		context.DeadlineExceeded, nats.ErrTimeout, nats.ErrDisconnected, nats.ErrConnectionClosed,
		nats.ErrConnectionReconnecting, nats.ErrConnectionDraining, nats.ErrNoServers,
		jetstream.ErrConnectionClosed, jetstream.ErrServerShutdown,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503 && apiErr.ErrorCode != jetstream.JSErrCodeJetStreamNotEnabled
}

// call runs a user-supplied function, turning a panic into a log line.
func (f *Forwarder) call(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			f.o.log.Error(fmt.Errorf("panic: %v", r), "dlq: callback panicked")
		}
	}()
	fn()
}

func (f *Forwarder) ack(m jetstream.Msg) {
	if err := m.Ack(); err != nil {
		f.o.log.Info("cannot acknowledge advisory; it will be redelivered", "error", err.Error())
	}
}

// retry redelivers the advisory after retryDelay.
func (f *Forwarder) retry(m jetstream.Msg, log logr.Logger) {
	f.retried.Add(1)
	n := uint64(1)
	if meta, err := m.Metadata(); err == nil && meta.NumDelivered > 0 {
		n = meta.NumDelivered
	}
	if err := m.NakWithDelay(f.retryDelay(n)); err != nil {
		log.Info("cannot nak advisory; it will be redelivered after the ack wait", "error", err.Error())
	}
}

// retryDelay is the delay after the n-th failed delivery of an advisory:
// retryMin doubling up to retryMax.
func (f *Forwarder) retryDelay(n uint64) time.Duration {
	d := f.o.retryMin
	for i := uint64(1); i < n && d < f.o.retryMax; i++ {
		d *= 2
	}
	return min(d, f.o.retryMax)
}
