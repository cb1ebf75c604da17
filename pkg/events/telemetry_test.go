package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// telemetryEnv is an embedded JetStream with a stream on tel.> and its
// dead letters on dlq.tel.>, two connections (publisher and subscriber, as
// two services have), and an SDK tracer and meter provider each recording
// into memory.
type telemetryEnv struct {
	pubConn, subConn *nats.Conn
	subJS            jetstream.JetStream
	spans            *tracetest.InMemoryExporter
	tp               *sdktrace.TracerProvider
	metrics          *sdkmetric.ManualReader
	mp               *sdkmetric.MeterProvider
}

func newTelemetryEnv(t *testing.T) *telemetryEnv {
	t.Helper()
	srv := eventstest.RunJetStream(t)
	env := &telemetryEnv{spans: tracetest.NewInMemoryExporter(), metrics: sdkmetric.NewManualReader()}
	env.tp = sdktrace.NewTracerProvider(sdktrace.WithSyncer(env.spans))
	env.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(env.metrics))
	t.Cleanup(func() { _ = env.tp.Shutdown(context.Background()); _ = env.mp.Shutdown(context.Background()) })
	var err error
	for _, c := range []**nats.Conn{&env.pubConn, &env.subConn} {
		if *c, err = nats.Connect(srv.URL()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup((*c).Close)
	}
	if env.subJS, err = jetstream.New(env.subConn); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, subj := range map[string]string{"TEL": "tel.>", "TELDLQ": "dlq.tel.>"} {
		if _, err := events.CreateStream(ctx, env.subJS, events.NewStreamConfig(name, subj)); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// waitSpans waits until the exporter holds a span named name whose
// outcome attribute is outcome (ended spans only).
func (env *telemetryEnv) waitSpan(t *testing.T, name string, pred func(tracetest.SpanStub) bool) tracetest.SpanStub {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range env.spans.GetSpans() {
			if s.Name == name && (pred == nil || pred(s)) {
				return s
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no span %q; have %v", name, spanNames(env.spans.GetSpans()))
	return tracetest.SpanStub{}
}

func spanNames(spans tracetest.SpanStubs) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}

func attr(s tracetest.SpanStub, key attribute.Key) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.String()
		}
	}
	return ""
}

