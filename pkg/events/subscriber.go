package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Handler processes one event. Returning nil acknowledges it; an error
// redelivers it after the backoff for its delivery count; Permanent(err),
// or an error matching ErrValidation (such as DataAs's, returned as it is),
// dead-letters it at once. A handler may run more than once for the same
// event (redelivery after a crash, a lost ack), so it must be idempotent:
// key side effects on Event.ID.
type Handler func(ctx context.Context, e *Event) error

// Typed adapts a handler of T-typed data to a Handler: the event's data is
// decoded into a T (DataAs) before fn runs. Data that does not decode — or
// no data, or a non-JSON content type — is a permanent failure: the event is
// dead-lettered without calling fn. fn's result is treated as any Handler's.
func Typed[T any](fn func(ctx context.Context, e *Event, data T) error) Handler {
	return func(ctx context.Context, e *Event) error {
		data, err := DataAs[T](e)
		if err != nil {
			return Permanent(err)
		}
		return fn(ctx, e, data)
	}
}

// Subscriber defaults.
const (
	DefaultMaxDeliver  = 3
	DefaultAckWait     = 10 * time.Second
	DefaultConcurrency = 1
)

// DefaultBackOff is the redelivery schedule: the delay after the first
// failed delivery, the second, ... the last value repeats.
var DefaultBackOff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute}

// ErrHandlerPanic is what a panicking handler is turned into; the event is
// then treated like any other failure.
var ErrHandlerPanic = errors.New("events: handler panicked")

// SubscriberConfig configures SubscribeDurable. The consumer fields
// (FilterSubjects, MaxDeliver, AckWait, MaxAckPending) are used only when the
// consumer does not exist and SubscribeDurable creates it; an existing
// consumer (one an EventConsumer declared, say) is bound as it is, and its
// MaxDeliver and AckWait govern the handling.
type SubscriberConfig struct {
	// FilterSubjects restricts the consumer to these subjects (empty: all of
	// the stream's).
	FilterSubjects []string
	// MaxDeliver is how many times an event is delivered before it is
	// dead-lettered (default 3).
	MaxDeliver int
	// AckWait is how long the server waits for an ack before redelivering
	// (default 10s); long handlers are kept alive with InProgress.
	AckWait time.Duration
	// BackOff is the delay before redelivery after the n-th failed delivery
	// (the last value repeats); default DefaultBackOff, cut to MaxDeliver-1
	// values.
	BackOff []time.Duration
	// MaxAckPending bounds unacknowledged messages (0: JetStream's default).
	MaxAckPending int
	// Concurrency is how many handlers run at once (default 1, which keeps
	// the stream's order).
	Concurrency int
	// PullBatch is how many messages are buffered client-side (0: nats.go's
	// default, 500).
	PullBatch int
	// DeadLetterSubject, when set, receives every dead letter; by default
	// each goes to "dlq.<original subject>".
	DeadLetterSubject string
	// DisableDeadLetter terminates failed events without publishing them.
	DisableDeadLetter bool
	// InProgressInterval is how often a running handler's message is kept
	// alive (default AckWait/2).
	InProgressInterval time.Duration
	// Logger receives failures the handler never sees (ack, dead-letter
	// publish, fetch errors). Default: discarded.
	Logger *slog.Logger
	// Clock stamps Dlq-Time (default SystemClock).
	Clock Clock
	// StrictValidation applies the platform's rules (Event.Validate: UUID
	// id, organizationid, time, schemaversion) to every received event: one
	// that fails them is dead-lettered as permanent. By default any valid
	// CloudEvent reaches the handler (see Decode).
	StrictValidation bool
	// DataValidator, when set, checks every received event's data against
	// the schema for its type and schema version (a *schemas.Registry):
	// data it refuses is a permanent failure, dead-lettered on its first
	// delivery with the validator's message (JSON pointer and reason) as
	// the Dlq-Reason, without calling the handler.
	DataValidator DataValidator
	// AcceptMajors, when set, lists the schema major versions this consumer
	// handles: an event of another major (or without a "major.minor"
	// schemaversion) is dead-lettered, or acknowledged and counted as
	// Skipped, as OtherMajors says. Checked before DataValidator.
	AcceptMajors []int
	// OtherMajors is what happens to events of majors not in AcceptMajors
	// (default DeadLetterOtherMajors).
	OtherMajors MajorPolicy
	// TracerProvider receives a consumer span "process <subject>" per
	// delivery, the child of the producer span whose trace context the
	// event carries (default: otel's global provider, which records nothing
	// until the service installs an SDK). See README.md, "Telemetry".
	TracerProvider trace.TracerProvider
	// MeterProvider receives the handling metrics (default: otel's global
	// provider).
	MeterProvider metric.MeterProvider
}

