package dlq

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

const (
	ordersStream = "ORDERS"
	dlqStream    = "DLQ"
	billing      = "billing"
	billingKey   = "shop/billing"
)

var fixedTime = time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC)

// env is one embedded server with a connection for the forwarder and a
// JetStream context for the test's clients.
type env struct {
	srv *eventstest.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := eventstest.RunJetStream(t)
	return &env{srv: srv, nc: srv.Conn(t), js: srv.JetStream(t)}
}

// orders creates ORDERS (orders.>) and the billing consumer: MaxDeliver 2,
// AckWait 300ms.
func (e *env) orders(t *testing.T, mod ...func(*events.StreamConfig)) jetstream.Consumer {
	t.Helper()
	eventstest.CreateStream(t, e.js, ordersStream, []string{"orders.>"}, mod...)
	return e.consumer(t, billing)
}

func (e *env) consumer(t *testing.T, name string) jetstream.Consumer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.js.CreateOrUpdateConsumer(ctx, ordersStream, jetstream.ConsumerConfig{
		Durable: name, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 300 * time.Millisecond, MaxDeliver: 2,
	})
	if err != nil {
		t.Fatalf("create consumer %s: %v", name, err)
	}
	return c
}

func (e *env) dlq(t *testing.T, mod ...func(*events.StreamConfig)) {
	t.Helper()
	eventstest.CreateStream(t, e.js, dlqStream, []string{"dlq.>"}, mod...)
}

// publishOrder publishes a CloudEvent in binary mode on subject.
func (e *env) publishOrder(t *testing.T, subject string) (*events.Event, *nats.Msg) {
	t.Helper()
	ev, err := events.NewEvent("order.created", "orders-service", "org-1", fixedTime.Add(-time.Hour), map[string]any{"id": 42, "total": 9.5})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := events.Encode(ev, events.ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	msg.Subject = subject
	msg.Header.Set(events.HeaderMsgID, ev.ID) // as the Publisher does
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.js.PublishMsg(ctx, msg); err != nil {
		t.Fatalf("publish: %v", err)
	}
	return ev, msg
}

// fetchOne fetches one message from c, failing the test if none comes.
func fetchOne(t *testing.T, c jetstream.Consumer) jetstream.Msg {
	t.Helper()
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(3*time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	for m := range batch.Messages() {
		return m
	}
	t.Fatalf("fetch: no message (%v)", batch.Error())
	return nil
}

// hooks records the forwarder's callbacks.
type hooks struct {
	mu        sync.Mutex
	forwarded []string
	already   []string
	notStored []string // key + " " + subject
	errs      []error
}

func (h *hooks) options() []Option {
	return []Option{
		WithOnForwarded(func(key string) { h.mu.Lock(); h.forwarded = append(h.forwarded, key); h.mu.Unlock() }),
		WithOnAlreadyDeadLettered(func(key string) { h.mu.Lock(); h.already = append(h.already, key); h.mu.Unlock() }),
		WithOnNotStored(func(key, subject string, err error) {
			h.mu.Lock()
			h.notStored = append(h.notStored, key+" "+subject)
			h.errs = append(h.errs, err)
			h.mu.Unlock()
		}),
	}
}

func (h *hooks) snapshot() (forwarded, already, notStored []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.forwarded...), append([]string(nil), h.already...), append([]string(nil), h.notStored...)
}

// billingResolver dead-letters ORDERS/billing to dlq.<subject>.
func billingResolver(stream, consumer string) (Target, bool) {
	if stream == ordersStream && consumer == billing {
		return Target{Key: billingKey, Subject: events.DeadLetterSubject}, true
	}
	return Target{}, false
}

// running is a started forwarder.
type running struct {
	f    *Forwarder
	stop func()
}

// start runs a forwarder with test-friendly timings until stop (or the end
// of the test) and waits until its stream and consumer exist, unless
// noWait.
func start(t *testing.T, nc *nats.Conn, resolve Resolver, noWait bool, opts ...Option) running {
	t.Helper()
	all := append([]Option{
		WithLogger(testr.NewWithOptions(t, testr.Options{Verbosity: 1})),
		WithClock(events.ClockFunc(func() time.Time { return fixedTime })),
		WithRetryDelay(100*time.Millisecond, 400*time.Millisecond),
		WithReconnectBackoff(50*time.Millisecond, 500*time.Millisecond),
		WithFetchWait(time.Second),
		WithOpTimeout(2 * time.Second),
	}, opts...)
	f := New(nc, resolve, all...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Start returned %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Start did not return within 10s of cancellation")
			}
		})
	}
	t.Cleanup(stop)
	if !noWait {
		select {
		case <-f.Ready():
		case err := <-done:
			t.Fatalf("Start returned early: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("forwarder not ready within 10s")
		}
	}
	return running{f: f, stop: stop}
}

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// advisoriesDone waits until the capture consumer has nothing pending or
// unacknowledged and the work-queue stream is empty.
func advisoriesDone(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	eventually(t, 10*time.Second, "advisories acknowledged", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		info, err := admin.GetConsumerInfo(ctx, js, DefaultStreamName, DefaultConsumerName)
		if err != nil {
			return false
		}
		return info.NumAckPending == 0 && info.NumPending == 0 && eventstest.StreamMsgs(t, js, DefaultStreamName) == 0
	})
}

