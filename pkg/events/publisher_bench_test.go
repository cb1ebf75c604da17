package events_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// benchStream starts an embedded JetStream server with a memory stream on
// bench.> and returns a connection to it.
func benchStream(b *testing.B) *nats.Conn {
	b.Helper()
	srv, err := eventstest.StartJetStream("")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	cfg := events.NewStreamConfig("BENCH", "bench.>")
	cfg.Storage, cfg.MaxBytes = jetstream.MemoryStorage, 200<<20
	if _, err := events.CreateStream(context.Background(), js, cfg); err != nil {
		b.Fatal(err)
	}
	return nc
}

// BenchmarkPublishAsync is the library's async publish of a 256-byte event
// to an embedded server, in-process, so ns/op and allocs/op include the
// server's share. Building the event (NewEvent, which marshals the data)
// is inside the timed loop, as a service does it for every event. make
// bench (test/bench/library) has the throughput comparison with raw nats.go
// and the CloudEvents SDK.
func BenchmarkPublishAsync(b *testing.B) {
	nc := benchStream(b)
	pub, err := events.NewPublisher(nc)
	if err != nil {
		b.Fatal(err)
	}
	data := map[string]any{"payload": strings.Repeat("x", 242)} // 256 bytes of JSON
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e, err := events.NewEvent("user.created", "bench", "org-1", time.Now(), data)
		if err != nil {
			b.Fatal(err)
		}
		if err := pub.PublishAsync(ctx, "bench.user.created", e); err != nil {
			b.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}
