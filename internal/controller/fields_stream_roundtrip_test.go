package controller

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/utils/ptr"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// streamRoundTrip is one declared field of jetstream.StreamConfig: a
// non-default value set in an EventStream (set), and the check that the
// stream JetStream reports carries it (check).
type streamRoundTrip struct {
	set   func(s *eventsv1.EventStreamSpec, name string)
	check func(c jetstream.StreamConfig, info *jetstream.StreamInfo, name string) bool
	// note: why the value is not a non-default one.
	note string
}

// streamRoundTrips has a case for every field streamFieldTable declares.
var streamRoundTrips = map[string]streamRoundTrip{
	"Name": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.Name = "RT_EXPLICIT_NAME" },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Name == "RT_EXPLICIT_NAME"
		}},
	"Description": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.Description = "declared" },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Description == "declared"
		}},
	"Subjects": {
		set: func(s *eventsv1.EventStreamSpec, n string) { s.Subjects = []string{n + ".a.*", n + ".b.>"} },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, n string) bool {
			return reflect.DeepEqual(c.Subjects, []string{n + ".a.*", n + ".b.>"})
		}},
	"Retention": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.Retention = eventsv1.RetentionInterest },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Retention == jetstream.InterestPolicy
		}},
	"MaxConsumers": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.MaxConsumers = ptr.To[int32](5) },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.MaxConsumers == 5 }},
	"MaxMsgs": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.MaxMsgs = ptr.To[int64](100) },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.MaxMsgs == 100 }},
	"MaxBytes": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.MaxBytes = ptrQuantity("2Mi") },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.MaxBytes == 2<<20 }},
	"Discard": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.Discard = eventsv1.DiscardNew },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Discard == jetstream.DiscardNew
		}},
	"DiscardNewPerSubject": {
		set: func(s *eventsv1.EventStreamSpec, _ string) {
			s.Discard, s.MaxMsgsPerSubject, s.DiscardNewPerSubject = eventsv1.DiscardNew, ptr.To[int64](3), true
		},
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.DiscardNewPerSubject }},
	"MaxAge": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.MaxAge = "1h" },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.MaxAge == time.Hour }},
	"MaxMsgsPerSubject": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.MaxMsgsPerSubject = ptr.To[int64](5) },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.MaxMsgsPerSubject == 5
		}},
	"MaxMsgSize": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.MaxMsgSize = ptr.To[int32](1024) },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.MaxMsgSize == 1024 }},
	"Storage": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.Storage = eventsv1.StorageMemory },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Storage == jetstream.MemoryStorage
		}},
	"Replicas": {
		note:  "more than one replica needs a JetStream cluster; the embedded server is one node, so the case declares 1 explicitly",
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.Replicas = 1 },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.Replicas == 1 }},
	"NoAck": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.NoAck = true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.NoAck }},
	"Duplicates": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.DuplicateWindow = "30s" },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Duplicates == 30*time.Second
		}},
	"Placement": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.Placement = &eventsv1.Placement{Tags: []string{"ssd"}} },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Placement != nil && reflect.DeepEqual(c.Placement.Tags, []string{"ssd"})
		}},
	"Mirror": {
		set: func(s *eventsv1.EventStreamSpec, _ string) {
			s.Subjects, s.Mirror = nil, &eventsv1.StreamSource{Name: rtOrigin, FilterSubject: "rtorigin.a.>"}
		},
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Mirror != nil && c.Mirror.Name == rtOrigin && c.Mirror.FilterSubject == "rtorigin.a.>"
		}},
	"Sources": {
		set: func(s *eventsv1.EventStreamSpec, _ string) {
			s.Sources = []eventsv1.StreamSource{{Name: rtOrigin, OptStartSeq: 2}}
		},
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return len(c.Sources) == 1 && c.Sources[0].Name == rtOrigin && c.Sources[0].OptStartSeq == 2
		}},
	"Sealed": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.Sealed = true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Sealed && c.DenyDelete && c.DenyPurge
		}},
	"DenyDelete": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.DenyDelete = true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.DenyDelete }},
	"DenyPurge": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.DenyPurge = true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.DenyPurge }},
	"AllowRollup": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.AllowRollup = true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.AllowRollup }},
	"Compression": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.Compression = eventsv1.CompressionS2 },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Compression == jetstream.S2Compression
		}},
	"FirstSeq": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.FirstSequence = 100 },
		check: func(c jetstream.StreamConfig, info *jetstream.StreamInfo, _ string) bool {
			return c.FirstSeq == 100 && info.State.FirstSeq == 100
		}},
	"SubjectTransform": {
		set: func(s *eventsv1.EventStreamSpec, n string) {
			s.SubjectTransform = &eventsv1.SubjectTransform{Source: n + ".in.*", Destination: n + ".out.{{wildcard(1)}}"}
		},
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, n string) bool {
			return c.SubjectTransform != nil && c.SubjectTransform.Source == n+".in.*" &&
				c.SubjectTransform.Destination == n+".out.{{wildcard(1)}}"
		}},
	"RePublish": {
		set: func(s *eventsv1.EventStreamSpec, n string) {
			s.Republish = &eventsv1.Republish{Destination: "copy." + n + ".>", HeadersOnly: true}
		},
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, n string) bool {
			return c.RePublish != nil && c.RePublish.Destination == "copy."+n+".>" && c.RePublish.HeadersOnly
		}},
	"AllowDirect": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.AllowDirect = true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.AllowDirect }},
	"ConsumerLimits": {
		set: func(s *eventsv1.EventStreamSpec, _ string) {
			s.ConsumerLimits = &eventsv1.StreamConsumerLimits{InactiveThreshold: "1h", MaxAckPending: 100}
		},
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.ConsumerLimits == jetstream.StreamConsumerLimits{InactiveThreshold: time.Hour, MaxAckPending: 100}
		}},
	"Metadata": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.Metadata = map[string]string{"team": "platform"} },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.Metadata["team"] == "platform"
		}},
	"AllowMsgTTL": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.AllowMsgTTL = true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.AllowMsgTTL }},
	"SubjectDeleteMarkerTTL": {
		set: func(s *eventsv1.EventStreamSpec, _ string) {
			s.AllowMsgTTL, s.AllowRollup, s.SubjectDeleteMarkerTTL = true, true, "10m"
		},
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.SubjectDeleteMarkerTTL == 10*time.Minute
		}},
	"AllowMsgCounter": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.AllowMsgCounter = true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.AllowMsgCounter }},
	"AllowAtomicPublish": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.AllowAtomicPublish = true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.AllowAtomicPublish }},
	"AllowMsgSchedules": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.AllowRollup, s.AllowMsgSchedules = true, true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.AllowMsgSchedules }},
	"PersistMode": {
		set: func(s *eventsv1.EventStreamSpec, _ string) { s.PersistMode = eventsv1.PersistAsync },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool {
			return c.PersistMode == jetstream.AsyncPersistMode
		}},
	"AllowBatchPublish": {
		set:   func(s *eventsv1.EventStreamSpec, _ string) { s.AllowBatchPublish = true },
		check: func(c jetstream.StreamConfig, _ *jetstream.StreamInfo, _ string) bool { return c.AllowBatchPublish }},
}

