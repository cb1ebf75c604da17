package controller_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsk8s "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

var nameSeq atomic.Int32

// uniqueName returns a resource name no other spec uses, so that the
// JetStream streams of different specs never collide.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, GinkgoParallelProcess(), nameSeq.Add(1))
}

// streamOpt changes an EventStream fixture.
type streamOpt func(*eventsv1.EventStream)

func withSubjects(s ...string) streamOpt {
	return func(e *eventsv1.EventStream) { e.Spec.Subjects = s }
}
func withStreamName(n string) streamOpt { return func(e *eventsv1.EventStream) { e.Spec.Name = n } }
func withNamespace(ns string) streamOpt { return func(e *eventsv1.EventStream) { e.Namespace = ns } }
func withAnnotation(k, v string) streamOpt {
	return func(e *eventsv1.EventStream) {
		if e.Annotations == nil {
			e.Annotations = map[string]string{}
		}
		e.Annotations[k] = v
	}
}
func withDeletionPolicy(p eventsv1.DeletionPolicy) streamOpt {
	return func(e *eventsv1.EventStream) { e.Spec.DeletionPolicy = p }
}

// newStream builds an EventStream in namespace "default" whose subjects are
// derived from its name unless an option sets them.
func newStream(name string, opts ...streamOpt) *eventsv1.EventStream {
	e := &eventsv1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       eventsv1.EventStreamSpec{Subjects: []string{name + ".>"}},
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func get(e *eventsv1.EventStream) *eventsv1.EventStream {
	out := &eventsv1.EventStream{}
	ExpectWithOffset(1, k8s.Get(context.Background(), client.ObjectKeyFromObject(e), out)).To(Succeed())
	return out
}

func readyCondition(e *eventsv1.EventStream) *metav1.Condition {
	out := &eventsv1.EventStream{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(e), out); err != nil {
		return nil
	}
	return meta.FindStatusCondition(out.Status.Conditions, eventsv1.ConditionReady)
}

// readyReason polls the Ready condition as "Status/Reason".
func readyReason(e *eventsv1.EventStream) func() string {
	return func() string {
		c := readyCondition(e)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
}

func expectReady(e *eventsv1.EventStream) {
	GinkgoHelper()
	Eventually(func() metav1.ConditionStatus {
		if c := readyCondition(e); c != nil {
			return c.Status
		}
		return ""
	}).Should(Equal(metav1.ConditionTrue))
}

func streamInfo(name string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.CachedInfo(), nil
}

func mustStreamInfo(name string) *jetstream.StreamInfo {
	GinkgoHelper()
	info, err := streamInfo(name)
	Expect(err).NotTo(HaveOccurred())
	return info
}

func streamExists(name string) func() bool {
	return func() bool {
		_, err := streamInfo(name)
		return err == nil
	}
}

// userMetadata drops the keys nats-server adds itself.
func userMetadata(md map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range md {
		if !strings.HasPrefix(k, "_nats.") {
			out[k] = v
		}
	}
	return out
}

// countRequests counts NATS messages on subject (e.g. JetStream API
// requests) until the returned function stops counting.
func countRequests(subject string) (count func() int64, stop func()) {
	var n atomic.Int64
	sub, err := nc.Subscribe(subject, func(*nats.Msg) { n.Add(1) })
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, nc.Flush()).To(Succeed())
	return n.Load, func() { _ = sub.Unsubscribe() }
}

// eventReasons lists the reasons of the Kubernetes Events about e.
func eventReasons(e *eventsv1.EventStream) func() []string {
	return func() []string {
		list := &eventsk8s.EventList{}
		if err := k8s.List(context.Background(), list, client.InNamespace(e.Namespace)); err != nil {
			return nil
		}
		var reasons []string
		for _, ev := range list.Items {
			if ev.Regarding.Name == e.Name && ev.Regarding.Kind == "EventStream" {
				reasons = append(reasons, ev.Reason)
			}
		}
		return reasons
	}
}

func deleteAndWait(e *eventsv1.EventStream) {
	GinkgoHelper()
	err := k8s.Delete(context.Background(), e)
	if apierrors.IsNotFound(err) {
		return
	}
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(e), &eventsv1.EventStream{}))
	}).Should(BeTrue())
}

