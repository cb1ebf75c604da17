package controller_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsk8s "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
)

type replayOpt func(*eventsv1.EventReplay)

func newReplay(name, namespace, stream string, opts ...replayOpt) *eventsv1.EventReplay {
	r := &eventsv1.EventReplay{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       eventsv1.EventReplaySpec{Source: eventsv1.ReplaySource{StreamRef: eventsv1.LocalObjectReference{Name: stream}}},
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

func toSubject(s string) replayOpt {
	return func(r *eventsv1.EventReplay) { r.Spec.Target.Subject = s }
}
func fromSeq(n int64) replayOpt {
	return func(r *eventsv1.EventReplay) { r.Spec.Source.From = &eventsv1.ReplayPosition{Sequence: ptr.To(n)} }
}
func toSeq(n int64) replayOpt {
	return func(r *eventsv1.EventReplay) { r.Spec.Source.To = &eventsv1.ReplayPosition{Sequence: ptr.To(n)} }
}

func getReplay(r *eventsv1.EventReplay) *eventsv1.EventReplay {
	GinkgoHelper()
	out := &eventsv1.EventReplay{}
	Expect(k8s.Get(context.Background(), client.ObjectKeyFromObject(r), out)).To(Succeed())
	return out
}

func replayPhase(r *eventsv1.EventReplay) func() eventsv1.ReplayPhase {
	return func() eventsv1.ReplayPhase {
		out := &eventsv1.EventReplay{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(r), out); err != nil {
			return ""
		}
		return out.Status.Phase
	}
}

// replayReady polls Ready as "Status/Reason".
func replayReady(r *eventsv1.EventReplay) func() string {
	return func() string {
		out := &eventsv1.EventReplay{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(r), out); err != nil {
			return ""
		}
		if c := meta.FindStatusCondition(out.Status.Conditions, eventsv1.ConditionReady); c != nil {
			return string(c.Status) + "/" + c.Reason
		}
		return ""
	}
}

// replayKstatus is what Flux, kpt and kubectl-style tooling read from r.
func replayKstatus(r *eventsv1.EventReplay) status.Status {
	GinkgoHelper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(getReplay(r))
	Expect(err).NotTo(HaveOccurred())
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	Expect(err).NotTo(HaveOccurred())
	return res.Status
}

func replayEventReasons(r *eventsv1.EventReplay) func() []string {
	return func() []string {
		list := &eventsk8s.EventList{}
		if err := k8s.List(context.Background(), list, client.InNamespace(r.Namespace)); err != nil {
			return nil
		}
		var reasons []string
		for _, ev := range list.Items {
			if ev.Regarding.Name == r.Name && ev.Regarding.Kind == "EventReplay" {
				reasons = append(reasons, ev.Reason)
			}
		}
		return reasons
	}
}

func deleteReplayAndWait(r *eventsv1.EventReplay) {
	GinkgoHelper()
	err := k8s.Delete(context.Background(), r)
	if apierrors.IsNotFound(err) {
		return
	}
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(context.Background(), client.ObjectKeyFromObject(r), &eventsv1.EventReplay{}))
	}).Should(BeTrue())
}

// readyStream creates an EventStream on subjects and waits until it is
// Ready; it returns the JetStream stream name.
func replaySourceStream(name, namespace string, subjects ...string) *eventsv1.EventStream {
	GinkgoHelper()
	evs := newStream(name, withNamespace(namespace), withSubjects(subjects...))
	Expect(k8s.Create(context.Background(), evs)).To(Succeed())
	DeferCleanup(deleteAndWait, evs)
	expectReady(evs)
	return get(evs)
}

func ensureNamespace(ns string) {
	GinkgoHelper()
	err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}

// publishN publishes n messages subject(i) with body "i" (i from 1).
func publishN(n int, subject func(i int) string, header func(i int) nats.Header) {
	GinkgoHelper()
	ctx := context.Background()
	for i := 1; i <= n; i++ {
		m := &nats.Msg{Subject: subject(i), Data: []byte(strconv.Itoa(i)), Header: nats.Header{}}
		if header != nil {
			m.Header = header(i)
		}
		_, err := js.PublishMsg(ctx, m)
		Expect(err).NotTo(HaveOccurred())
	}
}

