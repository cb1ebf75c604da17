package controller_test

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// The JetStream stream settings of issue 17 with the whole manager: declared
// together, repaired after an out-of-band edit (by advisory, long before the
// resync), sealing on update, and a change JetStream refuses reported as
// Stalled naming the field.
var _ = Describe("EventStream controller with the JetStream stream settings", Ordered, func() {
	ctx := context.Background()

	BeforeAll(func() { DeferCleanup(startManager(time.Minute)) })

	withSettings := func(e *eventsv1.EventStream) {
		s := &e.Spec
		s.SubjectTransform = &eventsv1.SubjectTransform{Source: e.Name + ".in.*", Destination: e.Name + ".out.{{wildcard(1)}}"}
		s.Republish = &eventsv1.Republish{Destination: "copy." + e.Name + ".>", HeadersOnly: true}
		s.AllowRollup, s.AllowMsgTTL, s.SubjectDeleteMarkerTTL = true, true, "10m"
		s.Discard, s.MaxMsgsPerSubject, s.DiscardNewPerSubject = eventsv1.DiscardNew, ptr.To[int64](10), true
		s.FirstSequence = 1000
		s.ConsumerLimits = &eventsv1.StreamConsumerLimits{InactiveThreshold: "1h", MaxAckPending: 100}
		s.MaxConsumers = ptr.To[int32](20)
		s.AllowAtomicPublish, s.AllowBatchPublish = true, true
	}

	It("creates a stream with the settings declared together, and puts an out-of-band edit back", func() {
		evs := newStream(uniqueName("settings"), withSettings)
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		DeferCleanup(func() { deleteAndWait(evs) })
		expectReady(evs)
		name := evs.JetStreamName()

		cfg := mustStreamInfo(name).Config
		Expect(cfg.SubjectTransform).To(Equal(&jetstream.SubjectTransformConfig{Source: evs.Name + ".in.*", Destination: evs.Name + ".out.{{wildcard(1)}}"}))
		Expect(cfg.RePublish).To(Equal(&jetstream.RePublish{Source: ">", Destination: "copy." + evs.Name + ".>", HeadersOnly: true}))
		Expect(cfg.AllowRollup && cfg.AllowMsgTTL && cfg.DiscardNewPerSubject && cfg.AllowAtomicPublish && cfg.AllowBatchPublish).To(BeTrue())
		Expect(cfg.SubjectDeleteMarkerTTL).To(Equal(10 * time.Minute))
		Expect(cfg.FirstSeq).To(Equal(uint64(1000)))
		Expect(cfg.ConsumerLimits).To(Equal(jetstream.StreamConsumerLimits{InactiveThreshold: time.Hour, MaxAckPending: 100}))
		Expect(cfg.MaxConsumers).To(Equal(20))

		cfg.RePublish, cfg.AllowBatchPublish, cfg.ConsumerLimits, cfg.MaxConsumers = nil, false, jetstream.StreamConsumerLimits{}, -1
		_, err := js.UpdateStream(ctx, cfg)
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			cfg := mustStreamInfo(name).Config
			g.Expect(cfg.RePublish).NotTo(BeNil())
			g.Expect(cfg.AllowBatchPublish).To(BeTrue())
			g.Expect(cfg.ConsumerLimits.MaxAckPending).To(Equal(100))
			g.Expect(cfg.MaxConsumers).To(Equal(20))
		}, 5*time.Second).Should(Succeed())
	})

	It("seals a stream when sealed is set on an existing EventStream", func() {
		evs := newStream(uniqueName("sealing"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		DeferCleanup(func() { deleteAndWait(evs) })
		expectReady(evs)
		_, err := js.Publish(ctx, evs.Name+".x", []byte("kept"))
		Expect(err).NotTo(HaveOccurred())

		sealed := get(evs)
		patch := client.MergeFrom(sealed.DeepCopy())
		sealed.Spec.Sealed = true
		Expect(k8s.Patch(ctx, sealed, patch)).To(Succeed())
		Eventually(func() bool { return mustStreamInfo(evs.JetStreamName()).Config.Sealed }, 5*time.Second).Should(BeTrue())
		Eventually(readyReason(evs)).Should(Equal("True/" + eventsv1.ReasonUpdated))
		_, err = js.Publish(ctx, evs.Name+".x", []byte("refused"))
		Expect(err).To(HaveOccurred(), "a sealed stream takes no message")
		Expect(mustStreamInfo(evs.JetStreamName()).State.Msgs).To(Equal(uint64(1)))
	})

	It("reports consumer limits below a consumer's as Stalled InvalidSpec naming consumerLimits", func() {
		evs := newStream(uniqueName("limits"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		DeferCleanup(func() { deleteAndWait(evs) })
		expectReady(evs)
		_, err := js.CreateConsumer(ctx, evs.JetStreamName(), jetstream.ConsumerConfig{Durable: "greedy", MaxAckPending: 500,
			AckPolicy: jetstream.AckExplicitPolicy})
		Expect(err).NotTo(HaveOccurred())

		limited := get(evs)
		patch := client.MergeFrom(limited.DeepCopy())
		limited.Spec.ConsumerLimits = &eventsv1.StreamConsumerLimits{MaxAckPending: 10}
		Expect(k8s.Patch(ctx, limited, patch)).To(Succeed())
		Eventually(readyReason(evs)).Should(Equal("False/" + eventsv1.ReasonInvalidSpec))
		stalled := meta.FindStatusCondition(get(evs).Status.Conditions, eventsv1.ConditionStalled)
		Expect(stalled).NotTo(BeNil())
		Expect(stalled.Message).To(ContainSubstring("consumerLimits"))
		Expect(stalled.Message).To(ContainSubstring("greedy"))
	})
})