func TestTraceFollowsAnEventFromPublisherToHandler(t *testing.T) {
	env := newTelemetryEnv(t)
	ctx := context.Background()
	pub, err := events.NewPublisher(env.pubConn, events.WithTracerProvider(env.tp), events.WithMeterProvider(env.mp))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	handled := make(chan trace.SpanContext, 1)
	var seen *events.Event
	sub, err := events.SubscribeDurable(ctx, env.subJS, "TEL", "tel-worker", func(ctx context.Context, e *events.Event) error {
		seen = e
		handled <- trace.SpanContextFromContext(ctx)
		return nil
	}, events.SubscriberConfig{TracerProvider: env.tp, MeterProvider: env.mp})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Stop(ctx) }()

	// The publishing service's own span: the producer span is its child.
	caller, callerSpan := env.tp.Tracer("service").Start(ctx, "create user")
	e, err := events.NewEvent("user.created", "auth-service", "org-1", time.Now(), map[string]string{"user_id": "u-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(caller, "tel.user.created", e); err != nil {
		t.Fatal(err)
	}
	callerSpan.End()
	var handlerSC trace.SpanContext
	select {
	case handlerSC = <-handled:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not run")
	}

	send := env.waitSpan(t, "send tel.user.created", nil)
	process := env.waitSpan(t, "process tel.user.created", nil)
	if send.SpanKind != trace.SpanKindProducer || process.SpanKind != trace.SpanKindConsumer {
		t.Errorf("span kinds: send %v, process %v; want producer, consumer", send.SpanKind, process.SpanKind)
	}
	traceID := callerSpan.SpanContext().TraceID()
	if send.SpanContext.TraceID() != traceID || process.SpanContext.TraceID() != traceID {
		t.Fatalf("publish and handling are not one trace: caller %s, send %s, process %s",
			traceID, send.SpanContext.TraceID(), process.SpanContext.TraceID())
	}
	if send.Parent.SpanID() != callerSpan.SpanContext().SpanID() {
		t.Errorf("the producer span's parent is %s, not the caller's span", send.Parent.SpanID())
	}
	if process.Parent.SpanID() != send.SpanContext.SpanID() || !process.Parent.IsRemote() {
		t.Errorf("the consumer span's parent is %s (remote %v), not the producer span %s",
			process.Parent.SpanID(), process.Parent.IsRemote(), send.SpanContext.SpanID())
	}
	if handlerSC.SpanID() != process.SpanContext.SpanID() {
		t.Errorf("the handler's context carries span %s, not the consumer span %s", handlerSC.SpanID(), process.SpanContext.SpanID())
	}
	// The event carried the trace context as the distributed-tracing
	// extension; the caller's event was not modified.
	if got := seen.Extensions["traceparent"]; got != "00-"+traceID.String()+"-"+send.SpanContext.SpanID().String()+"-01" {
		t.Errorf("traceparent extension %q", got)
	}
	if e.Extensions != nil {
		t.Errorf("the published event was modified: %v", e.Extensions)
	}
	for span, want := range map[*tracetest.SpanStub]map[attribute.Key]string{
		&send: {
			"messaging.system": "nats", "messaging.destination.name": "tel.user.created",
			"messaging.operation.type": "send", "messaging.message.id": e.ID,
			"cloudevents.event_id": e.ID, "cloudevents.event_type": "user.created", "cloudevents.event_source": "auth-service",
		},
		&process: {
			"messaging.system": "nats", "messaging.destination.name": "tel.user.created",
			"messaging.operation.type": "process", "messaging.consumer.group.name": "tel-worker",
			"messaging.message.id": e.ID, "cloudevents.event_type": "user.created", "events.outcome": "ack",
		},
	} {
		for k, v := range want {
			if got := attr(*span, k); got != v {
				t.Errorf("span %q: %s = %q, want %q", span.Name, k, got, v)
			}
		}
	}

	// Metrics: one publish, one handled delivery, with the same attributes.
	rm := collect(t, env)
	if n := sumOf(rm, "messaging.client.sent.messages", nil); n != 1 {
		t.Errorf("messaging.client.sent.messages = %d, want 1", n)
	}
	if n := histCount(rm, "messaging.client.operation.duration"); n != 1 {
		t.Errorf("messaging.client.operation.duration count = %d, want 1", n)
	}
	if n := sumOf(rm, "messaging.client.consumed.messages", map[attribute.Key]string{"events.outcome": "ack", "messaging.consumer.group.name": "tel-worker"}); n != 1 {
		t.Errorf("messaging.client.consumed.messages{outcome=ack} = %d, want 1", n)
	}
	if n := histCount(rm, "messaging.process.duration"); n != 1 {
		t.Errorf("messaging.process.duration count = %d, want 1", n)
	}
}

func TestTraceRecordsRedeliveryAndDeadLettering(t *testing.T) {
	env := newTelemetryEnv(t)
	ctx := context.Background()
	pub, err := events.NewPublisher(env.pubConn, events.WithTracerProvider(env.tp), events.WithMeterProvider(env.mp))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := events.SubscribeDurable(ctx, env.subJS, "TEL", "tel-failing", func(context.Context, *events.Event) error {
		return errors.New("database down")
	}, events.SubscriberConfig{MaxDeliver: 2, BackOff: []time.Duration{10 * time.Millisecond}, TracerProvider: env.tp, MeterProvider: env.mp})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Stop(ctx) }()

	e, err := events.NewEvent("order.placed", "shop", "org-1", time.Now(), map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishAsync(ctx, "tel.order.placed", e); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	send := env.waitSpan(t, "send tel.order.placed", nil)
	isOutcome := func(o string) func(tracetest.SpanStub) bool {
		return func(s tracetest.SpanStub) bool { return attr(s, "events.outcome") == o }
	}
	retry := env.waitSpan(t, "process tel.order.placed", isOutcome("retry"))
	dead := env.waitSpan(t, "process tel.order.placed", isOutcome("dead_letter"))
	for _, s := range []tracetest.SpanStub{retry, dead} {
		if s.SpanContext.TraceID() != send.SpanContext.TraceID() || s.Parent.SpanID() != send.SpanContext.SpanID() {
			t.Errorf("delivery span %s is not a child of the producer span", s.SpanContext.SpanID())
		}
		if s.Status.Description != "database down" || attr(s, "error.type") != "_OTHER" {
			t.Errorf("delivery span status %+v, error.type %q", s.Status, attr(s, "error.type"))
		}
	}
	hasEvent := func(s tracetest.SpanStub, name string, key attribute.Key, want string) {
		t.Helper()
		for _, ev := range s.Events {
			if ev.Name != name {
				continue
			}
			for _, a := range ev.Attributes {
				if a.Key == key && a.Value.String() == want {
					return
				}
			}
			t.Errorf("span event %q has no %s=%q: %v", name, key, want, ev.Attributes)
			return
		}
		t.Errorf("span %q (outcome %s) has no event %q: %v", s.Name, attr(s, "events.outcome"), name, s.Events)
	}
	hasEvent(retry, "retry", "events.delivery_count", "1")
	hasEvent(dead, "dead_letter", "events.dead_letter.subject", "dlq.tel.order.placed")
	hasEvent(dead, "dead_letter", "events.dead_letter.reason", "failed on the last of 2 deliveries: database down")

	rm := collect(t, env)
	if n := sumOf(rm, "events.dead_lettered", map[attribute.Key]string{"messaging.destination.name": "tel.order.placed"}); n != 1 {
		t.Errorf("events.dead_lettered = %d, want 1", n)
	}
	if n := sumOf(rm, "messaging.client.consumed.messages", map[attribute.Key]string{"events.outcome": "retry"}); n != 1 {
		t.Errorf("consumed{outcome=retry} = %d, want 1", n)
	}
	if n := sumOf(rm, "events.publish.async.pending", nil); n != 0 {
		t.Errorf("events.publish.async.pending = %d after Flush, want 0", n)
	}
	if n := sumOf(rm, "messaging.client.sent.messages", nil); n != 1 {
		t.Errorf("messaging.client.sent.messages = %d, want 1 (the async publish, acked)", n)
	}
}

