// Command library compares the events library with raw nats.go and with the
// CloudEvents Go SDK (github.com/cloudevents/sdk-go/v2 and its
// protocol/nats_jetstream/v2 binding) in the same run, on the same server:
// sync publish, async publish, and consume + ack. Every side builds its
// events inside the timed region: the library calls events.NewEvent with a
// seed-like map (one encoding/json marshal), the raw side builds the same
// ce- headers and marshals the same map, the SDK side fills a
// cloudevents.Event and sets the same map as its data. Consumers decode each
// event's data into a struct before acking. It prints msgs/s (median of
// several runs) and the ratios library/raw and library/sdk-go next to their
// targets; the targets are reported, never asserted.
//
// A third table measures events.Replay against a raw nats.go copy loop of
// the same messages (same source stream of n library-encoded events, same
// fresh target stream, same batches of async publishes waited for per
// batch): the target is replay/raw ≥ 0.8.
//
// A fourth table measures the library's OpenTelemetry instrumentation: sync
// publish, async publish and consume + ack with telemetry off (no provider
// given: otel's global ones, which record nothing), with explicit no-op
// providers, and with the SDK on (every span sampled and batched to an
// exporter that discards it; metrics aggregated by a manual reader), and
// the ratios to off.
//
// A second table measures schema validation: the library's sync and async
// publish with a schema registry (events.WithDataValidator, the seed's
// user.created schema) against the same publish without, same events built
// the same way inside the timer, and their ratio.
//
//	go run ./test/bench/library -n 20000 -runs 3
//	go run ./test/bench/library -only async -sides library -cpuprofile lib.prof
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	cejs "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

const (
	stream    = "BENCH"
	subject   = "bench.auth.user.created"
	eventType = "auth.user.created"
	source    = "auth-service"
	orgID     = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	userID    = "3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
)

var (
	n          = flag.Int("n", 50000, "messages per run")
	runs       = flag.Int("runs", 5, "runs per scenario and side (the median is reported)")
	storage    = flag.String("storage", "memory", "stream storage: memory or file")
	only       = flag.String("only", "", "run only scenarios whose name contains this (sync, async, consume, schema validation, replay)")
	sidesFlag  = flag.String("sides", "library,raw,sdk-go", "sides to run")
	serverURL  = flag.String("server", "", "use this nats-server (e.g. one bin/nats-server runs) instead of an embedded one")
	cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the whole run here (narrow it with -only and -sides)")
	verbose    = flag.Bool("v", false, "print every run's figure")
)

// userCreated is what every consumer decodes the data into: the seed's
// auth.user.created payload.
type userCreated struct {
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Status    string `json:"status"`
}

// seedData is the seed's publisher call's data, built anew for every event
// on every side, as a service does.
func seedData() map[string]interface{} {
	return map[string]interface{}{
		"user_id":    userID,
		"email":      "jane.doe@example.com",
		"first_name": "Jane",
		"last_name":  "Doe",
		"status":     "active",
	}
}

type bench struct {
	nc      *nats.Conn
	sdkConn *nats.Conn
	js      jetstream.JetStream // raw side, and stream management
	pub     *events.Publisher
	pubVal  *events.Publisher  // validating against the schema registry, on its own connection
	sdk     cloudevents.Client // sdk-go sender on its own connection
	cfg     events.StreamConfig
}

type side struct {
	name string
	run  func() float64 // nil: not available
}

type scenario struct {
	name  string
	sides []side
}

