package controller_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// userV10 is the shape of the seed's user.created 1.0.
const userV10 = `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
  "required":["user_id","email"],
  "properties":{"user_id":{"type":"string","minLength":1},"email":{"type":"string"}}}`

// newSchema builds an EventSchema in namespace "default".
func newSchema(name, eventType, version, schema string, opts ...func(*eventsv1.EventSchema)) *eventsv1.EventSchema {
	es := &eventsv1.EventSchema{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: eventsv1.EventSchemaSpec{Type: eventType, Version: version,
			Schema: apiextensionsv1.JSON{Raw: []byte(schema)}},
	}
	for _, o := range opts {
		o(es)
	}
	return es
}

func schemaReady(es *eventsv1.EventSchema) func() string {
	return func() string {
		out := &eventsv1.EventSchema{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(es), out); err != nil {
			return ""
		}
		c := meta.FindStatusCondition(out.Status.Conditions, eventsv1.ConditionReady)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
}

func getSchema(es *eventsv1.EventSchema) *eventsv1.EventSchema {
	GinkgoHelper()
	out := &eventsv1.EventSchema{}
	Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(es), out)).To(Succeed())
	return out
}

func registry() jetstream.KeyValue {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, schemas.DefaultBucket)
	Expect(err).NotTo(HaveOccurred())
	return kv
}

// storedRecord reads the registry's record of (type, version), or nil.
func storedRecord(eventType, version string) *schemas.Record {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, schemas.DefaultBucket)
	if err != nil {
		return nil
	}
	e, err := kv.Get(ctx, schemas.Key(eventType, version))
	if err != nil {
		return nil
	}
	rec := &schemas.Record{}
	if json.Unmarshal(e.Value(), rec) != nil {
		return nil
	}
	return rec
}

func ownerOf(eventType, version string) func() string {
	return func() string {
		if rec := storedRecord(eventType, version); rec != nil {
			return rec.Owner
		}
		return ""
	}
}

func deleteSchemaAndWait(es *eventsv1.EventSchema) {
	GinkgoHelper()
	err := k8s.Delete(context.Background(), es)
	if apierrors.IsNotFound(err) {
		return
	}
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(es), &eventsv1.EventSchema{}))
	}).Should(BeTrue())
}

