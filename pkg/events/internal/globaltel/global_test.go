// Package globaltel_test checks the library's default: otel's global
// providers. It is a package of its own because installing a global provider
// cannot be undone and would change what the other tests measure.
package globaltel_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// A publisher created before the service installs its SDK (as NewPublisher
// in an init or a constructor often is) records nothing until then, and
// traces through the global provider once it is installed.
func TestGlobalProviderInstalledAfterThePublisher(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	ctx := context.Background()
	if _, err := events.CreateStream(ctx, srv.JetStream(t), events.NewStreamConfig("GLOBAL", "global.>")); err != nil {
		t.Fatal(err)
	}
	pub, err := events.NewPublisher(srv.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	publish := func(subject string) {
		t.Helper()
		e, err := events.NewEvent("x.happened", "svc", "org-1", time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, subject, e); err != nil {
			t.Fatal(err)
		}
	}
	publish("global.before")

	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer func() { _ = tp.Shutdown(ctx) }()
	otel.SetTracerProvider(tp)
	publish("global.after")

	var names []string
	for _, s := range spans.GetSpans() {
		names = append(names, s.Name)
	}
	if len(names) != 1 || names[0] != "send global.after" {
		t.Errorf("spans %q, want only [send global.after]", names)
	}
}
