package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// EventPublisher is what services depend on to publish events — the seed's
// provider interface, method for method — so that unit tests can swap in
// eventstest.Recorder for the JetStream Publisher.
type EventPublisher interface {
	// Publish validates e, publishes it on subject and waits until the
	// stream has stored it, retrying transient failures.
	Publish(ctx context.Context, subject string, e *Event) error
	// PublishAsync validates e and returns without waiting for the stream;
	// failures that remain after retries go to the error handler.
	PublishAsync(ctx context.Context, subject string, e *Event) error
	// Close refuses further publishes and waits for the pending
	// asynchronous ones, bounded by the retry budget.
	Close() error
}

// ErrorHandler receives an asynchronous publish that failed for good.
type ErrorHandler func(subject string, e *Event, err error)

// Publisher defaults.
const (
	DefaultRetries        = 3
	DefaultRetryBackoff   = time.Second
	DefaultMaxBackoff     = 30 * time.Second
	DefaultMaxInFlight    = 4000
	DefaultPublishTimeout = 5 * time.Second
	// DefaultRetryJitter spreads each retry pause uniformly over ±20 % of
	// its nominal value, so publishers do not retry in lockstep.
	DefaultRetryJitter = 0.2
)

// PublisherOption configures NewPublisher.
type PublisherOption func(*publisherOptions) error

type publisherOptions struct {
	retries        int
	backoff        time.Duration
	maxBackoff     time.Duration
	mode           Mode
	maxInFlight    int
	onError        ErrorHandler
	publishTimeout time.Duration
	jitter         float64
	validator      DataValidator
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
}

// WithRetry sets how many times a transient failure is retried (0: never)
// and the first pause; each further pause doubles, up to WithMaxBackoff.
// The default is 3 retries after 1s, 2s and 4s, each spread by ±20 %
// (WithRetryJitter).
func WithRetry(attempts int, initial time.Duration) PublisherOption {
	return func(o *publisherOptions) error {
		if attempts < 0 {
			return &ValidationError{Field: "retry.attempts", Reason: "must not be negative"}
		}
		if initial < 0 || (attempts > 0 && initial == 0) {
			return &ValidationError{Field: "retry.initial", Reason: "must be positive"}
		}
		o.retries, o.backoff = attempts, initial
		return nil
	}
}

// WithMaxBackoff caps the pause between retries (default 30s).
func WithMaxBackoff(d time.Duration) PublisherOption {
	return func(o *publisherOptions) error {
		if d <= 0 {
			return &ValidationError{Field: "maxBackoff", Reason: "must be positive"}
		}
		o.maxBackoff = d
		return nil
	}
}

// WithRetryJitter spreads each retry pause uniformly over
// [d·(1-fraction), d·(1+fraction)] around its nominal value d (default
// DefaultRetryJitter, ±20 %), so that publishers disconnected together do
// not retry together. 0 makes the pauses exact; fraction must be in [0, 1).
func WithRetryJitter(fraction float64) PublisherOption {
	return func(o *publisherOptions) error {
		if !(fraction >= 0 && fraction < 1) { // also refuses NaN
			return &ValidationError{Field: "retryJitter", Reason: "must be at least 0 and less than 1"}
		}
		o.jitter = fraction
		return nil
	}
}

// WithStructuredMode publishes whole events as CloudEvents JSON instead of
// binary mode, for consumers that cannot read headers.
func WithStructuredMode() PublisherOption {
	return func(o *publisherOptions) error {
		o.mode = ModeStructured
		return nil
	}
}

// WithMaxInFlight bounds how many asynchronous publishes may wait for their
// ack at once (default 4000); PublishAsync blocks while the window is full,
// so a slow or absent server pushes back instead of growing memory.
func WithMaxInFlight(n int) PublisherOption {
	return func(o *publisherOptions) error {
		if n <= 0 {
			return &ValidationError{Field: "maxInFlight", Reason: "must be positive"}
		}
		o.maxInFlight = n
		return nil
	}
}

// WithErrorHandler receives asynchronous publishes that failed for good
// (after retries, or at once for a permanent failure). The default drops
// them; a service should at least log them.
func WithErrorHandler(fn ErrorHandler) PublisherOption {
	return func(o *publisherOptions) error {
		o.onError = fn
		return nil
	}
}

// WithPublishTimeout bounds each attempt's wait for the stream's ack
// (default 5s); the caller's context bounds the whole call.
func WithPublishTimeout(d time.Duration) PublisherOption {
	return func(o *publisherOptions) error {
		if d <= 0 {
			return &ValidationError{Field: "publishTimeout", Reason: "must be positive"}
		}
		o.publishTimeout = d
		return nil
	}
}