var _ = Describe("EventStream controller", Ordered, func() {
	ctx := context.Background()

	// A one-minute resync, as in production: anything that happens within
	// seconds is the work of watches and JetStream advisories.
	// Stopped by DeferCleanup, which runs after the specs\' own cleanups.
	BeforeAll(func() { DeferCleanup(startManager(time.Minute)) })

	Context("when an EventStream is created", func() {
		It("creates the stream with the house defaults, the owner marker and a Ready status", func() {
			evs := newStream(uniqueName("defaults"))
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			name := evs.JetStreamName()
			Expect(name).To(Equal(strings.ToUpper(strings.ReplaceAll(evs.Name, "-", "_"))))

			Eventually(readyReason(evs)).Should(Equal("True/" + eventsv1.ReasonCreated))
			cfg := mustStreamInfo(name).Config
			Expect(cfg.Subjects).To(Equal([]string{evs.Name + ".>"}))
			Expect(cfg.Storage).To(Equal(jetstream.FileStorage))
			Expect(cfg.Retention).To(Equal(jetstream.LimitsPolicy))
			Expect(cfg.MaxAge).To(Equal(7 * 24 * time.Hour))
			Expect(cfg.MaxBytes).To(Equal(int64(1 << 30)))
			Expect(cfg.Discard).To(Equal(jetstream.DiscardOld))
			Expect(cfg.Duplicates).To(Equal(2 * time.Minute))
			Expect(cfg.Replicas).To(Equal(1))
			Expect(cfg.MaxMsgs).To(Equal(int64(-1)))
			Expect(cfg.Compression).To(Equal(jetstream.NoCompression))

			got := get(evs)
			Expect(userMetadata(cfg.Metadata)).To(Equal(map[string]string{
				eventsv1.OwnerMetadataKey: "default/" + evs.Name,
				eventsv1.UIDMetadataKey:   string(got.UID),
			}))
			Expect(got.Finalizers).To(ContainElement(eventsv1.Finalizer))
			Expect(got.Status.StreamName).To(Equal(name))
			Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			Expect(got.Status.State).NotTo(BeNil())
			Expect(got.Spec.MaxAge).To(Equal(eventsv1.Duration("168h")), "the API server applies the CRD defaults")
			Expect(got.Spec.MaxBytes.String()).To(Equal("1Gi"))
			Eventually(eventReasons(evs)).Should(ContainElement(eventsv1.ReasonCreated))
		})

		It("creates exactly the declared configuration", func() {
			evs := newStream(uniqueName("declared"), withSubjects("declared.a.*", "declared.b.>"), func(e *eventsv1.EventStream) {
				e.Spec.Name = "DECLARED_" + strings.ReplaceAll(strings.ToUpper(e.Name), "-", "_")
				e.Spec.Description = "a declared stream"
				e.Spec.Retention = eventsv1.RetentionWorkQueue
				e.Spec.MaxAge = "1h30m"
				e.Spec.MaxBytes = ptr.To(resource.MustParse("10Mi"))
				e.Spec.MaxMsgs = ptr.To[int64](1000)
				e.Spec.MaxMsgSize = ptr.To[int32](4096)
				e.Spec.MaxMsgsPerSubject = ptr.To[int64](10)
				e.Spec.DuplicateWindow = "30s"
				e.Spec.Storage = eventsv1.StorageMemory
				e.Spec.Discard = eventsv1.DiscardNew
				e.Spec.Compression = eventsv1.CompressionNone
				e.Spec.DenyDelete = true
				e.Spec.DenyPurge = true
				e.Spec.AllowDirect = true
				e.Spec.Metadata = map[string]string{"team": "platform"}
			})
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			expectReady(evs)

			cfg := mustStreamInfo(evs.Spec.Name).Config
			Expect(cfg.Description).To(Equal("a declared stream"))
			Expect(cfg.Subjects).To(Equal([]string{"declared.a.*", "declared.b.>"}))
			Expect(cfg.Retention).To(Equal(jetstream.WorkQueuePolicy))
			Expect(cfg.MaxAge).To(Equal(90 * time.Minute))
			Expect(cfg.MaxBytes).To(Equal(int64(10 << 20)))
			Expect(cfg.MaxMsgs).To(Equal(int64(1000)))
			Expect(cfg.MaxMsgSize).To(Equal(int32(4096)))
			Expect(cfg.MaxMsgsPerSubject).To(Equal(int64(10)))
			Expect(cfg.Duplicates).To(Equal(30 * time.Second))
			Expect(cfg.Storage).To(Equal(jetstream.MemoryStorage))
			Expect(cfg.Discard).To(Equal(jetstream.DiscardNew))
			Expect(cfg.DenyDelete).To(BeTrue())
			Expect(cfg.DenyPurge).To(BeTrue())
			Expect(cfg.AllowDirect).To(BeTrue())
			Expect(userMetadata(cfg.Metadata)).To(HaveKeyWithValue("team", "platform"))
			Expect(get(evs).Status.StreamName).To(Equal(evs.Spec.Name))
		})

		It("reports the stream's state in status", func() {
			evs := newStream(uniqueName("state"))
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			expectReady(evs)
			for i := range 3 {
				_, err := js.Publish(ctx, evs.Name+".x", []byte(fmt.Sprintf("m%d", i)))
				Expect(err).NotTo(HaveOccurred())
			}
			// State is refreshed by any reconcile; a label change triggers one.
			touched := get(evs)
			patch := client.MergeFrom(touched.DeepCopy())
			touched.Labels = map[string]string{"touched": "yes"}
			Expect(k8s.Patch(ctx, touched, patch)).To(Succeed())
			Eventually(func() int64 {
				if st := get(evs).Status.State; st != nil {
					return st.Messages
				}
				return -1
			}).Should(Equal(int64(3)))
			st := get(evs).Status.State
			Expect(st.FirstSequence).To(Equal(int64(1)))
			Expect(st.LastSequence).To(Equal(int64(3)))
			Expect(st.Bytes).To(BeNumerically(">", 0))
		})
	})

	Context("when the spec changes", func() {
		It("updates maxAge, subjects and maxBytes on the server and follows the generation", func() {
			evs := newStream(uniqueName("update"))
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			expectReady(evs)
			name := evs.JetStreamName()

			var changed *eventsv1.EventStream
			Eventually(func() error { // retried on conflict with the operator's status writes
				changed = get(evs)
				changed.Spec.MaxAge = "24h"
				changed.Spec.Subjects = []string{evs.Name + ".>", evs.Name + "-extra.*"}
				changed.Spec.MaxBytes = ptr.To(resource.MustParse("256Mi"))
				return k8s.Update(ctx, changed)
			}).Should(Succeed())

			Eventually(func(g Gomega) {
				cfg := mustStreamInfo(name).Config
				g.Expect(cfg.MaxAge).To(Equal(24 * time.Hour))
				g.Expect(cfg.Subjects).To(Equal(changed.Spec.Subjects))
				g.Expect(cfg.MaxBytes).To(Equal(int64(256 << 20)))
			}).Should(Succeed())
			Eventually(func(g Gomega) {
				got := get(evs)
				g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
				c := meta.FindStatusCondition(got.Status.Conditions, eventsv1.ConditionReady)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Reason).To(Equal(eventsv1.ReasonUpdated))
				g.Expect(c.ObservedGeneration).To(Equal(got.Generation))
			}).Should(Succeed())
		})
	})

	Context("when the stream is changed out of band", func() {
		It("recreates a deleted stream within 5 seconds, long before the 1-minute resync", func() {
			evs := newStream(uniqueName("deleted"))
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			expectReady(evs)
			name := evs.JetStreamName()
			before := mustStreamInfo(name).Created

			Expect(js.DeleteStream(ctx, name)).To(Succeed())
			start := time.Now()
			Eventually(streamExists(name), 5*time.Second, 20*time.Millisecond).Should(BeTrue())
			GinkgoWriter.Printf("stream %s recreated after %s\n", name, time.Since(start))
			Expect(mustStreamInfo(name).Created).NotTo(Equal(before))
			Expect(userMetadata(mustStreamInfo(name).Config.Metadata)).To(HaveKey(eventsv1.OwnerMetadataKey))
		})

		It("puts a changed configuration back", func() {
			evs := newStream(uniqueName("drift"))
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			expectReady(evs)
			name := evs.JetStreamName()

			cfg := mustStreamInfo(name).Config
			cfg.MaxAge = time.Hour
			cfg.Subjects = append(cfg.Subjects, evs.Name+"-sneaky.>")
			_, err := js.UpdateStream(ctx, cfg)
			Expect(err).NotTo(HaveOccurred())

			Eventually(func(g Gomega) {
				cfg := mustStreamInfo(name).Config
				g.Expect(cfg.MaxAge).To(Equal(7 * 24 * time.Hour))
				g.Expect(cfg.Subjects).To(Equal([]string{evs.Name + ".>"}))
			}, 5*time.Second).Should(Succeed())
		})
	})

	Context("when an EventStream is deleted", func() {
		It("deletes the stream with deletionPolicy Delete", func() {
			evs := newStream(uniqueName("del"), withDeletionPolicy(eventsv1.DeletionPolicyDelete))
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			expectReady(evs)
			deleteAndWait(evs)
			Eventually(streamExists(evs.JetStreamName())).Should(BeFalse())
		})

		It("keeps the stream and its messages with deletionPolicy Retain, and replaces the owner marker by a release marker", func() {
			evs := newStream(uniqueName("retain"), withDeletionPolicy(eventsv1.DeletionPolicyRetain))
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			expectReady(evs)
			_, err := js.Publish(ctx, evs.Name+".kept", []byte("kept"))
			Expect(err).NotTo(HaveOccurred())

			deleteAndWait(evs)
			info := mustStreamInfo(evs.JetStreamName())
			Expect(info.State.Msgs).To(Equal(uint64(1)))
			Expect(userMetadata(info.Config.Metadata)).NotTo(HaveKey(eventsv1.OwnerMetadataKey))
			Expect(userMetadata(info.Config.Metadata)).To(HaveKeyWithValue(eventsv1.ReleasedByMetadataKey, "default/"+evs.Name))
			Expect(js.DeleteStream(ctx, evs.JetStreamName())).To(Succeed())
		})
	})

	Context("ownership", func() {
		It("adopts an existing stream that has no owner, when asked in an allowed namespace, and brings it to the spec", func() {
			name := uniqueName("adopt")
			streamName := strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{name + ".>"}, MaxAge: time.Hour})
			Expect(err).NotTo(HaveOccurred())
			_, err = js.Publish(ctx, name+".old", []byte("before adoption"))
			Expect(err).NotTo(HaveOccurred())

			evs := newStream(name, withAnnotation(eventsv1.AdoptAnnotation, "true"))
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			expectReady(evs)
			// The Ready reason may already read InSync (a reconcile that
			// followed the adoption found nothing to do); the event stays.
			Eventually(eventReasons(evs)).Should(ContainElement(eventsv1.ReasonAdopted))
			info := mustStreamInfo(streamName)
			Expect(info.Config.MaxAge).To(Equal(7 * 24 * time.Hour))
			Expect(info.Config.Metadata).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, "default/"+name))
			Expect(info.State.Msgs).To(Equal(uint64(1)), "adoption keeps the messages")
			deleteAndWait(evs)
		})

		It("refuses a stream another EventStream owns, and the loser never deletes it", func() {
			winner := newStream(uniqueName("winner"))
			Expect(k8s.Create(ctx, winner)).To(Succeed())
			Eventually(readyReason(winner)).Should(Equal("True/" + eventsv1.ReasonCreated))
			streamName := winner.JetStreamName()

			loser := newStream(uniqueName("loser"), withStreamName(streamName), withSubjects(winner.Name+".>"), func(e *eventsv1.EventStream) {
				e.Spec.MaxAge = "1h"
			})
			Expect(k8s.Create(ctx, loser)).To(Succeed())
			Eventually(readyReason(loser)).Should(Equal("False/" + eventsv1.ReasonConflict))
			Expect(readyCondition(loser).Message).To(ContainSubstring("default/" + winner.Name))
			Expect(mustStreamInfo(streamName).Config.MaxAge).To(Equal(7*24*time.Hour), "the loser changed nothing")

			deleteAndWait(loser)
			Consistently(streamExists(streamName), time.Second).Should(BeTrue())
			Expect(mustStreamInfo(streamName).Config.Metadata).To(HaveKeyWithValue(eventsv1.OwnerMetadataKey, "default/"+winner.Name))
			Expect(readyReason(winner)()).To(HavePrefix("True/"))
			deleteAndWait(winner)
			Eventually(streamExists(streamName)).Should(BeFalse())
		})
	})

	Context("when JetStream has no room for the stream", func() {
		It("says InsufficientResources, and other streams are not affected", func() {
			huge := newStream(uniqueName("huge"), func(e *eventsv1.EventStream) {
				e.Spec.MaxBytes = ptr.To(resource.MustParse("4Pi")) // beyond the server's max_file_store
			})
			fine := newStream(uniqueName("fine"))
			Expect(k8s.Create(ctx, huge)).To(Succeed())
			Expect(k8s.Create(ctx, fine)).To(Succeed())
			Eventually(readyReason(huge)).Should(Equal("False/" + eventsv1.ReasonInsufficientResources))
			Expect(readyCondition(huge).Message).To(ContainSubstring("lower maxBytes"))
			expectReady(fine)
			Expect(streamExists(huge.JetStreamName())()).To(BeFalse())

			// Fixing the spec fixes the stream.
			Eventually(func() error {
				h := get(huge)
				h.Spec.MaxBytes = ptr.To(resource.MustParse("1Gi"))
				return k8s.Update(ctx, h)
			}).Should(Succeed())
			expectReady(huge)
			deleteAndWait(huge)
			deleteAndWait(fine)
		})
	})

	Context("printer columns", func() {
		It("shows Stream, Subjects, Messages, Ready and Age in kubectl's table", func() {
			evs := newStream(uniqueName("columns"))
			Expect(k8s.Create(ctx, evs)).To(Succeed())
			expectReady(evs)
			table := &metav1.Table{}
			raw, err := restClient().Get().AbsPath("/apis/events.giia.io/v1alpha1/namespaces/default/eventstreams", evs.Name).
				SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
			Expect(err).NotTo(HaveOccurred())
			Expect(jsonUnmarshal(raw, table)).To(Succeed())
			var cols []string
			for _, c := range table.ColumnDefinitions {
				if c.Priority == 0 {
					cols = append(cols, c.Name)
				}
			}
			Expect(cols).To(Equal([]string{"Name", "Stream", "Subjects", "Messages", "Ready", "Age"}))
			Expect(table.Rows).To(HaveLen(1))
			Expect(table.Rows[0].Cells[1]).To(Equal(evs.JetStreamName()))
			Expect(table.Rows[0].Cells[2]).To(Equal(evs.Name+".>"), "subjects print as they are, not as escaped JSON")
			Expect(table.Rows[0].Cells[4]).To(Equal("True"))
		})
	})
})

