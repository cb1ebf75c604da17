package controller_test

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

var _ = Describe("A push EventConsumer", Ordered, func() {
	It("is created as declared, and its dead letters are forwarded as a pull consumer's are", func() {
		stop := startManager(time.Minute)
		defer stop()
		ctx := context.Background()
		evs := newStream(uniqueName("pushed"))
		store := newStream(uniqueName("pushdlq"), func(e *eventsv1.EventStream) { e.Spec.Subjects = []string{"dlq." + evs.Name + ".>"} })
		deliver := "deliver." + evs.Name
		evc := newConsumer(uniqueName("pusher"), evs.Name, func(c *eventsv1.EventConsumer) {
			c.Spec.DeliverSubject = deliver
			c.Spec.DeliverGroup = "workers"
			c.Spec.MaxDeliver = 2
			c.Spec.AckWait = "1s"
			c.Spec.DeadLetter = &eventsv1.DeadLetter{}
		})
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		Expect(k8s.Create(ctx, store)).To(Succeed())
		Expect(k8s.Create(ctx, evc)).To(Succeed())
		expectReady(evs)
		expectReady(store)
		Eventually(consumerReady(evc)).Should(HavePrefix("True/"))
		f := dlqFixture{stream: evs, dlq: store, consumer: evc}
		defer f.cleanup()

		info, err := admin.GetConsumerInfo(ctx, js, evs.JetStreamName(), evc.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.Config.DeliverSubject).To(Equal(deliver))
		Expect(info.Config.DeliverGroup).To(Equal("workers"))

		// A subscriber of the queue group that never acknowledges.
		sub, err := js.Conn().QueueSubscribe(deliver, "workers", func(*nats.Msg) {})
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = sub.Unsubscribe() }()
		e, seq := f.publishEvent()
		expectDeadLetter(f, e, seq)
		Eventually(f.deadLettered, 10*time.Second).Should(Equal(int64(1)))
	})
})