// Subscription is a running durable subscription. Stop it to drain.
type Subscription struct {
	js         jetstream.JetStream
	consumer   jetstream.Consumer
	stream     string
	name       string
	handler    Handler
	cfg        SubscriberConfig
	maxDeliver int
	backoff    []time.Duration
	log        *slog.Logger
	tel        *telemetry

	cc       jetstream.ConsumeContext
	work     chan jetstream.Msg
	workers  []*worker
	wg       sync.WaitGroup
	stopping atomic.Bool
	stopOnce sync.Once
	done     chan struct{}

	handlerCtx    context.Context
	cancelHandler context.CancelFunc

	acked, retried, deadLettered, terminated, skipped atomic.Uint64
}

// worker tracks the message a handler is working on, so that the
// keep-alive ticker can send InProgress for it, and never after it is acked.
type worker struct {
	mu  sync.Mutex
	cur jetstream.Msg
}

func (w *worker) set(m jetstream.Msg) {
	w.mu.Lock()
	w.cur = m
	w.mu.Unlock()
}

func (w *worker) keepAlive() {
	w.mu.Lock()
	if w.cur != nil {
		_ = w.cur.InProgress()
	}
	w.mu.Unlock()
}

// SubscriptionStats counts what a subscription did with its messages.
type SubscriptionStats struct {
	Acked        uint64 // handled successfully
	Retried      uint64 // failed and redelivered later (NakWithDelay)
	DeadLettered uint64 // published to the dead-letter subject and terminated
	Terminated   uint64 // terminated without a dead letter (disabled)
	Skipped      uint64 // acknowledged unhandled: a major not accepted (SkipOtherMajors)
}

// SubscribeDurable consumes stream through the durable pull consumer named
// consumer: it binds to it if it exists (as an EventConsumer declares it)
// or creates it from cfg. Each message is decoded and passed to handler; see
// Handler for what its result does. A message that cannot be decoded is
// dead-lettered at once, as is a failing one on its last allowed delivery;
// the original is then terminated with a reason starting with
// TermReasonDeadLettered. When ctx ends the subscription stops fetching;
// call Stop to wait for the handlers.
func SubscribeDurable(ctx context.Context, js jetstream.JetStream, stream, consumer string, handler Handler, cfg SubscriberConfig) (*Subscription, error) {
	if js == nil {
		return nil, &ValidationError{Field: "jetstream", Reason: "is nil"}
	}
	if handler == nil {
		return nil, &ValidationError{Field: "handler", Reason: "is nil"}
	}
	if err := ValidateName(stream); err != nil {
		return nil, &ValidationError{Field: "stream", Reason: err.Error()}
	}
	if err := ValidateName(consumer); err != nil {
		return nil, &ValidationError{Field: "consumer", Reason: err.Error()}
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	cons, err := bindConsumer(ctx, js, stream, consumer, cfg)
	if err != nil {
		return nil, err
	}
	info := cons.CachedInfo()
	if info.Config.AckPolicy != jetstream.AckExplicitPolicy {
		return nil, &ValidationError{Field: "consumer", Reason: fmt.Sprintf("consumer %q has ack policy %s; explicit acks are required", consumer, info.Config.AckPolicy)}
	}
	s := &Subscription{
		js: js, consumer: cons, stream: stream, name: consumer, handler: handler, cfg: cfg,
		maxDeliver: info.Config.MaxDeliver,
		backoff:    cfg.BackOff,
		log:        cfg.Logger,
		tel:        newTelemetry(cfg.TracerProvider, cfg.MeterProvider),
		done:       make(chan struct{}),
	}
	if len(s.backoff) == 0 {
		s.backoff = info.Config.BackOff
	}
	if len(s.backoff) == 0 {
		s.backoff = defaultBackOff(s.maxDeliver)
	}
	keepAlive := cfg.InProgressInterval
	if keepAlive <= 0 {
		keepAlive = info.Config.AckWait / 2
		for _, b := range info.Config.BackOff { // server-side backoff shortens the ack wait
			keepAlive = min(keepAlive, b/2)
		}
		keepAlive = max(keepAlive, 10*time.Millisecond)
	}
	s.handlerCtx, s.cancelHandler = context.WithCancel(context.WithoutCancel(ctx))

	s.workers = make([]*worker, cfg.Concurrency)
	for i := range s.workers {
		s.workers[i] = &worker{}
	}
	var onMsg jetstream.MessageHandler
	if cfg.Concurrency == 1 {
		w := s.workers[0]
		onMsg = func(m jetstream.Msg) { s.process(w, m) }
	} else {
		s.work = make(chan jetstream.Msg)
		for _, w := range s.workers {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				for m := range s.work {
					s.process(w, m)
				}
			}()
		}
		onMsg = func(m jetstream.Msg) { s.work <- m }
	}
	opts := []jetstream.PullConsumeOpt{
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			s.log.Warn("events: consume error", "stream", stream, "consumer", consumer, "error", err)
		}),
	}
	if cfg.PullBatch > 0 {
		opts = append(opts, jetstream.PullMaxMessages(cfg.PullBatch))
	}
	cc, err := cons.Consume(onMsg, opts...)
	if err != nil {
		s.cancelHandler()
		return nil, wrap("subscribe", stream+"/"+consumer, err)
	}
	s.cc = cc

	go s.keepAlive(keepAlive)
	go func() {
		<-cc.Closed()
		if s.work != nil {
			close(s.work)
		}
		s.wg.Wait()
		close(s.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.stopFetching()
		case <-s.done:
		}
	}()
	return s, nil
}

