package events_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/giia/eventstream-operator/pkg/events"
)

// pkg/events/README.md, "Telemetry": the service's providers (here the
// SDK's, recording into memory) for a publisher and a subscription; the
// handler's span is the child of the publisher's.
func Example_readmeTelemetry() {
	srv, js, err := readmeServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	nc := js.Conn()
	handled := make(chan struct{})
	handle := func(ctx context.Context, e *events.Event) error { close(handled); return nil }

	run := func(js jetstream.JetStream) error {
		pub, err := events.NewPublisher(nc, events.WithTracerProvider(tp), events.WithMeterProvider(mp))
		if err != nil {
			return err
		}
		defer func() { _ = pub.Close() }()
		sub, err := events.SubscribeDurable(ctx, js, events.StreamAuth, "mailer", handle, events.SubscriberConfig{
			TracerProvider: tp, MeterProvider: mp,
		})
		if err != nil {
			return err
		}
		defer func() { _ = sub.Stop(ctx) }()

		e, err := events.NewEvent("user.created", "auth-service", "org-42", time.Now(), map[string]string{"user_id": "u-1"})
		if err != nil {
			return err
		}
		if err := pub.Publish(ctx, "auth.user.created", e); err != nil {
			return err
		}
		<-handled
		return nil
	}
	if err := run(js); err != nil {
		fmt.Println(err)
		return
	}
	// The consumer span may end before the producer span (the handler can
	// run before the ack reaches the publisher): find them by kind.
	byKind := map[string]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		byKind[s.SpanKind.String()] = s
	}
	send, process := byKind["producer"], byKind["consumer"]
	fmt.Println(send.Name, "/", process.Name)
	fmt.Println("one trace:", send.SpanContext.TraceID() == process.SpanContext.TraceID(),
		"parent is the producer:", process.Parent.SpanID() == send.SpanContext.SpanID())
	// Output:
	// send auth.user.created / process auth.user.created
	// one trace: true parent is the producer: true
}