// neverAck fetches the only message MaxDeliver (2) times without acking,
// then keeps pulling like a live client would, so that JetStream gives up
// on it. (For pull consumers nats-server 2.15 sends MAX_DELIVERIES when a
// pull request is waiting once the last delivery's AckWait has passed.)
func neverAck(t *testing.T, c jetstream.Consumer) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		m := fetchOne(t, c)
		meta, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if meta.NumDelivered != uint64(i) {
			t.Fatalf("delivery %d: NumDelivered = %d", i, meta.NumDelivered)
		}
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	for m := range batch.Messages() {
		meta, _ := m.Metadata()
		t.Fatalf("delivered beyond MaxDeliver: %+v", meta)
	}
}

func header(t *testing.T, h nats.Header, key, want string) {
	t.Helper()
	if got := h.Get(key); got != want {
		t.Errorf("header %s = %q, want %q", key, got, want)
	}
}

// onlyDeadLetter checks that the DLQ stream holds exactly one message and
// returns it.
func onlyDeadLetter(t *testing.T, js jetstream.JetStream) *jetstream.RawStreamMsg {
	t.Helper()
	eventstest.WaitForMsgs(t, js, dlqStream, 1, 10*time.Second)
	advisoriesDone(t, js)
	if n := eventstest.StreamMsgs(t, js, dlqStream); n != 1 {
		t.Fatalf("DLQ holds %d messages, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, dlqStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return eventstest.GetMsg(t, js, dlqStream, info.State.FirstSeq)
}

func TestMaxDeliveriesIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	e.dlq(t)
	h := &hooks{}
	forwarded0, lag0 := testutil.ToFloat64(forwardedTotal), histogramCount(t, advisoryLag)
	r := start(t, e.nc, billingResolver, false, h.options()...)

	ev, orig := e.publishOrder(t, "orders.created")
	neverAck(t, c)

	dl := onlyDeadLetter(t, e.js)
	if dl.Subject != "dlq.orders.created" {
		t.Errorf("subject = %q, want dlq.orders.created", dl.Subject)
	}
	if string(dl.Data) != string(orig.Data) {
		t.Errorf("body = %s, want %s", dl.Data, orig.Data)
	}
	for k, vs := range orig.Header {
		if strings.HasPrefix(strings.ToLower(k), "ce-") {
			header(t, dl.Header, k, vs[0])
		}
	}
	header(t, dl.Header, events.HeaderID, ev.ID)
	header(t, dl.Header, events.HeaderDLQStream, ordersStream)
	header(t, dl.Header, events.HeaderDLQConsumer, billing)
	header(t, dl.Header, events.HeaderDLQSubject, "orders.created")
	header(t, dl.Header, events.HeaderDLQSequence, "1")
	header(t, dl.Header, events.HeaderDLQDeliveries, "2")
	header(t, dl.Header, events.HeaderDLQReason, "max deliveries reached (2)")
	header(t, dl.Header, events.HeaderDLQTime, fixedTime.Format(time.RFC3339Nano))
	header(t, dl.Header, events.HeaderDLQMsgID, ev.ID)
	header(t, dl.Header, events.HeaderMsgID, events.DeadLetterMsgID(ordersStream, 1))

	fw, already, notStored := h.snapshot()
	if len(fw) != 1 || fw[0] != billingKey || len(already) != 0 || len(notStored) != 0 {
		t.Errorf("hooks: forwarded %v, already %v, not stored %v; want [%s], [], []", fw, already, notStored, billingKey)
	}
	if s := r.f.Stats(); s.Forwarded != 1 || s.Malformed != 0 || s.NotStored != 0 {
		t.Errorf("stats = %+v", s)
	}
	if got := testutil.ToFloat64(forwardedTotal) - forwarded0; got != 1 {
		t.Errorf("eventstream_operator_dead_letters_forwarded_total rose by %v, want 1", got)
	}
	if got := histogramCount(t, advisoryLag) - lag0; got < 1 {
		t.Errorf("eventstream_operator_advisory_lag_seconds observed %v advisories, want at least 1", got)
	}
}

// histogramCount is the number of observations of h.
func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestAdvisoryWhileForwarderDown(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	e.dlq(t)
	// The first run creates the capture stream, then the operator goes away.
	start(t, e.nc, billingResolver, false).stop()

	e.publishOrder(t, "orders.shipped")
	m := fetchOne(t, c)
	if err := m.TermWithReason("address unknown"); err != nil {
		t.Fatal(err)
	}
	eventstest.WaitForMsgs(t, e.js, DefaultStreamName, 1, 5*time.Second)
	if n := eventstest.StreamMsgs(t, e.js, dlqStream); n != 0 {
		t.Fatalf("DLQ holds %d messages before the forwarder runs", n)
	}

	start(t, e.nc, billingResolver, false)
	dl := onlyDeadLetter(t, e.js)
	if dl.Subject != "dlq.orders.shipped" {
		t.Errorf("subject = %q", dl.Subject)
	}
	header(t, dl.Header, events.HeaderDLQReason, "address unknown")
	header(t, dl.Header, events.HeaderDLQDeliveries, "1")
}

func TestTermWithReasonIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	e.dlq(t)
	h := &hooks{}
	start(t, e.nc, billingResolver, false, h.options()...)

	e.publishOrder(t, "orders.created")
	e.publishOrder(t, "orders.created")
	m := fetchOne(t, c)
	if err := m.TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	dl := onlyDeadLetter(t, e.js)
	header(t, dl.Header, events.HeaderDLQReason, "bad payload")
	header(t, dl.Header, events.HeaderDLQSequence, "1")
	header(t, dl.Header, events.HeaderDLQDeliveries, "1")
	header(t, dl.Header, events.HeaderMsgID, events.DeadLetterMsgID(ordersStream, 1))

	// A plain Term without a reason is dead-lettered too.
	m = fetchOne(t, c)
	if err := m.Term(); err != nil {
		t.Fatal(err)
	}
	eventstest.WaitForMsgs(t, e.js, dlqStream, 2, 10*time.Second)
	dl = eventstest.GetMsg(t, e.js, dlqStream, 2)
	header(t, dl.Header, events.HeaderDLQReason, "terminated by the consumer")
	header(t, dl.Header, events.HeaderDLQSequence, "2")
	if fw, _, _ := h.snapshot(); len(fw) != 2 {
		t.Errorf("forwarded %v, want two", fw)
	}
}