// WithDataValidator validates every event's data before it is sent, against
// the schema v holds for its type and schema version (a *schemas.Registry,
// which watches the registry bucket the operator fills from EventSchema
// resources). Data that does not match is a *ValidationError for field
// "data" with the validator's Pointer and Reason, and nothing is sent — for
// PublishAsync too, which refuses it before queueing. When the event names
// no dataschema, the message carries the URI of the schema it was checked
// against (schemas.URI: "urn:events:schema:<type>:<version>"); the caller's
// Event is not modified. v decides what happens to types it has no schema
// for (the registry's default: allowed, sent without a dataschema).
func WithDataValidator(v DataValidator) PublisherOption {
	return func(o *publisherOptions) error {
		if v == nil {
			return &ValidationError{Field: "dataValidator", Reason: "is nil"}
		}
		o.validator = v
		return nil
	}
}

// WithTracerProvider sets where the publisher's spans go (default: otel's
// global provider, which records nothing until the service installs an
// SDK). Each publish is a producer span "send <subject>", and the event
// carries its W3C trace context as the CloudEvents distributed-tracing
// extension (ce-traceparent, ce-tracestate); see README.md, "Telemetry".
func WithTracerProvider(tp trace.TracerProvider) PublisherOption {
	return func(o *publisherOptions) error {
		if tp == nil {
			return &ValidationError{Field: "tracerProvider", Reason: "is nil"}
		}
		o.tracerProvider = tp
		return nil
	}
}

// WithMeterProvider sets where the publisher's metrics go (default: otel's
// global provider, a no-op until the service installs an SDK).
func WithMeterProvider(mp metric.MeterProvider) PublisherOption {
	return func(o *publisherOptions) error {
		if mp == nil {
			return &ValidationError{Field: "meterProvider", Reason: "is nil"}
		}
		o.meterProvider = mp
		return nil
	}
}

// Publisher publishes events to JetStream. It is safe for concurrent use.
// Every message carries the event ID as Nats-Msg-Id, so retries (its own or
// the caller's) are stored once within the stream's duplicate window.
type Publisher struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts publisherOptions
	tel  *telemetry

	closed atomic.Bool
	sem    chan struct{} // async in-flight window

	mu       sync.Mutex
	pending  int                   // accepted async publishes not finished
	idle     chan struct{}         // closed when pending drops to 0
	inflight map[*nats.Msg]*outMsg // async publishes awaiting an ack

	pool sync.Pool // *outMsg
}

// outMsg is one message on its way out, with the buffers it was encoded
// into. It goes back to the pool once JetStream has acknowledged it (or it
// failed for good): nothing refers to the message after that, since nats.go
// serialises a message when it is published.
type outMsg struct {
	msg     nats.Msg
	enc     encoder
	subject string
	event   *Event
	retries int
	// th is the trace context the message carries; span and start are an
	// asynchronous publish's producer span and start time.
	th    traceHeaders
	span  trace.Span
	start time.Time
	// sending is held while the message is being handed to nats.go. An
	// ack timeout can fire before that call has read the message (its
	// timer starts first, and the call blocks while a stalled server does
	// not read): the message must not go back to the pool until it is done.
	sending sync.Mutex
}

// maxPooledBody: messages whose body buffer grew beyond this are not
// pooled, so one large event does not pin memory.
const maxPooledBody = 64 << 10

func (p *Publisher) get() *outMsg {
	if m, ok := p.pool.Get().(*outMsg); ok {
		return m
	}
	return &outMsg{}
}

func (p *Publisher) put(m *outMsg) {
	if m.enc.buf.Cap() > maxPooledBody {
		return
	}
	m.msg.Data, m.msg.Subject, m.event, m.subject, m.retries = nil, "", nil, "", 0
	m.th, m.span = traceHeaders{}, nil
	p.pool.Put(m)
}

var _ EventPublisher = (*Publisher)(nil)