// storedMsgs reads every message a stream holds, in order.
func storedMsgs(stream string) []*jetstream.RawStreamMsg {
	GinkgoHelper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	Expect(err).NotTo(HaveOccurred())
	info, err := s.Info(ctx)
	Expect(err).NotTo(HaveOccurred())
	var out []*jetstream.RawStreamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		Expect(err).NotTo(HaveOccurred())
		out = append(out, m)
	}
	return out
}

func bodies(msgs []*jetstream.RawStreamMsg) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Data)
	}
	return out
}

func seqBodies(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

var _ = Describe("EventReplay", Ordered, func() {
	ctx := context.Background()
	BeforeAll(func() { DeferCleanup(startManager(time.Minute)) })

	It("replays a range by sequence to one subject: Pending, Running, then Succeeded with its numbers, Ready and Events", func() {
		base := uniqueName("rsrc")
		src := replaySourceStream(base, "default", base+".>")
		tgt := replaySourceStream(base+"-t", "default", base+"-t.>")
		publishN(10, func(i int) string { return fmt.Sprintf("%s.n%d", base, i) }, nil)

		evr := newReplay(base, "default", src.Name, fromSeq(3), toSeq(7), toSubject(base+"-t.all"))
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		DeferCleanup(deleteReplayAndWait, evr)
		Eventually(replayPhase(evr)).Should(Equal(eventsv1.ReplaySucceeded))

		got := getReplay(evr)
		Expect(got.Status.Total).To(BeEquivalentTo(5))
		Expect(got.Status.Replayed).To(BeEquivalentTo(5))
		Expect(got.Status.Skipped).To(BeZero())
		Expect(got.Status.LastSequence).To(BeEquivalentTo(7))
		Expect(got.Status.TargetSequence).To(BeEquivalentTo(5))
		Expect(got.Status.Progress).To(Equal("5/5"))
		Expect(got.Status.Target).To(Equal(base + "-t.all"))
		Expect(got.Status.StreamName).To(Equal(src.Status.StreamName))
		Expect(got.Status.StartTime).NotTo(BeNil())
		Expect(got.Status.CompletionTime).NotTo(BeNil())
		Expect(got.Status.CompletionTime.Before(got.Status.StartTime)).To(BeFalse())
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		ready := meta.FindStatusCondition(got.Status.Conditions, eventsv1.ConditionReady)
		Expect(ready).NotTo(BeNil())
		Expect(ready.Status).To(Equal(metav1.ConditionTrue))
		Expect(ready.Reason).To(Equal(eventsv1.ReasonReplayed))
		Expect(meta.FindStatusCondition(got.Status.Conditions, eventsv1.ConditionReconciling)).To(BeNil())
		Expect(meta.FindStatusCondition(got.Status.Conditions, eventsv1.ConditionStalled)).To(BeNil())
		Eventually(replayEventReasons(evr)).Should(ContainElements("Started", "Succeeded"))
		Expect(replayKstatus(evr)).To(Equal(status.CurrentStatus))

		msgs := storedMsgs(tgt.Status.StreamName)
		Expect(bodies(msgs)).To(Equal(seqBodies(3, 7)))
		for i, m := range msgs {
			Expect(m.Subject).To(Equal(base + "-t.all"))
			Expect(m.Header.Get(events.HeaderReplayID)).To(Equal(string(got.UID)))
			Expect(m.Header.Get(events.HeaderReplaySequence)).To(Equal(strconv.Itoa(i + 3)))
			Expect(m.Header.Get(nats.MsgIdHdr)).To(Equal(events.ReplayMsgID(string(got.UID), uint64(i+3))))
		}

		// A finished replay does nothing more: a change that triggers a
		// reconcile leaves its status and the target as they are.
		before := getReplay(evr)
		patch := client.MergeFrom(before.DeepCopy())
		before.Annotations = map[string]string{"touched": "yes"}
		Expect(k8s.Patch(ctx, before, patch)).To(Succeed())
		Consistently(func() int64 { return getReplay(evr).Status.Replayed }, "1s").Should(BeEquivalentTo(5))
		Expect(getReplay(evr).Status).To(Equal(got.Status))
		Expect(storedMsgs(tgt.Status.StreamName)).To(HaveLen(5))
	})

	It("replays a range by time with a subject prefix", func() {
		base := uniqueName("rtime")
		src := replaySourceStream(base, "default", base+".>")
		tgt := replaySourceStream(base+"-t", "default", "replay."+base+".>")
		publishN(3, func(i int) string { return fmt.Sprintf("%s.before%d", base, i) }, nil)
		// metav1.Time has whole seconds: start the range at the next one.
		from := time.Now().Truncate(time.Second).Add(time.Second)
		time.Sleep(time.Until(from) + 20*time.Millisecond)
		publishN(4, func(i int) string { return fmt.Sprintf("%s.after%d", base, i) }, nil)

		evr := newReplay(base, "default", src.Name, func(r *eventsv1.EventReplay) {
			r.Spec.Source.From = &eventsv1.ReplayPosition{Time: &metav1.Time{Time: from}}
			r.Spec.Target.SubjectPrefix = "replay."
		})
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		DeferCleanup(deleteReplayAndWait, evr)
		Eventually(replayPhase(evr)).Should(Equal(eventsv1.ReplaySucceeded))
		Expect(getReplay(evr).Status.Replayed).To(BeEquivalentTo(4))

		msgs := storedMsgs(tgt.Status.StreamName)
		Expect(bodies(msgs)).To(Equal(seqBodies(1, 4)))
		for i, m := range msgs {
			Expect(m.Subject).To(Equal(fmt.Sprintf("replay.%s.after%d", base, i+1)))
		}
	})

	It("replays to the original subjects in another namespace, filtered, and ends where the stream ended when it started", func() {
		ensureNamespace("replay-b")
		base := uniqueName("rorig")
		src := replaySourceStream(base, "replay-b", base+".>")
		publishN(6, func(i int) string {
			if i%2 == 0 {
				return fmt.Sprintf("%s.even.%d", base, i)
			}
			return fmt.Sprintf("%s.odd.%d", base, i)
		}, nil)

		// The copies go back into the source stream itself: the range's
		// open end is fixed when the replay starts, so it ends.
		evr := newReplay(base, "replay-b", src.Name, func(r *eventsv1.EventReplay) {
			r.Spec.Source.FilterSubjects = []string{base + ".even.>"}
			r.Spec.Target.Original = true
		})
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		DeferCleanup(deleteReplayAndWait, evr)
		Eventually(replayPhase(evr)).Should(Equal(eventsv1.ReplaySucceeded))
		got := getReplay(evr)
		Expect(got.Status.Total).To(BeEquivalentTo(3))
		Expect(got.Status.Replayed).To(BeEquivalentTo(3))
		Expect(got.Status.EndSequence).To(BeEquivalentTo(6))

		msgs := storedMsgs(src.Status.StreamName)
		Expect(msgs).To(HaveLen(9))
		for i, m := range msgs[6:] {
			Expect(m.Subject).To(Equal(fmt.Sprintf("%s.even.%d", base, 2*(i+1))))
			Expect(m.Header.Get(events.HeaderReplayID)).To(Equal(string(got.UID)))
		}
	})

	It("redrives a dead-letter stream: original subjects, ce- headers kept, Dlq- headers gone, the DLQ emptied with deleteRedriven", func() {
		base := uniqueName("rdlq")
		orig := replaySourceStream(base+"-o", "default", base+"-o.>")
		dlq := replaySourceStream(base, "default", base+".>")
		publishN(5, func(i int) string { return fmt.Sprintf("%s.%s-o.user.n%d", base, base, i) }, func(i int) nats.Header {
			h := nats.Header{}
			h.Set("ce-specversion", "1.0")
			h.Set("ce-id", fmt.Sprintf("id-%d", i))
			h.Set("ce-type", "user.created")
			h.Set("ce-source", "auth-service")
			h.Set("Dlq-Reason", "handler failed")
			h.Set("Dlq-Deliveries", "3")
			h.Set("Dlq-Original-Stream", orig.Status.StreamName)
			if i != 3 { // the third has lost its original subject: skipped
				h.Set("Dlq-Original-Subject", fmt.Sprintf("%s-o.user.n%d", base, i))
			}
			return h
		})

		evr := newReplay(base, "default", dlq.Name, func(r *eventsv1.EventReplay) {
			r.Spec.Target.Original = true
			r.Spec.Redrive = &eventsv1.ReplayRedrive{DeleteRedriven: true}
		})
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		DeferCleanup(deleteReplayAndWait, evr)
		Eventually(replayPhase(evr)).Should(Equal(eventsv1.ReplaySucceeded))
		got := getReplay(evr)
		Expect(got.Status.Replayed).To(BeEquivalentTo(4))
		Expect(got.Status.Skipped).To(BeEquivalentTo(1))
		Expect(got.Status.Target).To(Equal("original (redrive)"))

		msgs := storedMsgs(orig.Status.StreamName)
		Expect(bodies(msgs)).To(Equal([]string{"1", "2", "4", "5"}))
		for _, m := range msgs {
			Expect(m.Subject).To(Equal(fmt.Sprintf("%s-o.user.n%s", base, m.Data)))
			Expect(m.Header.Get("ce-id")).To(Equal("id-" + string(m.Data)))
			Expect(m.Header.Get("ce-type")).To(Equal("user.created"))
			for k := range m.Header {
				Expect(strings.HasPrefix(strings.ToLower(k), "dlq-")).To(BeFalse(), "header %s kept", k)
			}
		}
		left := storedMsgs(dlq.Status.StreamName)
		Expect(bodies(left)).To(Equal([]string{"3"}), "only the skipped dead letter stays")
	})

	It("waits, Pending, for an EventStream that does not exist, and runs when it appears", func() {
		base := uniqueName("rwait")
		evr := newReplay(base, "default", base, toSubject(base+".copy"))
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		DeferCleanup(deleteReplayAndWait, evr)
		Eventually(replayReady(evr)).Should(Equal("False/" + eventsv1.ReasonStreamNotReady))
		got := getReplay(evr)
		Expect(got.Status.Phase).To(Equal(eventsv1.ReplayPending))
		Expect(meta.IsStatusConditionTrue(got.Status.Conditions, eventsv1.ConditionReconciling)).To(BeTrue())
		Expect(got.Status.StartTime).To(BeNil())
		Expect(replayKstatus(evr)).To(Equal(status.InProgressStatus))

		// An empty stream: nothing to replay, and the replay succeeds.
		src := replaySourceStream(base, "default", base+".>")
		Eventually(replayPhase(evr)).Should(Equal(eventsv1.ReplaySucceeded))
		Expect(src.Status.StreamName).NotTo(BeEmpty())
	})

	It("holds to its rate limit: no second of the target's store times has more than rateLimit plus one batch", func() {
		base := uniqueName("rrate")
		src := replaySourceStream(base, "default", base+".>")
		tgt := replaySourceStream(base+"-t", "default", base+"-t.>")
		const n, limit, batch = 150, 50, 10
		publishN(n, func(i int) string { return base + ".x" }, nil)
		evr := newReplay(base, "default", src.Name, toSubject(base+"-t.x"), func(r *eventsv1.EventReplay) {
			r.Spec.RateLimit = ptr.To[int32](limit)
			r.Spec.BatchSize = batch
		})
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		DeferCleanup(deleteReplayAndWait, evr)
		Eventually(replayPhase(evr), "30s").Should(Equal(eventsv1.ReplaySucceeded))
		msgs := storedMsgs(tgt.Status.StreamName)
		Expect(msgs).To(HaveLen(n))
		// Count over sliding one-second windows of the stored times.
		most := 0
		for i := range msgs {
			j := i
			for j < len(msgs) && msgs[j].Time.Sub(msgs[i].Time) < time.Second {
				j++
			}
			most = max(most, j-i)
		}
		GinkgoWriter.Printf("rate limit %d/s, batch %d: at most %d messages in any 1 s window of %d, over %s\n",
			limit, batch, most, n, msgs[n-1].Time.Sub(msgs[0].Time))
		Expect(most).To(BeNumerically("<=", limit+batch))
	})

	It("republishes to another NATS server through target.connection", func() {
		auth := &recordingAuth{user: "tenant", password: "tenant-secret-pw"}
		far := authServer(auth)
		fnc, err := nats.Connect(far.URL(), nats.UserInfo(auth.user, auth.password))
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(fnc.Close)
		fjs, err := jetstream.New(fnc)
		Expect(err).NotTo(HaveOccurred())
		_, err = fjs.CreateStream(ctx, jetstream.StreamConfig{Name: "FAR", Subjects: []string{"far.>"}})
		Expect(err).NotTo(HaveOccurred())
		secret := uniqueName("far")
		connectionSecret(secret, map[string]string{"url": far.URL(), "user": auth.user, "password": auth.password})

		base := uniqueName("rconn")
		src := replaySourceStream(base, "default", base+".>")
		publishN(4, func(i int) string { return base + ".x" }, nil)
		evr := newReplay(base, "default", src.Name, toSubject("far.copy"), func(r *eventsv1.EventReplay) {
			r.Spec.Target.Connection = &eventsv1.ConnectionSpec{SecretRef: eventsv1.LocalObjectReference{Name: secret}}
		})
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		DeferCleanup(deleteReplayAndWait, evr)
		Eventually(replayPhase(evr)).Should(Equal(eventsv1.ReplaySucceeded))
		st, err := fjs.Stream(ctx, "FAR")
		Expect(err).NotTo(HaveOccurred())
		info, err := st.Info(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.State.Msgs).To(BeEquivalentTo(4))
		Expect(storedMsgs(src.Status.StreamName)).To(HaveLen(4), "nothing republished on the source's server")
	})

	It("fails, Stalled with a Warning Event, when no stream captures the target subject", func() {
		base := uniqueName("rfail")
		src := replaySourceStream(base, "default", base+".>")
		publishN(3, func(i int) string { return base + ".x" }, nil)
		evr := newReplay(base, "default", src.Name, toSubject("nowhere."+base))
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		DeferCleanup(deleteReplayAndWait, evr)
		Eventually(replayPhase(evr)).Should(Equal(eventsv1.ReplayFailed))
		got := getReplay(evr)
		stalled := meta.FindStatusCondition(got.Status.Conditions, eventsv1.ConditionStalled)
		Expect(stalled).NotTo(BeNil())
		Expect(stalled.Message).To(ContainSubstring("nowhere." + base))
		Expect(meta.FindStatusCondition(got.Status.Conditions, eventsv1.ConditionReconciling)).To(BeNil())
		Expect(got.Status.CompletionTime).NotTo(BeNil())
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		Expect(replayKstatus(evr)).To(Equal(status.FailedStatus))
		Eventually(replayEventReasons(evr)).Should(ContainElement("Failed"))
	})

	It("refuses at admission two targets, no target, redrive without original, a position with both ends, and any spec change", func() {
		base := uniqueName("rcel")
		expectRefused := func(r *eventsv1.EventReplay, want string) {
			GinkgoHelper()
			err := k8s.Create(ctx, r)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(want))
		}
		expectRefused(newReplay(base+"-a", "default", "s", toSubject("a.b"), func(r *eventsv1.EventReplay) { r.Spec.Target.SubjectPrefix = "p." }),
			"set exactly one of subject, subjectPrefix or original")
		expectRefused(newReplay(base+"-b", "default", "s"), "set exactly one of subject, subjectPrefix or original")
		expectRefused(newReplay(base+"-c", "default", "s", toSubject("a.b"), func(r *eventsv1.EventReplay) { r.Spec.Redrive = &eventsv1.ReplayRedrive{} }),
			"redrive requires target.original")
		expectRefused(newReplay(base+"-d", "default", "s", toSubject("a.b"), func(r *eventsv1.EventReplay) {
			r.Spec.Source.From = &eventsv1.ReplayPosition{Sequence: ptr.To[int64](1), Time: &metav1.Time{Time: time.Now()}}
		}), "set exactly one of sequence or time")
		expectRefused(newReplay(base+"-e", "default", "s", toSubject("a.*")), "without wildcards")
		expectRefused(newReplay(base+"-f", "default", "s", toSubject("a.b"), func(r *eventsv1.EventReplay) { r.Spec.BatchSize = 20000 }),
			"spec.batchSize")

		ok := newReplay(base, "default", "no-such-stream", toSubject("a.b"))
		Expect(k8s.Create(ctx, ok)).To(Succeed())
		DeferCleanup(deleteReplayAndWait, ok)
		Expect(getReplay(ok).Spec.BatchSize).To(BeEquivalentTo(256))
		changed := getReplay(ok)
		patch := client.MergeFrom(changed.DeepCopy())
		changed.Spec.Target.Subject = "c.d"
		err := k8s.Patch(ctx, changed, patch)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("spec is immutable"))
	})

	It("cancels a running replay when it is deleted, and removes its consumer", func() {
		base := uniqueName("rcancel")
		src := replaySourceStream(base, "default", base+".>")
		tgt := replaySourceStream(base+"-t", "default", base+"-t.>")
		publishN(400, func(i int) string { return base + ".x" }, nil)

		evr := newReplay(base, "default", src.Name, toSubject(base+"-t.x"), func(r *eventsv1.EventReplay) {
			r.Spec.RateLimit = ptr.To[int32](20)
			r.Spec.BatchSize = 5
		})
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		Eventually(replayPhase(evr)).Should(Equal(eventsv1.ReplayRunning))
		Eventually(func() int64 { return getReplay(evr).Status.Replayed }, "10s").Should(BeNumerically(">", 0))
		Expect(meta.FindStatusCondition(getReplay(evr).Status.Conditions, eventsv1.ConditionReconciling).Reason).To(Equal(eventsv1.ReasonReplaying))
		Expect(replayKstatus(evr)).To(Equal(status.InProgressStatus))

		deleteReplayAndWait(evr)
		info, err := streamInfo(src.Status.StreamName)
		Expect(err).NotTo(HaveOccurred())
		Expect(info.State.Consumers).To(BeZero(), "the replay's consumer is removed")
		n := len(storedMsgs(tgt.Status.StreamName))
		Expect(n).To(BeNumerically("<", 400))
		Consistently(func() int { return len(storedMsgs(tgt.Status.StreamName)) }, "1500ms", "250ms").Should(Equal(n))
	})
})

