package controller_test

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

type consumerOpt func(*eventsv1.EventConsumer)

func newConsumer(name, stream string, opts ...consumerOpt) *eventsv1.EventConsumer {
	c := &eventsv1.EventConsumer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       eventsv1.EventConsumerSpec{StreamRef: eventsv1.LocalObjectReference{Name: stream}},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

func getConsumer(c *eventsv1.EventConsumer) *eventsv1.EventConsumer {
	out := &eventsv1.EventConsumer{}
	ExpectWithOffset(1, k8s.Get(context.Background(), client.ObjectKeyFromObject(c), out)).To(Succeed())
	return out
}

func consumerReady(c *eventsv1.EventConsumer) func() string {
	return func() string {
		out := &eventsv1.EventConsumer{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(c), out); err != nil {
			return ""
		}
		if cond := meta.FindStatusCondition(out.Status.Conditions, eventsv1.ConditionReady); cond != nil {
			return string(cond.Status) + "/" + cond.Reason
		}
		return ""
	}
}

func consumerInfo(stream, name string) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return nil, err
	}
	return c.CachedInfo(), nil
}

func mustConsumerInfo(stream, name string) *jetstream.ConsumerInfo {
	GinkgoHelper()
	info, err := consumerInfo(stream, name)
	Expect(err).NotTo(HaveOccurred())
	return info
}

func deleteConsumerAndWait(c *eventsv1.EventConsumer) {
	GinkgoHelper()
	err := k8s.Delete(context.Background(), c)
	if apierrors.IsNotFound(err) {
		return
	}
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(c), &eventsv1.EventConsumer{}))
	}).Should(BeTrue())
}

// readyStream creates an EventStream and waits until it is Ready.
func readyStream(prefix string, opts ...streamOpt) *eventsv1.EventStream {
	GinkgoHelper()
	evs := newStream(uniqueName(prefix), opts...)
	Expect(k8s.Create(context.Background(), evs)).To(Succeed())
	expectReady(evs)
	DeferCleanup(func() { deleteAndWait(evs) })
	return evs
}

