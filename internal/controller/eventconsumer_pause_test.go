package controller_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

var _ = Describe("A paused EventConsumer", Ordered, func() {
	It("reports paused while JetStream holds its deliveries, and not paused within seconds of the pause's end, not at the resync", func() {
		// A one-minute resync: only the requeue at the pause's end can
		// update status within the 5 s allowed below.
		stop := startManager(time.Minute)
		defer stop()
		ctx := context.Background()
		evs := newStream(uniqueName("pausing"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		defer deleteAndWait(evs)
		expectReady(evs)

		until := time.Now().Add(6 * time.Second).Truncate(time.Second)
		evc := newConsumer(uniqueName("paused"), evs.Name, func(c *eventsv1.EventConsumer) {
			c.Spec.PauseUntil = &metav1.Time{Time: until}
		})
		Expect(k8s.Create(ctx, evc)).To(Succeed())
		defer deleteConsumerAndWait(evc)
		paused := func() bool {
			st := getConsumer(evc).Status.State
			return st != nil && st.Paused
		}
		Eventually(paused).Should(BeTrue())
		Expect(time.Now()).To(BeTemporally("<", until), "the pause must still be running when status says paused")
		Eventually(paused, time.Until(until)+5*time.Second, 100*time.Millisecond).Should(BeFalse())
		Expect(consumerReady(evc)()).To(HavePrefix("True/"))
	})
})
