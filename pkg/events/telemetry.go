package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// InstrumentationName names the library's tracer and meter.
const InstrumentationName = "github.com/giia/eventstream-operator/pkg/events"

// Attribute keys: the OpenTelemetry messaging and CloudEvents semantic
// conventions (semconv v1.43), and two of the library's own (events.*).
const (
	AttrMessagingSystem        = attribute.Key("messaging.system")
	AttrMessagingDestination   = attribute.Key("messaging.destination.name")
	AttrMessagingOperationType = attribute.Key("messaging.operation.type")
	AttrMessagingOperationName = attribute.Key("messaging.operation.name")
	AttrMessagingMessageID     = attribute.Key("messaging.message.id")
	AttrMessagingConsumerGroup = attribute.Key("messaging.consumer.group.name")
	AttrCloudEventsID          = attribute.Key("cloudevents.event_id")
	AttrCloudEventsType        = attribute.Key("cloudevents.event_type")
	AttrCloudEventsSource      = attribute.Key("cloudevents.event_source")
	AttrErrorType              = attribute.Key("error.type")
	// AttrOutcome is what the subscriber did with a delivery: ack, retry,
	// dead_letter, terminate or skip.
	AttrOutcome = attribute.Key("events.outcome")
	// AttrDeliveryCount is JetStream's delivery count of the message.
	AttrDeliveryCount = attribute.Key("events.delivery_count")
)

// Extension names of the CloudEvents distributed-tracing extension: the W3C
// trace context, as ce-traceparent / ce-tracestate headers in binary mode.
const (
	ExtTraceParent = "traceparent"
	ExtTraceState  = "tracestate"
)

// Outcomes of a delivery (AttrOutcome).
const (
	OutcomeAck        = "ack"
	OutcomeRetry      = "retry"
	OutcomeDeadLetter = "dead_letter"
	OutcomeTerminate  = "terminate"
	OutcomeSkip       = "skip"
)

// Span event names.
const (
	SpanEventRetry      = "retry"
	SpanEventDeadLetter = "dead_letter"
)

var (
	attrSystemNATS  = AttrMessagingSystem.String("nats")
	attrOpSend      = AttrMessagingOperationType.String("send")
	attrOpNamePub   = AttrMessagingOperationName.String("publish")
	attrOpProcess   = AttrMessagingOperationType.String("process")
	attrOpNameProc  = AttrMessagingOperationName.String("process")
	traceContextW3C = propagation.TraceContext{}
)

// defaultTracerProvider is otel's global provider as it is before a service
// installs one: while otel.GetTracerProvider still returns it, no span
// would record and the hot path skips tracing without allocating. It is nil
// if something installed a provider before this package was initialised
// (then every event is traced through the global provider).
var defaultTracerProvider = func() trace.TracerProvider {
	tp := otel.GetTracerProvider()
	if fmt.Sprintf("%T", tp) != "*global.tracerProvider" {
		return nil
	}
	return tp
}()

// telemetry is a publisher's or subscription's tracer and instruments.
type telemetry struct {
	tp     trace.TracerProvider // nil: otel's global one, looked up per event
	tracer trace.Tracer

	publishDuration metric.Float64Histogram
	sent            metric.Int64Counter
	publishRetries  metric.Int64Counter
	asyncPending    metric.Int64UpDownCounter
	processDuration metric.Float64Histogram
	consumed        metric.Int64Counter
	deadLettered    metric.Int64Counter
}

// newTelemetry builds the instruments from mp and the tracer from tp; nil
// means otel's global providers (no-op unless the service installs an SDK).
func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) *telemetry {
	t := &telemetry{tp: tp}
	if tp == nil {
		t.tracer = otel.GetTracerProvider().Tracer(InstrumentationName)
	} else {
		t.tracer = tp.Tracer(InstrumentationName)
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter(InstrumentationName)
	noop := metricnoop.Meter{}
	durations := metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
	var err error
	if t.publishDuration, err = m.Float64Histogram("messaging.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a publish, from the call until the stream's ack or the final failure, retries included."), durations); err != nil {
		otel.Handle(err)
		t.publishDuration, _ = noop.Float64Histogram("")
	}
	if t.sent, err = m.Int64Counter("messaging.client.sent.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Events published; error.type is set on those that failed for good.")); err != nil {
		otel.Handle(err)
		t.sent, _ = noop.Int64Counter("")
	}
	if t.publishRetries, err = m.Int64Counter("events.publish.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Publish attempts retried after a transient failure.")); err != nil {
		otel.Handle(err)
		t.publishRetries, _ = noop.Int64Counter("")
	}
	if t.asyncPending, err = m.Int64UpDownCounter("events.publish.async.pending", metric.WithUnit("{message}"),
		metric.WithDescription("Asynchronous publishes accepted and not yet acked or failed.")); err != nil {
		otel.Handle(err)
		t.asyncPending, _ = noop.Int64UpDownCounter("")
	}
	if t.processDuration, err = m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of handling one delivery, decoding and settling (ack, nak, dead letter) included."), durations); err != nil {
		otel.Handle(err)
		t.processDuration, _ = noop.Float64Histogram("")
	}
	if t.consumed, err = m.Int64Counter("messaging.client.consumed.messages", metric.WithUnit("{message}"),
		metric.WithDescription("Deliveries handled, by outcome.")); err != nil {
		otel.Handle(err)
		t.consumed, _ = noop.Int64Counter("")
	}
	if t.deadLettered, err = m.Int64Counter("events.dead_lettered", metric.WithUnit("{message}"),
		metric.WithDescription("Events the subscriber published to a dead-letter subject.")); err != nil {
		otel.Handle(err)
		t.deadLettered, _ = noop.Int64Counter("")
	}
	return t
}