// NewPublisher returns a publisher on nc. nc stays the caller's: Close does
// not close it.
func NewPublisher(nc *nats.Conn, opts ...PublisherOption) (*Publisher, error) {
	if nc == nil {
		return nil, &ValidationError{Field: "conn", Reason: "is nil"}
	}
	o := publisherOptions{
		retries:        DefaultRetries,
		backoff:        DefaultRetryBackoff,
		maxBackoff:     DefaultMaxBackoff,
		maxInFlight:    DefaultMaxInFlight,
		publishTimeout: DefaultPublishTimeout,
		jitter:         DefaultRetryJitter,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	p := &Publisher{
		nc:       nc,
		opts:     o,
		tel:      newTelemetry(o.tracerProvider, o.meterProvider),
		sem:      make(chan struct{}, o.maxInFlight),
		inflight: make(map[*nats.Msg]*outMsg),
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncAckHandler(p.onAck),
		jetstream.WithPublishAsyncErrHandler(p.onErr),
		// Our window bounds what is pending; jetstream's own must never
		// stall below it.
		jetstream.WithPublishAsyncMaxPending(2*o.maxInFlight),
		jetstream.WithPublishAsyncTimeout(o.publishTimeout),
	)
	if err != nil {
		return nil, wrap("new publisher", "", err)
	}
	p.js = js
	return p, nil
}

// JetStream API error codes that mean a publish may succeed if retried.
const (
	codeJetStreamUnavailable   = 10008 // JetStream system temporarily unavailable
	codeExpectedSeqUnavailable = 10163 // expected last sequence per subject temporarily unavailable
)

// ValidateSubject checks a subject events can be published on: non-empty
// dot-separated tokens, no whitespace, no wildcards. The error is a
// *ValidationError for field "subject".
func ValidateSubject(subject string) error {
	if !isPublishSubject(subject) {
		// Slow path for the message.
		reason := "not a valid subject"
		if err := validateSubject(subject, false); err != nil {
			reason = err.Error()
		}
		return &ValidationError{Field: "subject", Reason: reason}
	}
	return nil
}

// isPublishSubject is validateSubject(s, false) without allocating, for the
// hot path.
func isPublishSubject(s string) bool {
	if s == "" {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			switch s[i] {
			case ' ', '\t', '\r', '\n':
				return false
			case '.':
			default:
				continue
			}
		}
		tok := s[start:i]
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
		start = i + 1
	}
	return true
}

// encode validates e (Validate: the platform's rules, JSON data included;
// then the data's schema when a DataValidator is set) and fills m for subject, checking the size against the server's max
// payload. The body is e.Data as it is: nothing is marshalled here.
func (p *Publisher) encode(m *outMsg, subject string, e *Event) error {
	msg := &m.msg
	if err := ValidateSubject(subject); err != nil {
		return err
	}
	if err := e.Validate(); err != nil {
		return err
	}
	dataSchema := e.DataSchema
	if p.opts.validator != nil {
		uri, err := p.opts.validator.ValidateData(e)
		if err != nil {
			return err
		}
		if dataSchema == "" {
			dataSchema = uri
		}
	}
	msg.Subject = subject
	if err := m.enc.encode(msg, e, p.opts.mode, e.ID, dataSchema, &m.th); err != nil {
		return err
	}
	if limit := p.nc.MaxPayload(); limit > 0 {
		if size := m.enc.size; int64(size) > limit {
			return &ValidationError{Field: "size", Reason: fmt.Sprintf("encoded event is %d bytes, the server accepts at most %d", size, limit)}
		}
	}
	return nil
}

// backoff is the pause before retry n (1-based): the nominal exponential
// pause, capped, spread by the jitter.
func (p *Publisher) backoff(n int) time.Duration {
	return jittered(nominalBackoff(p.opts.backoff, p.opts.maxBackoff, n), p.opts.jitter, rand.Float64())
}

// nominalBackoff is initial·2^(n-1), capped at maxBackoff.
func nominalBackoff(initial, maxBackoff time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// jittered maps r in [0, 1) to a pause in [d·(1-fraction), d·(1+fraction)).
func jittered(d time.Duration, fraction, r float64) time.Duration {
	if fraction == 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + fraction*(2*r-1)))
}

// publishError classifies a failed publish: transient failures keep
// ErrConnection or ErrTimeout, anything else JetStream refused is ErrPublish.
// JetStream answers a publish it refuses to store (limits reached, a failed
// expectation) with an API error, some of them with status 503; only these
// codes mean "try again".
func publishError(subject string, err error) error {
	kind := classify(err)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode != 0 {
		switch apiErr.ErrorCode {
		case codeJetStreamUnavailable, codeExpectedSeqUnavailable:
			kind = ErrConnection
		default:
			kind = ErrPublish
		}
	}
	switch kind {
	case nil:
		return err
	case ErrConnection, ErrTimeout:
	default:
		kind = ErrPublish
	}
	return &OpError{Op: "publish", Name: subject, Kind: kind, Err: err}
}

