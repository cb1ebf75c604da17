package controller

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// schemaOpt changes an EventSchema fixture.
type schemaOpt func(*eventsv1.EventSchema)

// genSchema is an EventSchema default/<name> of generation 1.
func genSchema(name, eventType, version, schema string, opts ...schemaOpt) *eventsv1.EventSchema {
	es := &eventsv1.EventSchema{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Generation: 1},
		Spec: eventsv1.EventSchemaSpec{Type: eventType, Version: version, Compatibility: eventsv1.SchemaCompatibilityBackward,
			Schema: apiextensionsv1.JSON{Raw: []byte(schema)}},
	}
	for _, o := range opts {
		o(es)
	}
	return es
}

func schemaCompat(c eventsv1.SchemaCompatibility) schemaOpt {
	return func(es *eventsv1.EventSchema) { es.Spec.Compatibility = c }
}

const (
	stepV10 = `{"type":"object","required":["user_id"],"properties":{"user_id":{"type":"string"},"email":{"type":"string"}}}`
	// stepV11 adds an optional property to stepV10.
	stepV11 = `{"type":"object","required":["user_id"],"properties":{"user_id":{"type":"string"},"email":{"type":"string"},"locale":{"type":"string"}}}`
	// stepBreaking drops email and requires locale.
	stepBreaking = `{"type":"object","required":["user_id","locale"],"properties":{"user_id":{"type":"string"},"locale":{"type":"string"}}}`
)