// tracing reports whether spans may record. For the global provider it is
// checked per event: a service may install its SDK after creating the
// publisher.
func (t *telemetry) tracing() bool {
	switch t.tp.(type) {
	case nil:
		return defaultTracerProvider == nil || otel.GetTracerProvider() != defaultTracerProvider
	case tracenoop.TracerProvider, *tracenoop.TracerProvider:
		return false
	}
	return true
}

// traceHeaders is the W3C trace context an outgoing event carries.
type traceHeaders struct {
	parent, state string
}

func (h *traceHeaders) Get(key string) string {
	switch key {
	case ExtTraceParent:
		return h.parent
	case ExtTraceState:
		return h.state
	}
	return ""
}

func (h *traceHeaders) Set(key, value string) {
	switch key {
	case ExtTraceParent:
		h.parent = value
	case ExtTraceState:
		h.state = value
	}
}

func (h *traceHeaders) Keys() []string { return []string{ExtTraceParent, ExtTraceState} }

// startPublish starts the producer span of publishing e on subject and
// fills th with the trace context to send: the producer span's, or, when
// tracing is off, the caller's context's if it carries one (so that a trace
// is not cut by a service that does not record). Without either it returns
// a non-recording span and leaves th empty, allocating nothing.
func (t *telemetry) startPublish(ctx context.Context, subject string, e *Event, th *traceHeaders) (context.Context, trace.Span) {
	if !t.tracing() {
		if trace.SpanContextFromContext(ctx).IsValid() {
			traceContextW3C.Inject(ctx, th)
		}
		return ctx, offSpan
	}
	ctx, span := t.tracer.Start(ctx, "send "+subject,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attrSystemNATS, attrOpSend, attrOpNamePub,
			AttrMessagingDestination.String(subject),
			AttrMessagingMessageID.String(e.ID),
			AttrCloudEventsID.String(e.ID),
			AttrCloudEventsType.String(e.Type),
			AttrCloudEventsSource.String(e.Source),
		))
	traceContextW3C.Inject(ctx, th)
	return ctx, span
}

// offSpan is the span of an event while tracing is off: it records
// nothing, and ending it does not end the caller's span.
var offSpan trace.Span = tracenoop.Span{}

// publishRetry records a retried attempt.
func (t *telemetry) publishRetry(ctx context.Context, span trace.Span, subject string, attempt int, wait time.Duration, err error) {
	if span.IsRecording() {
		span.AddEvent(SpanEventRetry, trace.WithAttributes(
			attribute.Int("events.retry.attempt", attempt),
			attribute.Float64("events.retry.delay_seconds", wait.Seconds()),
			attribute.String("exception.message", err.Error()),
		))
	}
	if t.publishRetries.Enabled(ctx) {
		t.publishRetries.Add(ctx, 1, metric.WithAttributes(attrSystemNATS, attrOpSend, attrOpNamePub, AttrMessagingDestination.String(subject)))
	}
}

