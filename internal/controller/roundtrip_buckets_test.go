package controller

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/admin"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// The round trip of every declared bucket field: a resource that sets it to
// a value other than the default is reconciled into JetStream, the value is
// read back from the server's INFO of the bucket's stream, and a second
// reconcile of the same resource finds it in sync (InSync: Ready stays
// True, the conditions unchanged) and writes nothing to JetStream. There is a case for every field the field tables
// (fields_keyvalue_test.go, fields_objectstore_test.go) declare.

// bucketCase sets one field in a resource and checks the server's INFO.
type bucketCase[T any] struct {
	set   func(obj T)
	check func(info *jetstream.StreamInfo) error
	// refused: a single server cannot take the value (replicas > 1); the
	// reconcile must fail with this Ready reason, naming the field.
	refused, field string
}

func want(what string, got, wanted any) error {
	if !reflect.DeepEqual(got, wanted) {
		return fmt.Errorf("%s = %v, want %v", what, got, wanted)
	}
	return nil
}

func keyValueRoundTrips() map[string]bucketCase[*eventsv1.EventKeyValue] {
	type kv = *eventsv1.EventKeyValue
	type info = *jetstream.StreamInfo
	return map[string]bucketCase[kv]{
		"Bucket": {set: func(o kv) { o.Spec.Bucket = "Named_Bucket-1" }, check: func(i info) error {
			return want("stream name", i.Config.Name, "KV_Named_Bucket-1")
		}},
		"Description": {set: func(o kv) { o.Spec.Description = "flags" }, check: func(i info) error {
			return want("description", i.Config.Description, "flags")
		}},
		"MaxValueSize": {set: func(o kv) { o.Spec.MaxValueSize = ptrTo[int32](2048) }, check: func(i info) error {
			return want("max msg size", i.Config.MaxMsgSize, int32(2048))
		}},
		"History": {set: func(o kv) { o.Spec.History = 7 }, check: func(i info) error {
			return want("max msgs per subject", i.Config.MaxMsgsPerSubject, int64(7))
		}},
		"TTL": {set: func(o kv) { o.Spec.TTL = "90m" }, check: func(i info) error {
			return want("max age", i.Config.MaxAge, 90*time.Minute)
		}},
		"MaxBytes": {set: func(o kv) { o.Spec.MaxBytes = ptrQuantity("3Mi") }, check: func(i info) error {
			return want("max bytes", i.Config.MaxBytes, int64(3<<20))
		}},
		"Storage": {set: func(o kv) { o.Spec.Storage = eventsv1.StorageMemory }, check: func(i info) error {
			return want("storage", i.Config.Storage, jetstream.MemoryStorage)
		}},
		"Replicas": {set: func(o kv) { o.Spec.Replicas = 3 }, refused: eventsv1.ReasonInvalidSpec, field: "replicas"},
		"Placement": {set: func(o kv) { o.Spec.Placement = &eventsv1.Placement{Cluster: "east", Tags: []string{"ssd"}} }, check: func(i info) error {
			return want("placement", i.Config.Placement, &jetstream.Placement{Cluster: "east", Tags: []string{"ssd"}})
		}},
		"RePublish": {set: func(o kv) {
			o.Spec.Republish = &eventsv1.Republish{Source: "$KV.rt-republish.>", Destination: "rt.republish.>", HeadersOnly: true}
		}, check: func(i info) error {
			return want("republish", i.Config.RePublish, &jetstream.RePublish{Source: "$KV.rt-republish.>", Destination: "rt.republish.>", HeadersOnly: true})
		}},
		"Mirror": {set: func(o kv) {
			o.Spec.Mirror = &eventsv1.StreamSource{Name: "RT_ORIGIN", FilterSubject: "$KV.RT_ORIGIN.a.>"}
		}, check: func(i info) error {
			if i.Config.Mirror == nil {
				return fmt.Errorf("no mirror")
			}
			return want("mirror", [3]any{i.Config.Mirror.Name, i.Config.Mirror.FilterSubject, i.Config.MirrorDirect}, [3]any{"KV_RT_ORIGIN", "$KV.RT_ORIGIN.a.>", true})
		}},
		"Sources": {set: func(o kv) {
			o.Spec.Sources = []eventsv1.StreamSource{{Name: "RT_ORIGIN"}, {Name: "RT_LEAF", Domain: "leaf"}}
		}, check: func(i info) error {
			if len(i.Config.Sources) != 2 {
				return fmt.Errorf("sources %v", i.Config.Sources)
			}
			s0, s1 := i.Config.Sources[0], i.Config.Sources[1]
			if err := want("source 0", [2]any{s0.Name, s0.SubjectTransforms[0].Source}, [2]any{"KV_RT_ORIGIN", "$KV.RT_ORIGIN.>"}); err != nil {
				return err
			}
			if s1.External == nil {
				return fmt.Errorf("source 1 has no external")
			}
			return want("source 1", [2]any{s1.Name, s1.External.APIPrefix}, [2]any{"KV_RT_LEAF", "$JS.leaf.API"})
		}},
		"Compression": {set: func(o kv) { o.Spec.Compression = eventsv1.CompressionS2 }, check: func(i info) error {
			return want("compression", i.Config.Compression, jetstream.S2Compression)
		}},
		"LimitMarkerTTL": {set: func(o kv) { o.Spec.LimitMarkerTTL = "3s" }, check: func(i info) error {
			return want("subject delete marker TTL, allow msg TTL", [2]any{i.Config.SubjectDeleteMarkerTTL, i.Config.AllowMsgTTL}, [2]any{3 * time.Second, true})
		}},
		"Metadata": {set: func(o kv) { o.Spec.Metadata = map[string]string{"team": "flags"} }, check: func(i info) error {
			return want("metadata team", i.Config.Metadata["team"], "flags")
		}},
	}
}

