// Command library compares the events library with raw nats.go jetstream
// calls on one embedded server: sync publish, async publish + flush, and
// consuming with acks. It prints msgs/s (median of several runs) and the
// library/raw ratio; the target is a ratio of at least 0.85.
//
//	go run ./test/bench/library -n 50000 -runs 7 -storage memory
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

const (
	stream  = "BENCH"
	subject = "bench.user.created"
)

var (
	n          = flag.Int("n", 50000, "messages per run")
	runs       = flag.Int("runs", 7, "runs per scenario (the median is reported)")
	size       = flag.Int("size", 256, "bytes of event data")
	storage    = flag.String("storage", "memory", "stream storage: memory or file")
	only       = flag.String("only", "", "run only scenarios whose name contains this")
	cpuprofile = flag.String("cpuprofile", "", "write a CPU profile here")
	rawCE      = flag.Bool("raw-ce-headers", false, "raw publishes carry the same ce- headers as the library's (shows the wire format's own cost)")
	structured = flag.Bool("structured", false, "the library publishes in structured mode (the whole event as JSON in the body) instead of binary mode")
	rawPre     = flag.Bool("raw-preencoded", false, "the raw side skips the JSON work a raw user does with the data: publishes send one pre-encoded body instead of marshalling per message, and the consumer acks without unmarshalling")
)