// endPublish ends the producer span and records the publish's duration and
// outcome (err nil: stored).
func (t *telemetry) endPublish(ctx context.Context, span trace.Span, subject string, start time.Time, err error) {
	if span.IsRecording() {
		if err != nil {
			span.SetAttributes(AttrErrorType.String(errorType(err)))
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	dur, sent := t.publishDuration.Enabled(ctx), t.sent.Enabled(ctx)
	if !dur && !sent {
		return
	}
	attrs := []attribute.KeyValue{attrSystemNATS, attrOpSend, attrOpNamePub, AttrMessagingDestination.String(subject)}
	if err != nil {
		attrs = append(attrs, AttrErrorType.String(errorType(err)))
	}
	opt := metric.WithAttributeSet(attribute.NewSet(attrs...))
	if dur {
		t.publishDuration.Record(ctx, time.Since(start).Seconds(), opt)
	}
	if sent {
		t.sent.Add(ctx, 1, opt)
	}
}

// asyncPendingAdd moves the async pending gauge.
func (t *telemetry) asyncPendingAdd(n int64) {
	ctx := context.Background()
	if t.asyncPending.Enabled(ctx) {
		t.asyncPending.Add(ctx, n, metric.WithAttributes(attrSystemNATS))
	}
}

// startProcess starts the consumer span of one delivery. Its parent is the
// producer span whose context the event carries (the distributed-tracing
// extension), so that publish and handling are one trace; without one, the
// subscription's context. When tracing is off, the handler's context still
// carries the event's trace context, so a handler that publishes continues
// the trace.
func (t *telemetry) startProcess(ctx context.Context, subject, consumer string, e *Event) (context.Context, trace.Span) {
	if e != nil && e.Extensions[ExtTraceParent] != "" {
		ctx = traceContextW3C.Extract(ctx, propagation.MapCarrier(e.Extensions))
	}
	if !t.tracing() {
		return ctx, offSpan
	}
	attrs := []attribute.KeyValue{
		attrSystemNATS, attrOpProcess, attrOpNameProc,
		AttrMessagingDestination.String(subject),
		AttrMessagingConsumerGroup.String(consumer),
	}
	if e != nil {
		attrs = append(attrs,
			AttrMessagingMessageID.String(e.ID),
			AttrCloudEventsID.String(e.ID),
			AttrCloudEventsType.String(e.Type),
			AttrCloudEventsSource.String(e.Source))
	}
	return t.tracer.Start(ctx, "process "+subject, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// endProcess ends the consumer span and records the handling's duration
// and outcome; err is the handler's (or decoding's) error, nil on success.
func (t *telemetry) endProcess(ctx context.Context, span trace.Span, subject, consumer string, start time.Time, outcome string, err error) {
	if span.IsRecording() {
		span.SetAttributes(AttrOutcome.String(outcome))
		if err != nil {
			span.SetAttributes(AttrErrorType.String(errorType(err)))
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	dur, consumed := t.processDuration.Enabled(ctx), t.consumed.Enabled(ctx)
	if !dur && !consumed {
		return
	}
	attrs := []attribute.KeyValue{attrSystemNATS, attrOpProcess, attrOpNameProc,
		AttrMessagingDestination.String(subject), AttrMessagingConsumerGroup.String(consumer), AttrOutcome.String(outcome)}
	if err != nil {
		attrs = append(attrs, AttrErrorType.String(errorType(err)))
	}
	opt := metric.WithAttributeSet(attribute.NewSet(attrs...))
	if dur {
		t.processDuration.Record(ctx, time.Since(start).Seconds(), opt)
	}
	if consumed {
		t.consumed.Add(ctx, 1, opt)
	}
}

// deadLetter records that the delivery was published to a dead-letter
// subject.
func (t *telemetry) deadLetter(ctx context.Context, span trace.Span, subject, consumer, dlSubject, reason string, deliveries uint64) {
	if span.IsRecording() {
		span.AddEvent(SpanEventDeadLetter, trace.WithAttributes(
			attribute.String("events.dead_letter.subject", dlSubject),
			attribute.String("events.dead_letter.reason", reason),
			AttrDeliveryCount.Int64(int64(deliveries)),
		))
	}
	if t.deadLettered.Enabled(ctx) {
		t.deadLettered.Add(ctx, 1, metric.WithAttributes(attrSystemNATS,
			AttrMessagingDestination.String(subject), AttrMessagingConsumerGroup.String(consumer)))
	}
}

// redelivery records that the delivery failed and comes back after delay.
func (t *telemetry) redelivery(span trace.Span, deliveries uint64, delay time.Duration, err error) {
	if span.IsRecording() {
		span.AddEvent(SpanEventRetry, trace.WithAttributes(
			AttrDeliveryCount.Int64(int64(deliveries)),
			attribute.Float64("events.retry.delay_seconds", delay.Seconds()),
			attribute.String("exception.message", err.Error()),
		))
	}
}

// errorType is the error.type attribute of err: the library's error kind,
// bounded in cardinality.
func errorType(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrPermanent):
		return "permanent"
	}
	for _, k := range []struct {
		err  error
		name string
	}{
		{ErrValidation, "validation"}, {ErrTimeout, "timeout"}, {ErrConnection, "connection"},
		{ErrPublish, "publish"}, {ErrHandlerPanic, "panic"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "_OTHER"
}