func TestAlreadyDeadLetteredByLibrary(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	e.dlq(t)
	h := &hooks{}
	r := start(t, e.nc, billingResolver, false, h.options()...)

	// 1. What pkg/events does: publish the dead letter, then Term with
	// TermReasonDeadLettered.
	e.publishOrder(t, "orders.created")
	m := fetchOne(t, c)
	meta, _ := m.Metadata()
	libDL := events.NewDeadLetterMsg("dlq.orders.created", m.Headers(), m.Data(), events.DeadLetterInfo{
		Stream: meta.Stream, Consumer: meta.Consumer, Subject: m.Subject(), Sequence: meta.Sequence.Stream,
		Deliveries: meta.NumDelivered, Reason: "handler: boom", Time: fixedTime,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.js.PublishMsg(ctx, libDL); err != nil {
		t.Fatal(err)
	}
	if err := m.TermWithReason(events.TermReasonDeadLettered + ": handler: boom"); err != nil {
		t.Fatal(err)
	}
	dl := onlyDeadLetter(t, e.js)
	header(t, dl.Header, events.HeaderDLQReason, "handler: boom")
	eventually(t, 5*time.Second, "already-dead-lettered hook", func() bool {
		_, already, _ := h.snapshot()
		return len(already) == 1
	})

	// 2. A race: the library stored the dead letter but its Term carried
	// another reason; the forwarder's publish is a duplicate.
	e.publishOrder(t, "orders.created")
	m = fetchOne(t, c)
	meta, _ = m.Metadata()
	libDL = events.NewDeadLetterMsg("dlq.orders.created", m.Headers(), m.Data(), events.DeadLetterInfo{
		Stream: meta.Stream, Consumer: meta.Consumer, Subject: m.Subject(), Sequence: meta.Sequence.Stream,
		Deliveries: meta.NumDelivered, Reason: "library reason", Time: fixedTime,
	})
	if _, err := e.js.PublishMsg(ctx, libDL); err != nil {
		t.Fatal(err)
	}
	if err := m.TermWithReason("other reason"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "second already-dead-lettered", func() bool {
		_, already, _ := h.snapshot()
		return len(already) == 2
	})
	advisoriesDone(t, e.js)
	if n := eventstest.StreamMsgs(t, e.js, dlqStream); n != 2 {
		t.Fatalf("DLQ holds %d messages, want 2", n)
	}
	header(t, eventstest.GetMsg(t, e.js, dlqStream, 2).Header, events.HeaderDLQReason, "library reason")
	if fw, _, _ := h.snapshot(); len(fw) != 0 {
		t.Errorf("forwarded %v, want none", fw)
	}
	if s := r.f.Stats(); s.AlreadyDeadLettered != 2 || s.Forwarded != 0 {
		t.Errorf("stats = %+v", s)
	}
}

// TestWithSubscriber runs the real pkg/events subscriber: its own dead
// letter and the forwarder's meet in one message.
func TestWithSubscriber(t *testing.T) {
	e := newEnv(t)
	e.orders(t)
	e.dlq(t)
	h := &hooks{}
	start(t, e.nc, billingResolver, false, h.options()...)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := events.SubscribeDurable(ctx, e.js, ordersStream, billing, func(context.Context, *events.Event) error {
		return events.Permanent(errors.New("cannot bill"))
	}, events.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Stop(context.Background()) }()
	e.publishOrder(t, "orders.created")
	dl := onlyDeadLetter(t, e.js)
	if !strings.Contains(dl.Header.Get(events.HeaderDLQReason), "cannot bill") {
		t.Errorf("reason = %q", dl.Header.Get(events.HeaderDLQReason))
	}
	eventually(t, 5*time.Second, "already-dead-lettered hook", func() bool {
		fw, already, _ := h.snapshot()
		return len(already) == 1 && len(fw) == 0
	})
}

func TestUnmanagedConsumerIsSkipped(t *testing.T) {
	e := newEnv(t)
	e.orders(t)
	other := e.consumer(t, "reporting")
	e.dlq(t)
	h := &hooks{}
	r := start(t, e.nc, billingResolver, false, h.options()...)

	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, other).TermWithReason("not mine"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "advisory handled", func() bool { return r.f.Stats().Unmanaged == 1 })
	advisoriesDone(t, e.js)
	if n := eventstest.StreamMsgs(t, e.js, dlqStream); n != 0 {
		t.Errorf("DLQ holds %d messages, want 0", n)
	}
	if fw, already, ns := h.snapshot(); len(fw)+len(already)+len(ns) != 0 {
		t.Errorf("hooks called: %v %v %v", fw, already, ns)
	}
}

func TestNotStoredUntilDLQStreamExists(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	h := &hooks{}
	notStored0 := testutil.ToFloat64(notStoredTotal)
	r := start(t, e.nc, billingResolver, false, h.options()...)

	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "OnNotStored", func() bool {
		_, _, ns := h.snapshot()
		return len(ns) >= 2 // retried at least once
	})
	_, _, ns := h.snapshot()
	if ns[0] != billingKey+" dlq.orders.created" {
		t.Errorf("OnNotStored(%q), want %q", ns[0], billingKey+" dlq.orders.created")
	}
	h.mu.Lock()
	if !errors.Is(h.errs[0], jetstream.ErrNoStreamResponse) {
		t.Errorf("OnNotStored error = %v, want no stream response", h.errs[0])
	}
	h.mu.Unlock()
	if got := testutil.ToFloat64(notStoredTotal) - notStored0; got < 2 {
		t.Errorf("eventstream_operator_dead_letters_not_stored_total rose by %v, want at least 2", got)
	}

	e.dlq(t)
	dl := onlyDeadLetter(t, e.js)
	header(t, dl.Header, events.HeaderDLQReason, "bad payload")
	if s := r.f.Stats(); s.Forwarded != 1 || s.Retried < 2 {
		t.Errorf("stats = %+v", s)
	}
}

