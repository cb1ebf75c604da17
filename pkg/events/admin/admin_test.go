package admin_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// The server's echo of a stream created from NewStreamConfig, with the
// values it fills in itself, is in sync with the declaration.
func TestDiffStreamOfTheHouseDefaults(t *testing.T) {
	echo := jetstream.StreamConfig{
		Name: "ORDERS", Subjects: []string{"orders.>"}, Retention: jetstream.LimitsPolicy,
		MaxConsumers: -1, MaxMsgs: -1, MaxBytes: 1 << 30, Discard: jetstream.DiscardOld,
		MaxAge: 7 * 24 * time.Hour, MaxMsgsPerSubject: -1, MaxMsgSize: -1,
		Storage: jetstream.FileStorage, Replicas: 1, Duplicates: 2 * time.Minute,
		Metadata: map[string]string{"_nats.req.level": "0"},
	}
	if diff := admin.DiffStream(events.NewStreamConfig("ORDERS", "orders.>"), echo); diff != nil {
		t.Fatalf("defaults differ from the server's echo in %v", diff)
	}
	echo.MaxBytes = 1 << 20
	if diff := admin.DiffStream(events.NewStreamConfig("ORDERS", "orders.>"), echo); len(diff) != 1 || diff[0] != "maxBytes" {
		t.Fatalf("DiffStream = %v, want [maxBytes]", diff)
	}
}

func TestConsumerConfigValidateNamesTheField(t *testing.T) {
	base := func(mod func(*admin.ConsumerConfig)) admin.ConsumerConfig {
		c := admin.NewConsumerConfig("c", "s.>")
		mod(&c)
		return c
	}
	if err := base(func(*admin.ConsumerConfig) {}).Validate(); err != nil {
		t.Fatalf("the house defaults are invalid: %v", err)
	}
	for _, tc := range []struct {
		name  string
		cfg   admin.ConsumerConfig
		field string
	}{
		{"empty durable", base(func(c *admin.ConsumerConfig) { c.Durable = "" }), "durableName"},
		{"> not last", base(func(c *admin.ConsumerConfig) { c.FilterSubjects = []string{"a.>.b"} }), "filterSubjects[0]"},
		{"start sequence missing", base(func(c *admin.ConsumerConfig) { c.DeliverPolicy = jetstream.DeliverByStartSequencePolicy }), "optStartSeq"},
		{"backoff longer than max deliver", base(func(c *admin.ConsumerConfig) { c.BackOff = []time.Duration{1, 2, 3, 4} }), "backoff"},
		{"six replicas", base(func(c *admin.ConsumerConfig) { c.Replicas = 6 }), "replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			var verr *events.ValidationError
			if !errors.As(err, &verr) || !errors.Is(err, events.ErrValidation) || verr.Field != tc.field {
				t.Fatalf("Validate() = %v, want a *events.ValidationError for %s", err, tc.field)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                        "nats://127.0.0.1:4222",
		"nats://alice:s3cret@h:4222":                   "nats://redacted@h:4222",
		"nats://t0ken@h:4222, tls://bob:pw@other:4222": "nats://redacted@h:4222,tls://redacted@other:4222",
		"h:4222,nats://x:y@h2":                         "h:4222,nats://redacted@h2",
		"%zz://user:pw@h":                              "<redacted>",
	} {
		got := admin.RedactURL(in)
		if got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
		for _, secret := range []string{"s3cret", "t0ken", "alice", ":pw", "x:y"} {
			if strings.Contains(got, secret) {
				t.Errorf("RedactURL(%q) = %q still contains %q", in, got, secret)
			}
		}
	}
}
