package controller_test

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsk8s "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// bucketKind lets one set of specs run against EventKeyValue and
// EventObjectStore: both are a JetStream stream underneath (KV_<bucket>,
// OBJ_<bucket>) managed by the same engine.
type bucketKind struct {
	kind, prefix string
	// build returns a resource named name in ns; bucket, when set, is
	// spec.bucket.
	build func(name, ns, bucket string) client.Object
	// spec returns pointers into the resource's common spec fields.
	spec func(obj client.Object) (description *string, ttl *eventsv1.Duration, policy *eventsv1.DeletionPolicy)
	// status returns the bucket name and conditions in status.
	status func(obj client.Object) (bucket string, conds []metav1.Condition, observed int64)
	// byHand makes the bucket with nats.go, as a user would.
	byHand func(ctx context.Context, bucket string) error
	// use stores something in the bucket with nats.go.
	use func(ctx context.Context, bucket string) error
}

var bucketKinds = []bucketKind{
	{
		kind: "EventKeyValue", prefix: "KV_",
		build: func(name, ns, bucket string) client.Object {
			return &eventsv1.EventKeyValue{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec: eventsv1.EventKeyValueSpec{Bucket: bucket, MaxBytes: ptr.To(resource.MustParse("8Mi"))}}
		},
		spec: func(obj client.Object) (*string, *eventsv1.Duration, *eventsv1.DeletionPolicy) {
			kv := obj.(*eventsv1.EventKeyValue)
			return &kv.Spec.Description, &kv.Spec.TTL, &kv.Spec.DeletionPolicy
		},
		status: func(obj client.Object) (string, []metav1.Condition, int64) {
			kv := obj.(*eventsv1.EventKeyValue)
			return kv.Status.BucketName, kv.Status.Conditions, kv.Status.ObservedGeneration
		},
		byHand: func(ctx context.Context, bucket string) error {
			_, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 3, MaxBytes: 1 << 20})
			return err
		},
		use: func(ctx context.Context, bucket string) error {
			kv, err := js.KeyValue(ctx, bucket)
			if err == nil {
				_, err = kv.PutString(ctx, "key", "value")
			}
			return err
		},
	},
	{
		kind: "EventObjectStore", prefix: "OBJ_",
		build: func(name, ns, bucket string) client.Object {
			return &eventsv1.EventObjectStore{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec: eventsv1.EventObjectStoreSpec{Bucket: bucket, MaxBytes: ptr.To(resource.MustParse("8Mi"))}}
		},
		spec: func(obj client.Object) (*string, *eventsv1.Duration, *eventsv1.DeletionPolicy) {
			o := obj.(*eventsv1.EventObjectStore)
			return &o.Spec.Description, &o.Spec.TTL, &o.Spec.DeletionPolicy
		},
		status: func(obj client.Object) (string, []metav1.Condition, int64) {
			o := obj.(*eventsv1.EventObjectStore)
			return o.Status.BucketName, o.Status.Conditions, o.Status.ObservedGeneration
		},
		byHand: func(ctx context.Context, bucket string) error {
			_, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, MaxBytes: 1 << 20})
			return err
		},
		use: func(ctx context.Context, bucket string) error {
			o, err := js.ObjectStore(ctx, bucket)
			if err == nil {
				_, err = o.PutString(ctx, "object", "data")
			}
			return err
		},
	},
}

// fresh reads obj again from the API server (nil when it is gone).
func fresh(obj client.Object) client.Object {
	out := obj.DeepCopyObject().(client.Object)
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), out); err != nil {
		return nil
	}
	return out
}

// bucketReady polls the Ready condition as "Status/Reason".
func bucketReady(k bucketKind, obj client.Object) func() string {
	return func() string {
		cur := fresh(obj)
		if cur == nil {
			return ""
		}
		_, conds, _ := k.status(cur)
		c := meta.FindStatusCondition(conds, eventsv1.ConditionReady)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
}

func bucketReadyMessage(k bucketKind, obj client.Object) string {
	_, conds, _ := k.status(fresh(obj))
	if c := meta.FindStatusCondition(conds, eventsv1.ConditionReady); c != nil {
		return c.Message
	}
	return ""
}

// updateBucket applies mod to the current resource, retrying on conflicts
// with the operator's status writes.
func updateBucket(obj client.Object, mod func(client.Object)) {
	GinkgoHelper()
	Eventually(func() error {
		cur := fresh(obj)
		mod(cur)
		return k8s.Update(context.Background(), cur)
	}).Should(Succeed())
}

func deleteObjectAndWait(obj client.Object) {
	GinkgoHelper()
	err := k8s.Delete(context.Background(), obj)
	if apierrors.IsNotFound(err) {
		return
	}
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() bool { return fresh(obj) == nil }).Should(BeTrue())
}

