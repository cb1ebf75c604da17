package events

import (
	"context"
	"testing"
	"time"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// With telemetry off — otel's global providers before a service installs an
// SDK, or explicit no-op ones — the telemetry on the publish and delivery
// paths allocates nothing per event.
func TestTelemetryOffDoesNotAllocate(t *testing.T) {
	e := &Event{ID: "0b4e9a3c-6f52-4d7e-9d55-3f1c1a2b3c4d", Type: "user.created", Source: "auth-service"}
	for name, tel := range map[string]*telemetry{
		"global providers": newTelemetry(nil, nil),
		"no-op providers":  newTelemetry(tracenoop.NewTracerProvider(), metricnoop.NewMeterProvider()),
	} {
		ctx := context.Background()
		var th traceHeaders
		allocs := testing.AllocsPerRun(1000, func() {
			start := time.Now()
			pctx, span := tel.startPublish(ctx, "auth.user.created", e, &th)
			tel.asyncPendingAdd(1)
			tel.asyncPendingAdd(-1)
			tel.endPublish(pctx, span, "auth.user.created", start, nil)
			cctx, cspan := tel.startProcess(ctx, "auth.user.created", "worker", e)
			tel.endProcess(cctx, cspan, "auth.user.created", "worker", start, OutcomeAck, nil)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per event, want 0", name, allocs)
		}
		if th.parent != "" {
			t.Errorf("%s: a traceparent %q was set without a span", name, th.parent)
		}
	}
}

// A service that records no spans still passes on the trace context it was
// given: the event carries the caller's traceparent, and a handler's context
// carries the event's.
func TestTelemetryOffPassesTheTraceContextOn(t *testing.T) {
	tel := newTelemetry(nil, nil)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	in := &Event{ID: "1", Type: "t", Source: "s", Extensions: map[string]string{ExtTraceParent: parent, ExtTraceState: "k=v"}}
	ctx, span := tel.startProcess(context.Background(), "a.b", "worker", in)
	if span.IsRecording() {
		t.Fatal("a span records with telemetry off")
	}
	var th traceHeaders
	_, _ = tel.startPublish(ctx, "a.c", &Event{ID: "2"}, &th)
	if th.parent != parent || th.state != "k=v" {
		t.Errorf("the handler's publish carries traceparent %q, tracestate %q; want the event's %q, k=v", th.parent, th.state, parent)
	}
}

// BenchmarkTelemetryOff is what the publish and delivery paths spend on
// telemetry per event when it is off (otel's global providers).
func BenchmarkTelemetryOff(b *testing.B) {
	tel := newTelemetry(nil, nil)
	e := &Event{ID: "0b4e9a3c-6f52-4d7e-9d55-3f1c1a2b3c4d", Type: "user.created", Source: "auth-service"}
	ctx := context.Background()
	var th traceHeaders
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		pctx, span := tel.startPublish(ctx, "auth.user.created", e, &th)
		tel.asyncPendingAdd(1)
		tel.asyncPendingAdd(-1)
		tel.endPublish(pctx, span, "auth.user.created", start, nil)
		cctx, cspan := tel.startProcess(ctx, "auth.user.created", "worker", e)
		tel.endProcess(cctx, cspan, "auth.user.created", "worker", start, OutcomeAck, nil)
	}
}