func sameJSON(a, b []byte) bool {
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && equalJSON(va, vb)
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

var _ = Describe("EventSchema controller", Ordered, func() {
	ctx := context.Background()

	BeforeAll(func() { DeferCleanup(startManager(time.Minute)) })

	It("stores a valid schema under <type>.<version> with its record, and reports the key, URI and revision", func() {
		typ := uniqueName("valid") + ".created"
		es := newSchema(uniqueName("valid"), typ, "1.0", userV10, func(es *eventsv1.EventSchema) { es.Spec.Description = "a user" })
		Expect(k8s.Create(ctx, es)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, es)

		Eventually(schemaReady(es)).Should(Equal("True/" + eventsv1.ReasonCreated))
		rec := storedRecord(typ, "1.0")
		Expect(rec).NotTo(BeNil())
		Expect(rec.Type).To(Equal(typ))
		Expect(rec.Version).To(Equal("1.0"))
		Expect(rec.Owner).To(Equal("default/" + es.Name))
		Expect(rec.Compatibility).To(Equal(schemas.Backward), "the CRD default")
		Expect(rec.Description).To(Equal("a user"))
		Expect(sameJSON(rec.Schema, []byte(userV10))).To(BeTrue(), string(rec.Schema))
		_, err := schemas.Compile(rec.Schema)
		Expect(err).NotTo(HaveOccurred())

		got := getSchema(es)
		Expect(got.Status.Bucket).To(Equal(schemas.DefaultBucket))
		Expect(got.Status.Key).To(Equal(schemas.Key(typ, "1.0")))
		Expect(got.Status.URI).To(Equal("urn:events:schema:" + typ + ":1.0"))
		Expect(got.Status.Revision).NotTo(BeZero())
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		Expect(got.Finalizers).To(ContainElement(eventsv1.Finalizer))

		st, err := registry().Status(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(st.(*jetstream.KeyValueBucketStatus).Metadata()).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, "eventstream-operator"),
			"the operator created the bucket with its owner marker")
	})

	It("refuses a schema that does not compile: Stalled, InvalidSchema, the compiler's message", func() {
		typ := uniqueName("invalid") + ".created"
		es := newSchema(uniqueName("invalid"), typ, "1.0", `{"type":"object","properties":{"n":{"type":"nope"}}}`)
		Expect(k8s.Create(ctx, es)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, es)

		Eventually(schemaReady(es)).Should(Equal("False/" + eventsv1.ReasonInvalidSchema))
		got := getSchema(es)
		stalled := meta.FindStatusCondition(got.Status.Conditions, eventsv1.ConditionStalled)
		Expect(stalled).NotTo(BeNil())
		Expect(stalled.Reason).To(Equal(eventsv1.ReasonInvalidSchema))
		Expect(stalled.Message).To(HavePrefix("spec.schema: "))
		Expect(stalled.Message).To(ContainSubstring("/properties/n/type"), "the compiler's message names where")
		Expect(meta.FindStatusCondition(got.Status.Conditions, eventsv1.ConditionReconciling)).To(BeNil())
		Expect(storedRecord(typ, "1.0")).To(BeNil())
	})

	It("refuses an incompatible minor naming the property, accepts a compatible minor, and lets a new major break", func() {
		typ := uniqueName("compat") + ".created"
		v10 := newSchema(uniqueName("compat-1-0"), typ, "1.0", userV10)
		Expect(k8s.Create(ctx, v10)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, v10)
		Eventually(schemaReady(v10)).Should(Equal("True/" + eventsv1.ReasonCreated))

		// 1.1 requires a new property: incompatible.
		bad := newSchema(uniqueName("compat-1-1"), typ, "1.1", `{"type":"object","required":["user_id","email","locale"],
		  "properties":{"user_id":{"type":"string"},"email":{"type":"string"},"locale":{"type":"string"}}}`)
		Expect(k8s.Create(ctx, bad)).To(Succeed())
		Eventually(schemaReady(bad)).Should(Equal("False/" + eventsv1.ReasonIncompatible))
		c := meta.FindStatusCondition(getSchema(bad).Status.Conditions, eventsv1.ConditionStalled)
		Expect(c).NotTo(BeNil())
		Expect(c.Message).To(ContainSubstring("property locale: new required property"))
		Expect(c.Message).To(ContainSubstring("1.0"))
		Expect(storedRecord(typ, "1.1")).To(BeNil(), "an incompatible schema is not registered")

		// Fixed in place (locale optional): compatible, registered.
		Eventually(func() error {
			cur := getSchema(bad)
			cur.Spec.Schema = apiextensionsv1.JSON{Raw: []byte(`{"type":"object","required":["user_id","email"],
			  "properties":{"user_id":{"type":"string"},"email":{"type":"string"},"locale":{"type":"string"}}}`)}
			return k8s.Update(ctx, cur)
		}).Should(Succeed())
		Eventually(schemaReady(bad)).Should(Equal("True/" + eventsv1.ReasonCreated))
		DeferCleanup(deleteSchemaAndWait, bad)

		// 1.2 drops email: checked against 1.0 and 1.1, refused.
		v12 := newSchema(uniqueName("compat-1-2"), typ, "1.2", `{"type":"object","required":["user_id"],
		  "properties":{"user_id":{"type":"string"},"locale":{"type":"string"}}}`)
		Expect(k8s.Create(ctx, v12)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, v12)
		Eventually(schemaReady(v12)).Should(Equal("False/" + eventsv1.ReasonIncompatible))
		Expect(meta.FindStatusCondition(getSchema(v12).Status.Conditions, eventsv1.ConditionReady).Message).To(ContainSubstring("email"))

		// 2.0 renames user_id: a new major is free.
		v20 := newSchema(uniqueName("compat-2-0"), typ, "2.0", `{"type":"object","required":["id","email"],
		  "properties":{"id":{"type":"string"},"email":{"type":"string"}}}`)
		Expect(k8s.Create(ctx, v20)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, v20)
		Eventually(schemaReady(v20)).Should(Equal("True/" + eventsv1.ReasonCreated))

		// compatibility: None skips the check.
		none := newSchema(uniqueName("compat-1-3"), typ, "1.3", `{"type":"object","properties":{"other":{"type":"integer"}}}`,
			func(es *eventsv1.EventSchema) { es.Spec.Compatibility = eventsv1.SchemaCompatibilityNone })
		Expect(k8s.Create(ctx, none)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, none)
		Eventually(schemaReady(none)).Should(Equal("True/" + eventsv1.ReasonCreated))
		Expect(storedRecord(typ, "1.3").Compatibility).To(Equal(schemas.None))
	})

	It("gives (type, version) to the oldest resource: the second is Conflict, and Ready once the first is deleted", func() {
		typ := uniqueName("dup") + ".created"
		first := newSchema(uniqueName("dup-first"), typ, "1.0", userV10)
		Expect(k8s.Create(ctx, first)).To(Succeed())
		Eventually(schemaReady(first)).Should(Equal("True/" + eventsv1.ReasonCreated))
		// creationTimestamp has a resolution of one second.
		time.Sleep(1100 * time.Millisecond)
		second := newSchema(uniqueName("dup-second"), typ, "1.0", userV10)
		Expect(k8s.Create(ctx, second)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, second)
		Eventually(schemaReady(second)).Should(Equal("False/" + eventsv1.ReasonConflict))
		Expect(meta.FindStatusCondition(getSchema(second).Status.Conditions, eventsv1.ConditionReady).Message).
			To(ContainSubstring("default/" + first.Name))
		Consistently(ownerOf(typ, "1.0"), "1s").Should(Equal("default/" + first.Name))

		deleteSchemaAndWait(first)
		Eventually(schemaReady(second), "10s").Should(HavePrefix("True/"))
		Expect(ownerOf(typ, "1.0")()).To(Equal("default/" + second.Name))
	})

	It("keeps an event type in the namespace that registered it first; the other namespace's schema is Conflict until it goes", func() {
		for _, ns := range []string{"schemas-a", "schemas-b"} {
			err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			if !apierrors.IsAlreadyExists(err) {
				Expect(err).NotTo(HaveOccurred())
			}
		}
		typ := uniqueName("tenant") + ".created"
		inA := newSchema("user-created", typ, "1.0", userV10, func(es *eventsv1.EventSchema) { es.Namespace = "schemas-a" })
		Expect(k8s.Create(ctx, inA)).To(Succeed())
		Eventually(schemaReady(inA)).Should(Equal("True/" + eventsv1.ReasonCreated))
		time.Sleep(1100 * time.Millisecond)

		// Same type and version, and a new minor of it: both refused.
		sameInB := newSchema("user-created", typ, "1.0", userV10, func(es *eventsv1.EventSchema) { es.Namespace = "schemas-b" })
		minorInB := newSchema("user-created-1-1", typ, "1.1", userV10, func(es *eventsv1.EventSchema) { es.Namespace = "schemas-b" })
		Expect(k8s.Create(ctx, sameInB)).To(Succeed())
		Expect(k8s.Create(ctx, minorInB)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, sameInB)
		DeferCleanup(deleteSchemaAndWait, minorInB)
		Eventually(schemaReady(sameInB)).Should(Equal("False/" + eventsv1.ReasonConflict))
		Eventually(schemaReady(minorInB)).Should(Equal("False/" + eventsv1.ReasonConflict))
		msg := meta.FindStatusCondition(getSchema(minorInB).Status.Conditions, eventsv1.ConditionReady).Message
		Expect(msg).To(ContainSubstring("belongs to namespace schemas-a"))
		Expect(storedRecord(typ, "1.1")).To(BeNil())
		Expect(ownerOf(typ, "1.0")()).To(Equal("schemas-a/user-created"))

		deleteSchemaAndWait(inA)
		Eventually(schemaReady(sameInB), "10s").Should(HavePrefix("True/"))
		Eventually(schemaReady(minorInB), "10s").Should(HavePrefix("True/"))
		Expect(ownerOf(typ, "1.0")()).To(Equal("schemas-b/user-created"))
	})

	It("never overwrites a key another owner holds in the bucket (Conflict)", func() {
		typ := uniqueName("foreign") + ".created"
		foreign, _ := json.Marshal(schemas.Record{Type: typ, Version: "1.0", Schema: json.RawMessage(userV10), Owner: "a-dev-script"})
		// The bucket exists: the first spec created it.
		_, err := registry().Put(ctx, schemas.Key(typ, "1.0"), foreign)
		Expect(err).NotTo(HaveOccurred())
		es := newSchema(uniqueName("foreign"), typ, "1.0", userV10)
		Expect(k8s.Create(ctx, es)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, es)
		Eventually(schemaReady(es)).Should(Equal("False/" + eventsv1.ReasonConflict))
		Expect(meta.FindStatusCondition(getSchema(es).Status.Conditions, eventsv1.ConditionReady).Message).To(ContainSubstring("a-dev-script"))
		Expect(ownerOf(typ, "1.0")()).To(Equal("a-dev-script"))

		// Once the program lets go of the key, the resource takes it.
		Expect(registry().Delete(ctx, schemas.Key(typ, "1.0"))).To(Succeed())
		Eventually(schemaReady(es), "10s").Should(HavePrefix("True/"))
		Expect(ownerOf(typ, "1.0")()).To(Equal("default/" + es.Name))
	})

	It("removes the key when the resource is deleted, and leaves the bucket", func() {
		typ := uniqueName("delete") + ".created"
		es := newSchema(uniqueName("delete"), typ, "1.0", userV10)
		Expect(k8s.Create(ctx, es)).To(Succeed())
		Eventually(schemaReady(es)).Should(Equal("True/" + eventsv1.ReasonCreated))
		Expect(storedRecord(typ, "1.0")).NotTo(BeNil())
		deleteSchemaAndWait(es)
		_, err := registry().Get(ctx, schemas.Key(typ, "1.0"))
		Expect(err).To(MatchError(jetstream.ErrKeyNotFound))
	})

	It("repairs drift within seconds: a key deleted or changed out of band is restored", func() {
		typ := uniqueName("drift") + ".created"
		es := newSchema(uniqueName("drift"), typ, "1.0", userV10)
		Expect(k8s.Create(ctx, es)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, es)
		Eventually(schemaReady(es)).Should(Equal("True/" + eventsv1.ReasonCreated))
		key := schemas.Key(typ, "1.0")

		Expect(registry().Delete(ctx, key)).To(Succeed())
		Eventually(ownerOf(typ, "1.0"), "5s").Should(Equal("default/"+es.Name), "restored by the registry watch, not the 1m resync")

		changed, _ := json.Marshal(schemas.Record{Type: typ, Version: "1.0", Schema: json.RawMessage(`{"type":"object"}`), Owner: "default/" + es.Name})
		_, err := registry().Put(ctx, key, changed)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() bool {
			rec := storedRecord(typ, "1.0")
			return rec != nil && sameJSON(rec.Schema, []byte(userV10))
		}, "5s").Should(BeTrue())

		_, err = registry().Put(ctx, key, []byte("not a record"))
		Expect(err).NotTo(HaveOccurred())
		Eventually(ownerOf(typ, "1.0"), "5s").Should(Equal("default/" + es.Name))
		Eventually(func() uint64 { return getSchema(es).Status.Revision }).Should(Equal(mustRevision(key)))
	})

	It("uses spec.connection like an EventStream: a missing Secret is InvalidSpec naming the field", func() {
		typ := uniqueName("conn") + ".created"
		es := newSchema(uniqueName("conn"), typ, "1.0", userV10, func(es *eventsv1.EventSchema) {
			es.Spec.Connection = &eventsv1.ConnectionSpec{SecretRef: eventsv1.LocalObjectReference{Name: "no-such-secret"}}
		})
		Expect(k8s.Create(ctx, es)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, es)
		Eventually(schemaReady(es)).Should(Equal("False/" + eventsv1.ReasonInvalidSpec))
		Expect(meta.FindStatusCondition(getSchema(es).Status.Conditions, eventsv1.ConditionReady).Message).
			To(ContainSubstring("spec.connection.secretRef"))
		Expect(storedRecord(typ, "1.0")).To(BeNil())
	})

	It("applies the config/samples schemas (the seed's catalog) and makes them Ready", func() {
		ns := "schemas-samples"
		err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "events_v1alpha1_eventschema_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).To(HaveLen(4))
		for _, f := range files {
			raw, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			es := &eventsv1.EventSchema{}
			Expect(yaml.Unmarshal(raw, es)).To(Succeed(), f)
			es.Namespace = ns
			Expect(k8s.Create(ctx, es)).To(Succeed(), f)
			DeferCleanup(deleteSchemaAndWait, es)
			Eventually(schemaReady(es)).Should(Equal("True/"+eventsv1.ReasonCreated), f)
			rec := storedRecord(es.Spec.Type, es.Spec.Version)
			Expect(rec).NotTo(BeNil())
			Expect(sameJSON(rec.Schema, es.Spec.Schema.Raw)).To(BeTrue())
		}
		Expect(storedRecord("user.login.failed", "1.0").Schema).To(ContainSubstring("inactive_account"))
	})
})