func objectEventReasons(kind string, obj client.Object) func() []string {
	return func() []string {
		list := &eventsk8s.EventList{}
		if err := k8s.List(context.Background(), list, client.InNamespace(obj.GetNamespace())); err != nil {
			return nil
		}
		var reasons []string
		for _, ev := range list.Items {
			if ev.Regarding.Name == obj.GetName() && ev.Regarding.Kind == kind {
				reasons = append(reasons, ev.Reason)
			}
		}
		return reasons
	}
}

var _ = Describe("Bucket controllers", Ordered, func() {
	ctx := context.Background()
	const teamA, teamB = "team-a", "team-b"

	BeforeAll(func() {
		for _, ns := range []string{teamA, teamB} {
			err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			if !apierrors.IsAlreadyExists(err) {
				Expect(err).NotTo(HaveOccurred())
			}
		}
		// A one-minute resync: what happens within seconds is the work of
		// watches and advisories.
		DeferCleanup(startManager(time.Minute))
	})

	for _, k := range bucketKinds {
		Context(k.kind, func() {
			It("creates the bucket, usable by nats.go, with the owner marker and Ready status", func() {
				name := uniqueName("bkt")
				obj := k.build(name, "default", "")
				Expect(k8s.Create(ctx, obj)).To(Succeed())
				Eventually(bucketReady(k, obj)).Should(Equal("True/" + eventsv1.ReasonCreated))
				info := mustStreamInfo(k.prefix + name)
				Expect(info.Config.MaxBytes).To(Equal(int64(8 << 20)))
				Expect(info.Config.Storage).To(Equal(jetstream.FileStorage))
				Expect(info.Config.MaxAge).To(BeZero(), "no TTL by default")
				cur := fresh(obj)
				Expect(userMetadata(info.Config.Metadata)).To(Equal(map[string]string{
					eventsv1.OwnerMetadataKey: "default/" + name,
					eventsv1.UIDMetadataKey:   string(cur.GetUID()),
				}))
				bucket, _, observed := k.status(cur)
				Expect(bucket).To(Equal(name))
				Expect(observed).To(Equal(cur.GetGeneration()))
				Expect(cur.GetFinalizers()).To(ContainElement(eventsv1.Finalizer))
				Expect(bucketReadyMessage(k, obj)).To(ContainSubstring(strings.TrimPrefix(k.kind, "Event") + " bucket " + name + " created"))
				Expect(k.use(ctx, name)).To(Succeed())
				Eventually(objectEventReasons(k.kind, obj)).Should(ContainElement(eventsv1.ReasonCreated))
				deleteObjectAndWait(obj)
				Eventually(streamExists(k.prefix+name)).Should(BeFalse(), "deletionPolicy Delete (the default) deletes the bucket")
			})

			It("updates the bucket in place when the spec changes", func() {
				name := uniqueName("bktupd")
				obj := k.build(name, "default", "")
				Expect(k8s.Create(ctx, obj)).To(Succeed())
				Eventually(bucketReady(k, obj)).Should(HavePrefix("True/"))
				Expect(k.use(ctx, name)).To(Succeed())
				updateBucket(obj, func(o client.Object) {
					d, ttl, _ := k.spec(o)
					*d, *ttl = "changed", "1h"
				})
				Eventually(func(g Gomega) {
					cfg := mustStreamInfo(k.prefix + name).Config
					g.Expect(cfg.Description).To(Equal("changed"))
					g.Expect(cfg.MaxAge).To(Equal(time.Hour))
				}).Should(Succeed())
				Eventually(bucketReady(k, obj)).Should(Equal("True/" + eventsv1.ReasonUpdated))
				Expect(mustStreamInfo(k.prefix+name).State.Msgs).To(BeNumerically(">", 0), "the update keeps the contents")
				deleteObjectAndWait(obj)
			})

			It("recreates a bucket deleted out of band and repairs an out-of-band edit within seconds", func() {
				name := uniqueName("bktdrift")
				obj := k.build(name, "default", "")
				Expect(k8s.Create(ctx, obj)).To(Succeed())
				Eventually(bucketReady(k, obj)).Should(HavePrefix("True/"))
				stream := k.prefix + name

				Expect(js.DeleteStream(ctx, stream)).To(Succeed())
				Eventually(streamExists(stream), 5*time.Second, 20*time.Millisecond).Should(BeTrue(), "recreated by advisory, long before the resync")
				Expect(k.use(ctx, name)).To(Succeed(), "the recreated bucket works")

				cfg := mustStreamInfo(stream).Config
				cfg.MaxAge = 5 * time.Hour
				cfg.Description = "edited by hand"
				_, err := js.UpdateStream(ctx, cfg)
				Expect(err).NotTo(HaveOccurred())
				Eventually(func(g Gomega) {
					cfg := mustStreamInfo(stream).Config
					g.Expect(cfg.MaxAge).To(BeZero())
					g.Expect(cfg.Description).To(BeEmpty())
				}, 5*time.Second, 20*time.Millisecond).Should(Succeed(), "repaired by advisory")
				deleteObjectAndWait(obj)
			})

			It("keeps the bucket with deletionPolicy Retain, releasing it", func() {
				name := uniqueName("bktret")
				obj := k.build(name, "default", "")
				_, _, policy := k.spec(obj)
				*policy = eventsv1.DeletionPolicyRetain
				Expect(k8s.Create(ctx, obj)).To(Succeed())
				Eventually(bucketReady(k, obj)).Should(HavePrefix("True/"))
				Expect(k.use(ctx, name)).To(Succeed())
				deleteObjectAndWait(obj)
				info := mustStreamInfo(k.prefix + name)
				md := userMetadata(info.Config.Metadata)
				Expect(md).NotTo(HaveKey(eventsv1.OwnerMetadataKey))
				Expect(md).To(HaveKeyWithValue(eventsv1.ReleasedByMetadataKey, "default/"+name))
				Expect(info.State.Msgs).To(BeNumerically(">", 0), "contents kept")
				Expect(js.DeleteStream(ctx, k.prefix+name)).To(Succeed())
			})

			It("adopts a bucket made by hand only with the annotation, and only in an allowed namespace", func() {
				bucket := "HAND_" + strings.ReplaceAll(uniqueName("b"), "-", "_")
				Expect(k.byHand(ctx, bucket)).To(Succeed())
				DeferCleanup(func() { _ = js.DeleteStream(context.Background(), k.prefix+bucket) })
				Expect(k.use(ctx, bucket)).To(Succeed())

				b := k.build(uniqueName("bkthand"), teamB, bucket)
				b.SetAnnotations(map[string]string{eventsv1.AdoptAnnotation: "true"})
				Expect(k8s.Create(ctx, b)).To(Succeed())
				Eventually(bucketReady(k, b)).Should(Equal("False/" + eventsv1.ReasonAdoptionNotAllowed))
				Expect(bucketReadyMessage(k, b)).To(ContainSubstring("not allowed in namespace " + teamB))

				d := k.build(uniqueName("bkthand"), "default", bucket)
				Expect(k8s.Create(ctx, d)).To(Succeed())
				Eventually(bucketReady(k, d)).Should(Equal("False/" + eventsv1.ReasonAdoptionNotAllowed))
				Expect(bucketReadyMessage(k, d)).To(ContainSubstring(eventsv1.AdoptAnnotation))
				Consistently(func() int64 { return mustStreamInfo(k.prefix + bucket).Config.MaxBytes }, time.Second).
					Should(Equal(int64(1<<20)), "refused resources leave the bucket untouched")

				updateBucket(d, func(o client.Object) { o.SetAnnotations(map[string]string{eventsv1.AdoptAnnotation: "true"}) })
				Eventually(bucketReady(k, d)).Should(Equal("True/" + eventsv1.ReasonAdopted))
				info := mustStreamInfo(k.prefix + bucket)
				Expect(info.Config.MaxBytes).To(Equal(int64(8 << 20)))
				Expect(info.Config.Metadata).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, "default/"+d.GetName()))
				Expect(info.State.Msgs).To(BeNumerically(">", 0), "adoption keeps the contents")

				deleteObjectAndWait(b)
				Expect(streamExists(k.prefix+bucket)()).To(BeTrue(), "deleting the refused resource leaves the bucket")
				deleteObjectAndWait(d)
				Eventually(streamExists(k.prefix + bucket)).Should(BeFalse())
			})

			It("gives the second namespace declaring a bucket Conflict and changes nothing of the first's", func() {
				bucket := "SHARED_" + strings.ReplaceAll(uniqueName("b"), "-", "_")
				a := k.build(uniqueName("bkta"), teamA, bucket)
				Expect(k8s.Create(ctx, a)).To(Succeed())
				Eventually(bucketReady(k, a)).Should(HavePrefix("True/"))
				Expect(k.use(ctx, bucket)).To(Succeed())
				before := mustStreamInfo(k.prefix + bucket)

				b := k.build(uniqueName("bktb"), teamB, bucket)
				d, _, _ := k.spec(b)
				*d = "the other team's"
				b.SetAnnotations(map[string]string{eventsv1.AdoptAnnotation: "true"})
				Expect(k8s.Create(ctx, b)).To(Succeed())
				Eventually(bucketReady(k, b)).Should(Equal("False/" + eventsv1.ReasonConflict))
				Expect(bucketReadyMessage(k, b)).To(ContainSubstring("owned by " + teamA + "/" + a.GetName()))
				Expect(objectEventReasons(k.kind, b)()).To(ContainElement(eventsv1.ReasonConflict))
				deleteObjectAndWait(b)
				Consistently(streamExists(k.prefix+bucket), time.Second).Should(BeTrue())
				after := mustStreamInfo(k.prefix + bucket)
				Expect(after.Config).To(Equal(before.Config), "nothing of the first namespace's bucket changed")
				Expect(after.State.Msgs).To(Equal(before.State.Msgs))
				Expect(bucketReady(k, a)()).To(HavePrefix("True/"))
				deleteObjectAndWait(a)
			})
		})
	}

	It("reports a KeyValue bucket's values, bytes and keys in status", func() {
		name := uniqueName("kvstate")
		kv := &eventsv1.EventKeyValue{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: eventsv1.EventKeyValueSpec{History: 3, MaxBytes: ptr.To(resource.MustParse("8Mi"))}}
		Expect(k8s.Create(ctx, kv)).To(Succeed())
		Eventually(bucketReady(bucketKinds[0], kv)).Should(HavePrefix("True/"))
		b, err := js.KeyValue(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		for _, kvp := range [][2]string{{"a", "1"}, {"a", "2"}, {"b", "1"}} {
			_, err := b.PutString(ctx, kvp[0], kvp[1])
			Expect(err).NotTo(HaveOccurred())
		}
		updateBucket(kv, func(o client.Object) { o.SetLabels(map[string]string{"touched": "yes"}) })
		Eventually(func(g Gomega) {
			st := fresh(kv).(*eventsv1.EventKeyValue).Status.State
			g.Expect(st).NotTo(BeNil())
			g.Expect(st.Values).To(Equal(int64(3)))
			g.Expect(st.Keys).To(Equal(int64(2)))
			g.Expect(st.Bytes).To(BeNumerically(">", 0))
		}).Should(Succeed())
		deleteObjectAndWait(kv)
	})

	It("reports an ObjectStore bucket's objects, bytes and seal in status", func() {
		name := uniqueName("osstate")
		o := &eventsv1.EventObjectStore{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: eventsv1.EventObjectStoreSpec{MaxBytes: ptr.To(resource.MustParse("8Mi"))}}
		Expect(k8s.Create(ctx, o)).To(Succeed())
		Eventually(bucketReady(bucketKinds[1], o)).Should(HavePrefix("True/"))
		b, err := js.ObjectStore(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		for _, n := range []string{"x", "y", "z"} {
			_, err := b.PutString(ctx, n, "data of "+n)
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(b.Delete(ctx, "z")).To(Succeed())
		updateBucket(o, func(obj client.Object) { obj.SetLabels(map[string]string{"touched": "yes"}) })
		Eventually(func(g Gomega) {
			st := fresh(o).(*eventsv1.EventObjectStore).Status.State
			g.Expect(st).NotTo(BeNil())
			g.Expect(st.Objects).To(Equal(int64(2)), "deleted objects are not counted")
			g.Expect(st.Bytes).To(BeNumerically(">", 0))
			g.Expect(st.Sealed).To(BeFalse())
		}).Should(Succeed())
		deleteObjectAndWait(o)
	})
})

var _ = Describe("Bucket controllers in steady state", Ordered, func() {
	ctx := context.Background()
	const resync = time.Second

	BeforeAll(func() { DeferCleanup(startManager(resync)) })

	for _, k := range bucketKinds {
		It("makes no JetStream write and no status write over several resyncs: "+k.kind, func() {
			name := uniqueName("bktsteady")
			obj := k.build(name, "default", "")
			Expect(k8s.Create(ctx, obj)).To(Succeed())
			Eventually(bucketReady(k, obj)).Should(HavePrefix("True/"))
			stream := k.prefix + name
			time.Sleep(500 * time.Millisecond) // let the reconcile after our own advisory settle

			writes, stopWrites := countRequests("$JS.API.STREAM.UPDATE." + stream)
			creates, stopCreates := countRequests("$JS.API.STREAM.CREATE." + stream)
			infos, stopInfos := countRequests("$JS.API.STREAM.INFO." + stream)
			defer stopWrites()
			defer stopCreates()
			defer stopInfos()
			rv := fresh(obj).GetResourceVersion()
			Eventually(infos).WithTimeout(60*time.Second).WithPolling(100*time.Millisecond).
				Should(BeNumerically(">=", 4), "the resync must actually have run several times")
			Expect(writes()).To(BeZero(), "no $JS.API.STREAM.UPDATE when nothing changed")
			Expect(creates()).To(BeZero())
			Expect(fresh(obj).GetResourceVersion()).To(Equal(rv), "no status (or any other) write when nothing changed")
			deleteObjectAndWait(obj)
		})
	}
})

var _ = Describe("Bucket admission", func() {
	ctx := context.Background()

	manifest := func(kind, name string, spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": eventsv1.GroupVersion.String(), "kind": kind,
			"metadata": map[string]any{"name": name, "namespace": "default"},
			"spec":     spec,
		}}
	}
	create := func(kind, name string, spec map[string]any) error {
		return k8s.Create(ctx, manifest(kind, name, spec), client.DryRunAll, client.FieldValidation("Strict"))
	}

	DescribeTable("rejects an invalid bucket with a message naming the field",
		func(kind string, spec map[string]any, field, message string) {
			err := create(kind, uniqueName("invalid"), spec)
			Expect(err).To(HaveOccurred())
			Expect(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)).To(BeTrue(), err.Error())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("KV: an invalid bucket name", "EventKeyValue", map[string]any{"bucket": "a.b"}, "spec.bucket", "only letters, digits"),
		Entry("KV: history 0", "EventKeyValue", map[string]any{"history": 0}, "spec.history", "greater than or equal to 1"),
		Entry("KV: history 65", "EventKeyValue", map[string]any{"history": 65}, "spec.history", "less than or equal to 64"),
		Entry("KV: a TTL in days", "EventKeyValue", map[string]any{"ttl": "7d"}, "spec.ttl", "days are not supported"),
		Entry("KV: maxValueSize below -1", "EventKeyValue", map[string]any{"maxValueSize": -2}, "spec.maxValueSize", "greater than or equal to -1"),
		Entry("KV: a negative maxBytes", "EventKeyValue", map[string]any{"maxBytes": "-5"}, "spec.maxBytes", "must be -1 (unlimited)"),
		Entry("KV: an unknown storage", "EventKeyValue", map[string]any{"storage": "Disk"}, "spec.storage", "supported values"),
		Entry("KV: six replicas", "EventKeyValue", map[string]any{"replicas": 6}, "spec.replicas", "less than or equal to 5"),
		Entry("KV: an unknown compression", "EventKeyValue", map[string]any{"compression": "Zip"}, "spec.compression", "supported values"),
		Entry("KV: a reserved metadata key", "EventKeyValue", map[string]any{"metadata": map[string]any{"_nats.x": "y"}}, "spec.metadata", "reserved"),
		Entry("KV: a mirror and sources", "EventKeyValue", map[string]any{"mirror": map[string]any{"name": "A"}, "sources": []any{map[string]any{"name": "B"}}}, "spec.sources", "mirror bucket cannot also have sources"),
		Entry("KV: a republish without destination", "EventKeyValue", map[string]any{"republish": map[string]any{"source": ">"}}, "spec.republish.destination", "Required"),
		Entry("KV: a limit marker TTL in days", "EventKeyValue", map[string]any{"limitMarkerTTL": "1d"}, "spec.limitMarkerTTL", "days are not supported"),
		Entry("KV: an unknown deletion policy", "EventKeyValue", map[string]any{"deletionPolicy": "Orphan"}, "spec.deletionPolicy", "supported values"),
		Entry("KV: an unknown field", "EventKeyValue", map[string]any{"maxAge": "1h"}, "spec.maxAge", "unknown field"),
		Entry("OS: an invalid bucket name", "EventObjectStore", map[string]any{"bucket": "a b"}, "spec.bucket", "only letters, digits"),
		Entry("OS: a TTL without unit", "EventObjectStore", map[string]any{"ttl": "60"}, "spec.ttl", "must be a duration"),
		Entry("OS: zero replicas", "EventObjectStore", map[string]any{"replicas": 0}, "spec.replicas", "greater than or equal to 1"),
		Entry("OS: history is KeyValue only", "EventObjectStore", map[string]any{"history": 3}, "spec.history", "unknown field"),
		Entry("OS: a reserved metadata key", "EventObjectStore", map[string]any{"metadata": map[string]any{"events.giia.io/owner": "x"}}, "spec.metadata", "reserved"),
	)

	It("defaults an empty spec and needs spec.bucket for a dotted metadata.name", func() {
		for _, kind := range []string{"EventKeyValue", "EventObjectStore"} {
			u := manifest(kind, uniqueName("empty"), map[string]any{})
			Expect(k8s.Create(ctx, u, client.DryRunAll)).To(Succeed())
			spec := u.Object["spec"].(map[string]any)
			Expect(spec).To(HaveKeyWithValue("storage", "File"))
			Expect(spec).To(HaveKeyWithValue("maxBytes", "1Gi"))
			Expect(spec).To(HaveKeyWithValue("deletionPolicy", "Delete"))
			if kind == "EventKeyValue" {
				Expect(spec).To(HaveKeyWithValue("history", BeNumerically("==", 1)))
			}
			err := create(kind, "dotted.name", map[string]any{})
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("set spec.bucket"))
			Expect(create(kind, "dotted.name", map[string]any{"bucket": "DOTTED"})).To(Succeed())
		}
	})

	DescribeTable("rejects changes JetStream cannot make in place, naming the field",
		func(kind string, initial, change map[string]any, field, message string) {
			u := manifest(kind, uniqueName("immutable"), initial)
			Expect(k8s.Create(ctx, u)).To(Succeed())
			DeferCleanup(func() { _ = k8s.Delete(ctx, u) })
			spec := u.Object["spec"].(map[string]any)
			for key, v := range change {
				spec[key] = v
			}
			err := k8s.Update(ctx, u, client.DryRunAll)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("KV: storage", "EventKeyValue", map[string]any{}, map[string]any{"storage": "Memory"}, "spec.storage", "storage is immutable"),
		Entry("KV: bucket", "EventKeyValue", map[string]any{"bucket": "IMM_A"}, map[string]any{"bucket": "IMM_B"}, "spec.bucket", "bucket is immutable"),
		Entry("KV: bucket set later", "EventKeyValue", map[string]any{}, map[string]any{"bucket": "IMM_C"}, "spec.bucket", "bucket is immutable"),
		Entry("KV: mirror", "EventKeyValue", map[string]any{"mirror": map[string]any{"name": "A"}}, map[string]any{"mirror": map[string]any{"name": "B"}}, "spec.mirror", "mirror is immutable"),
		Entry("KV: connection", "EventKeyValue", map[string]any{}, map[string]any{"connection": map[string]any{"secretRef": map[string]any{"name": "s"}}}, "spec.connection", "connection is immutable"),
		Entry("OS: storage", "EventObjectStore", map[string]any{}, map[string]any{"storage": "Memory"}, "spec.storage", "storage is immutable"),
		Entry("OS: bucket", "EventObjectStore", map[string]any{"bucket": "IMM_D"}, map[string]any{"bucket": "IMM_E"}, "spec.bucket", "bucket is immutable"),
	)
})