var _ = Describe("EventConsumer controller", Ordered, func() {
	ctx := context.Background()

	// Stopped by DeferCleanup, which runs after the specs\' own cleanups.
	BeforeAll(func() { DeferCleanup(startManager(time.Minute)) })

	It("creates the durable consumer with the defaults and exactly the declared configuration", func() {
		evs := readyStream("cstream")
		plain := newConsumer(uniqueName("plain"), evs.Name)
		Expect(k8s.Create(ctx, plain)).To(Succeed())
		Eventually(consumerReady(plain)).Should(Equal("True/" + eventsv1.ReasonCreated))
		info := mustConsumerInfo(evs.JetStreamName(), plain.Name)
		Expect(info.Config.Durable).To(Equal(plain.Name))
		Expect(info.Config.AckPolicy).To(Equal(jetstream.AckExplicitPolicy))
		Expect(info.Config.AckWait).To(Equal(10 * time.Second))
		Expect(info.Config.MaxDeliver).To(Equal(3))
		Expect(info.Config.DeliverPolicy).To(Equal(jetstream.DeliverAllPolicy))
		Expect(info.Config.Metadata).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, "default/"+plain.Name))
		got := getConsumer(plain)
		Expect(got.Status.StreamName).To(Equal(evs.JetStreamName()))
		Expect(got.Status.ConsumerName).To(Equal(plain.Name))
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))

		declared := newConsumer(uniqueName("declared"), evs.Name, func(c *eventsv1.EventConsumer) {
			c.Spec.DurableName = "DECLARED_DURABLE"
			c.Spec.Description = "declared"
			c.Spec.FilterSubjects = []string{evs.Name + ".a", evs.Name + ".b.*"}
			c.Spec.DeliverPolicy = eventsv1.DeliverNew
			c.Spec.AckWait = "45s"
			c.Spec.MaxDeliver = 5
			c.Spec.Backoff = []eventsv1.Duration{"1s", "5s", "30s"}
			c.Spec.MaxAckPending = ptr.To[int32](50)
			c.Spec.MaxWaiting = ptr.To[int32](64)
			c.Spec.InactiveThreshold = "24h"
			c.Spec.Metadata = map[string]string{"team": "analytics"}
		})
		Expect(k8s.Create(ctx, declared)).To(Succeed())
		Eventually(consumerReady(declared)).Should(HavePrefix("True/"))
		cfg := mustConsumerInfo(evs.JetStreamName(), "DECLARED_DURABLE").Config
		Expect(cfg.Description).To(Equal("declared"))
		Expect(cfg.FilterSubjects).To(Equal([]string{evs.Name + ".a", evs.Name + ".b.*"}))
		Expect(cfg.DeliverPolicy).To(Equal(jetstream.DeliverNewPolicy))
		Expect(cfg.AckWait).To(Equal(time.Second), "with a backoff, JetStream's ack wait is the first backoff")
		Expect(cfg.MaxDeliver).To(Equal(5))
		Expect(cfg.BackOff).To(Equal([]time.Duration{time.Second, 5 * time.Second, 30 * time.Second}))
		Expect(cfg.MaxAckPending).To(Equal(50))
		Expect(cfg.MaxWaiting).To(Equal(64))
		Expect(cfg.InactiveThreshold).To(Equal(24 * time.Hour))
		Expect(userMetadata(cfg.Metadata)).To(HaveKeyWithValue("team", "analytics"))

		deleteConsumerAndWait(plain)
		deleteConsumerAndWait(declared)
	})

	It("applies mutable changes: ackWait, maxDeliver, backoff, filterSubjects, maxAckPending", func() {
		evs := readyStream("mstream")
		evc := newConsumer(uniqueName("mutable"), evs.Name)
		Expect(k8s.Create(ctx, evc)).To(Succeed())
		Eventually(consumerReady(evc)).Should(HavePrefix("True/"))

		Eventually(func() error {
			c := getConsumer(evc)
			c.Spec.AckWait = "20s"
			c.Spec.MaxDeliver = 4
			c.Spec.FilterSubjects = []string{evs.Name + ".only"}
			c.Spec.MaxAckPending = ptr.To[int32](7)
			return k8s.Update(ctx, c)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			cfg := mustConsumerInfo(evs.JetStreamName(), evc.Name).Config
			g.Expect(cfg.AckWait).To(Equal(20 * time.Second))
			g.Expect(cfg.MaxDeliver).To(Equal(4))
			g.Expect(append([]string{cfg.FilterSubject}, cfg.FilterSubjects...)).To(ContainElement(evs.Name + ".only"))
			g.Expect(cfg.MaxAckPending).To(Equal(7))
		}).Should(Succeed())

		Eventually(func() error {
			c := getConsumer(evc)
			c.Spec.Backoff = []eventsv1.Duration{"2s", "4s"}
			return k8s.Update(ctx, c)
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			cfg := mustConsumerInfo(evs.JetStreamName(), evc.Name).Config
			g.Expect(cfg.BackOff).To(Equal([]time.Duration{2 * time.Second, 4 * time.Second}))
			g.Expect(cfg.AckWait).To(Equal(2 * time.Second))
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			got := getConsumer(evc)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(consumerReady(evc)()).To(Equal("True/" + eventsv1.ReasonUpdated))
		}).Should(Succeed())
		deleteConsumerAndWait(evc)
	})

	It("recreates a consumer deleted out of band within 5 seconds", func() {
		evs := readyStream("dstream")
		evc := newConsumer(uniqueName("oob"), evs.Name)
		Expect(k8s.Create(ctx, evc)).To(Succeed())
		Eventually(consumerReady(evc)).Should(HavePrefix("True/"))

		Expect(js.DeleteConsumer(ctx, evs.JetStreamName(), evc.Name)).To(Succeed())
		start := time.Now()
		Eventually(func() error { _, err := consumerInfo(evs.JetStreamName(), evc.Name); return err },
			5*time.Second, 20*time.Millisecond).Should(Succeed())
		GinkgoWriter.Printf("consumer recreated after %s\n", time.Since(start))
		deleteConsumerAndWait(evc)
	})

	It("waits for a stream that does not exist yet, then becomes Ready", func() {
		streamName := uniqueName("late")
		evc := newConsumer(uniqueName("early"), streamName)
		Expect(k8s.Create(ctx, evc)).To(Succeed())
		Eventually(consumerReady(evc)).Should(Equal("False/" + eventsv1.ReasonStreamNotReady))

		evs := newStream(streamName)
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		DeferCleanup(func() { deleteAndWait(evs) })
		Eventually(consumerReady(evc), 10*time.Second).Should(Equal("True/" + eventsv1.ReasonCreated))
		Expect(mustConsumerInfo(evs.JetStreamName(), evc.Name).Config.Durable).To(Equal(evc.Name))

		// The stream goes away: the consumer says so, and does not hot-loop.
		deleteAndWait(evs)
		Eventually(consumerReady(evc)).Should(Equal("False/" + eventsv1.ReasonStreamNotReady))
		// It said "being deleted" while the EventStream was; the reconcile
		// its removal triggers may come after deleteAndWait returns.
		Eventually(func() string { return getConsumer(evc).Status.Conditions[0].Message }).Should(ContainSubstring("does not exist"))
		deleteConsumerAndWait(evc)
	})

	It("deletes the consumer with Delete and keeps it with Retain", func() {
		evs := readyStream("rstream")
		del := newConsumer(uniqueName("del"), evs.Name)
		keep := newConsumer(uniqueName("keep"), evs.Name, func(c *eventsv1.EventConsumer) {
			c.Spec.DeletionPolicy = eventsv1.DeletionPolicyRetain
		})
		Expect(k8s.Create(ctx, del)).To(Succeed())
		Expect(k8s.Create(ctx, keep)).To(Succeed())
		Eventually(consumerReady(del)).Should(HavePrefix("True/"))
		Eventually(consumerReady(keep)).Should(HavePrefix("True/"))

		deleteConsumerAndWait(del)
		_, err := consumerInfo(evs.JetStreamName(), del.Name)
		Expect(err).To(MatchError(jetstream.ErrConsumerNotFound))

		deleteConsumerAndWait(keep)
		info := mustConsumerInfo(evs.JetStreamName(), keep.Name)
		Expect(userMetadata(info.Config.Metadata)).NotTo(HaveKey(eventsv1.OwnerMetadataKey))
		Expect(userMetadata(info.Config.Metadata)).To(HaveKeyWithValue(eventsv1.ReleasedByMetadataKey, "default/"+keep.Name))

		// The resource that released it takes it back.
		again := newConsumer(keep.Name, evs.Name)
		Expect(k8s.Create(ctx, again)).To(Succeed())
		Eventually(consumerReady(again)).Should(HavePrefix("True/"))
		info = mustConsumerInfo(evs.JetStreamName(), keep.Name)
		Expect(info.Config.Metadata).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, "default/"+keep.Name))
		Expect(userMetadata(info.Config.Metadata)).NotTo(HaveKey(eventsv1.ReleasedByMetadataKey))
		deleteConsumerAndWait(again)
	})

	It("says DeadLetterNotStored when no stream captures the dead-letter subject", func() {
		evs := readyStream("nodlq")
		evc := newConsumer(uniqueName("nodlq"), evs.Name, func(c *eventsv1.EventConsumer) {
			c.Spec.DeadLetter = &eventsv1.DeadLetter{}
		})
		Expect(k8s.Create(ctx, evc)).To(Succeed())
		Eventually(consumerReady(evc)).Should(Equal("False/" + eventsv1.ReasonDeadLetterNotStored))
		Expect(getConsumer(evc).Status.Conditions[0].Message).To(ContainSubstring("dlq." + evs.Name + ".>"))

		// A stream for the dead letters fixes it at once: its creation
		// advisory brings the waiting consumer back, long before the resync.
		dlq := newStream(uniqueName("dlqstore"), withSubjects("dlq."+evs.Name+".>"))
		Expect(k8s.Create(ctx, dlq)).To(Succeed())
		DeferCleanup(func() { deleteAndWait(dlq) })
		Eventually(consumerReady(evc), 10*time.Second).Should(HavePrefix("True/"))
		deleteConsumerAndWait(evc)
	})
})

