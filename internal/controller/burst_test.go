package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

var _ = Describe("A burst of out-of-band deletions", Ordered, func() {
	ctx := context.Background()

	// A resync far away: only the advisories can repair within the test.
	BeforeAll(func() { DeferCleanup(startManager(time.Hour)) })

	It("recreates every stream and consumer when hundreds of streams are deleted at once", func() {
		const nStreams, nConsumers = 300, 30
		small := resource.MustParse("64Ki")
		prefix := uniqueName("burst")
		var streams []*eventsv1.EventStream
		var consumers []*eventsv1.EventConsumer
		for i := range nStreams {
			evs := newStream(fmt.Sprintf("%s-%03d", prefix, i))
			evs.Spec.MaxBytes = &small
			streams = append(streams, evs)
		}
		for i := range nConsumers {
			consumers = append(consumers, newConsumer(fmt.Sprintf("%s-c%02d", prefix, i), streams[i*(nStreams/nConsumers)].Name))
		}
		parallel(nStreams, func(i int) { Expect(k8s.Create(ctx, streams[i])).To(Succeed()) })
		parallel(nConsumers, func(i int) { Expect(k8s.Create(ctx, consumers[i])).To(Succeed()) })
		DeferCleanup(func() {
			parallel(nConsumers, func(i int) { deleteConsumerAndWait(consumers[i]) })
			parallel(nStreams, func(i int) { deleteAndWait(streams[i]) })
		})
		Eventually(allReady, time.Minute).WithArguments(prefix, nStreams, nConsumers).Should(Succeed())

		created := map[string]time.Time{}
		for _, evs := range streams {
			created[evs.JetStreamName()] = mustStreamInfo(evs.JetStreamName()).Created
		}

		By("deleting every JetStream stream at once, out of band")
		parallel(nStreams, func(i int) { Expect(js.DeleteStream(ctx, streams[i].JetStreamName())).To(Succeed()) })

		By("waiting for the advisories to bring every stream and consumer back")
		Eventually(func(g Gomega) {
			missing := 0
			for name, before := range created {
				info, err := streamInfo(name)
				if err != nil || info.Created.Equal(before) {
					missing++
					continue
				}
				g.Expect(userMetadata(info.Config.Metadata)).To(HaveKey(eventsv1.OwnerMetadataKey))
			}
			g.Expect(missing).To(BeZero(), "streams not recreated")
			for _, c := range consumers {
				_, err := consumerInfo(streamJSName(streams, c.Spec.StreamRef.Name), c.JetStreamName())
				g.Expect(err).NotTo(HaveOccurred(), "consumer %s", c.Name)
			}
		}, time.Minute, 200*time.Millisecond).Should(Succeed())
		Eventually(allReady, 30*time.Second).WithArguments(prefix, nStreams, nConsumers).Should(Succeed())
	})
})

// parallel runs fn(0..n-1) on 16 goroutines.
func parallel(n int, fn func(i int)) {
	GinkgoHelper()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer GinkgoRecover()
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// allReady checks that the n EventStreams and m EventConsumers whose names
// start with prefix are all Ready.
func allReady(g Gomega, prefix string, n, m int) {
	sl := &eventsv1.EventStreamList{}
	g.Expect(k8s.List(context.Background(), sl, client.InNamespace("default"))).To(Succeed())
	ready := 0
	for i := range sl.Items {
		if strings.HasPrefix(sl.Items[i].Name, prefix) &&
			meta.IsStatusConditionTrue(sl.Items[i].Status.Conditions, eventsv1.ConditionReady) {
			ready++
		}
	}
	g.Expect(ready).To(Equal(n), "EventStreams Ready")
	cl := &eventsv1.EventConsumerList{}
	g.Expect(k8s.List(context.Background(), cl, client.InNamespace("default"))).To(Succeed())
	ready = 0
	for i := range cl.Items {
		if strings.HasPrefix(cl.Items[i].Name, prefix) &&
			meta.IsStatusConditionTrue(cl.Items[i].Status.Conditions, eventsv1.ConditionReady) {
			ready++
		}
	}
	g.Expect(ready).To(Equal(m), "EventConsumers Ready")
}

func streamJSName(streams []*eventsv1.EventStream, name string) string {
	for _, s := range streams {
		if s.Name == name {
			return s.JetStreamName()
		}
	}
	return ""
}
