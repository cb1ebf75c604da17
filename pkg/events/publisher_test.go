package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func newEvent(t testing.TB, typ string, data any) *events.Event {
	t.Helper()
	e, err := events.NewEvent(typ, "auth-service", "org-1", t0, data)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func setup(t testing.TB, opts ...events.PublisherOption) (*eventstest.Server, jetstream.JetStream, *events.Publisher) {
	t.Helper()
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, "AUTH_EVENTS", []string{"auth.>"})
	pub, err := events.NewPublisher(srv.Conn(t), append([]events.PublisherOption{events.WithRetry(3, 50*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return srv, js, pub
}

func TestPublishStoresEventOnce(t *testing.T) {
	t.Parallel()
	_, js, pub := setup(t)
	ctx := ctxT(t, 10*time.Second)
	e := newEvent(t, "user.created", map[string]any{"user_id": "u1"})
	for i := 0; i < 2; i++ {
		if err := pub.Publish(ctx, "auth.user.created", e); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.PublishAsync(ctx, "auth.user.created", e); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := eventstest.StreamMsgs(t, js, "AUTH_EVENTS"); n != 1 {
		t.Fatalf("stream holds %d messages, want 1", n)
	}
	m := eventstest.GetMsg(t, js, "AUTH_EVENTS", 1)
	if m.Header.Get("Nats-Msg-Id") != e.ID || m.Header.Get("ce-id") != e.ID {
		t.Fatalf("headers %v", m.Header)
	}
	got, err := events.DecodeParts(m.Header, m.Data)
	if err != nil || got.ID != e.ID || string(got.Data) != `{"user_id":"u1"}` || string(m.Data) != string(e.Data) {
		t.Fatalf("decoded %+v, %v; body %s", got, err, m.Data)
	}
}

func TestPublishAckReportsSequenceAndDuplicate(t *testing.T) {
	t.Parallel()
	_, _, pub := setup(t)
	ctx := ctxT(t, 10*time.Second)
	e1, e2 := newEvent(t, "user.created", nil), newEvent(t, "user.created", nil)
	for i, tc := range []struct {
		e         *events.Event
		seq       uint64
		duplicate bool
	}{{e1, 1, false}, {e2, 2, false}, {e1, 1, true}} {
		ack, err := pub.PublishAck(ctx, "auth.user.created", tc.e)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Stream != "AUTH_EVENTS" || ack.Sequence != tc.seq || ack.Duplicate != tc.duplicate {
			t.Fatalf("publish %d: ack %+v, want sequence %d duplicate %v", i, ack, tc.seq, tc.duplicate)
		}
	}
	if _, err := pub.PublishAck(ctx, "auth.user.*", e1); !errors.Is(err, events.ErrValidation) {
		t.Fatalf("bad subject: %v", err)
	}
}

// The seed's provider interface, declared as a service declares it: the
// library's publisher satisfies it as it is.
type seedEventPublisher interface {
	Publish(ctx context.Context, subject string, event *events.Event) error
	PublishAsync(ctx context.Context, subject string, event *events.Event) error
	Close() error
}

func TestPublisherSatisfiesSeedInterface(t *testing.T) {
	t.Parallel()
	_, js, pub := setup(t)
	var provider seedEventPublisher = pub
	ctx := ctxT(t, 10*time.Second)
	e := newEvent(t, "user.created", map[string]interface{}{"user_id": "u-1", "email": "a@example.com"})
	if err := provider.PublishAsync(ctx, "auth.user.created", e); err != nil {
		t.Fatal(err)
	}
	if err := provider.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waited for the async publish.
	if n := eventstest.StreamMsgs(t, js, "AUTH_EVENTS"); n != 1 {
		t.Fatalf("stream holds %d messages after Close, want 1", n)
	}
	if err := provider.Publish(ctx, "auth.user.created", newEvent(t, "user.created", nil)); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
	if err := provider.PublishAsync(ctx, "auth.user.created", newEvent(t, "user.created", nil)); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("async publish after Close: %v", err)
	}
	if err := provider.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Close waits at most the retry budget (publish timeout × attempts + the
// longest pauses): an async publish still pending then makes it return
// ErrTimeout. Here the error handler of a publish that failed holds it
// pending for longer than the budget.
func TestCloseIsBoundedByTheRetryBudget(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var handled atomic.Int32
	_, _, pub := setup(t, events.WithRetry(1, 50*time.Millisecond), events.WithRetryJitter(0.5),
		events.WithPublishTimeout(100*time.Millisecond),
		events.WithErrorHandler(func(string, *events.Event, error) {
			handled.Add(1)
			<-release
		}))
	defer close(release)
	ctx := ctxT(t, 10*time.Second)
	if err := pub.PublishAsync(ctx, "nowhere.x", newEvent(t, "x", nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return handled.Load() == 1 })
	budget := 2*100*time.Millisecond + 75*time.Millisecond // 2 attempts; one pause of 50ms +50 %
	start := time.Now()
	err := pub.Close()
	took := time.Since(start)
	var opErr *events.OpError
	if !errors.As(err, &opErr) || !errors.Is(err, events.ErrTimeout) || !strings.Contains(err.Error(), "1 asynchronous publishes still pending") {
		t.Fatalf("Close() = %v, want an ErrTimeout OpError naming 1 pending publish", err)
	}
	if took < budget || took > budget+2*time.Second {
		t.Fatalf("Close took %s, want about the budget %s", took, budget)
	}
	if pub.Pending() != 1 {
		t.Fatalf("pending %d", pub.Pending())
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPublishStructuredMode(t *testing.T) {
	t.Parallel()
	_, js, pub := setup(t, events.WithStructuredMode())
	e := newEvent(t, "user.created", map[string]any{"user_id": "u1"})
	if err := pub.Publish(ctxT(t, 10*time.Second), "auth.user.created", e); err != nil {
		t.Fatal(err)
	}
	m := eventstest.GetMsg(t, js, "AUTH_EVENTS", 1)
	if m.Header.Get("content-type") != events.ContentTypeCloudEventsJSON || m.Header.Get("ce-id") != "" {
		t.Fatalf("headers %v", m.Header)
	}
	got, err := events.DecodeParts(m.Header, m.Data)
	if err != nil || got.ID != e.ID {
		t.Fatalf("decoded %+v, %v", got, err)
	}
}

func TestInvalidEventNeverReachesStream(t *testing.T) {
	t.Parallel()
	srv, js, pub := setup(t)
	ctx := ctxT(t, 10*time.Second)
	bad := newEvent(t, "user.created", nil)
	bad.OrganizationID = ""
	notJSON := newEvent(t, "user.created", nil)
	notJSON.Data = json.RawMessage(`{"user_id":`)
	huge := newEvent(t, "user.created", map[string]any{"blob": strings.Repeat("x", int(srv.Conn(t).MaxPayload()))})
	for name, tc := range map[string]struct {
		subject, field string
		e              *events.Event
	}{
		"invalid":       {"auth.user.created", "organizationid", bad},
		"data not JSON": {"auth.user.created", "data", notJSON},
		"too large":     {"auth.user.created", "size", huge},
		"bad subject":   {"auth.user.*", "subject", newEvent(t, "x", nil)},
		"nil event":     {"auth.user.created", "event", nil},
	} {
		for _, async := range []bool{false, true} {
			var err error
			if async {
				err = pub.PublishAsync(ctx, tc.subject, tc.e)
			} else {
				err = pub.Publish(ctx, tc.subject, tc.e)
			}
			var verr *events.ValidationError
			if !errors.As(err, &verr) || verr.Field != tc.field {
				t.Errorf("%s (async %v): %v, want ValidationError for %s", name, async, err, tc.field)
			}
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := eventstest.StreamMsgs(t, js, "AUTH_EVENTS"); n != 0 {
		t.Fatalf("stream holds %d messages, want 0", n)
	}
}

func TestPublishNoStreamIsTransientAndRetried(t *testing.T) {
	t.Parallel()
	_, _, pub := setup(t, events.WithRetry(2, 20*time.Millisecond), events.WithRetryJitter(0))
	start := time.Now()
	err := pub.Publish(ctxT(t, 10*time.Second), "nowhere.user.created", newEvent(t, "x", nil))
	var opErr *events.OpError
	if !errors.As(err, &opErr) || !errors.Is(err, events.ErrConnection) || !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("err = %v, want OpError matching ErrConnection", err)
	}
	if time.Since(start) < 60*time.Millisecond { // 20ms + 40ms of backoff
		t.Fatalf("returned after %s: not retried with backoff", time.Since(start))
	}
}

func TestPublishHonoursContextDuringBackoff(t *testing.T) {
	t.Parallel()
	_, _, pub := setup(t, events.WithRetry(3, 10*time.Second))
	ctx := ctxT(t, 300*time.Millisecond)
	start := time.Now()
	err := pub.Publish(ctx, "nowhere.x", newEvent(t, "x", nil))
	if !errors.Is(err, events.ErrTimeout) || time.Since(start) > 3*time.Second {
		t.Fatalf("err = %v after %s", err, time.Since(start))
	}
}

func TestPublishRefusedIsNotRetried(t *testing.T) {
	t.Parallel()
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, "SMALL", []string{"small.>"}, func(c *events.StreamConfig) {
		c.MaxMsgs = 1
		c.Discard = jetstream.DiscardNew
	})
	pub, err := events.NewPublisher(srv.Conn(t), events.WithRetry(3, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 10*time.Second)
	if err := pub.Publish(ctx, "small.a", newEvent(t, "x", nil)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = pub.Publish(ctx, "small.a", newEvent(t, "x", nil))
	var apiErr *jetstream.APIError
	if !errors.Is(err, events.ErrPublish) || !errors.As(err, &apiErr) || events.IsTransient(err) {
		t.Fatalf("err = %v, want ErrPublish wrapping the API error", err)
	}
	if time.Since(start) > 500*time.Millisecond {
		t.Fatalf("a refusal was retried (%s)", time.Since(start))
	}
}

func TestPublishSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, "AUTH_EVENTS", []string{"auth.>"}, func(c *events.StreamConfig) {
		c.Storage = jetstream.FileStorage
	})
	pub, err := events.NewPublisher(srv.Conn(t), events.WithRetry(5, 200*time.Millisecond), events.WithPublishTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	e := newEvent(t, "user.created", nil)
	done := make(chan error, 1)
	go func() { done <- pub.Publish(ctxT(t, 20*time.Second), "auth.user.created", e) }()
	time.Sleep(700 * time.Millisecond) // at least one attempt fails
	srv.Restart(t)
	if err := <-done; err != nil {
		t.Fatalf("publish across restart: %v", err)
	}
	if n := eventstest.StreamMsgs(t, js, "AUTH_EVENTS"); n != 1 {
		t.Fatalf("stream holds %d messages, want exactly 1", n)
	}
}

func TestPublishAsyncTenThousand(t *testing.T) {
	t.Parallel()
	_, js, pub := setup(t, events.WithMaxInFlight(512))
	ctx := ctxT(t, 30*time.Second)
	const n = 10000
	for i := 0; i < n; i++ {
		if err := pub.PublishAsync(ctx, "auth.user.created", newEvent(t, "user.created", map[string]any{"i": i})); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if pub.Pending() != 0 {
		t.Fatalf("pending %d after flush", pub.Pending())
	}
	if got := eventstest.StreamMsgs(t, js, "AUTH_EVENTS"); got != n {
		t.Fatalf("stream holds %d messages, want %d", got, n)
	}
}

func TestPublishAsyncFailuresReachErrorHandler(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var failed []error
	_, _, pub := setup(t, events.WithRetry(1, 10*time.Millisecond), events.WithErrorHandler(func(subject string, e *events.Event, err error) {
		mu.Lock()
		failed = append(failed, err)
		mu.Unlock()
	}))
	ctx := ctxT(t, 10*time.Second)
	for i := 0; i < 3; i++ {
		if err := pub.PublishAsync(ctx, "nowhere.x", newEvent(t, "x", nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 3 {
		t.Fatalf("error handler saw %d failures, want 3", len(failed))
	}
	for _, err := range failed {
		if !errors.Is(err, events.ErrConnection) {
			t.Errorf("failure %v does not match ErrConnection", err)
		}
	}
}

func TestPublishAsyncWindowBlocks(t *testing.T) {
	t.Parallel()
	srv := eventstest.RunJetStream(t)
	// No stream: acks never come until the retries give up, so the window
	// of 2 is full after two publishes.
	var handled atomic.Int32
	pub, err := events.NewPublisher(srv.Conn(t), events.WithMaxInFlight(2), events.WithRetry(1, 300*time.Millisecond),
		events.WithErrorHandler(func(string, *events.Event, error) { handled.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 10*time.Second)
	for i := 0; i < 2; i++ {
		if err := pub.PublishAsync(ctx, "nowhere.x", newEvent(t, "x", nil)); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := pub.PublishAsync(short, "nowhere.x", newEvent(t, "x", nil)); !errors.Is(err, events.ErrTimeout) {
		t.Fatalf("third publish with a full window: %v, want ErrTimeout", err)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if handled.Load() != 2 {
		t.Fatalf("error handler called %d times, want 2", handled.Load())
	}
	if err := pub.Publish(ctx, "nowhere.x", newEvent(t, "x", nil)); !errors.Is(err, events.ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
}

// Messages are pooled and reused once acked: concurrent sync and async
// publishes must each store their own headers and body.
func TestConcurrentPublishesKeepTheirOwnContent(t *testing.T) {
	t.Parallel()
	_, js, pub := setup(t, events.WithMaxInFlight(64))
	ctx := ctxT(t, 30*time.Second)
	const workers, each = 6, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				e, err := events.NewEvent("user.created", "auth-service", "org-1", t0, nil)
				if err == nil {
					e.Subject = e.ID // lets the check below tie the body to the headers
					err = e.SetData(map[string]any{"w": w, "i": i, "id": e.ID})
				}
				if err == nil {
					if w%2 == 0 {
						err = pub.Publish(ctx, "auth.user.created", e)
					} else {
						err = pub.PublishAsync(ctx, "auth.user.created", e)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := eventstest.StreamMsgs(t, js, "AUTH_EVENTS"); n != workers*each {
		t.Fatalf("stream holds %d, want %d", n, workers*each)
	}
	for seq := uint64(1); seq <= workers*each; seq++ {
		m := eventstest.GetMsg(t, js, "AUTH_EVENTS", seq)
		e, err := events.DecodeParts(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		data, err := e.DataMap()
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get("Nats-Msg-Id") != e.ID || e.Subject != e.ID || data["id"] != e.ID {
			t.Fatalf("message %d mixes events: msg-id %s, %+v", seq, m.Header.Get("Nats-Msg-Id"), e)
		}
	}
}

// TestPooledMessagesCarryNoStaleHeaders: the publisher reuses its messages'
// header maps; an event without the optional attributes the previous event
// had must not inherit them.
func TestPooledMessagesCarryNoStaleHeaders(t *testing.T) {
	t.Parallel()
	_, js, pub := setup(t)
	ctx := ctxT(t, 10*time.Second)
	const rounds = 20
	for i := 0; i < rounds; i++ {
		full := newEvent(t, "user.created", map[string]any{"i": i})
		full.Subject, full.DataSchema = "user-42", "https://schemas.example.com/user.json"
		full.Extensions = map[string]string{"region": "eu1"}
		bare := newEvent(t, "user.created", map[string]any{"i": i})
		publish := pub.Publish
		if i%2 == 1 {
			publish = pub.PublishAsync
		}
		for _, e := range []*events.Event{full, bare} {
			if err := publish(ctx, "auth.user.created", e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 2*rounds; seq++ {
		m := eventstest.GetMsg(t, js, "AUTH_EVENTS", seq)
		e, err := events.DecodeParts(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get("Nats-Msg-Id") != e.ID {
			t.Fatalf("message %d: Nats-Msg-Id %q, ce-id %q", seq, m.Header.Get("Nats-Msg-Id"), e.ID)
		}
		full := seq%2 == 1 // full, bare, full, bare...
		if full != (e.Subject != "") || full != (e.DataSchema != "") || full != (e.Extensions["region"] != "") ||
			len(m.Header) != map[bool]int{true: 12, false: 9}[full] {
			t.Fatalf("message %d (full: %v) has headers %v", seq, full, m.Header)
		}
	}
}