func TestMalformedAdvisories(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	e.dlq(t)
	malformed0 := testutil.ToFloat64(malformedTotal)
	r := start(t, e.nc, billingResolver, false)

	garbage := map[string]string{
		MaxDeliveriesAdvisoryPrefix + ".ORDERS.billing": "not json {",
		TerminatedAdvisoryPrefix + ".ORDERS.billing":    `{}`,
		MaxDeliveriesAdvisoryPrefix + ".X.Y":            `{"stream":"ORDERS","consumer":"billing"}`,
		TerminatedAdvisoryPrefix + ".A.B":               `{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"ORDERS","consumer":"billing","stream_seq":1}`,
		MaxDeliveriesAdvisoryPrefix + ".C.D":            `[1,2,3]`,
		TerminatedAdvisoryPrefix + ".E.F":               `{"stream":"OR.DERS","consumer":"billing","stream_seq":1}`,
	}
	for subj, body := range garbage {
		if err := e.nc.Publish(subj, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "malformed advisories handled", func() bool {
		return r.f.Stats().Malformed == uint64(len(garbage))
	})
	if got := testutil.ToFloat64(malformedTotal) - malformed0; got != float64(len(garbage)) {
		t.Errorf("eventstream_operator_dead_letters_malformed_total rose by %v, want %d", got, len(garbage))
	}
	advisoriesDone(t, e.js)

	// Still working.
	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	onlyDeadLetter(t, e.js)
}

func TestOriginalGoneIsSkipped(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	e.dlq(t)
	start(t, e.nc, billingResolver, false).stop()

	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	eventstest.WaitForMsgs(t, e.js, DefaultStreamName, 1, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, ordersStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(ctx, 1); err != nil {
		t.Fatal(err)
	}

	h := &hooks{}
	r := start(t, e.nc, billingResolver, false, h.options()...)
	eventually(t, 10*time.Second, "gone original handled", func() bool { return r.f.Stats().OriginalGone == 1 })
	advisoriesDone(t, e.js)
	if n := eventstest.StreamMsgs(t, e.js, dlqStream); n != 0 {
		t.Errorf("DLQ holds %d messages, want 0", n)
	}
	if fw, already, ns := h.snapshot(); len(fw)+len(already)+len(ns) != 0 {
		t.Errorf("hooks called: %v %v %v", fw, already, ns)
	}
}

func TestConsumerDeletedIsRecreated(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	e.dlq(t)
	r := start(t, e.nc, billingResolver, false)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.js.DeleteConsumer(ctx, DefaultStreamName, DefaultConsumerName); err != nil {
		t.Fatal(err)
	}
	// Advisories keep being captured while the consumer is missing.
	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	onlyDeadLetter(t, e.js)
	if s := r.f.Stats(); s.Forwarded != 1 {
		t.Errorf("stats = %+v", s)
	}
}

// TestNATSDownAtStartAndRestart starts the forwarder while the server is
// down, then restarts the server while it runs.
func TestNATSDownAtStartAndRestart(t *testing.T) {
	e := newEnv(t)
	file := func(c *events.StreamConfig) { c.Storage = jetstream.FileStorage }
	c := e.orders(t, file)
	e.dlq(t, file)

	e.srv.Shutdown()
	r := start(t, e.nc, billingResolver, true)
	time.Sleep(300 * time.Millisecond)
	select {
	case <-r.f.Ready():
		t.Fatal("ready while NATS is down")
	default:
	}
	if err := e.srv.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.f.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready 10s after NATS came back")
	}

	e.srv.Restart(t)
	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	dl := onlyDeadLetter(t, e.js)
	header(t, dl.Header, events.HeaderDLQReason, "bad payload")
}

func TestCaptureStreamConfig(t *testing.T) {
	e := newEnv(t)
	start(t, e.nc, billingResolver, false).stop()
	info, err := events.GetStreamInfo(context.Background(), e.js, DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	want := []string{"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>", "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>"}
	if strings.Join(cfg.Subjects, ",") != strings.Join(want, ",") {
		t.Errorf("subjects = %v, want %v", cfg.Subjects, want)
	}
	if cfg.Storage != jetstream.FileStorage || cfg.MaxAge != 7*24*time.Hour || cfg.MaxBytes != 256<<20 ||
		cfg.Discard != jetstream.DiscardOld || cfg.Retention != jetstream.WorkQueuePolicy ||
		cfg.Metadata[OwnerMetadataKey] != OwnerMetadataValue {
		t.Errorf("config = %+v", cfg)
	}
	ci, err := admin.GetConsumerInfo(context.Background(), e.js, DefaultStreamName, DefaultConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	cc := ci.Config
	if cc.AckPolicy != jetstream.AckExplicitPolicy || cc.AckWait != 30*time.Second || cc.MaxDeliver != -1 ||
		cc.MaxAckPending != DefaultMaxAckPending || cc.Durable != DefaultConsumerName {
		t.Errorf("consumer config = %+v", cc)
	}

	// A second start changes nothing.
	created := info.Created
	start(t, e.nc, billingResolver, false).stop()
	info2, err := events.GetStreamInfo(context.Background(), e.js, DefaultStreamName)
	if err != nil {
		t.Fatal(err)
	}
	if d := admin.DiffStream(New(e.nc, billingResolver).StreamConfig(), info2.Config); len(d) != 0 || !info2.Created.Equal(created) {
		t.Errorf("second start: diff %v, created %v vs %v", d, info2.Created, created)
	}
}

func TestParseAdvisory(t *testing.T) {
	adv, term, err := parseAdvisory(TerminatedAdvisoryPrefix+".S.C",
		[]byte(`{"type":"io.nats.jetstream.advisory.v1.terminated","id":"x","timestamp":"2026-01-01T00:00:00Z","stream":"S","consumer":"C","consumer_seq":4,"stream_seq":7,"deliveries":3,"reason":"r","domain":"d"}`))
	if err != nil || !term || adv.Stream != "S" || adv.Consumer != "C" || adv.StreamSeq != 7 || adv.Deliveries != 3 || adv.Reason != "r" {
		t.Errorf("terminated: %+v %v %v", adv, term, err)
	}
	if adv.Timestamp != "2026-01-01T00:00:00Z" {
		t.Errorf("timestamp %q", adv.Timestamp)
	}
	// A timestamp is only for the lag metric: a bad one is no reason to
	// drop the dead letter.
	if _, _, err := parseAdvisory(MaxDeliveriesAdvisoryPrefix+".S.C",
		[]byte(`{"timestamp":"yesterday","stream":"S","consumer":"C","stream_seq":9}`)); err != nil {
		t.Errorf("an advisory with a bad timestamp: %v", err)
	}
	adv, term, err = parseAdvisory(MaxDeliveriesAdvisoryPrefix+".S.C",
		[]byte(`{"type":"io.nats.jetstream.advisory.v1.max_deliver","stream":"S","consumer":"C","stream_seq":9,"deliveries":5}`))
	if err != nil || term || adv.StreamSeq != 9 || adv.Deliveries != 5 {
		t.Errorf("max deliveries: %+v %v %v", adv, term, err)
	}
	for _, bad := range []string{"", "null", "{", `{"stream":1}`, `{"stream":"S","consumer":"C"}`, `{"stream":"S","consumer":"","stream_seq":1}`} {
		if _, _, err := parseAdvisory(MaxDeliveriesAdvisoryPrefix+".S.C", []byte(bad)); err == nil {
			t.Errorf("parseAdvisory(%q) = nil error", bad)
		}
	}
	if _, _, err := parseAdvisory("other.subject", []byte(`{}`)); err == nil {
		t.Error("unexpected subject accepted")
	}
}

// The lag is the time from the advisory's timestamp to its handling; no
// valid timestamp, no observation.
func TestObserveLag(t *testing.T) {
	before := histogramCount(t, advisoryLag)
	observeLag("2026-01-01T00:00:00Z", time.Date(2026, 1, 1, 0, 0, 2, 0, time.UTC))
	observeLag("", time.Now())
	observeLag("yesterday", time.Now())
	if got := histogramCount(t, advisoryLag) - before; got != 1 {
		t.Errorf("%d observations, want 1", got)
	}
}

func TestRetryDelay(t *testing.T) {
	f := New(nil, nil, WithRetryDelay(time.Second, 5*time.Second))
	for n, want := range map[uint64]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 40: 5 * time.Second} {
		if got := f.retryDelay(n); got != want {
			t.Errorf("retryDelay(%d) = %s, want %s", n, got, want)
		}
	}
	if err := New(nil, billingResolver).Start(context.Background()); err == nil {
		t.Error("Start without a connection returned nil")
	}
}

func TestTargetSubject(t *testing.T) {
	e := newEnv(t)
	c := e.orders(t)
	e.dlq(t)
	h := &hooks{}
	valid := true
	var mu sync.Mutex
	resolve := func(stream, consumer string) (Target, bool) {
		mu.Lock()
		defer mu.Unlock()
		if !valid {
			return Target{Key: billingKey, Subject: func(string) string { return "dlq.*" }}, true
		}
		return Target{Key: billingKey, Subject: func(orig string) string { return "dlq.billing." + orig }}, true
	}
	r := start(t, e.nc, resolve, false, h.options()...)

	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	if dl := onlyDeadLetter(t, e.js); dl.Subject != "dlq.billing.orders.created" {
		t.Errorf("subject = %q", dl.Subject)
	}

	// A subject no one can publish on is reported and retried.
	mu.Lock()
	valid = false
	mu.Unlock()
	e.publishOrder(t, "orders.created")
	if err := fetchOne(t, c).TermWithReason("bad payload"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "OnNotStored", func() bool {
		_, _, ns := h.snapshot()
		return len(ns) >= 1
	})
	if _, _, ns := h.snapshot(); ns[0] != billingKey+" dlq.*" {
		t.Errorf("OnNotStored(%q)", ns[0])
	}
	if s := r.f.Stats(); s.Forwarded != 1 {
		t.Errorf("stats = %+v", s)
	}
	if err := r.f.Start(context.Background()); err == nil {
		t.Error("second Start returned nil")
	}
}

// A leaf node's consumer gives up on a message: its MAX_DELIVERIES advisory
// crosses the leaf node connection into the hub's capture stream, but names
// a stream of the leaf's JetStream domain. The forwarder on the hub skips
// it rather than forward the hub's message of the same stream name and
// sequence.
func TestAdvisoriesOfAnotherDomainAreNotForwarded(t *testing.T) {
	hub := eventstest.RunJetStream(t, eventstest.WithLeafNodes())
	leaf := eventstest.RunLeaf(t, hub, "leaf")
	e := &env{srv: hub, nc: hub.Conn(t), js: hub.JetStream(t)}
	e.orders(t)
	e.dlq(t)
	e.publishOrder(t, "orders.hub") // the hub's ORDERS seq 1, which must not be dead-lettered
	h := &hooks{}
	r := start(t, e.nc, billingResolver, false, h.options()...)

	l := &env{srv: leaf, nc: leaf.Conn(t), js: leaf.JetStream(t)}
	c := l.orders(t)
	l.publishOrder(t, "orders.leaf")
	neverAck(t, c)

	eventually(t, 10*time.Second, "the leaf's advisory reached the hub's forwarder", func() bool {
		st := r.f.Stats()
		return st.Unmanaged+st.Forwarded+st.OriginalGone >= 1
	})
	advisoriesDone(t, e.js)
	if n := eventstest.StreamMsgs(t, e.js, dlqStream); n != 0 {
		t.Fatalf("the hub's DLQ holds %d messages, want none", n)
	}
	if fwd, _, _ := h.snapshot(); len(fwd) != 0 {
		t.Fatalf("forwarded %v, want nothing", fwd)
	}
}