var _ = Describe("EventReplay across a manager restart", Ordered, func() {
	ctx := context.Background()

	It("stops with the manager, records its progress, and the next manager resumes it: every message once, in order", func() {
		// Registered first, so that it runs after the deletions below,
		// which need a manager.
		var second func()
		stop := startManager(time.Minute)
		stopped := false
		DeferCleanup(func() {
			if !stopped {
				stop()
			}
			if second != nil {
				second()
			}
		})
		base := uniqueName("rresume")
		src := replaySourceStream(base, "default", base+".>")
		tgt := replaySourceStream(base+"-t", "default", base+"-t.>")
		const n = 300
		publishN(n, func(i int) string { return fmt.Sprintf("%s.k%d", base, i%7) }, nil)
		evr := newReplay(base, "default", src.Name, toSubject(base+"-t.x"), func(r *eventsv1.EventReplay) {
			r.Spec.RateLimit = ptr.To[int32](100)
			r.Spec.BatchSize = 20
		})
		Expect(k8s.Create(ctx, evr)).To(Succeed())
		Eventually(func() int { return len(storedMsgs(tgt.Status.StreamName)) }, "10s", "100ms").Should(BeNumerically(">=", 60))

		stop() // the leader goes: its replay stops and records how far it got
		stopped = true
		paused := getReplay(evr)
		Expect(paused.Status.Phase).To(Equal(eventsv1.ReplayRunning))
		Expect(paused.Status.Replayed).To(BeNumerically(">", 0))
		Expect(paused.Status.Replayed).To(BeNumerically("<", n))
		// The checkpoint lags the target by at most the batch whose acks
		// the cancel cut short; the resume reads those back from the target.
		held := int64(len(storedMsgs(tgt.Status.StreamName)))
		Expect(held).To(BeNumerically(">=", paused.Status.Replayed))
		Expect(held - paused.Status.Replayed).To(BeNumerically("<=", 20))

		second = startManager(time.Minute)
		DeferCleanup(deleteReplayAndWait, evr)
		Eventually(replayPhase(evr), "20s").Should(Equal(eventsv1.ReplaySucceeded))
		Expect(getReplay(evr).Status.Replayed).To(BeEquivalentTo(n))
		Expect(getReplay(evr).Status.StartTime).To(Equal(paused.Status.StartTime))
		Expect(bodies(storedMsgs(tgt.Status.StreamName))).To(Equal(seqBodies(1, n)))
		Eventually(replayEventReasons(evr)).Should(ContainElements("Started", "Resumed", "Succeeded"))
	})
})