func objectStoreRoundTrips() map[string]bucketCase[*eventsv1.EventObjectStore] {
	type obs = *eventsv1.EventObjectStore
	type info = *jetstream.StreamInfo
	return map[string]bucketCase[obs]{
		"Bucket": {set: func(o obs) { o.Spec.Bucket = "Named_Store-1" }, check: func(i info) error {
			return want("stream name", i.Config.Name, "OBJ_Named_Store-1")
		}},
		"Description": {set: func(o obs) { o.Spec.Description = "attachments" }, check: func(i info) error {
			return want("description", i.Config.Description, "attachments")
		}},
		"TTL": {set: func(o obs) { o.Spec.TTL = "72h" }, check: func(i info) error {
			return want("max age", i.Config.MaxAge, 72*time.Hour)
		}},
		"MaxBytes": {set: func(o obs) { o.Spec.MaxBytes = ptrQuantity("5Mi") }, check: func(i info) error {
			return want("max bytes", i.Config.MaxBytes, int64(5<<20))
		}},
		"Storage": {set: func(o obs) { o.Spec.Storage = eventsv1.StorageMemory }, check: func(i info) error {
			return want("storage", i.Config.Storage, jetstream.MemoryStorage)
		}},
		"Replicas": {set: func(o obs) { o.Spec.Replicas = 3 }, refused: eventsv1.ReasonInvalidSpec, field: "replicas"},
		"Placement": {set: func(o obs) { o.Spec.Placement = &eventsv1.Placement{Tags: []string{"hdd"}} }, check: func(i info) error {
			return want("placement", i.Config.Placement, &jetstream.Placement{Tags: []string{"hdd"}})
		}},
		"Compression": {set: func(o obs) { o.Spec.Compression = eventsv1.CompressionS2 }, check: func(i info) error {
			return want("compression", i.Config.Compression, jetstream.S2Compression)
		}},
		"Metadata": {set: func(o obs) { o.Spec.Metadata = map[string]string{"team": "docs"} }, check: func(i info) error {
			return want("metadata team", i.Config.Metadata["team"], "docs")
		}},
	}
}

func ptrTo[T any](v T) *T { return &v }

// tableFor returns the registered field table of a nats.go config type.
func tableFor(t *testing.T, config reflect.Type) fieldTable {
	t.Helper()
	for _, ft := range fieldTables {
		if ft.config == config {
			return ft
		}
	}
	t.Fatalf("no field table for %s", config)
	return fieldTable{}
}