func (c *SubscriberConfig) defaults() error {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.MaxDeliver < -1 {
		return &ValidationError{Field: "maxDeliver", Reason: "must be positive, or -1 for unlimited"}
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.AckWait < 0 {
		return &ValidationError{Field: "ackWait", Reason: "must be positive"}
	}
	for i, b := range c.BackOff {
		if b < 0 {
			return &ValidationError{Field: fmt.Sprintf("backOff[%d]", i), Reason: "must not be negative"}
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Concurrency < 0 {
		return &ValidationError{Field: "concurrency", Reason: "must be positive"}
	}
	if c.MaxAckPending < 0 {
		c.MaxAckPending = -1
	}
	if c.DeadLetterSubject != "" {
		if err := validateSubject(c.DeadLetterSubject, false); err != nil {
			return &ValidationError{Field: "deadLetterSubject", Reason: err.Error()}
		}
	}
	for i, f := range c.FilterSubjects {
		if err := validateSubject(f, true); err != nil {
			return &ValidationError{Field: fmt.Sprintf("filterSubjects[%d]", i), Reason: err.Error()}
		}
	}
	for i, m := range c.AcceptMajors {
		if m < 0 {
			return &ValidationError{Field: fmt.Sprintf("acceptMajors[%d]", i), Reason: "must not be negative"}
		}
	}
	if c.OtherMajors != DeadLetterOtherMajors && c.OtherMajors != SkipOtherMajors {
		return &ValidationError{Field: "otherMajors", Reason: fmt.Sprintf("unknown policy %d", c.OtherMajors)}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	return nil
}

func defaultBackOff(maxDeliver int) []time.Duration {
	n := maxDeliver - 1
	if n < 1 || n > len(DefaultBackOff) {
		return DefaultBackOff
	}
	return DefaultBackOff[:n]
}

// bindConsumer returns the existing durable consumer or creates it.
func bindConsumer(ctx context.Context, js jetstream.JetStream, stream, name string, cfg SubscriberConfig) (jetstream.Consumer, error) {
	cons, err := js.Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrNotPullConsumer) { // nats.go refuses to bind a push consumer as a pull one
		return nil, &ValidationError{Field: "consumer", Reason: fmt.Sprintf("%q is a push consumer (it has a deliverSubject); SubscribeDurable reads pull consumers only", name)}
	}
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, wrap("get consumer", stream+"/"+name, err)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: cfg.MaxAckPending,
	}
	switch len(cfg.FilterSubjects) {
	case 0:
	case 1:
		cc.FilterSubject = cfg.FilterSubjects[0]
	default:
		cc.FilterSubjects = cfg.FilterSubjects
	}
	cons, err = js.CreateConsumer(ctx, stream, cc)
	if err != nil {
		// Another instance may have created it in the meantime.
		if again, gerr := js.Consumer(ctx, stream, name); gerr == nil {
			return again, nil
		}
		return nil, wrap("create consumer", stream+"/"+name, err)
	}
	return cons, nil
}

// process handles one delivery, in a consumer span.
func (s *Subscription) process(w *worker, m jetstream.Msg) {
	if s.stopping.Load() {
		// Buffered when Stop was called: hand it back at once rather than
		// letting it wait out the ack wait.
		_ = m.Nak()
		return
	}
	start := time.Now()
	e, derr := DecodeParts(m.Headers(), m.Data())
	ctx, span := s.tel.startProcess(s.handlerCtx, m.Subject(), s.name, e)
	outcome, err := s.handle(ctx, span, w, m, e, derr)
	s.tel.endProcess(ctx, span, m.Subject(), s.name, start, outcome, err)
}

// handle runs the checks and the handler on a decoded delivery and settles
// it, returning the outcome and the error that decided it.
func (s *Subscription) handle(ctx context.Context, span trace.Span, w *worker, m jetstream.Msg, e *Event, err error) (string, error) {
	if err != nil {
		err = Permanent(fmt.Errorf("cannot decode event: %w", err))
		return s.fail(ctx, span, m, err), err
	}
	if s.cfg.StrictValidation {
		if err := e.Validate(); err != nil {
			err = Permanent(fmt.Errorf("event fails strict validation: %w", err))
			return s.fail(ctx, span, m, err), err
		}
	}
	if len(s.cfg.AcceptMajors) > 0 {
		if err := acceptsMajor(e, s.cfg.AcceptMajors); err != nil {
			if s.cfg.OtherMajors == SkipOtherMajors {
				if aerr := m.Ack(); aerr != nil {
					s.log.Warn("events: ack failed", "subject", m.Subject(), "error", aerr)
				}
				s.skipped.Add(1)
				return OutcomeSkip, nil
			}
			err = Permanent(err)
			return s.fail(ctx, span, m, err), err
		}
	}
	if s.cfg.DataValidator != nil {
		if uri, err := s.cfg.DataValidator.ValidateData(e); err != nil {
			if uri != "" {
				err = fmt.Errorf("%w (schema %s)", err, uri)
			}
			err = Permanent(err)
			return s.fail(ctx, span, m, err), err
		}
	}
	w.set(m)
	err = s.call(ctx, e)
	w.set(nil)
	if err == nil {
		if aerr := m.Ack(); aerr != nil {
			s.log.Warn("events: ack failed", "subject", m.Subject(), "error", aerr)
		}
		s.acked.Add(1)
		return OutcomeAck, nil
	}
	return s.fail(ctx, span, m, err), err
}

// call runs the handler, turning a panic into an error.
func (s *Subscription) call(ctx context.Context, e *Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrHandlerPanic, r)
		}
	}()
	return s.handler(ctx, e)
}