// A publish retried after a transient failure (no stream yet) records the
// retry on its span and in events.publish.retries.
func TestPublishRetryIsASpanEvent(t *testing.T) {
	env := newTelemetryEnv(t)
	pub, err := events.NewPublisher(env.pubConn, events.WithTracerProvider(env.tp), events.WithMeterProvider(env.mp),
		events.WithRetry(1, 10*time.Millisecond), events.WithPublishTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	e, err := events.NewEvent("x.happened", "svc", "org-1", time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	perr := pub.Publish(context.Background(), "nostream.x", e) // no stream listens: transient
	if !events.IsTransient(perr) {
		t.Fatalf("publish to a subject without a stream: %v, want a transient error", perr)
	}
	wantType := "connection"
	if errors.Is(perr, events.ErrTimeout) {
		wantType = "timeout"
	}
	send := env.waitSpan(t, "send nostream.x", nil)
	var retries int
	for _, ev := range send.Events {
		if ev.Name == "retry" {
			retries++
		}
	}
	if retries != 1 || attr(send, "error.type") != wantType {
		t.Errorf("span has %d retry events and error.type %q; want 1 and %s", retries, attr(send, "error.type"), wantType)
	}
	rm := collect(t, env)
	if n := sumOf(rm, "events.publish.retries", nil); n != 1 {
		t.Errorf("events.publish.retries = %d, want 1", n)
	}
	if n := sumOf(rm, "messaging.client.sent.messages", map[attribute.Key]string{"error.type": wantType}); n != 1 {
		t.Errorf("sent{error.type=%s} = %d, want 1", wantType, n)
	}
}

func TestTelemetryProvidersMustNotBeNil(t *testing.T) {
	env := newTelemetryEnv(t)
	for name, opt := range map[string]events.PublisherOption{
		"tracerProvider": events.WithTracerProvider(nil),
		"meterProvider":  events.WithMeterProvider(nil),
	} {
		_, err := events.NewPublisher(env.pubConn, opt)
		var verr *events.ValidationError
		if !errors.As(err, &verr) || verr.Field != name {
			t.Errorf("nil %s: %v, want a ValidationError for the field", name, err)
		}
	}
}

func collect(t *testing.T, env *telemetryEnv) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := env.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

func matches(set attribute.Set, want map[attribute.Key]string) bool {
	for k, v := range want {
		got, ok := set.Value(k)
		if !ok || got.String() != v {
			return false
		}
	}
	return true
}

// sumOf adds up the data points of the int64 sum named name whose
// attributes include want.
func sumOf(rm metricdata.ResourceMetrics, name string, want map[attribute.Key]string) int64 {
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range s.DataPoints {
					if matches(dp.Attributes, want) {
						n += dp.Value
					}
				}
			}
		}
	}
	return n
}

func histCount(rm metricdata.ResourceMetrics, name string) uint64 {
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == name {
				for _, dp := range h.DataPoints {
					n += dp.Count
				}
			}
		}
	}
	return n
}
