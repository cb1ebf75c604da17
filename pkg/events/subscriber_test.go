package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

type subEnv struct {
	srv *eventstest.Server
	js  jetstream.JetStream
	pub *events.Publisher
}

func setupSub(t *testing.T) subEnv {
	t.Helper()
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, events.StreamAuth, []string{"auth.>"})
	eventstest.CreateStream(t, js, events.StreamDLQ, []string{"dlq.>"})
	pub, err := events.NewPublisher(srv.Conn(t), events.WithRetry(1, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return subEnv{srv, js, pub}
}

func (env subEnv) publish(t *testing.T, subject string, e *events.Event) {
	t.Helper()
	if err := env.pub.Publish(ctxT(t, 10*time.Second), subject, e); err != nil {
		t.Fatal(err)
	}
}

func subscribe(t *testing.T, env subEnv, consumer string, h events.Handler, cfg events.SubscriberConfig) *events.Subscription {
	t.Helper()
	sub, err := events.SubscribeDurable(ctxT(t, time.Minute), env.js, events.StreamAuth, consumer, h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sub.Stop(ctx)
	})
	return sub
}

func consumerInfo(t *testing.T, env subEnv, consumer string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx := ctxT(t, 5*time.Second)
	c, err := env.js.Consumer(ctx, events.StreamAuth, consumer)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSubscribeDeliversAndAcks(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	want := newEvent(t, "user.created", map[string]any{"user_id": "u1", "n": float64(3)})
	want.Subject = "u 1"
	want.Extensions = map[string]string{"traceparent": "00-1"}
	got := make(chan *events.Event, 1)
	sub := subscribe(t, env, "c1", func(ctx context.Context, e *events.Event) error {
		got <- e
		return nil
	}, events.SubscriberConfig{FilterSubjects: []string{"auth.user.>"}})
	env.publish(t, "auth.user.created", want)
	select {
	case e := <-got:
		want.DataContentType = events.ContentTypeJSON // as the publisher declared it
		if !reflect.DeepEqual(e, want) {
			t.Fatalf("got %#v\nwant %#v", e, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	waitUntil(t, 5*time.Second, "ack", func() bool { return consumerInfo(t, env, "c1").NumAckPending == 0 && sub.Stats().Acked == 1 })
	info := consumerInfo(t, env, "c1")
	if info.Config.MaxDeliver != 3 || info.Config.AckWait != 10*time.Second || info.Config.FilterSubject != "auth.user.>" {
		t.Fatalf("consumer created with %+v", info.Config)
	}
}

func TestFailingHandlerBacksOff(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	backoff := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond}
	var mu sync.Mutex
	var times []time.Time
	sub := subscribe(t, env, "c", func(ctx context.Context, e *events.Event) error {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		return errors.New("downstream unavailable")
	}, events.SubscriberConfig{MaxDeliver: 3, BackOff: backoff})
	env.publish(t, "auth.user.created", newEvent(t, "user.created", nil))
	waitUntil(t, 10*time.Second, "dead letter", func() bool { return sub.Stats().DeadLettered == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 3 {
		t.Fatalf("%d deliveries, want 3", len(times))
	}
	for i, d := range backoff {
		if gap := times[i+1].Sub(times[i]); gap < d {
			t.Errorf("redelivery %d came %s after the failure, want at least %s", i+1, gap, d)
		}
	}
	if s := sub.Stats(); s.Retried != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestPermanentErrorDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	var calls atomic.Int32
	sub := subscribe(t, env, "perm", func(ctx context.Context, e *events.Event) error {
		calls.Add(1)
		return events.Permanent(errors.New("unknown user"))
	}, events.SubscriberConfig{MaxDeliver: 5, BackOff: []time.Duration{time.Second}})
	e := newEvent(t, "user.created", map[string]any{"user_id": "u1"})
	e.Extensions = map[string]string{"traceparent": "00-1"}
	env.publish(t, "auth.user.created", e)
	eventstest.WaitForMsgs(t, env.js, events.StreamDLQ, 1, 5*time.Second)
	if calls.Load() != 1 {
		t.Fatalf("handler called %d times, want 1", calls.Load())
	}
	orig := eventstest.GetMsg(t, env.js, events.StreamAuth, 1)
	dl := eventstest.GetMsg(t, env.js, events.StreamDLQ, 1)
	if dl.Subject != "dlq.auth.user.created" {
		t.Errorf("dead letter subject %q", dl.Subject)
	}
	if string(dl.Data) != string(orig.Data) {
		t.Errorf("body %q, want the original %q", dl.Data, orig.Data)
	}
	for k, v := range orig.Header {
		if k == "Nats-Msg-Id" {
			continue
		}
		if !reflect.DeepEqual(dl.Header[k], v) {
			t.Errorf("header %s = %v, want the original %v", k, dl.Header[k], v)
		}
	}
	want := map[string]string{
		events.HeaderDLQStream:     events.StreamAuth,
		events.HeaderDLQConsumer:   "perm",
		events.HeaderDLQSubject:    "auth.user.created",
		events.HeaderDLQSequence:   "1",
		events.HeaderDLQDeliveries: "1",
		events.HeaderDLQMsgID:      e.ID,
		"Nats-Msg-Id":              events.DeadLetterMsgID(events.StreamAuth, 1),
	}
	for k, v := range want {
		if got := dl.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if r := dl.Header.Get(events.HeaderDLQReason); !strings.Contains(r, "unknown user") {
		t.Errorf("reason %q", r)
	}
	if _, err := time.Parse(time.RFC3339Nano, dl.Header.Get(events.HeaderDLQTime)); err != nil {
		t.Errorf("time: %v", err)
	}
	// The dead letter decodes as the same event.
	if got, err := events.DecodeParts(dl.Header, dl.Data); err != nil || got.ID != e.ID {
		t.Errorf("dead letter decodes to %+v, %v", got, err)
	}
	waitUntil(t, 5*time.Second, "termination", func() bool {
		return sub.Stats().DeadLettered == 1 && consumerInfo(t, env, "perm").NumAckPending == 0
	})
}

func TestLastDeliveryDeadLettersAndTerminates(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	// Watch the termination advisory for its reason.
	nc := env.srv.Conn(t)
	reasons := make(chan string, 4)
	_, err := nc.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>", func(m *nats.Msg) {
		var adv struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(m.Data, &adv)
		reasons <- adv.Reason
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	var calls atomic.Int32
	subscribe(t, env, "last", func(ctx context.Context, e *events.Event) error {
		calls.Add(1)
		return errors.New("still failing")
	}, events.SubscriberConfig{MaxDeliver: 2, BackOff: []time.Duration{50 * time.Millisecond}, AckWait: 300 * time.Millisecond})
	env.publish(t, "auth.user.created", newEvent(t, "user.created", nil))
	eventstest.WaitForMsgs(t, env.js, events.StreamDLQ, 1, 5*time.Second)
	select {
	case r := <-reasons:
		if !strings.HasPrefix(r, events.TermReasonDeadLettered) {
			t.Fatalf("term reason %q does not start with %q", r, events.TermReasonDeadLettered)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no MSG_TERMINATED advisory")
	}
	// Well past the ack wait: no further delivery.
	time.Sleep(800 * time.Millisecond)
	if calls.Load() != 2 {
		t.Fatalf("handler called %d times, want 2", calls.Load())
	}
	info := consumerInfo(t, env, "last")
	if info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Fatalf("consumer still holds the message: %+v", info)
	}
	dl := eventstest.GetMsg(t, env.js, events.StreamDLQ, 1)
	if dl.Header.Get(events.HeaderDLQDeliveries) != "2" {
		t.Errorf("deliveries header %q", dl.Header.Get(events.HeaderDLQDeliveries))
	}
	if n := eventstest.StreamMsgs(t, env.js, events.StreamDLQ); n != 1 {
		t.Errorf("DLQ holds %d, want 1", n)
	}
}

func TestUndecodableMessageDeadLettered(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	var calls atomic.Int32
	subscribe(t, env, "dec", func(ctx context.Context, e *events.Event) error {
		calls.Add(1)
		return nil
	}, events.SubscriberConfig{})
	if _, err := env.js.Publish(ctxT(t, 5*time.Second), "auth.raw", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	eventstest.WaitForMsgs(t, env.js, events.StreamDLQ, 1, 5*time.Second)
	dl := eventstest.GetMsg(t, env.js, events.StreamDLQ, 1)
	if string(dl.Data) != "not an event" || !strings.Contains(dl.Header.Get(events.HeaderDLQReason), "decode") {
		t.Fatalf("dead letter %q %v", dl.Data, dl.Header)
	}
	if calls.Load() != 0 {
		t.Fatal("handler called for an undecodable message")
	}
}

// A Typed handler gets the data decoded into its type; data that does not
// decode into it is a permanent failure: dead-lettered at once, the handler
// never called.
func TestTypedHandlerDeadLettersDataThatDoesNotDecode(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	type userCreated struct {
		UserID int64  `json:"user_id"`
		Email  string `json:"email"`
	}
	got := make(chan userCreated, 2)
	sub := subscribe(t, env, "typed", events.Typed(func(ctx context.Context, e *events.Event, u userCreated) error {
		got <- u
		return nil
	}), events.SubscriberConfig{MaxDeliver: 5})
	good := newEvent(t, "user.created", userCreated{UserID: 1<<53 + 1, Email: "a@example.com"})
	bad := newEvent(t, "user.created", map[string]any{"user_id": "not a number"})
	env.publish(t, "auth.user.created", good)
	env.publish(t, "auth.user.created", bad)
	select {
	case u := <-got:
		if u.UserID != 1<<53+1 || u.Email != "a@example.com" {
			t.Fatalf("typed data %+v", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	waitUntil(t, 10*time.Second, "dead letter", func() bool { return sub.Stats().DeadLettered == 1 })
	dl := eventstest.GetMsg(t, env.js, events.StreamDLQ, 1)
	if dl.Header.Get("ce-id") != bad.ID || dl.Header.Get(events.HeaderDLQDeliveries) != "1" ||
		!strings.Contains(dl.Header.Get(events.HeaderDLQReason), "invalid data") {
		t.Fatalf("dead letter headers %v", dl.Header)
	}
	if st := sub.Stats(); st.Acked != 1 || st.Retried != 0 {
		t.Fatalf("stats %+v", st)
	}
	if len(got) != 0 {
		t.Fatal("handler called for data that does not decode")
	}
}

// Decode does not validate JSON data: an event whose data is not JSON
// reaches a plain handler, and when the handler returns DataAs's error as it
// is (not wrapped in Permanent), the event is dead-lettered on its first
// delivery — a *ValidationError is permanent — not retried.
func TestInvalidJSONDataWithPlainHandlerDeadLettersAtOnce(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	var calls atomic.Int32
	sub := subscribe(t, env, "badjson", func(ctx context.Context, e *events.Event) error {
		calls.Add(1)
		_, err := events.DataAs[map[string]any](e)
		return err
	}, events.SubscriberConfig{MaxDeliver: 5, BackOff: []time.Duration{100 * time.Millisecond}})
	e := newEvent(t, "user.created", map[string]any{"user_id": "u1"})
	msg, err := events.Encode(e, events.ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	msg.Subject, msg.Data = "auth.user.created", []byte(`{"user_id":`)
	if _, err := env.js.PublishMsg(ctxT(t, 5*time.Second), msg); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "dead letter", func() bool { return sub.Stats().DeadLettered == 1 })
	dl := eventstest.GetMsg(t, env.js, events.StreamDLQ, 1)
	if dl.Header.Get("ce-id") != e.ID || dl.Header.Get(events.HeaderDLQDeliveries) != "1" ||
		!strings.Contains(dl.Header.Get(events.HeaderDLQReason), "invalid data") || string(dl.Data) != `{"user_id":` {
		t.Fatalf("dead letter %q %v", dl.Data, dl.Header)
	}
	if st := sub.Stats(); st.Retried != 0 || st.Acked != 0 || calls.Load() != 1 {
		t.Fatalf("stats %+v, handler called %d times; want one call, no retry", st, calls.Load())
	}
}

// A foreign CloudEvent (no UUID id, no time, no organizationid, no
// schemaversion) reaches the handler by default, and is dead-lettered as
// permanent with StrictValidation.
func TestStrictValidation(t *testing.T) {
	t.Parallel()
	foreign := func(id string) *nats.Msg {
		return &nats.Msg{Subject: "auth.user.created", Header: nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {id}, "ce-type": {"user.created"}, "ce-source": {"/elsewhere"},
			"ce-datacontenttype": {"application/json"},
		}, Data: []byte(`{"user_id":"u-9"}`)}
	}
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			t.Parallel()
			env := setupSub(t)
			got := make(chan *events.Event, 4)
			sub := subscribe(t, env, "strict", func(ctx context.Context, e *events.Event) error {
				got <- e
				return nil
			}, events.SubscriberConfig{StrictValidation: strict, MaxDeliver: 5})
			ctx := ctxT(t, 5*time.Second)
			if _, err := env.js.PublishMsg(ctx, foreign("order-1")); err != nil {
				t.Fatal(err)
			}
			platform := newEvent(t, "user.created", map[string]any{"user_id": "u-1"})
			env.publish(t, "auth.user.created", platform)
			if strict {
				waitUntil(t, 10*time.Second, "dead letter", func() bool {
					return sub.Stats().DeadLettered == 1 && sub.Stats().Acked == 1
				})
				dl := eventstest.GetMsg(t, env.js, events.StreamDLQ, 1)
				if dl.Header.Get("ce-id") != "order-1" || dl.Header.Get(events.HeaderDLQDeliveries) != "1" ||
					!strings.Contains(dl.Header.Get(events.HeaderDLQReason), "strict validation") ||
					!strings.Contains(dl.Header.Get(events.HeaderDLQReason), "invalid id") {
					t.Fatalf("dead letter headers %v", dl.Header)
				}
				if e := <-got; e.ID != platform.ID {
					t.Fatalf("handler got %+v", e)
				}
			} else {
				waitUntil(t, 10*time.Second, "acks", func() bool { return sub.Stats().Acked == 2 })
				e := <-got
				if e.ID != "order-1" || e.Source != "/elsewhere" || !e.Timestamp.IsZero() || e.OrganizationID != "" || e.SchemaVersion != "" {
					t.Fatalf("foreign event %+v", e)
				}
				if e2 := <-got; e2.ID != platform.ID {
					t.Fatalf("second event %+v", e2)
				}
				if st := sub.Stats(); st.DeadLettered != 0 {
					t.Fatalf("stats %+v", st)
				}
			}
			if len(got) != 0 {
				t.Fatalf("%d unexpected deliveries", len(got))
			}
		})
	}
}

func TestPanickingHandlerIsRecovered(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	var calls atomic.Int32
	sub := subscribe(t, env, "panic", func(ctx context.Context, e *events.Event) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	}, events.SubscriberConfig{BackOff: []time.Duration{20 * time.Millisecond}})
	env.publish(t, "auth.user.created", newEvent(t, "user.created", nil))
	env.publish(t, "auth.user.created", newEvent(t, "user.created", nil))
	waitUntil(t, 5*time.Second, "both handled", func() bool { return sub.Stats().Acked == 2 })
	if s := sub.Stats(); s.Retried != 1 || calls.Load() != 3 {
		t.Fatalf("stats %+v, calls %d", s, calls.Load())
	}
}

func TestStopWaitsForInFlightHandler(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	started := make(chan struct{})
	var finished atomic.Bool
	sub, err := events.SubscribeDurable(ctxT(t, time.Minute), env.js, events.StreamAuth, "stop", func(ctx context.Context, e *events.Event) error {
		close(started)
		time.Sleep(500 * time.Millisecond)
		finished.Store(true)
		return nil
	}, events.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	env.publish(t, "auth.user.created", newEvent(t, "user.created", nil))
	<-started
	if err := sub.Stop(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !finished.Load() {
		t.Fatal("Stop returned before the handler finished")
	}
	waitUntil(t, 5*time.Second, "ack", func() bool { return consumerInfo(t, env, "stop").NumAckPending == 0 })
	select {
	case <-sub.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
}

func TestStopGivesUpAtDeadline(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	started := make(chan struct{})
	cancelled := make(chan struct{})
	sub, err := events.SubscribeDurable(ctxT(t, time.Minute), env.js, events.StreamAuth, "stuck", func(ctx context.Context, e *events.Event) error {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}, events.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	env.publish(t, "auth.user.created", newEvent(t, "user.created", nil))
	<-started
	if err := sub.Stop(ctxT(t, 100*time.Millisecond)); !errors.Is(err, events.ErrTimeout) {
		t.Fatalf("Stop = %v, want ErrTimeout", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("handler context not cancelled")
	}
}

func TestLongHandlerKeepsItsMessage(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	var calls atomic.Int32
	sub := subscribe(t, env, "long", func(ctx context.Context, e *events.Event) error {
		calls.Add(1)
		time.Sleep(1500 * time.Millisecond)
		return nil
	}, events.SubscriberConfig{AckWait: 500 * time.Millisecond})
	env.publish(t, "auth.user.created", newEvent(t, "user.created", nil))
	waitUntil(t, 10*time.Second, "ack", func() bool { return sub.Stats().Acked == 1 })
	time.Sleep(200 * time.Millisecond)
	if calls.Load() != 1 {
		t.Fatalf("delivered %d times, want 1: InProgress did not keep the message", calls.Load())
	}
}

func TestBindsExistingConsumer(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	_, err := env.js.CreateConsumer(ctxT(t, 5*time.Second), events.StreamAuth, jetstream.ConsumerConfig{
		Durable: "declared", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 2, AckWait: 5 * time.Second,
		FilterSubject: "auth.user.>",
	})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	sub := subscribe(t, env, "declared", func(ctx context.Context, e *events.Event) error {
		calls.Add(1)
		return errors.New("fail")
	}, events.SubscriberConfig{MaxDeliver: 10, BackOff: []time.Duration{20 * time.Millisecond}})
	env.publish(t, "auth.user.created", newEvent(t, "user.created", nil))
	waitUntil(t, 5*time.Second, "dead letter", func() bool { return sub.Stats().DeadLettered == 1 })
	if calls.Load() != 2 {
		t.Fatalf("handler called %d times, want the consumer's MaxDeliver 2", calls.Load())
	}
	if info := consumerInfo(t, env, "declared"); info.Config.MaxDeliver != 2 {
		t.Fatal("existing consumer was modified")
	}
}

func TestConcurrentHandlers(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	var cur, peak atomic.Int32
	var seen sync.Map
	sub := subscribe(t, env, "conc", func(ctx context.Context, e *events.Event) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		cur.Add(-1)
		seen.Store(e.ID, true)
		return nil
	}, events.SubscriberConfig{Concurrency: 4})
	for i := 0; i < 16; i++ {
		env.publish(t, "auth.user.created", newEvent(t, "user.created", map[string]any{"i": strconv.Itoa(i)}))
	}
	waitUntil(t, 10*time.Second, "all handled", func() bool { return sub.Stats().Acked == 16 })
	if peak.Load() != 4 {
		t.Fatalf("peak concurrency %d, want 4", peak.Load())
	}
}

func TestDeadLetterDisabledTerminates(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	sub := subscribe(t, env, "nodlq", func(ctx context.Context, e *events.Event) error {
		return events.Permanent(fmt.Errorf("bad"))
	}, events.SubscriberConfig{DisableDeadLetter: true})
	env.publish(t, "auth.user.created", newEvent(t, "user.created", nil))
	waitUntil(t, 5*time.Second, "termination", func() bool { return sub.Stats().Terminated == 1 })
	if n := eventstest.StreamMsgs(t, env.js, events.StreamDLQ); n != 0 {
		t.Fatalf("DLQ holds %d", n)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("x")
	p := events.Permanent(base)
	if !errors.Is(p, events.ErrPermanent) || !errors.Is(p, base) {
		t.Fatal(p)
	}
	if events.Permanent(nil) != nil {
		t.Fatal("Permanent(nil) != nil")
	}
	if events.Permanent(p) != p {
		t.Fatal("double wrap")
	}
}

func TestSubscribeValidation(t *testing.T) {
	env := setupSub(t)
	h := func(context.Context, *events.Event) error { return nil }
	for name, call := range map[string]func() error{
		"nil handler": func() error {
			_, err := events.SubscribeDurable(context.Background(), env.js, "AUTH_EVENTS", "c", nil, events.SubscriberConfig{})
			return err
		},
		"bad consumer": func() error {
			_, err := events.SubscribeDurable(context.Background(), env.js, "AUTH_EVENTS", "a.b", h, events.SubscriberConfig{})
			return err
		},
		"bad dlq subject": func() error {
			_, err := events.SubscribeDurable(context.Background(), env.js, "AUTH_EVENTS", "c", h, events.SubscriberConfig{DeadLetterSubject: "dlq.*"})
			return err
		},
	} {
		if err := call(); !errors.Is(err, events.ErrValidation) {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, err := events.SubscribeDurable(context.Background(), env.js, "MISSING", "c", h, events.SubscriberConfig{})
	if !errors.Is(err, events.ErrNotFound) {
		t.Errorf("missing stream: %v", err)
	}
}

// A push consumer (an EventConsumer with deliverSubject) cannot be read by
// SubscribeDurable: it fails at once naming the consumer, rather than hang.
func TestSubscribeDurableRefusesAPushConsumer(t *testing.T) {
	t.Parallel()
	env := setupSub(t)
	ctx := ctxT(t, 10*time.Second)
	if _, err := env.js.CreatePushConsumer(ctx, events.StreamAuth, jetstream.ConsumerConfig{
		Durable: "pushed", AckPolicy: jetstream.AckExplicitPolicy, DeliverSubject: "deliver.pushed",
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sub, err := events.SubscribeDurable(ctx, env.js, events.StreamAuth, "pushed",
		func(context.Context, *events.Event) error { return nil }, events.SubscriberConfig{})
	if err == nil {
		_ = sub.Stop(ctx)
		t.Fatal("SubscribeDurable accepted a push consumer")
	}
	var verr *events.ValidationError
	if !errors.As(err, &verr) || verr.Field != "consumer" || !strings.Contains(err.Error(), "push consumer") || !strings.Contains(err.Error(), "pushed") {
		t.Fatalf("SubscribeDurable = %v, want a ValidationError naming the push consumer", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("SubscribeDurable took %v to refuse", d)
	}
}
