package controller_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

func withDomain(d string) streamOpt { return func(e *eventsv1.EventStream) { e.Spec.Domain = d } }

// leafNet is a hub nats-server with JetStream (the operator's server) and
// leaf nodes connected to it, each with its own JetStream domain; the
// tests' connections to each, for assertions made on each server directly.
type leafNet struct {
	hub    *eventstest.Server
	hubNC  *nats.Conn
	hubJS  jetstream.JetStream
	leafJS map[string]jetstream.JetStream
}

// startLeafNet starts the hub and a leaf node per domain. A leaf node in
// blind is connected with its JetStream advisories denied to the hub, as
// when the leaf's remote binds another account or filters $JS.EVENT.>:
// the operator never hears of changes there.
func startLeafNet(domains []string, blind ...string) *leafNet {
	GinkgoHelper()
	big := eventstest.WithServerOptions(func(o *server.Options) { o.JetStreamMaxStore = 1 << 40 })
	hub, err := eventstest.StartJetStream("", eventstest.WithLeafNodes(), big)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(hub.Close)
	n := &leafNet{hub: hub, leafJS: map[string]jetstream.JetStream{}}
	n.hubNC, err = nats.Connect(hub.URL())
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(n.hubNC.Close)
	n.hubJS, err = jetstream.New(n.hubNC)
	Expect(err).NotTo(HaveOccurred())
	for _, d := range append(append([]string{}, domains...), blind...) {
		opts := []eventstest.Option{big}
		if slices.Contains(blind, d) {
			opts = append(opts, eventstest.WithServerOptions(func(o *server.Options) {
				o.LeafNode.Remotes[0].DenyExports = []string{"$JS.EVENT.>"}
			}))
		}
		leaf, err := eventstest.StartLeaf(hub, d, "", opts...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(leaf.Close)
		lnc, err := nats.Connect(leaf.URL())
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(lnc.Close)
		n.leafJS[d], err = jetstream.New(lnc)
		Expect(err).NotTo(HaveOccurred())
	}
	return n
}

// inJetStream reports whether js has stream name (and consumer, if given).
func inJetStream(js jetstream.JetStream, name string, consumer ...string) func() error {
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if len(consumer) > 0 {
			_, err := js.Consumer(ctx, name, consumer[0])
			return err
		}
		_, err := js.Stream(ctx, name)
		return err
	}
}

// countOn counts messages on subject at nc until the spec ends.
func countOn(nc *nats.Conn, subject string) func() int64 {
	GinkgoHelper()
	var n atomic.Int64
	sub, err := nc.Subscribe(subject, func(*nats.Msg) { n.Add(1) })
	Expect(err).NotTo(HaveOccurred())
	Expect(nc.Flush()).To(Succeed())
	DeferCleanup(sub.Unsubscribe)
	return n.Load
}