var _ = Describe("EventStream controller in steady state", Ordered, func() {
	ctx := context.Background()
	const resync = time.Second

	// Stopped by DeferCleanup, which runs after the specs\' own cleanups.
	BeforeAll(func() { DeferCleanup(startManager(resync)) })

	It("makes no JetStream write and no status write over several resyncs", func() {
		evs := newStream(uniqueName("steady"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		expectReady(evs)
		name := evs.JetStreamName()
		// Let the reconcile that follows creation (our own UPDATED/CREATED
		// advisory) settle.
		time.Sleep(500 * time.Millisecond)

		writes, stopWrites := countRequests("$JS.API.STREAM.UPDATE." + name)
		creates, stopCreates := countRequests("$JS.API.STREAM.CREATE." + name)
		infos, stopInfos := countRequests("$JS.API.STREAM.INFO." + name)
		defer stopWrites()
		defer stopCreates()
		defer stopInfos()
		rv := get(evs).ResourceVersion

		time.Sleep(4*resync + 500*time.Millisecond)

		Expect(infos()).To(BeNumerically(">=", 3), "the resync must actually have run several times")
		Expect(writes()).To(BeZero(), "no $JS.API.STREAM.UPDATE when nothing changed")
		Expect(creates()).To(BeZero())
		Expect(get(evs).ResourceVersion).To(Equal(rv), "no status (or any other) write when nothing changed")
		GinkgoWriter.Printf("%d INFO requests over %s with a %s resync\n", infos(), 4*resync+500*time.Millisecond, resync)
		deleteAndWait(evs)
	})
})

var _ = Describe("EventStream controller when NATS goes away", Ordered, func() {
	ctx := context.Background()

	// Stopped by DeferCleanup, which runs after the specs\' own cleanups.
	BeforeAll(func() { DeferCleanup(startManager(time.Minute)) })

	It("reports NatsUnavailable, and is Ready again once NATS is back, without intervention", func() {
		evs := newStream(uniqueName("outage"))
		Expect(k8s.Create(ctx, evs)).To(Succeed())
		expectReady(evs)

		natsSrv.Shutdown()
		restarted := false
		defer func() {
			if !restarted {
				Expect(natsSrv.Start()).To(Succeed())
			}
		}()
		// A change made while NATS is down cannot be applied: the resource
		// says why.
		Eventually(func() error {
			changed := get(evs)
			changed.Spec.MaxAge = "48h"
			return k8s.Update(ctx, changed)
		}).Should(Succeed())
		Eventually(readyReason(evs)).Should(Equal("False/" + eventsv1.ReasonNatsUnavailable))
		Expect(readyCondition(evs).Message).To(ContainSubstring("unreachable"))
		// Transient: Reconciling (kstatus InProgress), not Stalled; the new
		// generation's outcome is not known yet.
		during := get(evs)
		Expect(meta.IsStatusConditionTrue(during.Status.Conditions, eventsv1.ConditionReconciling)).To(BeTrue(), "Reconciling: %v", during.Status.Conditions)
		Expect(meta.FindStatusCondition(during.Status.Conditions, eventsv1.ConditionStalled)).To(BeNil())
		Expect(during.Status.ObservedGeneration).To(Equal(during.Generation - 1))

		Expect(natsSrv.Start()).To(Succeed())
		restarted = true
		Eventually(readyReason(evs), 30*time.Second).Should(HavePrefix("True/"))
		after := get(evs)
		Expect(meta.FindStatusCondition(after.Status.Conditions, eventsv1.ConditionReconciling)).To(BeNil())
		Expect(after.Status.ObservedGeneration).To(Equal(after.Generation))
		Expect(mustStreamInfo(evs.JetStreamName()).Config.MaxAge).To(Equal(48 * time.Hour))
		deleteAndWait(evs)
	})
})

var _ = Describe("EventStream admission", func() {
	ctx := context.Background()

	// create sends a raw manifest with a server-side dry run and strict
	// field validation, so defaults and validation run exactly as for
	// `kubectl apply`.
	create := func(name string, spec map[string]any) error {
		u := unstructuredStream(name, spec)
		return k8s.Create(ctx, u, client.DryRunAll, client.FieldValidation("Strict"))
	}

	DescribeTable("rejects an invalid EventStream with a message naming the field",
		func(spec map[string]any, field, message string) {
			err := create(uniqueName("invalid"), spec)
			Expect(err).To(HaveOccurred())
			// Invalid (422), or BadRequest (400) for strict decoding errors.
			Expect(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)).To(BeTrue(), err.Error())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("a duration in days", map[string]any{"subjects": []any{"a.>"}, "maxAge": "1d"}, "spec.maxAge", "days are not supported"),
		Entry("a duration without a unit", map[string]any{"subjects": []any{"a.>"}, "duplicateWindow": "120"}, "spec.duplicateWindow", "must be a duration"),
		Entry("an invalid stream name", map[string]any{"subjects": []any{"a.>"}, "name": "bad.name"}, "spec.name", "JetStream stream name"),
		Entry("zero replicas", map[string]any{"subjects": []any{"a.>"}, "replicas": 0}, "spec.replicas", "greater than or equal to 1"),
		Entry("six replicas", map[string]any{"subjects": []any{"a.>"}, "replicas": 6}, "spec.replicas", "less than or equal to 5"),
		Entry("no subjects", map[string]any{}, "spec.subjects", "at least one subject is required"),
		Entry("an empty subject list", map[string]any{"subjects": []any{}}, "spec.subjects", "at least one subject is required"),
		Entry("an unknown storage type", map[string]any{"subjects": []any{"a.>"}, "storage": "Disk"}, "spec.storage", "supported values"),
		Entry("a negative maxBytes", map[string]any{"subjects": []any{"a.>"}, "maxBytes": "-5"}, "spec.maxBytes", "must be -1 (unlimited)"),
		Entry("a reserved metadata key", map[string]any{"subjects": []any{"a.>"}, "metadata": map[string]any{"events.giia.io/owner": "x"}}, "spec.metadata", "reserved"),
		Entry("a mirror with subjects", map[string]any{"subjects": []any{"a.>"}, "mirror": map[string]any{"name": "OTHER"}}, "spec.subjects", "mirror"),
		Entry("an unknown retention", map[string]any{"subjects": []any{"a.>"}, "retention": "Forever"}, "spec.retention", "supported values"),
		Entry("an unknown discard policy", map[string]any{"subjects": []any{"a.>"}, "discard": "Middle"}, "spec.discard", "supported values"),
		Entry("an unknown compression", map[string]any{"subjects": []any{"a.>"}, "compression": "Zip"}, "spec.compression", "supported values"),
		Entry("a negative duration", map[string]any{"subjects": []any{"a.>"}, "maxAge": "-1h"}, "spec.maxAge", "must be a duration"),
		Entry("maxMsgs below -1", map[string]any{"subjects": []any{"a.>"}, "maxMsgs": -2}, "spec.maxMsgs", "greater than or equal to -1"),
		Entry("maxMsgSize below -1", map[string]any{"subjects": []any{"a.>"}, "maxMsgSize": -7}, "spec.maxMsgSize", "greater than or equal to -1"),
		Entry("a subject with a space", map[string]any{"subjects": []any{"a b"}}, "spec.subjects[0]", "should match"),
		Entry("an empty subject", map[string]any{"subjects": []any{""}}, "spec.subjects[0]", "at least 1 chars long"),
		Entry("a duplicate subject", map[string]any{"subjects": []any{"a.>", "a.>"}}, "spec.subjects[1]", "Duplicate value"),
		Entry("an invalid mirror name", map[string]any{"mirror": map[string]any{"name": "a.b"}}, "spec.mirror.name", "only letters, digits"),
		Entry("an invalid source name", map[string]any{"sources": []any{map[string]any{"name": "a b"}}}, "spec.sources[0].name", "only letters, digits"),
		Entry("an unknown deletion policy", map[string]any{"subjects": []any{"a.>"}, "deletionPolicy": "Orphan"}, "spec.deletionPolicy", "supported values"),
		Entry("a connection without a Secret name", map[string]any{"subjects": []any{"a.>"}, "connection": map[string]any{"secretRef": map[string]any{}}}, "spec.connection.secretRef.name", "Required"),
		Entry("an unknown field", map[string]any{"subjects": []any{"a.>"}, "maxAgeDays": 7}, "spec.maxAgeDays", "unknown field"),
	)

	DescribeTable("accepts valid edge cases",
		func(spec map[string]any) {
			Expect(create(uniqueName("edge"), spec)).To(Succeed())
		},
		Entry("maxAge 0 (keep forever)", map[string]any{"subjects": []any{"a.>"}, "maxAge": "0"}),
		Entry("a compound duration", map[string]any{"subjects": []any{"a.>"}, "maxAge": "1h30m15s", "duplicateWindow": "1.5s"}),
		Entry("maxBytes -1 (unlimited)", map[string]any{"subjects": []any{"a.>"}, "maxBytes": "-1"}),
		Entry("maxBytes as an integer", map[string]any{"subjects": []any{"a.>"}, "maxBytes": 1048576}),
		Entry("five replicas", map[string]any{"subjects": []any{"a.>"}, "replicas": 5}),
		Entry("sources and no subjects", map[string]any{"sources": []any{map[string]any{"name": "A"}, map[string]any{"name": "B", "filterSubject": "b.>"}}}),
		Entry("a 255-character stream name", map[string]any{"subjects": []any{"a.>"}, "name": strings.Repeat("N", 255)}),
		Entry("wildcard subjects", map[string]any{"subjects": []any{"a.*.c", "b.>", "*"}}),
		Entry("user metadata", map[string]any{"subjects": []any{"a.>"}, "metadata": map[string]any{"team": "x", "giia.io/tier": "1"}}),
	)

	It("accepts a mirror without subjects", func() {
		Expect(create(uniqueName("mirror"), map[string]any{"mirror": map[string]any{"name": "OTHER"}})).To(Succeed())
	})

	It("rejects a metadata.name a JetStream name cannot come from, unless spec.name is set", func() {
		err := create("dotted.name", map[string]any{"subjects": []any{"a.>"}})
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("set spec.name"))
		Expect(create("dotted.name", map[string]any{"subjects": []any{"a.>"}, "name": "DOTTED"})).To(Succeed())
	})

	DescribeTable("rejects changes JetStream cannot make in place, naming the field",
		func(initial, change map[string]any, field, message string) {
			name := uniqueName("immutable")
			u := unstructuredStream(name, initial)
			Expect(k8s.Create(ctx, u)).To(Succeed())
			DeferCleanup(func() { _ = k8s.Delete(ctx, u) })
			spec := u.Object["spec"].(map[string]any)
			for k, v := range change {
				spec[k] = v
			}
			err := k8s.Update(ctx, u, client.DryRunAll)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("storage File → Memory", map[string]any{"subjects": []any{"imm1.>"}}, map[string]any{"storage": "Memory"}, "spec.storage", "storage is immutable"),
		Entry("a new stream name", map[string]any{"subjects": []any{"imm2.>"}, "name": "IMM_TWO"}, map[string]any{"name": "IMM_TWO_B"}, "spec.name", "name is immutable"),
		Entry("a stream name added later", map[string]any{"subjects": []any{"imm3.>"}}, map[string]any{"name": "IMM_THREE"}, "spec.name", "name is immutable"),
		Entry("retention WorkQueue → Limits", map[string]any{"subjects": []any{"imm4.>"}, "retention": "WorkQueue"}, map[string]any{"retention": "Limits"}, "spec.retention", "cannot change to or from WorkQueue"),
		Entry("retention Limits → WorkQueue", map[string]any{"subjects": []any{"imm5.>"}}, map[string]any{"retention": "WorkQueue"}, "spec.retention", "cannot change to or from WorkQueue"),
	)

	It("allows mutable changes such as retention Limits → Interest and a new maxAge", func() {
		name := uniqueName("interest")
		u := unstructuredStream(name, map[string]any{"subjects": []any{name + ".>"}})
		Expect(k8s.Create(ctx, u)).To(Succeed())
		DeferCleanup(func() { _ = k8s.Delete(ctx, u) })
		spec := u.Object["spec"].(map[string]any)
		spec["retention"] = "Interest"
		spec["maxAge"] = "1h"
		Expect(k8s.Update(ctx, u, client.DryRunAll)).To(Succeed())
	})
})