// rtOrigin is the stream the mirror and source cases copy from.
const rtOrigin = "RT_ORIGIN"

// TestEveryDeclaredStreamFieldRoundTrips: for every field of
// jetstream.StreamConfig that EventStream declares, an EventStream with a
// non-default value goes through the API server (defaults, CEL), is
// reconciled against a real nats-server, and the stream's INFO carries the
// value; a second reconcile finds it InSync, Ready=True, and writes nothing.
func TestEveryDeclaredStreamFieldRoundTrips(t *testing.T) {
	c := apiClient(t)
	srv := eventstest.RunJetStream(t)
	r := &EventStreamReconciler{reconciler: *stepReconciler(t, srv, c)}
	js := jsOf(t, &r.reconciler)
	ctx := context.Background()
	eventstest.CreateStream(t, js, rtOrigin, []string{"rtorigin.>"})
	for i := range 3 {
		if _, err := js.Publish(ctx, "rtorigin.a.x", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}

	for field := range streamRoundTrips {
		if streamFieldTable[field].path == "" {
			t.Errorf("round-trip case %s is not a field the table declares", field)
		}
	}
	for field, def := range streamFieldTable {
		if def.path == "" {
			continue
		}
		t.Run(field, func(t *testing.T) {
			tc, ok := streamRoundTrips[field]
			if !ok {
				t.Fatalf("%s is declared at %s but has no round-trip case", field, def.path)
			}
			name := "rt-" + strings.ToLower(field)
			evs := genStream(name)
			evs.UID, evs.Generation = "", 0
			tc.set(&evs.Spec, name)
			if err := c.Create(ctx, evs); err != nil {
				t.Fatalf("the API server refuses the case: %v", err)
			}
			t.Cleanup(func() { _ = c.Delete(context.Background(), evs) })

			res, err := r.reconcileStream(ctx, js, evs)
			if err != nil {
				t.Fatalf("first reconcile: %v", err)
			}
			summarizeStep(t, streamStatus(evs), evs.Generation, res, err)
			stream, err := js.Stream(ctx, evs.JetStreamName())
			if err != nil {
				t.Fatal(err)
			}
			info, err := stream.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(info.Config, info, name) {
				t.Fatalf("%s did not arrive in JetStream: %+v", def.path, info.Config)
			}

			if res.reason != eventsv1.ReasonCreated {
				t.Errorf("first reconcile: %s, want Created", res.reason)
			}
			res, err = r.reconcileStream(ctx, js, evs)
			if err != nil {
				t.Fatalf("second reconcile: %v", err)
			}
			if res.reason != eventsv1.ReasonInSync {
				t.Fatalf("second reconcile: %s, want InSync (nothing to update)", res.reason)
			}
			// The status does not change (no status write) ...
			before := evs.Status.DeepCopy()
			summarizeStep(t, streamStatus(evs), evs.Generation, res, err)
			if !reflect.DeepEqual(before, &evs.Status) {
				t.Errorf("an in-sync reconcile changed the status:\n%+v\n%+v", before, evs.Status)
			}
			// ... and reads Ready=True InSync to an operator that starts afresh.
			fresh := evs.DeepCopy()
			fresh.Status.Conditions = nil
			summarizeStep(t, streamStatus(fresh), fresh.Generation, res, err)
			checkOutcome(t, fresh, streamStatus(fresh), wantReady, eventsv1.ReasonInSync)
			if evs.Status.StreamName != evs.JetStreamName() {
				t.Errorf("status.streamName %q", evs.Status.StreamName)
			}
			after, err := stream.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(after.Config, info.Config) || !after.Created.Equal(info.Created) {
				t.Fatalf("the in-sync reconcile changed the stream:\n%+v\n%+v", info.Config, after.Config)
			}
			if err := js.DeleteStream(ctx, evs.JetStreamName()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStreamSettingsChangedOutOfBandAreRepairedOrRefused: a new setting
// edited on the server by hand is put back at the next reconcile, and a
// one-way switch turned on by hand (which JetStream cannot turn off) is
// reported as an immutable change, not retried.
func TestStreamSettingsChangedOutOfBandAreRepairedOrRefused(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	r := &EventStreamReconciler{reconciler: *stepReconciler(t, srv, nil)}
	js := jsOf(t, &r.reconciler)
	ctx := context.Background()

	evs := genStream("oob-repair", func(e *eventsv1.EventStream) {
		e.Spec.AllowRollup = true
		e.Spec.Republish = &eventsv1.Republish{Destination: "copy.oob.>"}
		e.Spec.ConsumerLimits = &eventsv1.StreamConsumerLimits{MaxAckPending: 50}
	})
	if _, err := r.reconcileStream(ctx, js, evs); err != nil {
		t.Fatal(err)
	}
	edit := func(name string, mod func(*jetstream.StreamConfig)) {
		t.Helper()
		cfg := streamInfo(t, js, name).Config
		mod(&cfg)
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	edit("OOB_REPAIR", func(c *jetstream.StreamConfig) {
		c.AllowRollup, c.RePublish, c.ConsumerLimits = false, nil, jetstream.StreamConsumerLimits{}
	})
	res, err := r.reconcileStream(ctx, js, evs)
	if err != nil || res.reason != eventsv1.ReasonUpdated {
		t.Fatalf("reconcile after the edit: %v %v, want Updated", res.reason, err)
	}
	got := streamInfo(t, js, "OOB_REPAIR").Config
	if !got.AllowRollup || got.RePublish == nil || got.RePublish.Destination != "copy.oob.>" || got.ConsumerLimits.MaxAckPending != 50 {
		t.Fatalf("not repaired: %+v", got)
	}

	oneway := genStream("oob-oneway")
	if _, err := r.reconcileStream(ctx, js, oneway); err != nil {
		t.Fatal(err)
	}
	edit("OOB_ONEWAY", func(c *jetstream.StreamConfig) { c.AllowMsgTTL = true })
	res, err = r.reconcileStream(ctx, js, oneway)
	if got := kindOf(t, err); got != wantTerminal {
		t.Fatalf("outcome %s (%v), want terminal", got, err)
	}
	summarizeStep(t, streamStatus(oneway), oneway.Generation, res, err)
	checkOutcome(t, oneway, streamStatus(oneway), wantTerminal, eventsv1.ReasonImmutableFieldChanged)
	if !strings.Contains(err.Error(), "allowMsgTTL") {
		t.Errorf("the error does not name the field: %v", err)
	}
	if info, _ := events.GetStreamInfo(ctx, js, "OOB_ONEWAY"); !info.Config.AllowMsgTTL {
		t.Errorf("the stream was changed")
	}
}