// TestEventSchemaSteps runs the compile and record steps of EventSchemas,
// as the reconcile does, against an embedded JetStream, and checks each
// outcome's conditions, their invariants and kstatus.
func TestEventSchemaSteps(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	r := &EventSchemaReconciler{reconciler: *stepReconciler(t, srv, nil)}
	js := jsOf(t, &r.reconciler)
	ctx := context.Background()

	put := func(t *testing.T, eventType, version, schema, owner string) uint64 {
		t.Helper()
		kv, err := js.KeyValue(ctx, schemas.DefaultBucket)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := json.Marshal(schemas.Record{Type: eventType, Version: version, Schema: json.RawMessage(schema), Compatibility: schemas.Backward, Owner: owner})
		rev, err := kv.Put(ctx, schemas.Key(eventType, version), v)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	record := func(t *testing.T, eventType, version string) (schemas.Record, uint64) {
		t.Helper()
		kv, err := js.KeyValue(ctx, schemas.DefaultBucket)
		if err != nil {
			t.Fatal(err)
		}
		e, err := kv.Get(ctx, schemas.Key(eventType, version))
		if err != nil {
			t.Fatalf("key of %s %s: %v", eventType, version, err)
		}
		var rec schemas.Record
		_ = json.Unmarshal(e.Value(), &rec)
		return rec, e.Revision()
	}

	cases := []struct {
		name    string
		pre     func(t *testing.T)
		es      *eventsv1.EventSchema
		want    string
		reason  string
		message string // a part of Ready's message
		check   func(t *testing.T, es *eventsv1.EventSchema)
	}{{
		name: "a new schema creates the bucket with the owner marker and stores the record",
		es:   genSchema("created", "created.event", "1.0", stepV10),
		want: wantReady, reason: eventsv1.ReasonCreated, message: "key created.event.1.0 of bucket EVENT_SCHEMAS written",
		check: func(t *testing.T, es *eventsv1.EventSchema) {
			kv, err := js.KeyValue(ctx, schemas.DefaultBucket)
			if err != nil {
				t.Fatal(err)
			}
			st, err := kv.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if md := st.(*jetstream.KeyValueBucketStatus).Metadata(); md[eventsv1.OwnerMetadataKey] != "eventstream-operator" {
				t.Errorf("bucket metadata %v", md)
			}
			rec, rev := record(t, "created.event", "1.0")
			if rec.Owner != "default/created" || rec.Type != "created.event" || rec.Version != "1.0" || rec.Compatibility != schemas.Backward {
				t.Errorf("record %+v", rec)
			}
			if es.Status.Key != "created.event.1.0" || es.Status.Bucket != schemas.DefaultBucket || es.Status.Revision != rev ||
				es.Status.URI != "urn:events:schema:created.event:1.0" {
				t.Errorf("status %+v (revision in the bucket %d)", es.Status, rev)
			}
		},
	}, {
		name: "a record that matches is left alone",
		pre:  func(t *testing.T) { put(t, "insync.event", "1.0", stepV10, "default/insync") },
		es:   genSchema("insync", "insync.event", "1.0", stepV10),
		want: wantReady, reason: eventsv1.ReasonInSync,
		check: func(t *testing.T, es *eventsv1.EventSchema) {
			if _, rev := record(t, "insync.event", "1.0"); es.Status.Revision != rev {
				t.Errorf("status revision %d, bucket %d", es.Status.Revision, rev)
			}
		},
	}, {
		name: "a record changed out of band (same owner) is restored",
		pre:  func(t *testing.T) { put(t, "drift.event", "1.0", `{"type":"object"}`, "default/drift") },
		es:   genSchema("drift", "drift.event", "1.0", stepV10),
		want: wantReady, reason: eventsv1.ReasonUpdated,
	}, {
		name: "a record of another owner is a conflict and is not overwritten",
		pre:  func(t *testing.T) { put(t, "taken.event", "1.0", `{"type":"object"}`, "a-script") },
		es:   genSchema("taken", "taken.event", "1.0", stepV10),
		want: wantTerminal, reason: eventsv1.ReasonConflict, message: "held by a-script",
		check: func(t *testing.T, _ *eventsv1.EventSchema) {
			if rec, _ := record(t, "taken.event", "1.0"); rec.Owner != "a-script" || string(rec.Schema) != `{"type":"object"}` {
				t.Errorf("the foreign record was changed: %+v", rec)
			}
		},
	}, {
		name: "a value that is not a record is repaired",
		pre: func(t *testing.T) {
			kv, _ := js.KeyValue(ctx, schemas.DefaultBucket)
			if _, err := kv.Put(ctx, schemas.Key("garbage.event", "1.0"), []byte("not json")); err != nil {
				t.Fatal(err)
			}
		},
		es:   genSchema("garbage", "garbage.event", "1.0", stepV10),
		want: wantReady, reason: eventsv1.ReasonUpdated,
	}, {
		name: "a schema that does not compile is InvalidSchema with the compiler's message",
		es:   genSchema("invalid", "invalid.event", "1.0", `{"type":"object","minProperties":"two"}`),
		want: wantTerminal, reason: eventsv1.ReasonInvalidSchema, message: "spec.schema: ",
	}, {
		name: "a compatible minor is stored",
		pre:  func(t *testing.T) { put(t, "minor.event", "1.0", stepV10, "default/minor-1-0") },
		es:   genSchema("minor-1-1", "minor.event", "1.1", stepV11),
		want: wantReady, reason: eventsv1.ReasonCreated,
	}, {
		name: "an incompatible minor is Incompatible, naming the property, and not stored",
		pre:  func(t *testing.T) { put(t, "breaking.event", "1.0", stepV10, "default/breaking-1-0") },
		es:   genSchema("breaking-1-1", "breaking.event", "1.1", stepBreaking),
		want: wantTerminal, reason: eventsv1.ReasonIncompatible, message: "property locale: new required property",
		check: func(t *testing.T, _ *eventsv1.EventSchema) {
			kv, _ := js.KeyValue(ctx, schemas.DefaultBucket)
			if _, err := kv.Get(ctx, schemas.Key("breaking.event", "1.1")); err == nil {
				t.Error("the incompatible schema was stored")
			}
		},
	}, {
		name: "an older minor registered after a newer one is checked too (both directions)",
		pre:  func(t *testing.T) { put(t, "late.event", "1.2", stepV10, "default/late-1-2") },
		es:   genSchema("late-1-1", "late.event", "1.1", stepV11),
		want: wantTerminal, reason: eventsv1.ReasonIncompatible, message: "late.event 1.2 is not backward compatible with late.event 1.1",
	}, {
		name: "a breaking new major is stored",
		pre:  func(t *testing.T) { put(t, "major.event", "1.0", stepV10, "default/major-1-0") },
		es:   genSchema("major-2-0", "major.event", "2.0", stepBreaking),
		want: wantReady, reason: eventsv1.ReasonCreated,
	}, {
		name: "compatibility None skips the check",
		pre:  func(t *testing.T) { put(t, "none.event", "1.0", stepV10, "default/none-1-0") },
		es:   genSchema("none-1-1", "none.event", "1.1", stepBreaking, schemaCompat(eventsv1.SchemaCompatibilityNone)),
		want: wantReady, reason: eventsv1.ReasonCreated,
		check: func(t *testing.T, _ *eventsv1.EventSchema) {
			if rec, _ := record(t, "none.event", "1.1"); rec.Compatibility != schemas.None {
				t.Errorf("record compatibility %q", rec.Compatibility)
			}
		},
	}, {
		name: "another type sharing a key prefix is not compared",
		pre:  func(t *testing.T) { put(t, "prefix.event.sub", "1.0", `{"type":"array"}`, "default/other") },
		es:   genSchema("prefix", "prefix.event", "1.1", stepV10),
		want: wantReady, reason: eventsv1.ReasonCreated,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.pre != nil {
				// The bucket exists for the cases that prepare keys.
				if _, err := r.ensureBucket(ctx, js, genSchema("setup", "setup.event", "1.0", stepV10)); err != nil {
					t.Fatal(err)
				}
				tc.pre(t)
			}
			es := tc.es
			var res stepResult
			err := r.reconcileCompile(es)
			if err == nil {
				res, err = r.reconcileRecord(ctx, js, es)
			}
			if got := kindOf(t, err); got != tc.want {
				t.Fatalf("outcome %s (%v), want %s", got, err, tc.want)
			}
			st := statusRef{&es.Status.Conditions, &es.Status.ObservedGeneration}
			summarizeStep(t, st, es.Generation, res, err)
			checkOutcome(t, es, st, tc.want, tc.reason)
			for _, c := range es.Status.Conditions {
				if c.Type == eventsv1.ConditionReady && !strings.Contains(c.Message, tc.message) {
					t.Errorf("Ready message %q lacks %q", c.Message, tc.message)
				}
			}
			if tc.check != nil {
				tc.check(t, es)
			}
		})
	}

	t.Run("a second reconcile of a stored schema writes nothing", func(t *testing.T) {
		es := genSchema("steady", "steady.event", "1.0", stepV10)
		if _, err := r.reconcileRecord(ctx, js, es); err != nil {
			t.Fatal(err)
		}
		_, rev := record(t, "steady.event", "1.0")
		res, err := r.reconcileRecord(ctx, js, es)
		if err != nil || res.reason != eventsv1.ReasonInSync {
			t.Fatalf("second reconcile: %+v, %v", res, err)
		}
		if _, again := record(t, "steady.event", "1.0"); again != rev {
			t.Errorf("revision moved from %d to %d", rev, again)
		}
	})

	t.Run("releasing deletes our key and leaves another owner's", func(t *testing.T) {
		mine := genSchema("mine", "release.event", "1.0", stepV10)
		if _, err := r.reconcileRecord(ctx, js, mine); err != nil {
			t.Fatal(err)
		}
		if err := r.releaseRecord(ctx, mine); err != nil {
			t.Fatal(err)
		}
		kv, _ := js.KeyValue(ctx, schemas.DefaultBucket)
		if _, err := kv.Get(ctx, schemas.Key("release.event", "1.0")); err == nil {
			t.Error("the key is still there")
		}
		put(t, "release.event", "2.0", stepV10, "someone-else")
		theirs := genSchema("theirs", "release.event", "2.0", stepV10)
		theirs.Status.Key = schemas.Key("release.event", "2.0")
		if err := r.releaseRecord(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		if rec, _ := record(t, "release.event", "2.0"); rec.Owner != "someone-else" {
			t.Errorf("another owner's key was touched: %+v", rec)
		}
		if _, err := js.KeyValue(ctx, schemas.DefaultBucket); err != nil {
			t.Errorf("the bucket is gone: %v", err)
		}
	})

	t.Run("a resource that lost its claim yields the key it holds, and only its own", func(t *testing.T) {
		loser := genSchema("loser", "yield.event", "1.0", stepV10)
		if _, err := r.reconcileRecord(ctx, js, loser); err != nil {
			t.Fatal(err)
		}
		if err := r.deleteOwnRecord(ctx, js, loser, false); err != nil {
			t.Fatal(err)
		}
		kv, _ := js.KeyValue(ctx, schemas.DefaultBucket)
		if _, err := kv.Get(ctx, schemas.Key("yield.event", "1.0")); err == nil {
			t.Error("the loser still holds the key")
		}
		put(t, "yield.event", "1.0", stepV10, "default/winner")
		if err := r.deleteOwnRecord(ctx, js, loser, false); err != nil {
			t.Fatal(err)
		}
		if rec, _ := record(t, "yield.event", "1.0"); rec.Owner != "default/winner" {
			t.Errorf("the winner's key was touched: %+v", rec)
		}
	})

	t.Run("NATS unreachable is transient", func(t *testing.T) {
		srv.Close()
		es := genSchema("down", "down.event", "1.0", stepV10)
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		res, err := r.reconcileRecord(dctx, js, es)
		if got := kindOf(t, err); got != wantTransient {
			t.Fatalf("outcome %s (%v), want transient", got, err)
		}
		st := statusRef{&es.Status.Conditions, &es.Status.ObservedGeneration}
		summarizeStep(t, st, es.Generation, res, err)
		checkOutcome(t, es, st, wantTransient, eventsv1.ReasonNatsUnavailable)
	})
}