func closedError(subject string) error {
	return &OpError{Op: "publish", Name: subject, Kind: ErrPublish, Err: ErrClosed}
}

// Publish validates e, publishes it on subject with Nats-Msg-Id set to e.ID
// and waits for the stream's ack. Transient failures (no responders,
// timeout, disconnection) are retried with exponential backoff; invalid
// events and refusals are not. ctx bounds the whole call, waits included.
// Errors: *ValidationError (ErrValidation), or *OpError matching
// ErrConnection, ErrTimeout or ErrPublish.
func (p *Publisher) Publish(ctx context.Context, subject string, e *Event) error {
	_, err := p.PublishAck(ctx, subject, e)
	return err
}

// PublishAck is Publish returning the stream's ack: the stream and sequence
// the event was stored at, and Duplicate when the stream already held an
// event with this ID (a retried publish, or the same event sent twice within
// the duplicate window).
func (p *Publisher) PublishAck(ctx context.Context, subject string, e *Event) (ack *jetstream.PubAck, err error) {
	if p.closed.Load() {
		return nil, closedError(subject)
	}
	m := p.get()
	defer p.put(m) // the request has been written (or abandoned) on return
	start := time.Now()
	ctx, span := p.tel.startPublish(ctx, subject, e, &m.th)
	defer func() { p.tel.endPublish(ctx, span, subject, start, err) }()
	if err := p.encode(m, subject, e); err != nil {
		return nil, err
	}
	msg := &m.msg
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for attempt := 0; ; attempt++ {
		ack, err := p.publishOnce(ctx, msg)
		if err == nil {
			return ack, nil
		}
		perr := publishError(subject, err)
		if !IsTransient(perr) || attempt >= p.opts.retries || ctx.Err() != nil {
			return nil, perr
		}
		wait := p.backoff(attempt + 1)
		p.tel.publishRetry(ctx, span, subject, attempt+1, wait, perr)
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return nil, &OpError{Op: "publish", Name: subject, Kind: ErrTimeout, Err: errors.Join(ctx.Err(), err)}
		}
	}
}

// publishOnce makes one attempt, bounded by the publish timeout.
func (p *Publisher) publishOnce(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > p.opts.publishTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.publishTimeout)
		defer cancel()
	}
	return p.js.PublishMsg(ctx, msg)
}

// PublishAsync validates and encodes e at once (an invalid event is an
// error and nothing is sent), then sends it without waiting for the ack.
// When the in-flight window is full it blocks until a slot frees or ctx
// ends (ErrTimeout). ctx covers only that wait: retries happen in the
// background with the same message ID — an ack that does not come within
// the publish timeout is retried like any transient failure, and the
// stream's duplicate window stores the event once — and a publish that
// fails for good goes to the error handler. Flush and Close wait for all
// of them. e.Data is the message body until then: do not modify its bytes.
func (p *Publisher) PublishAsync(ctx context.Context, subject string, e *Event) error {
	if p.closed.Load() {
		return closedError(subject)
	}
	rec := p.get()
	rec.start = time.Now()
	var span trace.Span
	ctx, span = p.tel.startPublish(ctx, subject, e, &rec.th)
	if err := p.encode(rec, subject, e); err != nil {
		p.tel.endPublish(ctx, span, subject, rec.start, err)
		p.put(rec)
		return err
	}
	select {
	case p.sem <- struct{}{}:
	default:
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			err := &OpError{Op: "publish", Name: subject, Kind: ErrTimeout, Err: ctx.Err()}
			p.tel.endPublish(ctx, span, subject, rec.start, err)
			p.put(rec)
			return err
		}
	}
	rec.span = span
	rec.subject, rec.event = subject, e
	p.mu.Lock()
	if p.closed.Load() {
		// Close ran while this call waited: it may have found nothing
		// pending already, so this publish must not start.
		p.mu.Unlock()
		<-p.sem
		err := closedError(subject)
		p.tel.endPublish(ctx, span, subject, rec.start, err)
		p.put(rec)
		return err
	}
	p.inflight[&rec.msg] = rec
	if p.pending == 0 {
		p.idle = make(chan struct{})
	}
	p.pending++
	p.mu.Unlock()
	p.tel.asyncPendingAdd(1)
	p.send(rec)
	return nil
}

// send (re)publishes rec; an immediate failure takes the same path as a
// failed ack.
func (p *Publisher) send(rec *outMsg) {
	rec.sending.Lock()
	_, err := p.js.PublishMsgAsync(&rec.msg)
	rec.sending.Unlock()
	if err != nil {
		p.failed(rec, err)
	}
}

