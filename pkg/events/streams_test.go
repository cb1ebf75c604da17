package events_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

func TestNewStreamConfigHasTheHouseDefaults(t *testing.T) {
	c := events.NewStreamConfig("ORDERS", "orders.>")
	js := c.JetStream()
	want := jetstream.StreamConfig{
		Name: "ORDERS", Subjects: []string{"orders.>"}, Retention: jetstream.LimitsPolicy,
		MaxConsumers: -1, MaxMsgs: -1, MaxBytes: 1 << 30, Discard: jetstream.DiscardOld,
		MaxAge: 7 * 24 * time.Hour, MaxMsgsPerSubject: -1, MaxMsgSize: -1,
		Storage: jetstream.FileStorage, Replicas: 1, Duplicates: 2 * time.Minute,
	}
	if !reflect.DeepEqual(js, want) {
		t.Fatalf("translation of the house defaults:\n got %+v\nwant %+v", js, want)
	}
}

func TestDefaultStreams(t *testing.T) {
	want := map[string]string{
		"AUTH_EVENTS": "auth.>", "CATALOG_EVENTS": "catalog.>", "DDMRP_EVENTS": "ddmrp.>",
		"EXECUTION_EVENTS": "execution.>", "ANALYTICS_EVENTS": "analytics.>",
		"AI_AGENT_EVENTS": "ai_agent.>", "DLQ_EVENTS": "dlq.>",
	}
	got := events.DefaultStreams()
	if len(got) != len(want) {
		t.Fatalf("got %d default streams, want %d", len(got), len(want))
	}
	for _, s := range got {
		if len(s.Subjects) != 1 || want[s.Name] != s.Subjects[0] {
			t.Errorf("stream %s has subjects %v, want [%s]", s.Name, s.Subjects, want[s.Name])
		}
		if err := s.Validate(); err != nil {
			t.Errorf("default stream %s is invalid: %v", s.Name, err)
		}
	}
}

func TestStreamConfigValidateNamesTheField(t *testing.T) {
	base := func(mod func(*events.StreamConfig)) events.StreamConfig {
		c := events.NewStreamConfig("S", "s.>")
		mod(&c)
		return c
	}
	cases := []struct {
		name  string
		cfg   events.StreamConfig
		field string
	}{
		{"empty name", base(func(c *events.StreamConfig) { c.Name = "" }), "name"},
		{"dot in name", base(func(c *events.StreamConfig) { c.Name = "A.B" }), "name"},
		{"no subjects", base(func(c *events.StreamConfig) { c.Subjects = nil }), "subjects"},
		{"empty subject token", base(func(c *events.StreamConfig) { c.Subjects = []string{"a..b"} }), "subjects[0]"},
		{"> not last", base(func(c *events.StreamConfig) { c.Subjects = []string{"a.>.b"} }), "subjects[0]"},
		{"negative max age", base(func(c *events.StreamConfig) { c.MaxAge = -time.Second }), "maxAge"},
		{"duplicate window above max age", base(func(c *events.StreamConfig) { c.MaxAge = time.Minute }), "duplicateWindow"},
		{"six replicas", base(func(c *events.StreamConfig) { c.Replicas = 6 }), "replicas"},
		{"max bytes below -1", base(func(c *events.StreamConfig) { c.MaxBytes = -2 }), "maxBytes"},
		{"mirror with subjects", base(func(c *events.StreamConfig) { c.Mirror = &events.StreamSource{Name: "O"} }), "subjects"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var verr *events.ValidationError
			if !errors.As(err, &verr) || !errors.Is(err, events.ErrValidation) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			if verr.Field != tc.field {
				t.Fatalf("field = %q, want %q (%v)", verr.Field, tc.field, err)
			}
		})
	}
}

func TestStreamErrorsAreTyped(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()

	if _, err := events.GetStreamInfo(ctx, js, "MISSING"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("GetStreamInfo of a missing stream = %v, want ErrNotFound", err)
	}
	if err := events.DeleteStream(ctx, js, "MISSING"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("DeleteStream of a missing stream = %v, want ErrNotFound", err)
	}
	if _, err := events.UpdateStream(ctx, js, events.NewStreamConfig("MISSING", "missing.>")); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("UpdateStream of a missing stream = %v, want ErrNotFound", err)
	}
	if _, err := events.CreateStream(ctx, js, events.NewStreamConfig("ONE", "same.>")); err != nil {
		t.Fatal(err)
	}
	if _, err := events.CreateStream(ctx, js, events.NewStreamConfig("TWO", "same.>")); !errors.Is(err, events.ErrConflict) || errors.Is(err, events.ErrExists) {
		t.Fatalf("overlapping subjects = %v, want ErrConflict (not ErrExists)", err)
	}
	other := events.NewStreamConfig("ONE", "same.>")
	other.MaxAge = time.Hour
	if _, err := events.CreateStream(ctx, js, other); !errors.Is(err, events.ErrExists) || !errors.Is(err, events.ErrConflict) {
		t.Fatalf("a stream of that name with another configuration = %v, want ErrExists (and ErrConflict)", err)
	}
	if _, err := events.CreateStream(ctx, js, events.NewStreamConfig("ONE", "same.>")); err != nil {
		t.Fatalf("creating a stream that exists with the same configuration is idempotent: %v", err)
	}
	big := events.NewStreamConfig("HUGE", "huge.>")
	big.MaxBytes = 1 << 50
	_, err := events.CreateStream(ctx, js, big)
	if !errors.Is(err, events.ErrInsufficientResources) {
		t.Fatalf("a stream larger than the server's store = %v, want ErrInsufficientResources", err)
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != 10047 {
		t.Fatalf("the JetStream API error is still reachable with errors.As: %v", err)
	}

	srv.Shutdown()
	ctxShort, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := events.GetStreamInfo(ctxShort, js, "ONE"); !events.IsTransient(err) {
		t.Fatalf("a request while the server is down = %v, want a transient (connection or timeout) error", err)
	}
}

func TestCreateDefaultStreamsIsIdempotent(t *testing.T) {
	// Seven 1 GiB streams: each reserves its max bytes against the store limit.
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) { o.JetStreamMaxStore = 16 << 30 }))
	js := srv.JetStream(t)
	ctx := context.Background()
	if err := events.CreateDefaultStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	// Drift one stream; a second call repairs it and leaves the rest alone:
	// one update request, for the drifted stream, and no message lost.
	info, _ := events.GetStreamInfo(ctx, js, events.StreamAuth)
	cfg := info.Config
	cfg.MaxAge = time.Hour
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "auth.user.created", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	nc := srv.Conn(t)
	updates, err := nc.SubscribeSync("$JS.API.STREAM.UPDATE.*")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := events.CreateDefaultStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	var updated []string
	for {
		msg, err := updates.NextMsg(300 * time.Millisecond)
		if err != nil {
			break
		}
		updated = append(updated, msg.Subject)
	}
	if want := []string{"$JS.API.STREAM.UPDATE." + events.StreamAuth}; !slices.Equal(updated, want) {
		t.Fatalf("update requests %v, want only %v", updated, want)
	}
	if info, err := events.GetStreamInfo(ctx, js, events.StreamAuth); err != nil || info.State.Msgs != 1 {
		t.Fatalf("%s after the repair: %v, err %v; want its one message kept", events.StreamAuth, info, err)
	}
	for _, s := range events.DefaultStreams() {
		info, err := events.GetStreamInfo(ctx, js, s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if diff := admin.DiffStream(s, info.Config); diff != nil {
			t.Errorf("%s differs from the defaults in %v", s.Name, diff)
		}
	}
}