var _ = Describe("EventConsumer admission", func() {
	ctx := context.Background()
	consumerManifest := func(name string, spec map[string]any) *unstructured.Unstructured {
		if _, ok := spec["streamRef"]; !ok {
			spec["streamRef"] = map[string]any{"name": "some-stream"}
		}
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": eventsv1.GroupVersion.String(), "kind": "EventConsumer",
			"metadata": map[string]any{"name": name, "namespace": "default"},
			"spec":     spec,
		}}
	}

	DescribeTable("rejects an invalid EventConsumer with a message naming the field",
		func(spec map[string]any, field, message string) {
			err := k8s.Create(ctx, consumerManifest(uniqueName("badc"), spec), client.DryRunAll)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("no streamRef name", map[string]any{"streamRef": map[string]any{}}, "spec.streamRef.name", "Required"),
		Entry("a bad ackWait", map[string]any{"ackWait": "10 seconds"}, "spec.ackWait", "must be a duration"),
		Entry("ackWait in days", map[string]any{"ackWait": "1d"}, "spec.ackWait", "days are not supported"),
		Entry("a bad backoff entry", map[string]any{"backoff": []any{"1s", "2x"}}, "spec.backoff[1]", "must be a duration"),
		Entry("more backoffs than deliveries", map[string]any{"maxDeliver": 2, "backoff": []any{"1s", "2s", "3s"}}, "spec.backoff", "more entries than maxDeliver"),
		Entry("maxDeliver 0", map[string]any{"maxDeliver": 0}, "spec.maxDeliver", "must be -1 (unlimited) or positive"),
		Entry("an invalid durable name", map[string]any{"durableName": "a.b"}, "spec.durableName", "JetStream consumer name"),
		Entry("optStartSeq without ByStartSequence", map[string]any{"optStartSeq": 5}, "spec.optStartSeq", "only allowed with deliverPolicy ByStartSequence"),
		Entry("ByStartSequence without optStartSeq", map[string]any{"deliverPolicy": "ByStartSequence"}, "spec.optStartSeq", "needs optStartSeq"),
		Entry("ByStartTime without optStartTime", map[string]any{"deliverPolicy": "ByStartTime"}, "spec.optStartTime", "needs optStartTime"),
		Entry("an unknown ack policy", map[string]any{"ackPolicy": "Sometimes"}, "spec.ackPolicy", "supported values"),
		Entry("a dead letter with ackPolicy None", map[string]any{"ackPolicy": "None", "deadLetter": map[string]any{}}, "spec.deadLetter", "needs acknowledgements"),
		Entry("a wildcard dead-letter subject", map[string]any{"deadLetter": map[string]any{"subject": "dlq.>"}}, "spec.deadLetter.subject", "without wildcards"),
		Entry("an unknown deliver policy", map[string]any{"deliverPolicy": "Sometimes"}, "spec.deliverPolicy", "supported values"),
		Entry("maxDeliver below -1", map[string]any{"maxDeliver": -3}, "spec.maxDeliver", "greater than or equal to -1"),
		Entry("six replicas", map[string]any{"replicas": 6}, "spec.replicas", "less than or equal to 5"),
		Entry("maxWaiting 0", map[string]any{"maxWaiting": 0}, "spec.maxWaiting", "greater than or equal to 1"),
		Entry("a reserved metadata key", map[string]any{"metadata": map[string]any{"_nats.level": "1"}}, "spec.metadata", "reserved"),
		Entry("a bad inactiveThreshold", map[string]any{"inactiveThreshold": "forever"}, "spec.inactiveThreshold", "must be a duration"),
		Entry("optStartTime that is not a time", map[string]any{"deliverPolicy": "ByStartTime", "optStartTime": "yesterday"}, "spec.optStartTime", "optStartTime"),
	)

	DescribeTable("accepts valid edge cases",
		func(spec map[string]any) {
			Expect(k8s.Create(ctx, consumerManifest(uniqueName("edgec"), spec), client.DryRunAll)).To(Succeed())
		},
		Entry("unlimited deliveries with a long backoff list", map[string]any{"maxDeliver": -1, "backoff": []any{"1s", "2s", "4s", "8s", "16s"}}),
		Entry("ByStartSequence with a sequence", map[string]any{"deliverPolicy": "ByStartSequence", "optStartSeq": 1}),
		Entry("ByStartTime with a time", map[string]any{"deliverPolicy": "ByStartTime", "optStartTime": "2026-01-01T00:00:00Z"}),
		Entry("ackPolicy None without dead letters", map[string]any{"ackPolicy": "None"}),
		Entry("a fixed dead-letter subject", map[string]any{"deadLetter": map[string]any{"subject": "dlq.audit.failed"}}),
		Entry("maxAckPending -1 (unlimited)", map[string]any{"maxAckPending": -1}),
	)

	DescribeTable("rejects changes JetStream cannot make in place, naming the field",
		func(initial, change map[string]any, field, message string) {
			u := consumerManifest(uniqueName("immc"), initial)
			Expect(k8s.Create(ctx, u)).To(Succeed())
			DeferCleanup(func() {
				// No stream: the finalizer (if added) is removed at once.
				_ = k8s.Delete(ctx, u)
			})
			spec := u.Object["spec"].(map[string]any)
			for k, v := range change {
				spec[k] = v
			}
			err := k8s.Update(ctx, u, client.DryRunAll)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("streamRef", map[string]any{}, map[string]any{"streamRef": map[string]any{"name": "other"}}, "spec.streamRef", "streamRef is immutable"),
		Entry("durableName", map[string]any{"durableName": "D1"}, map[string]any{"durableName": "D2"}, "spec.durableName", "durableName is immutable"),
		Entry("deliverPolicy", map[string]any{}, map[string]any{"deliverPolicy": "New"}, "spec.deliverPolicy", "deliverPolicy is immutable"),
		Entry("ackPolicy", map[string]any{}, map[string]any{"ackPolicy": "All"}, "spec.ackPolicy", "ackPolicy is immutable"),
		Entry("memoryStorage", map[string]any{"memoryStorage": false}, map[string]any{"memoryStorage": true}, "spec.memoryStorage", "memoryStorage is immutable"),
		Entry("optStartSeq", map[string]any{"deliverPolicy": "ByStartSequence", "optStartSeq": 3}, map[string]any{"optStartSeq": 4}, "spec.optStartSeq", "optStartSeq is immutable"),
	)
})