// countUpdates counts stream update requests (writes) seen on the server.
func countUpdates(t *testing.T, srv *eventstest.Server) func() int64 {
	t.Helper()
	conn := srv.Conn(t)
	var n atomic.Int64
	if _, err := conn.Subscribe("$JS.API.STREAM.UPDATE.>", func(*nats.Msg) { n.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	return n.Load
}

// roundTrip runs the cases of one bucket kind against the declared fields
// of its table.
func roundTrip[T interface {
	*eventsv1.EventKeyValue | *eventsv1.EventObjectStore
}](t *testing.T, config reflect.Type, cases map[string]bucketCase[T], build func(name string) T,
	reconcile func(ctx context.Context, js jetstream.JetStream, obj T) (stepResult, error),
	st func(obj T) statusRef, stream func(obj T) string, js jetstream.JetStream, updates func() int64) {
	ctx := context.Background()
	for name, f := range tableFor(t, config).fields {
		if f.path == "" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			tc, ok := cases[name]
			if !ok {
				t.Fatalf("%s is declared at %s but has no round-trip case", name, f.path)
			}
			obj := build("rt-" + strings.ToLower(name))
			tc.set(obj)
			res, err := reconcile(ctx, js, obj)
			if tc.refused != "" {
				se, isStep := err.(*stepError)
				if !isStep || se.reason != tc.refused || !strings.Contains(strings.ToLower(se.message), tc.field) {
					t.Fatalf("reconcile = %v, want Ready=False %s naming %s", err, tc.refused, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatalf("first reconcile: %v", err)
			}
			summarize(st(obj), 1, stepNow, res, nil)
			info, err := js.Stream(ctx, stream(obj))
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(info.CachedInfo()); err != nil {
				t.Fatalf("read back from JetStream: %v", err)
			}
			before := updates()
			status := slices.Clone(*st(obj).conditions)
			res, err = reconcile(ctx, js, obj)
			if err != nil {
				t.Fatalf("second reconcile: %v", err)
			}
			if res.reason != eventsv1.ReasonInSync {
				t.Fatalf("the second reconcile ended %s, want %s", res.reason, eventsv1.ReasonInSync)
			}
			summarize(st(obj), 1, stepNow, res, nil)
			ready := findCondition(*st(obj).conditions, eventsv1.ConditionReady)
			if ready == nil || ready.Status != metav1.ConditionTrue {
				t.Fatalf("after the second reconcile Ready = %+v, want True", ready)
			}
			if !reflect.DeepEqual(status, *st(obj).conditions) {
				t.Fatalf("an in-sync reconcile changed the conditions (a status write):\n%+v\n%+v", status, *st(obj).conditions)
			}
			time.Sleep(20 * time.Millisecond) // let a stray update request arrive
			if n := updates() - before; n != 0 {
				t.Fatalf("the second reconcile made %d stream updates, want none", n)
			}
		})
	}
}

func findCondition(conds []metav1.Condition, typ string) *metav1.Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

func TestKeyValueFieldsRoundTrip(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	r := &EventKeyValueReconciler{reconciler: *stepReconciler(t, srv, nil)}
	r.Domains = domainPolicy{"*"} // the sources case names a domain (an administrator allowing any)
	js := jsOf(t, &r.reconciler)
	origin := admin.NewKeyValueConfig("RT_ORIGIN")
	origin.MaxBytes = 1 << 20
	if _, err := admin.CreateKeyValue(context.Background(), js, origin); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, reflect.TypeFor[jetstream.KeyValueConfig](), keyValueRoundTrips(), genKeyValue, r.reconcileBucket,
		func(o *eventsv1.EventKeyValue) statusRef {
			return statusRef{&o.Status.Conditions, &o.Status.ObservedGeneration}
		},
		func(o *eventsv1.EventKeyValue) string { return o.StreamName() }, js, countUpdates(t, srv))
}

func TestObjectStoreFieldsRoundTrip(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	r := &EventObjectStoreReconciler{reconciler: *stepReconciler(t, srv, nil)}
	r.Domains = domainPolicy{"*"} // the sources case names a domain (an administrator allowing any)
	js := jsOf(t, &r.reconciler)
	roundTrip(t, reflect.TypeFor[jetstream.ObjectStoreConfig](), objectStoreRoundTrips(), genObjectStore, r.reconcileBucket,
		func(o *eventsv1.EventObjectStore) statusRef {
			return statusRef{&o.Status.Conditions, &o.Status.ObservedGeneration}
		},
		func(o *eventsv1.EventObjectStore) string { return o.StreamName() }, js, countUpdates(t, srv))
}

// genKeyValue and genObjectStore are resources as the API server returns
// them after defaulting, with a small maxBytes.
func genKeyValue(name string) *eventsv1.EventKeyValue {
	return &eventsv1.EventKeyValue{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Generation: 1, UID: types.UID("uid-" + name)},
		Spec: eventsv1.EventKeyValueSpec{History: 1, MaxBytes: ptrQuantity("1Mi"), Storage: eventsv1.StorageFile,
			Replicas: 1, Compression: eventsv1.CompressionNone, DeletionPolicy: eventsv1.DeletionPolicyDelete},
	}
}

func genObjectStore(name string) *eventsv1.EventObjectStore {
	return &eventsv1.EventObjectStore{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Generation: 1, UID: types.UID("uid-" + name)},
		Spec: eventsv1.EventObjectStoreSpec{MaxBytes: ptrQuantity("1Mi"), Storage: eventsv1.StorageFile,
			Replicas: 1, Compression: eventsv1.CompressionNone, DeletionPolicy: eventsv1.DeletionPolicyDelete},
	}
}