// fail redelivers m after its backoff, or dead-letters it when err is
// permanent or this was its last allowed delivery. It returns the outcome.
func (s *Subscription) fail(ctx context.Context, span trace.Span, m jetstream.Msg, err error) string {
	meta, merr := m.Metadata()
	if merr != nil {
		s.log.Error("events: message without JetStream metadata", "subject", m.Subject(), "error", merr)
		_ = m.Term()
		return OutcomeTerminate
	}
	last := s.maxDeliver > 0 && meta.NumDelivered >= uint64(s.maxDeliver)
	if !last && !errors.Is(err, ErrPermanent) {
		delay := s.delay(meta.NumDelivered)
		if nerr := m.NakWithDelay(delay); nerr != nil {
			s.log.Warn("events: nak failed", "subject", m.Subject(), "error", nerr)
		}
		s.retried.Add(1)
		s.tel.redelivery(span, meta.NumDelivered, delay, err)
		return OutcomeRetry
	}
	reason := err.Error()
	if last && !errors.Is(err, ErrPermanent) {
		reason = fmt.Sprintf("failed on the last of %d deliveries: %s", s.maxDeliver, reason)
	}
	if s.cfg.DisableDeadLetter {
		_ = m.TermWithReason(headerSafe(reason))
		s.terminated.Add(1)
		return OutcomeTerminate
	}
	subject := s.cfg.DeadLetterSubject
	if subject == "" {
		subject = DeadLetterSubject(m.Subject())
	}
	dl := NewDeadLetterMsg(subject, m.Headers(), m.Data(), DeadLetterInfo{
		Stream: meta.Stream, Consumer: meta.Consumer, Subject: m.Subject(),
		Sequence: meta.Sequence.Stream, Deliveries: meta.NumDelivered,
		Reason: reason, Time: s.cfg.Clock.Now(),
	})
	pctx, cancel := context.WithTimeout(ctx, DefaultPublishTimeout)
	_, perr := s.js.PublishMsg(pctx, dl)
	cancel()
	if perr != nil {
		// Not stored: leave the original to JetStream. Before the last
		// delivery it comes back; after it, the MAX_DELIVERIES advisory lets
		// the operator dead-letter it.
		s.log.Error("events: dead-letter publish failed", "subject", subject, "stream", meta.Stream,
			"sequence", meta.Sequence.Stream, "error", publishError(subject, perr))
		delay := s.delay(meta.NumDelivered)
		_ = m.NakWithDelay(delay)
		s.tel.redelivery(span, meta.NumDelivered, delay, perr)
		return OutcomeRetry
	}
	if terr := m.TermWithReason(headerSafe(TermReasonDeadLettered + ": " + reason)); terr != nil {
		s.log.Warn("events: term failed", "subject", m.Subject(), "error", terr)
	}
	s.deadLettered.Add(1)
	s.tel.deadLetter(ctx, span, m.Subject(), s.name, subject, reason, meta.NumDelivered)
	return OutcomeDeadLetter
}