func main() {
	flag.Parse()
	log.SetFlags(log.Lshortfile)
	url := *serverURL
	where := "nats-server at " + url
	if url == "" {
		srv, err := eventstest.StartJetStream("")
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Close()
		url = srv.URL()
		where = "embedded nats-server (github.com/nats-io/nats-server/v2, in this process)"
	}
	conn := func(name string) *nats.Conn {
		nc, err := nats.Connect(url, nats.Name(name), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// The SDK's push subscription may still be draining when the
			// next run deletes the stream: not a benchmark failure.
			if !errors.Is(err, nats.ErrStreamNotFound) && !errors.Is(err, nats.ErrConsumerNotFound) {
				log.Printf("%s: %v", name, err)
			}
		}))
		if err != nil {
			log.Fatal(err)
		}
		return nc
	}
	// One connection per side, so that no side's traffic queues behind
	// another's.
	nc, pubConn, sdkConn, valConn := conn("bench-raw"), conn("bench-library"), conn("bench-sdk-go"), conn("bench-library-schema")
	defer nc.Close()
	defer pubConn.Close()
	defer sdkConn.Close()
	defer valConn.Close()
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
	pub, err := events.NewPublisher(pubConn)
	if err != nil {
		log.Fatal(err)
	}
	registry := openRegistry(js)
	defer registry.Close()
	pubVal, err := events.NewPublisher(valConn, events.WithDataValidator(registry))
	if err != nil {
		log.Fatal(err)
	}
	b := &bench{nc: nc, sdkConn: sdkConn, js: js, pub: pub, pubVal: pubVal, cfg: cfg}
	b.purge()
	sender, err := cejs.NewSenderFromConn(sdkConn, stream, subject, nil)
	if err != nil {
		log.Fatal(err)
	}
	if b.sdk, err = cloudevents.NewClient(sender); err != nil {
		log.Fatal(err)
	}
	wire := b.checkWire()

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

	scenarios := []scenario{
		{"sync publish", []side{{"library", b.libSync}, {"raw", b.rawSync}, {"sdk-go", b.sdkSync}}},
		{"async publish", []side{{"library", b.libAsync}, {"raw", b.rawAsync}, {"sdk-go", nil}}},
		{"consume + ack", []side{{"library", b.libConsume}, {"raw", b.rawConsume}, {"sdk-go", b.sdkConsume}}},
	}
	wanted := strings.Split(*sidesFlag, ",")

	fmt.Printf("events library vs raw nats.go vs CloudEvents sdk-go: n=%d per run, median of %d runs, storage=%s, %s, GOMAXPROCS=%d, %s\n",
		*n, *runs, *storage, where, runtime.GOMAXPROCS(0), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Print(wire)
	fmt.Println()

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	if slices.ContainsFunc(scenarios, func(sc scenario) bool { return *only == "" || strings.Contains(sc.name, *only) }) {
		_, _ = fmt.Fprintln(tw, "scenario\tlibrary msgs/s\traw nats.go msgs/s\tsdk-go msgs/s\tlibrary/raw (target ≥ 0.9)\tlibrary/sdk-go (target ≥ 1.0)\tCPU µs/msg library / raw / sdk-go\t")
	}
	for _, sc := range scenarios {
		if *only != "" && !strings.Contains(sc.name, *only) {
			continue
		}
		results, cpus := map[string][]float64{}, map[string][]float64{}
		for i := 0; i < *runs; i++ {
			// Rotate the order so that no side always runs first (on a
			// colder process) or last.
			for j := range sc.sides {
				s := sc.sides[(i+j)%len(sc.sides)]
				if s.run == nil || !slices.Contains(wanted, s.name) {
					continue
				}
				results[s.name] = append(results[s.name], s.run())
				cpus[s.name] = append(cpus[s.name], float64(lastCPU)/1e3)
			}
		}
		if *verbose {
			for _, k := range slices.Sorted(maps.Keys(results)) {
				fmt.Printf("%s, %s: %.0f msgs/s, %.1f CPU µs/msg per run\n", sc.name, k, results[k], cpus[k])
			}
		}
		med := func(m map[string][]float64, name string) float64 {
			if len(m[name]) == 0 {
				return 0
			}
			return median(m[name])
		}
		lib, raw, sdk := med(results, "library"), med(results, "raw"), med(results, "sdk-go")
		cpu := func(name string) string {
			if v := med(cpus, name); v > 0 {
				return fmt.Sprintf("%.1f", v)
			}
			return "—"
		}
		cell := func(v float64) string {
			if v == 0 {
				return "—"
			}
			return fmt.Sprintf("%.0f", v)
		}
		ratio := func(a, b, target float64) string {
			if a == 0 || b == 0 {
				return "—"
			}
			verdict := "met"
			if a/b < target {
				verdict = "MISSED"
			}
			return fmt.Sprintf("%.2f %s", a/b, verdict)
		}
		sdkCell, sdkRatio := cell(sdk), ratio(lib, sdk, 1.0)
		if sc.name == "async publish" {
			sdkCell, sdkRatio = "n/a (sdk-go has no async send)", "n/a"
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s / %s / %s\t\n", sc.name, cell(lib), cell(raw), sdkCell,
			ratio(lib, raw, 0.9), sdkRatio, cpu("library"), cpu("raw"), cpu("sdk-go"))
	}
	_ = tw.Flush()
	b.validationTable()
	b.telemetryTable(url)
	b.replayTable()
}

