package admin_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// pushConsumer is a push consumer with every push setting.
func pushConsumer(name string) admin.ConsumerConfig {
	c := admin.NewConsumerConfig(name, "cfg.a")
	c.DeliverSubject = "deliver." + name
	c.DeliverGroup = "workers"
	c.FlowControl = true
	c.IdleHeartbeat = 5 * time.Second
	c.RateLimitBps = 1 << 20
	c.HeadersOnly = true
	c.SampleFrequency = "50%"
	c.ReplayPolicy = jetstream.ReplayOriginalPolicy
	return c
}

var pausedUntil = time.Now().Add(time.Hour).UTC()

// pullConsumer is a pull consumer with every pull setting.
func pullConsumer(name string) admin.ConsumerConfig {
	c := admin.NewConsumerConfig(name, "cfg.b")
	c.MaxWaiting = 64
	c.MaxRequestBatch = 10
	c.MaxRequestExpires = time.Minute
	c.MaxRequestMaxBytes = 1 << 16
	c.PriorityPolicy = jetstream.PriorityPolicyPinned
	c.PriorityGroups = []string{"jobs", "batch"}
	c.SampleFrequency = "7"
	c.PauseUntil = &pausedUntil
	return c
}

// Whatever JetStream fills in itself (max waiting of pull consumers only,
// the pinned TTL, ack wait, …), its echo of every setting diffs empty, and
// the settings read back as declared.
func TestEveryConsumerSettingRoundTripsThroughJetStream(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	if _, err := events.CreateStream(ctx, js, events.NewStreamConfig("CFG", "cfg.>")); err != nil {
		t.Fatal(err)
	}
	prioritized := admin.NewConsumerConfig("prioritized")
	prioritized.PriorityPolicy = jetstream.PriorityPolicyPrioritized
	prioritized.PriorityGroups = []string{"a"}
	overflow := admin.NewConsumerConfig("overflow")
	overflow.PriorityPolicy = jetstream.PriorityPolicyOverflow
	overflow.PriorityGroups = []string{"a"}
	pinnedTTL := admin.NewConsumerConfig("pinnedttl")
	pinnedTTL.PriorityPolicy = jetstream.PriorityPolicyPinned
	pinnedTTL.PriorityGroups = []string{"a"}
	pinnedTTL.PinnedTTL = 30 * time.Second
	ackNonePush := admin.NewConsumerConfig("nonepush")
	ackNonePush.AckPolicy = jetstream.AckNonePolicy
	ackNonePush.DeliverSubject = "deliver.none"
	for _, cfg := range []admin.ConsumerConfig{pushConsumer("push"), pullConsumer("pull"), prioritized, overflow, pinnedTTL, ackNonePush} {
		t.Run(cfg.Durable, func(t *testing.T) {
			info, err := admin.CreateConsumer(ctx, js, "CFG", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffConsumer(cfg, info.Config); diff != nil {
				t.Fatalf("the consumer just created differs in %v: %+v", diff, info.Config)
			}
			got, want := info.Config, cfg.JetStream()
			if got.DeliverSubject != want.DeliverSubject || got.DeliverGroup != want.DeliverGroup || got.FlowControl != want.FlowControl ||
				got.IdleHeartbeat != want.IdleHeartbeat || got.RateLimit != want.RateLimit || got.HeadersOnly != want.HeadersOnly ||
				got.SampleFrequency != want.SampleFrequency || got.ReplayPolicy != want.ReplayPolicy ||
				got.MaxRequestBatch != want.MaxRequestBatch || got.MaxRequestExpires != want.MaxRequestExpires ||
				got.MaxRequestMaxBytes != want.MaxRequestMaxBytes || got.PriorityPolicy != want.PriorityPolicy ||
				!slices.Equal(got.PriorityGroups, want.PriorityGroups) ||
				(want.PinnedTTL != 0 && got.PinnedTTL != want.PinnedTTL) ||
				(want.PauseUntil == nil) != (got.PauseUntil == nil) || (want.PauseUntil != nil && !want.PauseUntil.Equal(*got.PauseUntil)) {
				t.Fatalf("JetStream holds %+v\nwant %+v", got, want)
			}
			if want.PauseUntil != nil && !info.Paused {
				t.Fatalf("a consumer paused until %v is not paused", want.PauseUntil)
			}
		})
	}
}

// What JetStream changes in place is updated; what it refuses is an
// *events.ImmutableFieldError naming the field, before any request.
func TestConsumerUpdatesInPlaceAndImmutables(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	if _, err := events.CreateStream(ctx, js, events.NewStreamConfig("UPD", "cfg.>")); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []admin.ConsumerConfig{pushConsumer("push"), pullConsumer("pull")} {
		if _, err := admin.CreateConsumer(ctx, js, "UPD", cfg); err != nil {
			t.Fatal(err)
		}
	}
	inPlace := []struct {
		name, field string
		base        func(string) admin.ConsumerConfig
		change      func(*admin.ConsumerConfig)
	}{
		{"another deliver group", "deliverGroup", pushConsumer, func(c *admin.ConsumerConfig) { c.DeliverGroup = "others" }},
		{"no deliver group", "deliverGroup", pushConsumer, func(c *admin.ConsumerConfig) { c.DeliverGroup = "" }},
		{"another deliver subject", "deliverSubject", pushConsumer, func(c *admin.ConsumerConfig) { c.DeliverSubject = "deliver.elsewhere" }},
		{"rate limit", "rateLimitBps", pushConsumer, func(c *admin.ConsumerConfig) { c.RateLimitBps = 1000 }},
		{"whole bodies", "headersOnly", pushConsumer, func(c *admin.ConsumerConfig) { c.HeadersOnly = false }},
		{"sampling", "sampleFrequency", pushConsumer, func(c *admin.ConsumerConfig) { c.SampleFrequency = "100" }},
		{"request limits", "maxRequestBatch", pullConsumer, func(c *admin.ConsumerConfig) { c.MaxRequestBatch = 20 }},
		{"request expiry", "maxRequestExpires", pullConsumer, func(c *admin.ConsumerConfig) { c.MaxRequestExpires = time.Second }},
		{"request bytes", "maxRequestMaxBytes", pullConsumer, func(c *admin.ConsumerConfig) { c.MaxRequestMaxBytes = 0 }},
		{"priority policy", "priorityPolicy", pullConsumer, func(c *admin.ConsumerConfig) { c.PriorityPolicy = jetstream.PriorityPolicyOverflow }},
		{"priority groups", "priorityGroups", pullConsumer, func(c *admin.ConsumerConfig) { c.PriorityGroups = []string{"jobs"} }},
		{"pinned TTL", "pinnedTTL", pullConsumer, func(c *admin.ConsumerConfig) { c.PinnedTTL = time.Minute }},
		{"resumed", "pauseUntil", pullConsumer, func(c *admin.ConsumerConfig) { c.PauseUntil = nil }},
		{"paused", "pauseUntil", pushConsumer, func(c *admin.ConsumerConfig) { c.PauseUntil = &pausedUntil }},
	}
	for _, tc := range inPlace {
		t.Run(tc.name, func(t *testing.T) {
			name := "pull"
			if tc.base("x").DeliverSubject != "" {
				name = "push"
			}
			cfg := tc.base(name)
			tc.change(&cfg)
			info, err := admin.GetConsumerInfo(ctx, js, "UPD", name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffConsumer(cfg, info.Config); !slices.Contains(diff, tc.field) {
				t.Fatalf("DiffConsumer = %v, want it to contain %s", diff, tc.field)
			}
			if err := admin.CheckConsumerUpdate(cfg, info.Config); err != nil {
				t.Fatalf("CheckConsumerUpdate refuses an in-place change: %v", err)
			}
			info, err = admin.UpdateConsumer(ctx, js, "UPD", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffConsumer(cfg, info.Config); diff != nil {
				t.Fatalf("after the update the consumer still differs in %v", diff)
			}
			// Back to the base for the next case.
			if _, err := admin.UpdateConsumer(ctx, js, "UPD", tc.base(name)); err != nil {
				t.Fatal(err)
			}
		})
	}

	immutable := []struct {
		name, field string
		base        func(string) admin.ConsumerConfig
		change      func(*admin.ConsumerConfig)
	}{
		{"push to pull", "deliverSubject", pushConsumer, func(c *admin.ConsumerConfig) {
			c.DeliverSubject, c.DeliverGroup, c.FlowControl, c.IdleHeartbeat, c.RateLimitBps = "", "", false, 0, 0
		}},
		{"pull to push", "deliverSubject", pullConsumer, func(c *admin.ConsumerConfig) {
			c.DeliverSubject, c.MaxWaiting, c.MaxRequestBatch, c.MaxRequestExpires, c.MaxRequestMaxBytes = "deliver.x", 0, 0, 0, 0
			c.PriorityPolicy, c.PriorityGroups = jetstream.PriorityPolicyNone, nil
		}},
		{"replay policy", "replayPolicy", pushConsumer, func(c *admin.ConsumerConfig) { c.ReplayPolicy = jetstream.ReplayInstantPolicy }},
		{"flow control", "flowControl", pushConsumer, func(c *admin.ConsumerConfig) { c.FlowControl = false }},
		{"idle heartbeat", "idleHeartbeat", pushConsumer, func(c *admin.ConsumerConfig) { c.IdleHeartbeat = time.Second }},
		{"max waiting", "maxWaiting", pullConsumer, func(c *admin.ConsumerConfig) { c.MaxWaiting = 128 }},
	}
	for _, tc := range immutable {
		t.Run(tc.name, func(t *testing.T) {
			name := "pull"
			if tc.base("x").DeliverSubject != "" {
				name = "push"
			}
			cfg := tc.base(name)
			tc.change(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("the changed configuration is invalid: %v", err)
			}
			info, err := admin.GetConsumerInfo(ctx, js, "UPD", name)
			if err != nil {
				t.Fatal(err)
			}
			err = admin.CheckConsumerUpdate(cfg, info.Config)
			var ierr *events.ImmutableFieldError
			if !errors.As(err, &ierr) || ierr.Field != tc.field {
				t.Fatalf("CheckConsumerUpdate = %v, want an ImmutableFieldError for %s", err, tc.field)
			}
			// JetStream refuses it too: the check is not stricter than the server.
			if _, err := js.UpdateConsumer(ctx, "UPD", cfg.JetStream()); err == nil {
				t.Fatalf("JetStream accepted the change of %s that CheckConsumerUpdate refuses", tc.field)
			}
		})
	}
}

// A pause that has ended, or was declared in the past, is in sync whatever
// JetStream echoes (it keeps an ended pause, drops a past one on update):
// no endless updates.
func TestEndedPauseIsInSync(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	if _, err := events.CreateStream(ctx, js, events.NewStreamConfig("PAUSE", "pause.>")); err != nil {
		t.Fatal(err)
	}
	cfg := admin.NewConsumerConfig("paused")
	soon := time.Now().Add(time.Second)
	cfg.PauseUntil = &soon
	info, err := admin.CreateConsumer(ctx, js, "PAUSE", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Paused || admin.DiffConsumer(cfg, info.Config) != nil {
		t.Fatalf("paused %v, diff %v", info.Paused, admin.DiffConsumer(cfg, info.Config))
	}
	time.Sleep(time.Until(soon) + 100*time.Millisecond)
	info, err = admin.GetConsumerInfo(ctx, js, "PAUSE", "paused")
	if err != nil {
		t.Fatal(err)
	}
	if info.Paused {
		t.Fatal("still paused after PauseUntil")
	}
	if diff := admin.DiffConsumer(cfg, info.Config); diff != nil {
		t.Fatalf("an ended pause differs in %v", diff)
	}
	if diff := admin.DiffConsumer(admin.NewConsumerConfig("paused"), info.Config); diff != nil {
		t.Fatalf("no pause vs an ended pause differs in %v", diff)
	}

	past := time.Now().Add(-time.Hour)
	cfg.PauseUntil = &past
	cfg.Description = "with a pause in the past"
	info, err = admin.UpdateConsumer(ctx, js, "PAUSE", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := admin.DiffConsumer(cfg, info.Config); diff != nil {
		t.Fatalf("a pause declared in the past differs from the echo (pause_until %v) in %v", info.Config.PauseUntil, diff)
	}
}

func TestConsumerDeliverySettingsAreValidatedNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    admin.ConsumerConfig
		field  string
		reason string
	}{
		{"max waiting on push", with(pushConsumer("c"), func(c *admin.ConsumerConfig) { c.MaxWaiting = 5 }), "maxWaiting", "pull consumers only"},
		{"request batch on push", with(pushConsumer("c"), func(c *admin.ConsumerConfig) { c.MaxRequestBatch = 5 }), "maxRequestBatch", "pull consumers only"},
		{"request expiry on push", with(pushConsumer("c"), func(c *admin.ConsumerConfig) { c.MaxRequestExpires = time.Second }), "maxRequestExpires", "pull consumers only"},
		{"request bytes on push", with(pushConsumer("c"), func(c *admin.ConsumerConfig) { c.MaxRequestMaxBytes = 5 }), "maxRequestMaxBytes", "pull consumers only"},
		{"priority on push", with(pushConsumer("c"), func(c *admin.ConsumerConfig) {
			c.PriorityPolicy, c.PriorityGroups = jetstream.PriorityPolicyOverflow, []string{"a"}
		}), "priorityPolicy", "pull consumers only"},
		{"wildcard deliver subject", with(pushConsumer("c"), func(c *admin.ConsumerConfig) { c.DeliverSubject = "a.*" }), "deliverSubject", ""},
		{"flow control without heartbeat", with(pushConsumer("c"), func(c *admin.ConsumerConfig) { c.IdleHeartbeat = 0 }), "flowControl", "idleHeartbeat"},
		{"tiny heartbeat", with(pushConsumer("c"), func(c *admin.ConsumerConfig) { c.IdleHeartbeat = time.Millisecond }), "idleHeartbeat", "100ms"},
		{"max ack pending without acks", with(pushConsumer("c"), func(c *admin.ConsumerConfig) {
			c.AckPolicy, c.MaxAckPending = jetstream.AckNonePolicy, 10
		}), "maxAckPending", "acknowledgements"},
		{"deliver group on pull", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.DeliverGroup = "g" }), "deliverGroup", "deliverSubject"},
		{"flow control on pull", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.FlowControl = true }), "flowControl", "deliverSubject"},
		{"heartbeat on pull", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.IdleHeartbeat = time.Second }), "idleHeartbeat", "deliverSubject"},
		{"rate limit on pull", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.RateLimitBps = 5 }), "rateLimitBps", "deliverSubject"},
		{"sample over 100", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.SampleFrequency = "150%" }), "sampleFrequency", "1 to 100"},
		{"sample not a number", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.SampleFrequency = "half" }), "sampleFrequency", "1 to 100"},
		{"unknown replay", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.ReplayPolicy = 7 }), "replayPolicy", ""},
		{"tiny request expiry", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.MaxRequestExpires = time.Microsecond }), "maxRequestExpires", "1ms"},
		{"negative request batch", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.MaxRequestBatch = -1 }), "maxRequestBatch", ""},
		{"policy without groups", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.PriorityPolicy = jetstream.PriorityPolicyPinned }), "priorityGroups", "required"},
		{"groups without policy", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) { c.PriorityGroups = []string{"a"} }), "priorityGroups", "priorityPolicy"},
		{"bad group name", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) {
			c.PriorityPolicy, c.PriorityGroups = jetstream.PriorityPolicyOverflow, []string{"a.b"}
		}), "priorityGroups[0]", "16"},
		{"group twice", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) {
			c.PriorityPolicy, c.PriorityGroups = jetstream.PriorityPolicyOverflow, []string{"a", "a"}
		}), "priorityGroups[1]", "twice"},
		{"pinned TTL without Pinned", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) {
			c.PriorityPolicy, c.PriorityGroups, c.PinnedTTL = jetstream.PriorityPolicyOverflow, []string{"a"}, time.Minute
		}), "pinnedTTL", "Pinned"},
		{"unknown priority policy", with(admin.NewConsumerConfig("c"), func(c *admin.ConsumerConfig) {
			c.PriorityPolicy, c.PriorityGroups = 9, []string{"a"}
		}), "priorityPolicy", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var verr *events.ValidationError
			if !errors.As(err, &verr) || verr.Field != tc.field || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Validate() = %v, want a *events.ValidationError for %s mentioning %q", err, tc.field, tc.reason)
			}
		})
	}
	for _, ok := range []admin.ConsumerConfig{pushConsumer("c"), pullConsumer("c")} {
		if err := ok.Validate(); err != nil {
			t.Fatalf("a valid consumer is refused: %v", err)
		}
	}
}

func with(c admin.ConsumerConfig, mod func(*admin.ConsumerConfig)) admin.ConsumerConfig {
	mod(&c)
	return c
}