// delay is the redelivery delay after the n-th delivery failed.
func (s *Subscription) delay(n uint64) time.Duration {
	if len(s.backoff) == 0 {
		return 0
	}
	i := int(min(n, uint64(len(s.backoff)))) - 1
	return s.backoff[max(i, 0)]
}

func (s *Subscription) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			for _, w := range s.workers {
				w.keepAlive()
			}
		}
	}
}

func (s *Subscription) stopFetching() {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		s.cc.Drain()
	})
}

// Stop stops fetching and waits, within ctx, for the running handlers to
// return; messages buffered but not started are handed back to JetStream.
// If ctx ends first, the handlers' context is cancelled and Stop returns an
// *OpError matching ErrTimeout.
func (s *Subscription) Stop(ctx context.Context) error {
	s.stopFetching()
	select {
	case <-s.done:
		s.cancelHandler()
		return nil
	case <-ctx.Done():
		s.cancelHandler()
		return &OpError{Op: "stop subscription", Name: s.stream + "/" + s.name, Kind: ErrTimeout, Err: ctx.Err()}
	}
}

// Done is closed when the subscription has stopped and its handlers have
// returned.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Consumer returns the JetStream consumer the subscription reads from.
func (s *Subscription) Consumer() jetstream.Consumer { return s.consumer }

// Stats returns what the subscription has done so far.
func (s *Subscription) Stats() SubscriptionStats {
	return SubscriptionStats{
		Acked: s.acked.Load(), Retried: s.retried.Load(),
		DeadLettered: s.deadLettered.Load(), Terminated: s.terminated.Load(),
		Skipped: s.skipped.Load(),
	}
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (p *permanentError) Error() string   { return "permanent: " + p.err.Error() }
func (p *permanentError) Unwrap() []error { return []error{ErrPermanent, p.err} }

// Permanent marks err as one that retrying cannot fix: a handler returning
// it has its event dead-lettered at once. errors.Is(Permanent(err),
// ErrPermanent) and errors.Is(Permanent(err), err) both hold. Permanent(nil)
// is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrPermanent) {
		return err
	}
	return &permanentError{err: err}
}
