package controller_test

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// Namespaces are tenants: JetStream names are global, so every rule here is
// tried across two namespaces. The suite's manager allows adoption only in
// "default" (--adopt-namespaces=default).
var _ = Describe("Ownership across namespaces", Ordered, func() {
	ctx := context.Background()
	const teamA, teamB = "team-a", "team-b"

	BeforeAll(func() {
		for _, ns := range []string{teamA, teamB} {
			err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			if !apierrors.IsAlreadyExists(err) {
				Expect(err).NotTo(HaveOccurred())
			}
		}
		DeferCleanup(startManager(time.Minute))
	})

	// publish stores n messages on subject and returns the stream's count.
	publish := func(subject string, n int) {
		GinkgoHelper()
		for i := 0; i < n; i++ {
			_, err := js.Publish(ctx, subject, []byte("data"))
			Expect(err).NotTo(HaveOccurred())
		}
	}
	expectUntouched := func(stream string, subjects []string, msgs uint64) {
		GinkgoHelper()
		info := mustStreamInfo(stream)
		Expect(info.Config.Subjects).To(Equal(subjects), "subjects unchanged")
		Expect(info.State.Msgs).To(Equal(msgs), "messages kept")
	}

	It("never lets another namespace take over a stream released with Retain; the same resource takes it back", func() {
		base := uniqueName("released")
		streamName := strings.ToUpper(strings.ReplaceAll(base, "-", "_"))
		a := newStream(base, withNamespace(teamA), withDeletionPolicy(eventsv1.DeletionPolicyRetain))
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectReady(a)
		publish(base+".x", 5)
		deleteAndWait(a)
		Expect(userMetadata(mustStreamInfo(streamName).Config.Metadata)).To(HaveKeyWithValue(eventsv1.ReleasedByMetadataKey, teamA+"/"+base))

		// Namespace B asks for the same JetStream stream, even with the adopt
		// annotation, with other subjects and the default Delete policy.
		b := newStream(uniqueName("thief"), withNamespace(teamB), withStreamName(streamName), withSubjects(base+"-b.>"),
			withAnnotation(eventsv1.AdoptAnnotation, "true"))
		Expect(k8s.Create(ctx, b)).To(Succeed())
		Eventually(readyReason(b)).Should(Equal("False/" + eventsv1.ReasonConflict))
		Expect(readyCondition(b).Message).To(ContainSubstring("released by " + teamA + "/" + base))
		Expect(eventReasons(b)()).To(ContainElement(eventsv1.ReasonConflict), "a Warning Event says so")
		expectUntouched(streamName, []string{base + ".>"}, 5)

		deleteAndWait(b)
		Consistently(streamExists(streamName), time.Second).Should(BeTrue(), "deleting the loser leaves the stream")
		expectUntouched(streamName, []string{base + ".>"}, 5)

		// The resource that released it takes it back, without annotation.
		again := newStream(base, withNamespace(teamA))
		Expect(k8s.Create(ctx, again)).To(Succeed())
		expectReady(again)
		Eventually(eventReasons(again)).Should(ContainElement(eventsv1.ReasonAdopted))
		md := userMetadata(mustStreamInfo(streamName).Config.Metadata)
		Expect(md).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, teamA+"/"+base))
		Expect(md).NotTo(HaveKey(eventsv1.ReleasedByMetadataKey))
		expectUntouched(streamName, []string{base + ".>"}, 5)
		deleteAndWait(again)
		Eventually(streamExists(streamName)).Should(BeFalse())
	})

	It("refuses a stream another namespace owns, and deleting the loser leaves the stream and its messages", func() {
		base := uniqueName("owned")
		a := newStream(base, withNamespace(teamA))
		Expect(k8s.Create(ctx, a)).To(Succeed())
		expectReady(a)
		streamName := a.JetStreamName()
		publish(base+".x", 3)

		b := newStream(base, withNamespace(teamB), withSubjects(base+"-b.>"))
		Expect(k8s.Create(ctx, b)).To(Succeed())
		Eventually(readyReason(b)).Should(Equal("False/" + eventsv1.ReasonConflict))
		Expect(readyCondition(b).Message).To(ContainSubstring("owned by " + teamA + "/" + base))
		deleteAndWait(b)
		Consistently(streamExists(streamName), time.Second).Should(BeTrue())
		expectUntouched(streamName, []string{base + ".>"}, 3)
		Expect(readyReason(a)()).To(HavePrefix("True/"))
		deleteAndWait(a)
	})

	It("adopts a stream made by hand only with the annotation, and only in an allowed namespace", func() {
		base := uniqueName("byhand")
		streamName := strings.ToUpper(strings.ReplaceAll(base, "-", "_"))
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{base + ".>"}, MaxAge: time.Hour})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func() { _ = js.DeleteStream(context.Background(), streamName) })
		publish(base+".x", 4)

		// team-b asks, but team-b is not in --adopt-namespaces.
		b := newStream(base, withNamespace(teamB), withAnnotation(eventsv1.AdoptAnnotation, "true"))
		Expect(k8s.Create(ctx, b)).To(Succeed())
		Eventually(readyReason(b)).Should(Equal("False/" + eventsv1.ReasonAdoptionNotAllowed))
		Expect(readyCondition(b).Message).To(ContainSubstring("not allowed in namespace " + teamB))
		Expect(readyCondition(b).Message).To(ContainSubstring("--adopt-namespaces"))

		// default is allowed, but the resource does not ask.
		d := newStream(base)
		Expect(k8s.Create(ctx, d)).To(Succeed())
		Eventually(readyReason(d)).Should(Equal("False/" + eventsv1.ReasonAdoptionNotAllowed))
		Expect(readyCondition(d).Message).To(ContainSubstring(eventsv1.AdoptAnnotation))
		Consistently(func() time.Duration { return mustStreamInfo(streamName).Config.MaxAge }, time.Second).
			Should(Equal(time.Hour), "refused resources leave the stream untouched")
		Expect(mustStreamInfo(streamName).State.Msgs).To(Equal(uint64(4)))

		// Asking in an allowed namespace adopts it.
		Eventually(func() error {
			cur := get(d)
			cur.Annotations = map[string]string{eventsv1.AdoptAnnotation: "true"}
			return k8s.Update(ctx, cur)
		}).Should(Succeed())
		expectReady(d)
		info := mustStreamInfo(streamName)
		Expect(info.Config.MaxAge).To(Equal(7 * 24 * time.Hour))
		Expect(info.Config.Metadata).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, "default/"+base))
		Expect(info.State.Msgs).To(Equal(uint64(4)), "adoption keeps the messages")

		// team-b's resource is now refused because default owns it; deleting
		// it changes nothing.
		Eventually(func() string {
			// Its next reconcile (any change) sees the new owner.
			cur := get(b)
			cur.Annotations["touch"] = "1"
			_ = k8s.Update(ctx, cur)
			return readyReason(b)()
		}).Should(Equal("False/" + eventsv1.ReasonConflict))
		deleteAndWait(b)
		Expect(streamExists(streamName)()).To(BeTrue())
		deleteAndWait(d)
		Eventually(streamExists(streamName)).Should(BeFalse())
	})

	It("applies the same rules to consumers", func() {
		evs := readyStream("cown")
		stream := evs.JetStreamName()
		durable := uniqueName("byhand-consumer")
		_, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute})
		Expect(err).NotTo(HaveOccurred())

		evc := newConsumer(durable, evs.Name)
		Expect(k8s.Create(ctx, evc)).To(Succeed())
		Eventually(consumerReady(evc)).Should(Equal("False/" + eventsv1.ReasonAdoptionNotAllowed))
		Expect(mustConsumerInfo(stream, durable).Config.AckWait).To(Equal(time.Minute), "untouched")

		Eventually(func() error {
			cur := getConsumer(evc)
			cur.Annotations = map[string]string{eventsv1.AdoptAnnotation: "true"}
			return k8s.Update(ctx, cur)
		}).Should(Succeed())
		Eventually(consumerReady(evc)).Should(HavePrefix("True/"))
		info := mustConsumerInfo(stream, durable)
		Expect(info.Config.AckWait).To(Equal(10 * time.Second))
		Expect(info.Config.Metadata).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, "default/"+durable))
		deleteConsumerAndWait(evc)
	})
})