// onAck is jetstream's ack callback: the publish is done.
func (p *Publisher) onAck(_ jetstream.JetStream, msg *nats.Msg, _ *jetstream.PubAck) {
	p.mu.Lock()
	rec, ok := p.inflight[msg]
	if !ok {
		p.mu.Unlock()
		return
	}
	delete(p.inflight, msg)
	p.doneLocked()
	p.mu.Unlock()
	p.tel.asyncPendingAdd(-1)
	p.tel.endPublish(context.Background(), rec.span, rec.subject, rec.start, nil)
	p.put(rec)
}

// onErr is jetstream's error callback. It may run with jetstream's lock
// held, so it must not publish: retries are scheduled on a timer.
func (p *Publisher) onErr(_ jetstream.JetStream, msg *nats.Msg, err error) {
	p.mu.Lock()
	rec := p.inflight[msg]
	p.mu.Unlock()
	if rec != nil {
		p.failed(rec, err)
	}
}

// failed retries rec after a backoff when err is transient and retries are
// left, otherwise reports it to the error handler and releases its slot.
func (p *Publisher) failed(rec *outMsg, err error) {
	perr := publishError(rec.subject, err)
	if IsTransient(perr) && rec.retries < p.opts.retries {
		rec.retries++
		wait := p.backoff(rec.retries)
		p.tel.publishRetry(context.Background(), rec.span, rec.subject, rec.retries, wait, perr)
		time.AfterFunc(wait, func() { p.send(rec) })
		return
	}
	// The handler is user code: run it off jetstream's callback goroutine
	// and count it as pending so Flush waits for it.
	go func() {
		if p.opts.onError != nil {
			p.opts.onError(rec.subject, rec.event, perr)
		}
		p.mu.Lock()
		_, ok := p.inflight[&rec.msg]
		if ok {
			delete(p.inflight, &rec.msg)
			p.doneLocked()
		}
		p.mu.Unlock()
		if ok {
			p.tel.asyncPendingAdd(-1)
			p.tel.endPublish(context.Background(), rec.span, rec.subject, rec.start, perr)
			// Wait for a send still under way (see outMsg.sending).
			rec.sending.Lock()
			rec.sending.Unlock() //nolint:staticcheck // SA2001: only waits
			p.put(rec)
		}
	}()
}

// doneLocked finishes one async publish. p.mu must be held.
func (p *Publisher) doneLocked() {
	<-p.sem
	p.pending--
	if p.pending == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// Pending returns how many asynchronous publishes have not finished.
func (p *Publisher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending
}

// Flush waits until every accepted asynchronous publish is acked or has
// been handed to the error handler. If ctx ends first it returns an
// *OpError matching ErrTimeout.
func (p *Publisher) Flush(ctx context.Context) error {
	p.mu.Lock()
	idle := p.idle
	pending := p.pending
	p.mu.Unlock()
	if pending == 0 || idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return &OpError{Op: "flush", Kind: ErrTimeout, Err: fmt.Errorf("%d publishes still pending: %w", p.Pending(), ctx.Err())}
	}
}

// Close refuses new publishes and waits for the pending asynchronous ones
// (see Flush), at most for the retry budget: the publish timeout times the
// attempts (retries+1) plus the longest possible pauses between them — the
// longest a publish accepted before Close can still take. If some are still
// pending then, it returns an *OpError matching ErrTimeout; they keep going
// in the background. Flush(ctx) waits for a time the caller chooses. Close
// does not close the NATS connection, which belongs to the caller. Closing
// twice is harmless.
func (p *Publisher) Close() error {
	p.mu.Lock()
	p.closed.Store(true)
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), p.retryBudget())
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		return &OpError{Op: "close publisher", Kind: ErrTimeout, Err: fmt.Errorf("%d asynchronous publishes still pending after the retry budget of %s", p.Pending(), p.retryBudget())}
	}
	return nil
}

// retryBudget is the longest one publish can take: every attempt waiting
// its full publish timeout, and every pause at its longest (nominal plus
// jitter).
func (p *Publisher) retryBudget() time.Duration {
	o := p.opts
	d := time.Duration(o.retries+1) * o.publishTimeout
	for n := 1; n <= o.retries; n++ {
		d += time.Duration(float64(nominalBackoff(o.backoff, o.maxBackoff, n)) * (1 + o.jitter))
	}
	return d
}
