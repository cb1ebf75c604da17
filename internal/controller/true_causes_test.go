package controller_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/dlq"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// Every refusal says its true cause: each case here is produced by a real
// nats-server configured for it, and checked to be terminal (a Warning Event,
// no retry before the resync) rather than reported as an outage.
var _ = Describe("True causes of JetStream refusals", Ordered, func() {
	ctx := context.Background()
	// A namespace of its own, and a manager that watches only it: the
	// account's few streams must not go to resources other specs left.
	const ns = "true-causes"
	inNS := withNamespace(ns)
	consumerInNS := func(c *eventsv1.EventConsumer) { c.Namespace = ns }
	var limitedJS jetstream.JetStream
	var limitedNC *nats.Conn
	var stream *eventsv1.EventStream // Ready at the end of the first spec, used by the second

	BeforeAll(func() {
		// An account whose JetStream allows three streams and two consumers
		// per stream (nats-server applies the account's max_consumers to
		// each stream): the operator's dead-letter capture stream and count
		// ledger (a KeyValue bucket) take two of the streams.
		dir := GinkgoT().TempDir()
		conf := filepath.Join(dir, "limited.conf")
		Expect(os.WriteFile(conf, []byte(`
accounts: {
  LIMITED: {
    jetstream: {max_streams: 3, max_consumers: 2, max_file: 100G, max_mem: 64M}
    users: [{user: limited, password: limited-pw}]
  }
}
`), 0o600)).To(Succeed())
		parsed, err := server.ProcessConfigFile(conf)
		Expect(err).NotTo(HaveOccurred())
		srv, err := eventstest.StartJetStream("", eventstest.WithServerOptions(func(o *server.Options) {
			o.Accounts, o.Users = parsed.Accounts, parsed.Users
			o.JetStreamMaxStore = 1 << 40
		}))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(srv.Close)
		url := strings.Replace(srv.URL(), "nats://", "nats://limited:limited-pw@", 1)
		limitedNC, err = nats.Connect(url)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(limitedNC.Close)
		limitedJS, err = jetstream.New(limitedNC)
		Expect(err).NotTo(HaveOccurred())

		err = k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if !apierrors.IsAlreadyExists(err) {
			Expect(err).NotTo(HaveOccurred())
		}
		DeferCleanup(startManagerWith(managerConfig{resync: time.Minute, natsURL: url, namespaces: []string{ns}}))
		for _, s := range []string{dlq.DefaultStreamName, "KV_" + dlq.DefaultLedgerBucket} {
			Eventually(func() error { _, err := limitedJS.Stream(ctx, s); return err }).Should(Succeed(),
				"the operator's own stream %s takes one of the account's streams", s)
		}
	})

	// expectNoRetry checks that nothing is sent on subject (a JetStream API
	// request) for a while: a terminal failure waits for the resync.
	expectNoRetry := func(subject string) {
		GinkgoHelper()
		var n int
		sub, err := limitedNC.Subscribe(subject, func(*nats.Msg) { n++ })
		Expect(err).NotTo(HaveOccurred())
		Expect(limitedNC.Flush()).To(Succeed())
		time.Sleep(3 * time.Second)
		Expect(sub.Unsubscribe()).To(Succeed())
		Expect(n).To(BeZero(), fmt.Sprintf("%d requests on %s: a terminal failure is not retried before the resync", n, subject))
	}

	It("says AccountLimitExceeded when the account's stream limit is reached, and recovers once there is room", func() {
		first := newStream(uniqueName("first"), inNS)
		Expect(k8s.Create(ctx, first)).To(Succeed())
		expectReady(first)

		second := newStream(uniqueName("second"), inNS)
		Expect(k8s.Create(ctx, second)).To(Succeed())
		Eventually(readyReason(second)).Should(Equal("False/" + eventsv1.ReasonAccountLimitExceeded))
		Expect(readyCondition(second).Message).To(ContainSubstring("maximum number of streams reached"))
		Expect(readyCondition(second).Message).NotTo(ContainSubstring("unreachable"))
		Eventually(eventReasons(second)).Should(ContainElement(eventsv1.ReasonAccountLimitExceeded))
		expectNoRetry("$JS.API.STREAM.CREATE." + second.JetStreamName())

		deleteAndWait(first)
		Eventually(func() error { // its next reconcile (here: a change) finds room
			cur := get(second)
			cur.Spec.Description = "retry"
			return k8s.Update(ctx, cur)
		}).Should(Succeed())
		expectReady(second)
		stream = second
	})

	It("says AccountLimitExceeded when the account's consumer limit is reached", func() {
		Expect(stream).NotTo(BeNil(), "the previous spec leaves a Ready stream")
		evs := stream
		DeferCleanup(func() { deleteAndWait(evs) })
		// Fill the stream's room for consumers, then ask for one more.
		info, err := limitedJS.AccountInfo(ctx)
		Expect(err).NotTo(HaveOccurred())
		room := info.Limits.MaxConsumers
		Expect(room).To(Equal(2))
		var ready []*eventsv1.EventConsumer
		for range room {
			c := newConsumer(uniqueName("fits"), evs.Name, consumerInNS)
			Expect(k8s.Create(ctx, c)).To(Succeed())
			Eventually(consumerReady(c)).Should(HavePrefix("True/"))
			ready = append(ready, c)
		}
		two := newConsumer(uniqueName("two"), evs.Name, consumerInNS)
		Expect(k8s.Create(ctx, two)).To(Succeed())
		Eventually(consumerReady(two)).Should(Equal("False/" + eventsv1.ReasonAccountLimitExceeded))
		Expect(getConsumer(two).Status.Conditions[0].Message).To(ContainSubstring("maximum consumers limit reached"))
		expectNoRetry("$JS.API.CONSUMER.CREATE." + evs.JetStreamName() + ".>")
		deleteConsumerAndWait(two)
		for _, c := range ready {
			deleteConsumerAndWait(c)
		}
	})

	It("says InvalidSpec for replicas on a server without clustering (10074), not an outage", func() {
		// The account has room for one more stream once the previous specs'
		// stream is gone.
		Eventually(func() int {
			n := 0
			for range limitedJS.StreamNames(ctx).Name() {
				n++
			}
			return n
		}).Should(BeNumerically("<=", 3))
		r3 := newStream(uniqueName("r3"), inNS, func(e *eventsv1.EventStream) { e.Spec.Replicas = 3 })
		Expect(k8s.Create(ctx, r3)).To(Succeed())
		Eventually(readyReason(r3)).Should(Equal("False/" + eventsv1.ReasonInvalidSpec))
		Expect(readyCondition(r3).Message).To(ContainSubstring("replicas > 1 not supported"))
		// Terminal: Stalled (kstatus Failed), the generation's outcome known.
		conds := get(r3).Status
		Expect(meta.IsStatusConditionTrue(conds.Conditions, eventsv1.ConditionStalled)).To(BeTrue(), "Stalled: %v", conds.Conditions)
		Expect(meta.FindStatusCondition(conds.Conditions, eventsv1.ConditionReconciling)).To(BeNil())
		Expect(conds.ObservedGeneration).To(Equal(get(r3).Generation))
		Eventually(eventReasons(r3)).Should(ContainElement(eventsv1.ReasonInvalidSpec))
		expectNoRetry("$JS.API.STREAM.CREATE." + r3.JetStreamName())
		deleteAndWait(r3)
	})

	It("says InsufficientResources when the stream's bytes exceed the account's storage", func() {
		huge := newStream(uniqueName("huge"), inNS, func(e *eventsv1.EventStream) {
			e.Spec.MaxBytes = ptr.To(resource.MustParse("200Gi")) // beyond max_file: 100G
		})
		Expect(k8s.Create(ctx, huge)).To(Succeed())
		Eventually(readyReason(huge)).Should(Equal("False/" + eventsv1.ReasonInsufficientResources))
		expectNoRetry("$JS.API.STREAM.CREATE." + huge.JetStreamName())
		deleteAndWait(huge)
	})
})