type bench struct {
	js        jetstream.JetStream // raw
	nc        *nats.Conn
	pub       *events.Publisher
	data      map[string]any
	body      []byte      // data as JSON, for -raw-preencoded
	ceHeaders nats.Header // a library message's headers, for -raw-ce-headers
	cfg       events.StreamConfig
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	srv, err := eventstest.StartJetStream("")
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	nc, err := nats.Connect(srv.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	cfg := events.NewStreamConfig(stream, "bench.>")
	cfg.MaxBytes = 2 << 30
	if *storage == "memory" {
		cfg.Storage = jetstream.MemoryStorage
		cfg.MaxBytes = 200 << 20
	}
	pubConn, err := nats.Connect(srv.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer pubConn.Close()
	var popts []events.PublisherOption
	if *structured {
		popts = append(popts, events.WithStructuredMode())
	}
	pub, err := events.NewPublisher(pubConn, popts...)
	if err != nil {
		log.Fatal(err)
	}
	b := &bench{js: js, nc: nc, pub: pub, cfg: cfg}
	// One string field padded so that the JSON body is exactly *size bytes.
	b.data = map[string]any{"payload": strings.Repeat("x", max(*size-len(`{"payload":""}`), 0))}
	b.body, b.ceHeaders = mustEncode(b.data)

	type row struct {
		name     string
		lib, raw func() float64
	}
	rows := []row{
		{"sync publish (Publish vs js.PublishMsg)", b.libSync, b.rawSync},
		{"async publish (PublishAsync+Flush vs PublishMsgAsync+Complete)", b.libAsync, b.rawAsync},
		{"consume (SubscribeDurable vs Consume+Ack)", b.libConsume, b.rawConsume},
	}
	fmt.Printf("events library vs raw jetstream: n=%d, data=%d bytes, storage=%s, median of %d runs\n\n", *n, len(b.body), *storage, *runs)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "scenario\tlibrary msgs/s\traw msgs/s\tratio\t")
	for _, r := range rows {
		if *only != "" && !strings.Contains(r.name, *only) {
			continue
		}
		var libs, raws []float64
		for i := 0; i < *runs; i++ {
			// ABBA order so neither side always runs on a warmer server.
			if i%4 == 0 || i%4 == 3 {
				raws = append(raws, r.raw())
				libs = append(libs, r.lib())
			} else {
				libs = append(libs, r.lib())
				raws = append(raws, r.raw())
			}
		}
		lib, raw := median(libs), median(raws)
		_, _ = fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t\n", r.name, lib, raw, lib/raw)
	}
	_ = tw.Flush()
}

// purge gives each run a new, empty stream: a purge would keep the
// stream's duplicate-detection window (every message ID of the last two
// minutes), whose growing size makes later runs pay for earlier ones, and
// its consumers.
func (b *bench) purge() {
	ctx := context.Background()
	if err := b.js.DeleteStream(ctx, stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		log.Fatal(err)
	}
	if _, err := events.CreateStream(ctx, b.js, b.cfg); err != nil {
		log.Fatal(err)
	}
}

func (b *bench) events() []*events.Event {
	out := make([]*events.Event, *n)
	now := time.Now()
	for i := range out {
		e, err := events.NewEvent("user.created", "bench", "org-1", now, b.data)
		if err != nil {
			log.Fatal(err)
		}
		out[i] = e
	}
	return out
}

func ids() []string {
	out := make([]string, *n)
	for i := range out {
		out[i] = uuid.NewString()
	}
	return out
}

func rate(start time.Time) float64 { return float64(*n) / time.Since(start).Seconds() }

// settle collects garbage left by the previous run and setup, so that
// neither side pays for the other's allocations.
func settle() { runtime.GC() }

func (b *bench) libSync() float64 {
	b.purge()
	evs := b.events()
	ctx := context.Background()
	settle()
	start := time.Now()
	for _, e := range evs {
		if err := b.pub.Publish(ctx, subject, e); err != nil {
			log.Fatal(err)
		}
	}
	return rate(start)
}

func (b *bench) rawSync() float64 {
	b.purge()
	ids := ids()
	ctx := context.Background()
	settle()
	start := time.Now()
	for _, id := range ids {
		m := b.rawMsg(id)
		if _, err := b.js.PublishMsg(ctx, m); err != nil {
			log.Fatal(err)
		}
	}
	return rate(start)
}

// rawMsg is the raw side's message: the data marshalled to JSON, as a raw
// nats.go user must do with the same map the library is given, and
// Nats-Msg-Id; with -raw-preencoded one body encoded up front instead, and
// with -raw-ce-headers a copy of the library's ce- headers.
func (b *bench) rawMsg(id string) *nats.Msg {
	body := b.body
	if !*rawPre {
		var err error
		if body, err = json.Marshal(b.data); err != nil {
			log.Fatal(err)
		}
	}
	h := nats.Header{jetstream.MsgIDHeader: []string{id}}
	if *rawCE {
		for k, v := range b.ceHeaders {
			h[k] = v
		}
	}
	return &nats.Msg{Subject: subject, Data: body, Header: h}
}

func (b *bench) libAsync() float64 {
	b.purge()
	evs := b.events()
	ctx := context.Background()
	settle()
	start := time.Now()
	for _, e := range evs {
		if err := b.pub.PublishAsync(ctx, subject, e); err != nil {
			log.Fatal(err)
		}
	}
	if err := b.pub.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	return rate(start)
}

func (b *bench) rawAsync() float64 {
	b.purge()
	ids := ids()
	settle()
	start := time.Now()
	for _, id := range ids {
		m := b.rawMsg(id)
		if _, err := b.js.PublishMsgAsync(m); err != nil {
			log.Fatal(err)
		}
	}
	select {
	case <-b.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		log.Fatal("raw async publish did not complete")
	}
	return rate(start)
}

// fill makes the stream hold n library-encoded events for the consumers.
func (b *bench) fill() {
	b.purge()
	ctx := context.Background()
	for _, e := range b.events() {
		if err := b.pub.PublishAsync(ctx, subject, e); err != nil {
			log.Fatal(err)
		}
	}
	if err := b.pub.Flush(ctx); err != nil {
		log.Fatal(err)
	}
}

var consumerSeq atomic.Int64

func consumerName() string { return fmt.Sprintf("bench%d", consumerSeq.Add(1)) }

func (b *bench) libConsume() float64 {
	b.fill()
	var count atomic.Int64
	done := make(chan struct{})
	ctx := context.Background()
	settle()
	start := time.Now()
	sub, err := events.SubscribeDurable(ctx, b.js, stream, consumerName(), func(ctx context.Context, e *events.Event) error {
		if count.Add(1) == int64(*n) {
			close(done)
		}
		return nil
	}, events.SubscriberConfig{})
	if err != nil {
		log.Fatal(err)
	}
	wait(done)
	r := rate(start)
	_ = sub.Stop(ctx)
	return r
}

func (b *bench) rawConsume() float64 {
	b.fill()
	var count atomic.Int64
	done := make(chan struct{})
	ctx := context.Background()
	settle()
	start := time.Now()
	cons, err := b.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: consumerName(), AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 3, AckWait: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		// As a raw user must to use the data (unless -raw-preencoded).
		if !*rawPre {
			var data map[string]any
			if err := json.Unmarshal(m.Data(), &data); err != nil {
				log.Fatal(err)
			}
		}
		_ = m.Ack()
		if count.Add(1) == int64(*n) {
			close(done)
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	wait(done)
	r := rate(start)
	cc.Stop()
	return r
}

func wait(done chan struct{}) {
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		log.Fatal("consumer did not receive every message")
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func mustEncode(v map[string]any) ([]byte, nats.Header) {
	e, err := events.NewEvent("x", "x", "x", time.Unix(1, 0), v)
	if err != nil {
		log.Fatal(err)
	}
	m, err := events.Encode(e, events.ModeBinary)
	if err != nil {
		log.Fatal(err)
	}
	delete(m.Header, jetstream.MsgIDHeader)
	return m.Data, m.Header
}