func mustRevision(key string) uint64 {
	GinkgoHelper()
	e, err := registry().Get(context.Background(), key)
	Expect(err).NotTo(HaveOccurred())
	return e.Revision()
}

var _ = Describe("EventSchema steady state", Ordered, func() {
	ctx := context.Background()

	// A one-second resync: many reconciles of an unchanged schema.
	BeforeAll(func() { DeferCleanup(startManager(time.Second)) })

	It("writes nothing to the bucket or to status when nothing changed", func() {
		typ := uniqueName("steady") + ".created"
		es := newSchema(uniqueName("steady"), typ, "1.0", userV10)
		Expect(k8s.Create(ctx, es)).To(Succeed())
		DeferCleanup(deleteSchemaAndWait, es)
		Eventually(schemaReady(es)).Should(Equal("True/" + eventsv1.ReasonCreated))
		Eventually(func() int64 { return getSchema(es).Status.ObservedGeneration }).Should(Equal(int64(1)))
		rv := getSchema(es).ResourceVersion

		writes, stop := countRequests("$KV." + schemas.DefaultBucket + ".>")
		defer stop()
		reads, stopReads := countRequests("$JS.API.DIRECT.GET.KV_" + schemas.DefaultBucket + ".>")
		defer stopReads()
		time.Sleep(3500 * time.Millisecond)
		Expect(writes()).To(BeZero(), "no KV writes on resync")
		Expect(reads()).To(BeNumerically(">=", 2), "yet the key was read at each resync")
		Expect(getSchema(es).ResourceVersion).To(Equal(rv), "no status writes")
	})
})