var _ = Describe("JetStream domains", Ordered, func() {
	ctx := context.Background()
	var net *leafNet

	BeforeAll(func() {
		net = startLeafNet([]string{"leaf"}, "blind")
		// A one-minute resync: what happens within seconds is the work of
		// advisories and the deletion audit.
		DeferCleanup(startManagerWith(managerConfig{resync: time.Minute, natsURL: net.hub.URL(),
			allowResourceConnections: true, jetStreamDomains: []string{"leaf", "blind"}}))
	})

	It("creates a stream with domain: leaf in the leaf's JetStream only, and its EventConsumer beside it", func() {
		evs := newStream(uniqueName("leaf-stream"), withDomain("leaf"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		expectReady(evs)
		name := evs.JetStreamName()
		Expect(inJetStream(net.leafJS["leaf"], name)()).To(Succeed(), "the stream is in the leaf's JetStream")
		Expect(inJetStream(net.hubJS, name)()).To(MatchError(jetstream.ErrStreamNotFound), "and not in the hub's")

		evc := newConsumer(uniqueName("leaf-consumer"), evs.Name)
		Expect(k8s.Create(ctx, evc)).To(Succeed())
		Eventually(consumerReady(evc)).Should(HavePrefix("True/"))
		Expect(inJetStream(net.leafJS["leaf"], name, evc.JetStreamName())()).To(Succeed(), "the consumer is in the leaf's JetStream")

		// In sync: a resync of both writes nothing (no status write, no
		// JetStream write).
		Expect(readyCondition(evs).Reason).To(BeElementOf(eventsv1.ReasonCreated, eventsv1.ReasonInSync))

		deleteConsumerAndWait(evc)
		Expect(inJetStream(net.leafJS["leaf"], name, evc.JetStreamName())()).To(MatchError(jetstream.ErrConsumerNotFound))
		deleteAndWait(evs)
		Expect(inJetStream(net.leafJS["leaf"], name)()).To(MatchError(jetstream.ErrStreamNotFound), "Delete policy: removed from the leaf")
	})

	It("puts an EventKeyValue and an EventObjectStore with domain: leaf in the leaf's JetStream only, and repairs them there", func() {
		for _, k := range bucketKinds {
			obj := k.build(uniqueName("leaf-"+strings.ToLower(k.kind)), "default", "")
			switch o := obj.(type) {
			case *eventsv1.EventKeyValue:
				o.Spec.Domain = "leaf"
			case *eventsv1.EventObjectStore:
				o.Spec.Domain = "leaf"
			}
			Expect(k8s.Create(ctx, obj)).To(Succeed())
			Eventually(bucketReady(k, obj)).Should(HavePrefix("True/"))
			bucket, _, _ := k.status(fresh(obj))
			stream := k.prefix + bucket
			Expect(inJetStream(net.leafJS["leaf"], stream)()).To(Succeed(), "%s is in the leaf's JetStream", stream)
			Expect(inJetStream(net.hubJS, stream)()).To(MatchError(jetstream.ErrStreamNotFound), "and not in the hub's")

			Expect(net.leafJS["leaf"].DeleteStream(ctx, stream)).To(Succeed())
			Eventually(inJetStream(net.leafJS["leaf"], stream), 5*time.Second).Should(Succeed(), "%s recreated in the leaf", stream)

			deleteObjectAndWait(obj)
			Expect(inJetStream(net.leafJS["leaf"], stream)()).To(MatchError(jetstream.ErrStreamNotFound), "Delete policy: removed from the leaf")
		}
	})

	It("refuses a changed or malformed domain at admission, naming spec.domain", func() {
		evs := newStream(uniqueName("leaf-immutable"), withDomain("leaf"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		DeferCleanup(deleteAndWait, evs)
		expectReady(evs)
		moved := get(evs)
		moved.Spec.Domain = "blind"
		err := k8s.Update(ctx, moved)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(And(ContainSubstring("spec.domain"), ContainSubstring("domain is immutable")))
		dropped := get(evs)
		dropped.Spec.Domain = ""
		Expect(k8s.Update(ctx, dropped)).To(MatchError(ContainSubstring("domain is immutable")))

		bad := newStream(uniqueName("bad-domain"), withDomain("leaf.one"))
		err = k8s.Create(ctx, bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(And(ContainSubstring("spec.domain"), ContainSubstring("must be a JetStream domain name")))
	})

	It("repairs an out-of-band deletion in a leaf at once: its advisory crosses the leaf node connection", func() {
		evs := newStream(uniqueName("leaf-drift"), withDomain("leaf"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		DeferCleanup(deleteAndWait, evs)
		expectReady(evs)
		deleted := countOn(net.hubNC, "$JS.EVENT.ADVISORY.STREAM.DELETED."+evs.JetStreamName())
		Expect(net.leafJS["leaf"].DeleteStream(ctx, evs.JetStreamName())).To(Succeed())
		start := time.Now()
		Eventually(inJetStream(net.leafJS["leaf"], evs.JetStreamName()), 5*time.Second).Should(Succeed())
		took := time.Since(start)
		Expect(deleted()).To(BeNumerically(">=", 1), "the leaf's advisory reached the hub")
		AddReportEntry("leaf stream deleted out of band, recreated after", took.String())
		Expect(took).To(BeNumerically("<", 2*time.Second), "the advisory, not the 3 s audit or the resync, repaired it")
	})

	It("repairs an out-of-band deletion in a leaf whose advisories never reach the operator, by the deletion audit", func() {
		evs := newStream(uniqueName("blind-drift"), withDomain("blind"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		DeferCleanup(deleteAndWait, evs)
		expectReady(evs)
		deleted := countOn(net.hubNC, "$JS.EVENT.ADVISORY.STREAM.>")
		Expect(net.leafJS["blind"].DeleteStream(ctx, evs.JetStreamName())).To(Succeed())
		start := time.Now()
		// The audit runs every 3 s; the resync is a minute away.
		Eventually(inJetStream(net.leafJS["blind"], evs.JetStreamName()), 10*time.Second).Should(Succeed())
		took := time.Since(start)
		Expect(deleted()).To(BeZero(), "no advisory of the blind leaf reached the hub")
		AddReportEntry("blind leaf stream deleted out of band, recreated after", took.String())
	})

	It("replays a leaf stream's messages in the leaf: an EventReplay uses its source EventStream's domain", func() {
		base := uniqueName("leaf-replay")
		src := newStream(base, withDomain("leaf"))
		tgt := newStream(base+"-t", withDomain("leaf"))
		for _, evs := range []*eventsv1.EventStream{src, tgt} {
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			DeferCleanup(deleteAndWait, evs)
			expectReady(evs)
		}
		for i := 1; i <= 5; i++ {
			_, err := net.leafJS["leaf"].Publish(ctx, fmt.Sprintf("%s.n%d", base, i), []byte(fmt.Sprint(i)))
			Expect(err).NotTo(HaveOccurred())
		}
		evr := newReplay(base, "default", src.Name, toSubject(base+"-t.all"))
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		DeferCleanup(deleteReplayAndWait, evr)
		Eventually(replayPhase(evr)).Should(Equal(eventsv1.ReplaySucceeded))
		Expect(getReplay(evr).Status.Replayed).To(BeEquivalentTo(5))
		st, err := net.leafJS["leaf"].Stream(ctx, tgt.JetStreamName())
		Expect(err).NotTo(HaveOccurred())
		Expect(st.CachedInfo().State.Msgs).To(BeEquivalentTo(5), "the replayed messages are in the leaf's target stream")
	})

	It("keeps one stream name apart per domain: two namespaces, one in the hub and one in the leaf; a third claiming the leaf's is refused", func() {
		for _, ns := range []string{"domains-a", "domains-b"} {
			ensureNamespace(ns)
		}
		name := strings.ToUpper(strings.ReplaceAll(uniqueName("shared"), "-", "_"))
		inHub := newStream("shared", withNamespace("domains-a"), withStreamName(name), withSubjects("shared-hub.>"))
		inLeaf := newStream("shared", withNamespace("domains-b"), withStreamName(name), withSubjects("shared-leaf.>"), withDomain("leaf"))
		for _, evs := range []*eventsv1.EventStream{inHub, inLeaf} {
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			DeferCleanup(deleteAndWait, evs)
		}
		expectReady(inHub)
		expectReady(inLeaf)
		hubInfo, err := net.hubJS.Stream(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		leafInfo, err := net.leafJS["leaf"].Stream(ctx, name)
		Expect(err).NotTo(HaveOccurred())
		Expect(hubInfo.CachedInfo().Config.Subjects).To(Equal([]string{"shared-hub.>"}))
		Expect(leafInfo.CachedInfo().Config.Subjects).To(Equal([]string{"shared-leaf.>"}))
		Expect(hubInfo.CachedInfo().Config.Metadata).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, inHub.OwnerMarker()))
		Expect(leafInfo.CachedInfo().Config.Metadata).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, inLeaf.OwnerMarker()))

		third := newStream(uniqueName("shared-claim"), withStreamName(name), withSubjects("shared-leaf.>"), withDomain("leaf"))
		Expect(k8s.Create(ctx, third)).To(Succeed())
		DeferCleanup(deleteAndWait, third)
		Eventually(readyReason(third)).Should(Equal("False/" + eventsv1.ReasonConflict))

		// Deleting the leaf's resource deletes the leaf's stream only (the
		// claimant goes first: it would create the stream again).
		deleteAndWait(third)
		Expect(inJetStream(net.leafJS["leaf"], name)()).To(Succeed(), "the refused claimant released nothing")
		deleteAndWait(inLeaf)
		Expect(inJetStream(net.leafJS["leaf"], name)()).To(MatchError(jetstream.ErrStreamNotFound))
		Expect(inJetStream(net.hubJS, name)()).To(Succeed())
	})
})

var _ = Describe("JetStream domains the administrator did not allow", Ordered, func() {
	ctx := context.Background()
	var net *leafNet

	BeforeAll(func() {
		net = startLeafNet([]string{"leaf"})
		// No --jetstream-domains.
		DeferCleanup(startManagerWith(managerConfig{resync: time.Minute, natsURL: net.hub.URL(), allowResourceConnections: true}))
	})

	It("leaves a stream naming a domain on the operator's connection Stalled, ConnectionNotAllowed, and sends nothing", func() {
		toLeaf := countOn(net.hubNC, "$JS.leaf.API.>")
		evs := newStream(uniqueName("refused-domain"), withDomain("leaf"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		DeferCleanup(deleteAndWait, evs)
		Eventually(readyReason(evs)).Should(Equal("False/" + eventsv1.ReasonConnectionNotAllowed))
		got := get(evs)
		stalled := meta.FindStatusCondition(got.Status.Conditions, eventsv1.ConditionStalled)
		Expect(stalled).NotTo(BeNil())
		Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		Expect(readyCondition(evs).Message).To(And(ContainSubstring(`spec.domain "leaf"`), ContainSubstring("--jetstream-domains")))
		Consistently(toLeaf, time.Second).Should(BeZero(), "no JetStream request went to the leaf's domain")
		Expect(inJetStream(net.leafJS["leaf"], evs.JetStreamName())()).To(MatchError(jetstream.ErrStreamNotFound))
		Expect(inJetStream(net.hubJS, evs.JetStreamName())()).To(MatchError(jetstream.ErrStreamNotFound))
	})

	It("refuses a source or mirror reaching into a domain it does not allow, by domain or by $JS.<domain>.API prefix, and creates nothing", func() {
		src := newStream(uniqueName("source-domain"), func(e *eventsv1.EventStream) {
			e.Spec.Subjects = nil
			e.Spec.Sources = []eventsv1.StreamSource{{Name: "ORDERS"}, {Name: "LEAF_ORDERS", Domain: "leaf"}}
		})
		mirror := newStream(uniqueName("mirror-prefix"), func(e *eventsv1.EventStream) {
			e.Spec.Subjects = nil
			e.Spec.Mirror = &eventsv1.StreamSource{Name: "LEAF_ORDERS", External: &eventsv1.ExternalStream{APIPrefix: "$JS.leaf.API"}}
		})
		for _, tc := range []struct {
			evs   *eventsv1.EventStream
			field string
		}{{src, `spec.sources[1].domain "leaf"`}, {mirror, `spec.mirror.external.apiPrefix "leaf"`}} {
			Expect(k8s.Create(ctx, tc.evs)).To(Succeed())
			DeferCleanup(deleteAndWait, tc.evs)
			Eventually(readyReason(tc.evs)).Should(Equal("False/" + eventsv1.ReasonConnectionNotAllowed))
			Expect(readyCondition(tc.evs).Message).To(And(ContainSubstring(tc.field), ContainSubstring("--jetstream-domains")))
			Expect(inJetStream(net.hubJS, tc.evs.JetStreamName())()).To(MatchError(jetstream.ErrStreamNotFound))
		}
	})

	It("uses the domain key of a spec.connection Secret, whose credentials bound what it reaches", func() {
		connectionSecret("leaf-nats", map[string]string{"url": net.hub.URL(), "domain": "leaf"})
		evs := newStream(uniqueName("secret-domain"), withConnection("leaf-nats"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		expectReady(evs)
		Expect(inJetStream(net.leafJS["leaf"], evs.JetStreamName())()).To(Succeed(), "the stream is in the Secret's domain")
		Expect(inJetStream(net.hubJS, evs.JetStreamName())()).To(MatchError(jetstream.ErrStreamNotFound))

		evc := newConsumer(uniqueName("secret-domain-consumer"), evs.Name)
		Expect(k8s.Create(ctx, evc)).To(Succeed())
		Eventually(consumerReady(evc)).Should(HavePrefix("True/"))
		Expect(inJetStream(net.leafJS["leaf"], evs.JetStreamName(), evc.JetStreamName())()).To(Succeed())

		// Out-of-band deletion on a per-resource connection's domain is
		// repaired too.
		Expect(net.leafJS["leaf"].DeleteStream(ctx, evs.JetStreamName())).To(Succeed())
		Eventually(inJetStream(net.leafJS["leaf"], evs.JetStreamName()), 10*time.Second).Should(Succeed())

		deleteConsumerAndWait(evc)
		deleteAndWait(evs)
		Expect(inJetStream(net.leafJS["leaf"], evs.JetStreamName())()).To(MatchError(jetstream.ErrStreamNotFound))
	})
})
