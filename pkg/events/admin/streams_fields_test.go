package admin_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// streamFieldCases set one non-default stream setting each (with what it
// needs) and say how JetStream must report it back.
var streamFieldCases = []struct {
	name    string
	inPlace bool // can be set on an existing stream
	mod     func(*events.StreamConfig)
	check   func(jetstream.StreamConfig) bool
}{
	{"subjectTransform", true,
		func(c *events.StreamConfig) {
			c.SubjectTransform = &jetstream.SubjectTransformConfig{Source: "f.*.x", Destination: "f.x.{{wildcard(1)}}"}
		},
		func(j jetstream.StreamConfig) bool {
			return j.SubjectTransform != nil && j.SubjectTransform.Destination == "f.x.{{wildcard(1)}}"
		}},
	{"republish", true,
		func(c *events.StreamConfig) {
			c.RePublish = &jetstream.RePublish{Destination: "copy.>", HeadersOnly: true}
		},
		func(j jetstream.StreamConfig) bool {
			return j.RePublish != nil && j.RePublish.Destination == "copy.>" && j.RePublish.Source == ">" && j.RePublish.HeadersOnly
		}},
	{"sealed", true,
		func(c *events.StreamConfig) { c.Sealed = true },
		func(j jetstream.StreamConfig) bool { return j.Sealed && j.DenyDelete && j.DenyPurge && j.MaxAge == 0 }},
	{"allowRollup", true,
		func(c *events.StreamConfig) { c.AllowRollup = true },
		func(j jetstream.StreamConfig) bool { return j.AllowRollup }},
	{"discardNewPerSubject", true,
		func(c *events.StreamConfig) {
			c.Discard, c.MaxMsgsPerSubject, c.DiscardNewPerSubject = jetstream.DiscardNew, 10, true
		},
		func(j jetstream.StreamConfig) bool { return j.DiscardNewPerSubject }},
	{"firstSequence", false,
		func(c *events.StreamConfig) { c.FirstSequence = 1000 },
		func(j jetstream.StreamConfig) bool { return j.FirstSeq == 1000 }},
	{"allowMsgTTL", true,
		func(c *events.StreamConfig) { c.AllowMsgTTL = true },
		func(j jetstream.StreamConfig) bool { return j.AllowMsgTTL }},
	{"subjectDeleteMarkerTTL", true,
		func(c *events.StreamConfig) {
			c.AllowMsgTTL, c.AllowRollup, c.SubjectDeleteMarkerTTL = true, true, 5*time.Minute
		},
		func(j jetstream.StreamConfig) bool { return j.SubjectDeleteMarkerTTL == 5*time.Minute }},
	{"consumerLimits", true,
		func(c *events.StreamConfig) {
			c.ConsumerLimits = jetstream.StreamConsumerLimits{InactiveThreshold: time.Hour, MaxAckPending: 500}
		},
		func(j jetstream.StreamConfig) bool {
			return j.ConsumerLimits.InactiveThreshold == time.Hour && j.ConsumerLimits.MaxAckPending == 500
		}},
	{"noAck", true,
		func(c *events.StreamConfig) { c.NoAck = true },
		func(j jetstream.StreamConfig) bool { return j.NoAck }},
	{"maxConsumers", true,
		func(c *events.StreamConfig) { c.MaxConsumers = 7 },
		func(j jetstream.StreamConfig) bool { return j.MaxConsumers == 7 }},
	{"allowMsgCounter", false,
		func(c *events.StreamConfig) { c.AllowMsgCounter = true },
		func(j jetstream.StreamConfig) bool { return j.AllowMsgCounter }},
	{"allowAtomicPublish", true,
		func(c *events.StreamConfig) { c.AllowAtomicPublish = true },
		func(j jetstream.StreamConfig) bool { return j.AllowAtomicPublish }},
	{"allowMsgSchedules", true,
		func(c *events.StreamConfig) { c.AllowRollup, c.AllowMsgSchedules = true, true },
		func(j jetstream.StreamConfig) bool { return j.AllowMsgSchedules }},
	{"allowBatchPublish", true,
		func(c *events.StreamConfig) { c.AllowBatchPublish = true },
		func(j jetstream.StreamConfig) bool { return j.AllowBatchPublish }},
	{"persistMode", false,
		func(c *events.StreamConfig) { c.PersistMode = jetstream.AsyncPersistMode },
		func(j jetstream.StreamConfig) bool { return j.PersistMode == jetstream.AsyncPersistMode }},
}