var _ = Describe("EventSchema admission", func() {
	ctx := context.Background()

	DescribeTable("refuses a bad spec with a message naming the field",
		func(mutate func(*eventsv1.EventSchema), field, words string) {
			es := newSchema(uniqueName("cel"), "user.created", "1.0", userV10, mutate)
			err := k8s.Create(ctx, es, client.DryRunAll)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(words))
		},
		Entry("a type with a space", func(es *eventsv1.EventSchema) { es.Spec.Type = "user created" }, "spec.type", "must be an event type"),
		Entry("a type with an empty token", func(es *eventsv1.EventSchema) { es.Spec.Type = "user..created" }, "spec.type", "must be an event type"),
		Entry("a version without a minor", func(es *eventsv1.EventSchema) { es.Spec.Version = "1" }, "spec.version", ""),
		Entry("a version with a leading zero", func(es *eventsv1.EventSchema) { es.Spec.Version = "01.0" }, "spec.version", "major.minor"),
		Entry("a version with letters", func(es *eventsv1.EventSchema) { es.Spec.Version = "v1.0" }, "spec.version", "major.minor"),
		Entry("a schema that is not an object", func(es *eventsv1.EventSchema) { es.Spec.Schema.Raw = []byte(`"a string"`) }, "spec.schema", "object"),
		Entry("an unknown compatibility", func(es *eventsv1.EventSchema) { es.Spec.Compatibility = "Forward" }, "spec.compatibility", "Backward"),
	)

	It("refuses a change of type, version or connection", func() {
		es := newSchema(uniqueName("immutable"), uniqueName("immutable")+".created", "1.0", userV10)
		Expect(k8s.Create(ctx, es)).To(Succeed())
		DeferCleanup(func() {
			// No manager runs here: remove the finalizer the admission
			// policy may have added (it is not installed in envtest).
			_ = k8s.Delete(ctx, es)
		})
		for _, tc := range []struct {
			mutate func(*eventsv1.EventSchema)
			field  string
		}{
			{func(es *eventsv1.EventSchema) { es.Spec.Type += ".v2" }, "spec.type"},
			{func(es *eventsv1.EventSchema) { es.Spec.Version = "1.1" }, "spec.version"},
			{func(es *eventsv1.EventSchema) {
				es.Spec.Connection = &eventsv1.ConnectionSpec{SecretRef: eventsv1.LocalObjectReference{Name: "other"}}
			}, "spec.connection"},
		} {
			cur := getSchema(es)
			tc.mutate(cur)
			err := k8s.Update(ctx, cur, client.DryRunAll)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(tc.field))
			Expect(err.Error()).To(ContainSubstring("immutable"))
		}
		Expect(strings.Contains(getSchema(es).Spec.Type, ".v2")).To(BeFalse())
	})
})
