package interop

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/giia/eventstream-operator/pkg/events"
)

// An event the CloudEvents SDK publishes with the distributed-tracing
// extension (traceparent, tracestate), in either mode, continues its trace
// in our subscriber: the consumer span is the child of the span the
// traceparent names, and the handler's context carries it.
func TestSDKTraceParentContinuesInOurHandler(t *testing.T) {
	v := setup(t)
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentID = "00f067aa0ba902b7"
	)
	for _, mode := range sdkModes {
		t.Run(mode.name, func(t *testing.T) {
			spans := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
			defer func() { _ = tp.Shutdown(v.ctx) }()

			subject := "interop.trace.sdk." + mode.name
			e := withData(sdkEvent(uuid.NewString(), "sdk-service", "user.created"))
			e.SetExtension("traceparent", "00-"+traceID+"-"+parentID+"-01")
			e.SetExtension("tracestate", "vendor=abc")
			v.sdkSend(t, subject, mode.ctx, e)

			got := v.ourReceive(t, subject, events.SubscriberConfig{TracerProvider: tp})
			if got.Extensions["traceparent"] != "00-"+traceID+"-"+parentID+"-01" {
				t.Errorf("traceparent extension %q", got.Extensions["traceparent"])
			}
			var process tracetest.SpanStub
			for _, s := range spans.GetSpans() {
				if s.Name == "process "+subject {
					process = s
				}
			}
			if process.Name == "" {
				t.Fatalf("no consumer span; spans: %d", len(spans.GetSpans()))
			}
			if process.SpanContext.TraceID().String() != traceID || process.Parent.SpanID().String() != parentID || !process.Parent.IsRemote() {
				t.Errorf("consumer span in trace %s with parent %s (remote %v); want trace %s, parent %s",
					process.SpanContext.TraceID(), process.Parent.SpanID(), process.Parent.IsRemote(), traceID, parentID)
			}
			if ts := process.Parent.TraceState().Get("vendor"); ts != "abc" {
				t.Errorf("tracestate vendor=%q, want abc", ts)
			}
		})
	}
}

// An event our publisher sends inside a span arrives at the CloudEvents
// SDK with the traceparent extension naming our producer span.
func TestOurTraceParentReachesTheSDK(t *testing.T) {
	v := setup(t)
	for _, structured := range []bool{false, true} {
		t.Run(fmt.Sprintf("structured=%v", structured), func(t *testing.T) {
			spans := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
			defer func() { _ = tp.Shutdown(v.ctx) }()
			opts := []events.PublisherOption{events.WithTracerProvider(tp)}
			if structured {
				opts = append(opts, events.WithStructuredMode())
			}
			pub, err := events.NewPublisher(v.nc, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			subject := fmt.Sprintf("interop.trace.ours.s%v", structured)
			e := ourEvent(t, nil)
			e.ID = uuid.NewString() // the ID is the Nats-Msg-Id: a second one would be a duplicate
			if err := pub.Publish(context.Background(), subject, e); err != nil {
				t.Fatal(err)
			}
			var send trace.SpanContext
			for _, s := range spans.GetSpans() {
				if s.Name == "send "+subject {
					send = s.SpanContext
				}
			}
			if !send.IsValid() {
				t.Fatal("no producer span")
			}
			got := v.sdkReceive(t, subject)
			want := "00-" + send.TraceID().String() + "-" + send.SpanID().String() + "-01"
			if tp := fmt.Sprint(got.Extensions()["traceparent"]); tp != want {
				t.Errorf("the SDK reads traceparent %q, want %q", tp, want)
			}
		})
	}
}