// Every setting: what is sent is what the server stores back (no diff, so
// no update at the next resync), when creating and, where JetStream allows
// it, when updating an existing stream.
func TestEveryStreamSettingIsStoredAsSentAndDiffsEmpty(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()

	for i, tc := range streamFieldCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := events.NewStreamConfig(fmt.Sprintf("F%d", i), fmt.Sprintf("f%d.>", i))
			if tc.name == "subjectTransform" {
				cfg.Subjects = []string{"f.*.x"}
			}
			tc.mod(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			info, err := events.CreateStream(ctx, js, cfg)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if !tc.check(info.Config) {
				t.Fatalf("the server did not store %s: %+v", tc.name, info.Config)
			}
			if diff := admin.DiffStream(cfg, info.Config); diff != nil {
				t.Fatalf("a stream created with %s differs from its echo in %v", tc.name, diff)
			}
			if err := admin.CheckStreamUpdate(cfg, info.Config); err != nil {
				t.Fatalf("CheckStreamUpdate to itself: %v", err)
			}
			s, err := js.Stream(ctx, cfg.Name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffStream(cfg, s.CachedInfo().Config); diff != nil {
				t.Fatalf("INFO differs in %v", diff)
			}
			if err := js.DeleteStream(ctx, cfg.Name); err != nil {
				t.Fatal(err)
			}

			// Created plain, then changed (under another name: JetStream
			// may still be removing the deleted stream's store).
			cfg.Name += "_UPDATED"
			plain := events.NewStreamConfig(cfg.Name, cfg.Subjects...)
			before, err := events.CreateStream(ctx, js, plain)
			if err != nil {
				t.Fatal(err)
			}
			err = admin.CheckStreamUpdate(cfg, before.Config)
			if !tc.inPlace {
				var imm *events.ImmutableFieldError
				if !errors.As(err, &imm) || imm.Field != tc.name {
					t.Fatalf("CheckStreamUpdate = %v, want an ImmutableFieldError naming %s", err, tc.name)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckStreamUpdate refuses %s in place: %v", tc.name, err)
			}
			info, err = events.UpdateStream(ctx, js, cfg)
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if !tc.check(info.Config) {
				t.Fatalf("the server did not store %s on update: %+v", tc.name, info.Config)
			}
			if diff := admin.DiffStream(cfg, info.Config); diff != nil {
				t.Fatalf("updated stream differs from its echo in %v", diff)
			}
			if err := js.DeleteStream(ctx, cfg.Name); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The switches JetStream turns only one way, and the settings it fixes at
// creation, are refused before anything is sent (CheckStreamUpdate) and,
// when sent anyway, recognised in the server's refusal.
func TestOneWayStreamSettingsAreImmutableFieldErrors(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()

	for i, tc := range []struct {
		field    string
		from, to func(*events.StreamConfig)
		server   bool // the server refuses it too (else it would accept and ignore it)
	}{
		{"sealed", func(c *events.StreamConfig) { c.Sealed = true }, func(*events.StreamConfig) {}, true},
		{"denyDelete", func(c *events.StreamConfig) { c.DenyDelete = true }, func(*events.StreamConfig) {}, true},
		{"denyPurge", func(c *events.StreamConfig) { c.DenyPurge = true }, func(*events.StreamConfig) {}, true},
		{"allowMsgTTL", func(c *events.StreamConfig) { c.AllowMsgTTL = true }, func(*events.StreamConfig) {}, true},
		{"allowMsgSchedules", func(c *events.StreamConfig) { c.AllowRollup, c.AllowMsgSchedules = true, true },
			func(c *events.StreamConfig) { c.AllowRollup = true }, true},
		{"allowMsgCounter", func(c *events.StreamConfig) { c.AllowMsgCounter = true }, func(*events.StreamConfig) {}, true},
		{"allowMsgCounter", func(*events.StreamConfig) {}, func(c *events.StreamConfig) { c.AllowMsgCounter = true }, true},
		{"persistMode", func(c *events.StreamConfig) { c.PersistMode = jetstream.AsyncPersistMode }, func(*events.StreamConfig) {}, true},
		{"firstSequence", func(c *events.StreamConfig) { c.FirstSequence = 50 }, func(c *events.StreamConfig) { c.FirstSequence = 60 }, false},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.field, i), func(t *testing.T) {
			from := events.NewStreamConfig(fmt.Sprintf("ONEWAY%d", i), fmt.Sprintf("oneway%d.>", i))
			from.MaxBytes = 1 << 20
			tc.from(&from)
			t.Cleanup(func() { _ = js.DeleteStream(ctx, from.Name) })
			info, err := events.CreateStream(ctx, js, from)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			to := events.NewStreamConfig(from.Name, from.Subjects...)
			to.MaxBytes = from.MaxBytes
			tc.to(&to)
			var imm *events.ImmutableFieldError
			err = admin.CheckStreamUpdate(to, info.Config)
			if !errors.As(err, &imm) || imm.Field != tc.field || !errors.Is(err, events.ErrImmutableField) {
				t.Fatalf("CheckStreamUpdate = %v, want an ImmutableFieldError for %s", err, tc.field)
			}
			_, err = events.UpdateStream(ctx, js, to)
			if !tc.server {
				if err != nil {
					t.Fatalf("the server refuses the change itself (%v): the reason in the field table is wrong", err)
				}
				return
			}
			if !errors.As(err, &imm) || imm.Field != tc.field {
				t.Fatalf("UpdateStream = %v, want an ImmutableFieldError for %s", err, tc.field)
			}
		})
	}
}

// Combinations JetStream refuses are refused by Validate first, naming the
// field; a few values the server would quietly turn into something else are
// refused too (stricter, with the reason).
func TestStreamValidateNamesTheFieldOfARefusedCombination(t *testing.T) {
	stricter := map[string]string{
		"maxConsumers":                     "the server stores -1, so the declared value would never be in sync",
		"consumerLimits.inactiveThreshold": "a negative duration is a mistake",
		"subjectTransform.destination":     "an empty destination transforms nothing: leave subjectTransform out",
	}
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	for _, tc := range []struct {
		field string
		mod   func(*events.StreamConfig)
	}{
		{"allowRollup", func(c *events.StreamConfig) { c.AllowRollup, c.DenyPurge = true, true }},
		{"discardNewPerSubject", func(c *events.StreamConfig) { c.DiscardNewPerSubject, c.MaxMsgsPerSubject = true, 5 }},
		{"discardNewPerSubject", func(c *events.StreamConfig) { c.DiscardNewPerSubject, c.Discard = true, jetstream.DiscardNew }},
		{"subjectDeleteMarkerTTL", func(c *events.StreamConfig) {
			c.AllowMsgTTL, c.AllowRollup, c.SubjectDeleteMarkerTTL = true, true, 500*time.Millisecond
		}},
		{"subjectDeleteMarkerTTL", func(c *events.StreamConfig) { c.SubjectDeleteMarkerTTL = -time.Second }},
		{"allowMsgCounter", func(c *events.StreamConfig) { c.AllowMsgCounter, c.Discard = true, jetstream.DiscardNew }},
		{"allowMsgCounter", func(c *events.StreamConfig) { c.AllowMsgCounter, c.AllowMsgTTL = true, true }},
		{"allowMsgCounter", func(c *events.StreamConfig) { c.AllowMsgCounter, c.Retention = true, jetstream.InterestPolicy }},
		{"allowMsgSchedules", func(c *events.StreamConfig) {
			c.AllowMsgSchedules, c.AllowRollup, c.Discard = true, true, jetstream.DiscardNew
		}},
		{"persistMode", func(c *events.StreamConfig) {
			c.PersistMode, c.Storage = jetstream.AsyncPersistMode, jetstream.MemoryStorage
		}},
		{"persistMode", func(c *events.StreamConfig) { c.PersistMode, c.AllowAtomicPublish = jetstream.AsyncPersistMode, true }},
		{"maxConsumers", func(c *events.StreamConfig) { c.MaxConsumers = -2 }},
		{"consumerLimits.inactiveThreshold", func(c *events.StreamConfig) { c.ConsumerLimits.InactiveThreshold = -time.Second }},
		{"firstSequence", func(c *events.StreamConfig) {
			c.Subjects = nil
			c.Mirror = &events.StreamSource{Name: "O"}
			c.FirstSequence = 3
		}},
		{"subjectTransform.destination", func(c *events.StreamConfig) {
			c.SubjectTransform = &jetstream.SubjectTransformConfig{Source: "v.>"}
		}},
		{"republish.destination", func(c *events.StreamConfig) { c.RePublish = &jetstream.RePublish{Destination: "v.*.x"} }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			cfg := events.NewStreamConfig("VAL", "v.>")
			tc.mod(&cfg)
			err := cfg.Validate()
			var verr *events.ValidationError
			if !errors.As(err, &verr) || verr.Field != tc.field {
				t.Fatalf("Validate = %v, want a ValidationError naming %s", err, tc.field)
			}
			if stricter[tc.field] != "" {
				return
			}
			// JetStream refuses it too: the rule is not stricter than the server.
			if _, err := js.CreateStream(ctx, cfg.JetStream()); err == nil {
				_ = js.DeleteStream(ctx, cfg.Name)
				t.Fatalf("JetStream accepts what Validate refuses (%v)", verr)
			}
		})
	}
}

// Lowering the consumer limits below what a consumer of the stream declares
// is refused by JetStream; the error names consumerLimits.
func TestConsumerLimitsBelowAConsumersAreAValidationErrorNamingTheField(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	cfg := events.NewStreamConfig("LIMITS", "limits.>")
	if _, err := events.CreateStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, cfg.Name, jetstream.ConsumerConfig{Durable: "greedy", MaxAckPending: 500,
		AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	cfg.ConsumerLimits.MaxAckPending = 10
	_, err := events.UpdateStream(ctx, js, cfg)
	var verr *events.ValidationError
	if !errors.As(err, &verr) || verr.Field != "consumerLimits" || !strings.Contains(verr.Reason, "greedy") {
		t.Fatalf("UpdateStream = %v, want a ValidationError naming consumerLimits and the consumer", err)
	}
	cfg.ConsumerLimits.MaxAckPending = 1000
	if _, err := events.UpdateStream(ctx, js, cfg); err != nil {
		t.Fatalf("a limit above the consumer's: %v", err)
	}
}