// userCreatedSchema is config/samples' user.created 1.0 schema.
const userCreatedSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["user_id", "email", "first_name", "last_name", "status"],
  "properties": {
    "user_id": {"type": "string", "minLength": 1},
    "email": {"type": "string", "minLength": 1},
    "first_name": {"type": "string"},
    "last_name": {"type": "string"},
    "status": {"type": "string", "minLength": 1}
  }
}`

// openRegistry registers the benchmark event's schema in a registry bucket
// of its own and opens it.
func openRegistry(js jetstream.JetStream) *schemas.Registry {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opt := schemas.WithBucket("BENCH_SCHEMAS")
	rec := schemas.Record{Type: eventType, Version: events.SchemaVersionDefault, Schema: json.RawMessage(userCreatedSchema), Owner: "bench"}
	if err := schemas.Register(ctx, js, rec, opt); err != nil {
		log.Fatal(err)
	}
	r, err := schemas.Open(ctx, js, opt, schemas.WithUnknownTypes(schemas.RejectUnknown))
	if err != nil {
		log.Fatal(err)
	}
	return r
}

// validationTable prints publish with schema validation against publish
// without: the same library calls and events, medians of -runs runs in
// rotating order.
func (b *bench) validationTable() {
	type row struct {
		name       string
		plain, val func() float64
	}
	rows := []row{
		{"sync publish", func() float64 { return b.libSyncWith(b.pub) }, func() float64 { return b.libSyncWith(b.pubVal) }},
		{"async publish", func() float64 { return b.libAsyncWith(b.pub) }, func() float64 { return b.libAsyncWith(b.pubVal) }},
	}
	wanted := strings.Split(*sidesFlag, ",")
	if !slices.Contains(wanted, "library") {
		return
	}
	if *only != "" && !strings.Contains("schema validation", *only) &&
		!slices.ContainsFunc(rows, func(r row) bool { return strings.Contains(r.name, *only) }) {
		return
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "schema validation\twithout msgs/s\twith msgs/s\twith/without\tCPU µs/msg without / with\t")
	for _, r := range rows {
		if *only != "" && !strings.Contains(r.name, *only) && !strings.Contains("schema validation", *only) {
			continue
		}
		var plain, val, plainCPU, valCPU []float64
		for i := 0; i < *runs; i++ {
			if i%2 == 0 {
				plain, plainCPU = append(plain, r.plain()), append(plainCPU, float64(lastCPU)/1e3)
				val, valCPU = append(val, r.val()), append(valCPU, float64(lastCPU)/1e3)
			} else {
				val, valCPU = append(val, r.val()), append(valCPU, float64(lastCPU)/1e3)
				plain, plainCPU = append(plain, r.plain()), append(plainCPU, float64(lastCPU)/1e3)
			}
		}
		if *verbose {
			fmt.Printf("%s: without %.0f, with %.0f msgs/s per run\n", r.name, plain, val)
		}
		p, v := median(plain), median(val)
		_, _ = fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%.1f / %.1f\t\n", r.name, p, v, v/p, median(plainCPU), median(valCPU))
	}
	_ = tw.Flush()
}

// checkWire publishes one event from each side, captures what reaches the
// server with a plain subscription, and stops the benchmark if the raw
// side's headers and body differ from the library's (beyond the id and
// time every event has of its own). It returns a description of the
// SDK's message for the report.
func (b *bench) checkWire() string {
	ctx := context.Background()
	sub, err := b.nc.SubscribeSync(subject)
	if err != nil {
		log.Fatal(err)
	}
	// The other sides publish on other connections: the server must have
	// the subscription before they do.
	if err := b.nc.Flush(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	next := func() *nats.Msg {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			log.Fatal(err)
		}
		return m
	}
	e, err := events.NewEvent(eventType, source, orgID, time.Now().UTC(), seedData())
	if err != nil {
		log.Fatal(err)
	}
	if err := b.pub.Publish(ctx, subject, e); err != nil {
		log.Fatal(err)
	}
	lib := next()
	if _, err := b.js.PublishMsg(ctx, rawMsg()); err != nil {
		log.Fatal(err)
	}
	raw := next()
	if res := b.sdk.Send(ctx, sdkEvent()); !cloudevents.IsACK(res) {
		log.Fatal(res)
	}
	sdk := next()

	perEvent := map[string]bool{events.HeaderID: true, events.HeaderTime: true, events.HeaderMsgID: true}
	same := func(a, b *nats.Msg) error {
		if string(a.Data) != string(b.Data) {
			return fmt.Errorf("bodies differ:\n%s\n%s", a.Data, b.Data)
		}
		if !slices.Equal(slices.Sorted(maps.Keys(a.Header)), slices.Sorted(maps.Keys(b.Header))) {
			return fmt.Errorf("header names differ:\n%v\n%v", slices.Sorted(maps.Keys(a.Header)), slices.Sorted(maps.Keys(b.Header)))
		}
		for k, v := range a.Header {
			if !perEvent[k] && !slices.Equal(v, b.Header[k]) {
				return fmt.Errorf("header %s differs: %q vs %q", k, v, b.Header[k])
			}
		}
		return nil
	}
	if err := same(lib, raw); err != nil {
		log.Fatalf("the raw side does not send what the library sends: %v", err)
	}
	var missing []string
	for k := range lib.Header {
		if _, ok := sdk.Header[k]; !ok {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	bodyNote := "the same body"
	if string(sdk.Data) != string(lib.Data) {
		bodyNote = fmt.Sprintf("a different body (%d bytes)", len(sdk.Data))
	}
	return fmt.Sprintf("wire check: raw sends the library's headers (%d, names and values; id and time per event) and body (%d bytes); "+
		"sdk-go sends %d headers (without %s) and %s\n",
		len(lib.Header), len(lib.Data), len(sdk.Header), strings.Join(missing, ", "), bodyNote)
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

// cpuStart and lastCPU measure the process's CPU time (user + system, the
// embedded server's included) over a timed region: a figure that, unlike
// msgs/s, other processes on a loaded machine hardly change.
var cpuStart, lastCPU time.Duration

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		log.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startClock() time.Time {
	cpuStart = cpuTime()
	return time.Now()
}

// rate ends a timed region: msgs/s, and lastCPU becomes the CPU time per
// message.
func rate(start time.Time) float64 {
	elapsed := time.Since(start)
	lastCPU = (cpuTime() - cpuStart) / time.Duration(*n)
	return float64(*n) / elapsed.Seconds()
}

// settle collects garbage left by the previous run and setup, so that
// no side pays for another's allocations.
func settle() { runtime.GC() }

// ---- library ----

func libEvent() *events.Event {
	e, err := events.NewEvent(eventType, source, orgID, time.Now().UTC(), seedData())
	if err != nil {
		log.Fatal(err)
	}
	return e
}

func (b *bench) libSync() float64 { return b.libSyncWith(b.pub) }

func (b *bench) libSyncWith(pub *events.Publisher) float64 {
	b.purge()
	ctx := context.Background()
	settle()
	start := startClock()
	for i := 0; i < *n; i++ {
		if err := pub.Publish(ctx, subject, libEvent()); err != nil {
			log.Fatal(err)
		}
	}
	return rate(start)
}

func (b *bench) libAsync() float64 { return b.libAsyncWith(b.pub) }

func (b *bench) libAsyncWith(pub *events.Publisher) float64 {
	b.purge()
	ctx := context.Background()
	settle()
	start := startClock()
	for i := 0; i < *n; i++ {
		if err := pub.PublishAsync(ctx, subject, libEvent()); err != nil {
			log.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	return rate(start)
}

func (b *bench) libConsume() float64 { return b.libConsumeWith(events.SubscriberConfig{}) }

func (b *bench) libConsumeWith(cfg events.SubscriberConfig) float64 {
	b.fill()
	var count atomic.Int64
	done := make(chan struct{})
	ctx := context.Background()
	settle()
	start := startClock()
	sub, err := events.SubscribeDurable(ctx, b.js, stream, consumerName(), func(ctx context.Context, e *events.Event) error {
		if _, err := events.DataAs[userCreated](e); err != nil {
			return err
		}
		if count.Add(1) == int64(*n) {
			close(done)
		}
		return nil
	}, cfg)
	if err != nil {
		log.Fatal(err)
	}
	wait(done)
	r := rate(start)
	_ = sub.Stop(ctx)
	return r
}

// ---- raw nats.go ----

// rawMsg is what a raw nats.go user writes to send the same event: the
// same ce- headers (CloudEvents binary mode, as the library writes them),
// Nats-Msg-Id, and the same map marshalled with encoding/json.
func rawMsg() *nats.Msg {
	id := uuid.NewString()
	body, err := json.Marshal(seedData())
	if err != nil {
		log.Fatal(err)
	}
	return &nats.Msg{Subject: subject, Data: body, Header: nats.Header{
		events.HeaderSpecVersion:     {events.SpecVersion},
		events.HeaderID:              {id},
		events.HeaderType:            {eventType},
		events.HeaderSource:          {source},
		events.HeaderTime:            {time.Now().UTC().Format(time.RFC3339Nano)},
		events.HeaderDataContentType: {events.ContentTypeJSON},
		events.HeaderOrganizationID:  {orgID},
		events.HeaderSchemaVersion:   {events.SchemaVersionDefault},
		events.HeaderMsgID:           {id},
	}}
}

func (b *bench) rawSync() float64 {
	b.purge()
	ctx := context.Background()
	settle()
	start := startClock()
	for i := 0; i < *n; i++ {
		if _, err := b.js.PublishMsg(ctx, rawMsg()); err != nil {
			log.Fatal(err)
		}
	}
	return rate(start)
}

func (b *bench) rawAsync() float64 {
	b.purge()
	settle()
	start := startClock()
	for i := 0; i < *n; i++ {
		if _, err := b.js.PublishMsgAsync(rawMsg()); err != nil {
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

func (b *bench) rawConsume() float64 {
	b.fill()
	var count atomic.Int64
	done := make(chan struct{})
	ctx := context.Background()
	settle()
	start := startClock()
	cons, err := b.js.CreateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: consumerName(), AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 3, AckWait: 10 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var data userCreated
		if err := json.Unmarshal(m.Data(), &data); err != nil {
			log.Fatal(err)
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

// ---- CloudEvents sdk-go ----

// sdkEvent is the same event as the SDK's user builds it.
func sdkEvent() cloudevents.Event {
	e := cloudevents.NewEvent()
	e.SetID(uuid.NewString())
	e.SetSource(source)
	e.SetType(eventType)
	e.SetTime(time.Now().UTC())
	e.SetExtension("organizationid", orgID)
	e.SetExtension("schemaversion", events.SchemaVersionDefault)
	if err := e.SetData(cloudevents.ApplicationJSON, seedData()); err != nil {
		log.Fatal(err)
	}
	return e
}

// sdkSync sends with client.Send, which waits for the JetStream ack (the
// binding's sender calls the legacy JetStreamContext.PublishMsg).
func (b *bench) sdkSync() float64 {
	b.purge()
	ctx := context.Background()
	settle()
	start := startClock()
	for i := 0; i < *n; i++ {
		if res := b.sdk.Send(ctx, sdkEvent()); !cloudevents.IsACK(res) {
			log.Fatal(res)
		}
	}
	return rate(start)
}

// sdkConsume receives with the binding's consumer (a durable push
// subscription with explicit acks) and the SDK client, with their defaults.
// The binding does not ack itself: nats.go's legacy subscription acks each
// message when the binding's callback returns, i.e. once the message is
// handed to the client, before the handler has run.
func (b *bench) sdkConsume() float64 {
	b.fill()
	var count atomic.Int64
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	settle()
	start := startClock()
	cons, err := cejs.NewConsumerFromConn(b.sdkConn, stream, subject, nil, []nats.SubOpt{
		nats.BindStream(stream), nats.Durable(consumerName()), nats.DeliverAll(), nats.AckExplicit(),
		nats.MaxDeliver(3), nats.AckWait(10 * time.Second),
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := cloudevents.NewClient(cons)
	if err != nil {
		log.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() {
		stopped <- c.StartReceiver(ctx, func(e cloudevents.Event) {
			var data userCreated
			if err := e.DataAs(&data); err != nil {
				log.Fatal(err)
			}
			if count.Add(1) == int64(*n) {
				close(done)
			}
		})
	}()
	wait(done)
	r := rate(start)
	cancel()
	if err := <-stopped; err != nil {
		log.Fatal(err)
	}
	return r
}

// fill makes the stream hold n library-encoded events for the consumers.
func (b *bench) fill() {
	b.purge()
	ctx := context.Background()
	for i := 0; i < *n; i++ {
		if err := b.pub.PublishAsync(ctx, subject, libEvent()); err != nil {
			log.Fatal(err)
		}
	}
	if err := b.pub.Flush(ctx); err != nil {
		log.Fatal(err)
	}
}

var consumerSeq atomic.Int64

func consumerName() string { return fmt.Sprintf("bench%d", consumerSeq.Add(1)) }

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

// ---- replay ----

const (
	replayStream = "BENCH_REPLAY"
	replayPrefix = "replay."
	replayBatch  = events.DefaultReplayBatchSize
)

// replayTable prints events.Replay against a raw copy loop: the same n
// source messages copied into a fresh target stream, medians of -runs runs
// in alternating order.
func (b *bench) replayTable() {
	if *only != "" && !strings.Contains("replay", *only) {
		return
	}
	b.fill() // the source both sides read; neither changes it
	var lib, raw, libCPU, rawCPU []float64
	for i := 0; i < *runs; i++ {
		if i%2 == 0 {
			lib, libCPU = append(lib, b.libReplay()), append(libCPU, float64(lastCPU)/1e3)
			raw, rawCPU = append(raw, b.rawReplay()), append(rawCPU, float64(lastCPU)/1e3)
		} else {
			raw, rawCPU = append(raw, b.rawReplay()), append(rawCPU, float64(lastCPU)/1e3)
			lib, libCPU = append(lib, b.libReplay()), append(libCPU, float64(lastCPU)/1e3)
		}
	}
	if *verbose {
		fmt.Printf("replay: library %.0f, raw %.0f msgs/s per run\n", lib, raw)
	}
	l, r := median(lib), median(raw)
	verdict := "met"
	if l/r < 0.8 {
		verdict = "MISSED"
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintf(tw, "replay (batch %d, async, one ack wait per batch)\tevents.Replay msgs/s\traw copy loop msgs/s\treplay/raw (target ≥ 0.8)\tCPU µs/msg replay / raw\t\n", replayBatch)
	_, _ = fmt.Fprintf(tw, "%s → %s\t%.0f\t%.0f\t%.2f %s\t%.1f / %.1f\t\n", stream, replayStream, l, r, l/r, verdict, median(libCPU), median(rawCPU))
	_ = tw.Flush()
}

// replayTarget gives a run a new, empty target stream.
func (b *bench) replayTarget() {
	ctx := context.Background()
	if err := b.js.DeleteStream(ctx, replayStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		log.Fatal(err)
	}
	cfg := b.cfg
	cfg.Name, cfg.Subjects = replayStream, []string{replayPrefix + ">"}
	if cfg.Storage == jetstream.MemoryStorage {
		cfg.MaxBytes = 48 << 20 // beside the source's 200 MiB within the embedded server's 256 MiB; n=50000 copies take ~35 MiB
	}
	if _, err := events.CreateStream(ctx, b.js, cfg); err != nil {
		log.Fatal(err)
	}
}

func (b *bench) checkReplayTarget() {
	info, err := events.GetStreamInfo(context.Background(), b.js, replayStream)
	if err != nil {
		log.Fatal(err)
	}
	if info.State.Msgs != uint64(*n) {
		log.Fatalf("replay target holds %d messages, want %d", info.State.Msgs, *n)
	}
}

func (b *bench) libReplay() float64 {
	b.replayTarget()
	settle()
	start := startClock()
	p, err := events.Replay(context.Background(), b.js, events.ReplaySpec{
		ID: uuid.NewString(), Stream: stream, Target: events.ReplayTarget{SubjectPrefix: replayPrefix}, BatchSize: replayBatch,
	})
	if err != nil || p.Replayed != uint64(*n) {
		log.Fatalf("replay: %v (progress %+v)", err, p)
	}
	r := rate(start)
	b.checkReplayTarget()
	return r
}

// rawReplay is what a program copying a stream with nats.go writes: an
// ordered consumer, each message's headers and body republished under the
// prefix with a Nats-Msg-Id, the acks of each batch waited for.
func (b *bench) rawReplay() float64 {
	b.replayTarget()
	ctx := context.Background()
	settle()
	start := startClock()
	st, err := b.js.Stream(ctx, stream)
	if err != nil {
		log.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * replayBatch))
	if err != nil {
		log.Fatal(err)
	}
	id := uuid.NewString()
	futures := make([]jetstream.PubAckFuture, 0, replayBatch)
	flush := func() {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				log.Fatal(err)
			}
		}
		futures = futures[:0]
	}
	for i := 0; i < *n; i++ {
		m, err := it.Next()
		if err != nil {
			log.Fatal(err)
		}
		meta, err := m.Metadata()
		if err != nil {
			log.Fatal(err)
		}
		h := make(nats.Header, len(m.Headers())+1)
		for k, v := range m.Headers() {
			if !strings.HasPrefix(k, "Nats-") {
				h[k] = v
			}
		}
		msgID := id + "-" + strconv.FormatUint(meta.Sequence.Stream, 10)
		h[events.HeaderMsgID] = []string{msgID}
		f, err := b.js.PublishMsgAsync(&nats.Msg{Subject: replayPrefix + m.Subject(), Header: h, Data: m.Data()}, jetstream.WithMsgID(msgID))
		if err != nil {
			log.Fatal(err)
		}
		if futures = append(futures, f); len(futures) == replayBatch {
			flush()
		}
	}
	flush()
	it.Stop()
	r := rate(start)
	b.checkReplayTarget()
	return r
}

// telemetryTable prints the library with telemetry off (otel's global
// providers, no SDK installed), with explicit no-op providers and with the
// SDK recording, and the ratios to off: medians of -runs runs in rotating
// order, each variant on its own connection.
func (b *bench) telemetryTable(url string) {
	if !slices.Contains(strings.Split(*sidesFlag, ","), "library") {
		return
	}
	if *only != "" && !strings.Contains("telemetry", *only) {
		return
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) }()
	type variant struct {
		name string
		pub  *events.Publisher
		cfg  events.SubscriberConfig
	}
	newPub := func(name string, opts ...events.PublisherOption) *events.Publisher {
		nc, err := nats.Connect(url, nats.Name("bench-telemetry-"+name))
		if err != nil {
			log.Fatal(err)
		}
		pub, err := events.NewPublisher(nc, opts...)
		if err != nil {
			log.Fatal(err)
		}
		return pub
	}
	variants := []variant{
		{"off", newPub("off"), events.SubscriberConfig{}},
		{"no-op", newPub("noop", events.WithTracerProvider(tracenoop.NewTracerProvider()), events.WithMeterProvider(metricnoop.NewMeterProvider())),
			events.SubscriberConfig{TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: metricnoop.NewMeterProvider()}},
		{"SDK", newPub("sdk", events.WithTracerProvider(tp), events.WithMeterProvider(mp)),
			events.SubscriberConfig{TracerProvider: tp, MeterProvider: mp}},
	}
	rows := []struct {
		name string
		run  func(v variant) float64
	}{
		{"sync publish", func(v variant) float64 { return b.libSyncWith(v.pub) }},
		{"async publish", func(v variant) float64 { return b.libAsyncWith(v.pub) }},
		{"consume + ack", func(v variant) float64 { return b.libConsumeWith(v.cfg) }},
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "telemetry	off msgs/s	no-op msgs/s	SDK msgs/s	no-op/off	SDK/off	CPU µs/msg off / no-op / SDK	")
	for _, r := range rows {
		rates, cpus := make([][]float64, len(variants)), make([][]float64, len(variants))
		for i := 0; i < *runs; i++ {
			for j := range variants {
				k := (i + j) % len(variants)
				rates[k] = append(rates[k], r.run(variants[k]))
				cpus[k] = append(cpus[k], float64(lastCPU)/1e3)
			}
		}
		if *verbose {
			fmt.Printf("telemetry %s: off %.0f, no-op %.0f, SDK %.0f msgs/s per run\n", r.name, rates[0], rates[1], rates[2])
		}
		off, noop, sdk := median(rates[0]), median(rates[1]), median(rates[2])
		_, _ = fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.2f\t%.2f\t%.1f / %.1f / %.1f\t\n", r.name, off, noop, sdk, noop/off, sdk/off,
			median(cpus[0]), median(cpus[1]), median(cpus[2]))
	}
	_ = tw.Flush()
}
