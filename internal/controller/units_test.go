package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// TestClassify: failureReason (ownership_test.go has its table of
// JetStream's codes) and classify on the errors the controller owns, and
// the failure kind each gets.
func TestClassify(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		reason string
		retry  bool
	}{
		{"insufficient resources without a code", &events.OpError{Op: "create stream", Name: "X", Kind: events.ErrInsufficientResources, Err: errors.New("full")},
			eventsv1.ReasonInsufficientResources, false},
		{"library validation", &events.ValidationError{Field: "maxAge", Reason: "bad"}, eventsv1.ReasonInvalidSpec, false},
		{"owned by another", &ownershipError{reason: eventsv1.ReasonConflict, msg: "owned"}, eventsv1.ReasonConflict, false},
		{"adoption refused", &ownershipError{reason: eventsv1.ReasonAdoptionNotAllowed, msg: "no"}, eventsv1.ReasonAdoptionNotAllowed, false},
		{"connection not allowed", &connectionNotAllowedError{secret: "s"}, eventsv1.ReasonConnectionNotAllowed, false},
		{"connection refused by pattern", &connectionNotAllowedError{secret: "s", refused: &natsconn.URLNotAllowedError{}}, eventsv1.ReasonConnectionNotAllowed, false},
		{"the controller's own, terminal", newStepError(terminal, eventsv1.ReasonDeadLetterNotStored, "lost"), eventsv1.ReasonDeadLetterNotStored, false},
		{"the controller's own, transient", newStepError(transient, eventsv1.ReasonNatsUnavailable, "down"), eventsv1.ReasonNatsUnavailable, true},
		{"the controller's own, waiting", newStepError(waiting, eventsv1.ReasonStreamNotReady, "wait"), eventsv1.ReasonStreamNotReady, false},
		{"anything else", errors.New("boom"), eventsv1.ReasonJetStreamError, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reason, retry := failureReason(tc.err)
			if reason != tc.reason || retry != tc.retry {
				t.Errorf("failureReason = %s, retry %v; want %s, %v", reason, retry, tc.reason, tc.retry)
			}
			se := classify(tc.err)
			if se.reason != tc.reason || (se.kind == transient) != tc.retry {
				t.Errorf("classify = %+v", se)
			}
			if se.message == "" {
				t.Error("classify gave no message")
			}
		})
	}
}

// TestSummarizeKeepsTheSteadyStateUnwritten: the same outcome twice leaves
// the status identical (no write), lastTransitionTime moves only on a
// change of status, and InSync keeps the reason of the change that made the
// object ready.
func TestSummarizeKeepsTheSteadyStateUnwritten(t *testing.T) {
	evs := genStream("steady")
	st := streamStatus(evs)
	summarize(st, 1, stepNow, stepResult{reason: eventsv1.ReasonCreated, message: "created"}, nil)
	first := evs.Status.DeepCopy()
	later := stepNow.Add(time.Minute)
	summarize(st, 1, later, stepResult{reason: eventsv1.ReasonInSync, message: "in sync"}, nil)
	if fmt.Sprint(first) != fmt.Sprint(&evs.Status) {
		t.Errorf("an InSync reconcile changed the status:\n%v\n%v", first, &evs.Status)
	}
	fail := newStepError(transient, eventsv1.ReasonNatsUnavailable, "down")
	summarize(st, 1, later, stepResult{}, fail)
	once := evs.Status.DeepCopy()
	summarize(st, 1, later.Add(time.Minute), stepResult{}, fail)
	if fmt.Sprint(once) != fmt.Sprint(&evs.Status) {
		t.Errorf("the same failure twice changed the status:\n%v\n%v", once, &evs.Status)
	}
	if c := evs.Status.Conditions[0]; c.Type != eventsv1.ConditionReady || !c.LastTransitionTime.Time.Equal(later) {
		t.Errorf("Ready first, moved when it turned False: %+v", c)
	}
	checkConditionInvariantsAt(t, evs.Status.Conditions)
	// A new generation failing transiently keeps observedGeneration at the
	// last known outcome.
	summarize(st, 2, later, stepResult{}, fail)
	if evs.Status.ObservedGeneration != 1 {
		t.Errorf("observedGeneration %d while generation 2 is being retried", evs.Status.ObservedGeneration)
	}
	summarize(st, 2, later, stepResult{}, newStepError(terminal, eventsv1.ReasonInvalidSpec, "bad"))
	if evs.Status.ObservedGeneration != 2 {
		t.Errorf("observedGeneration %d once generation 2 failed for good", evs.Status.ObservedGeneration)
	}
	checkConditionInvariantsAt(t, evs.Status.Conditions)
}

// checkConditionInvariantsAt is checkConditionInvariants without the check
// of the transition times.
func checkConditionInvariantsAt(t *testing.T, conds []metav1.Condition) {
	t.Helper()
	c := make([]metav1.Condition, len(conds))
	copy(c, conds)
	for i := range c {
		c[i].LastTransitionTime = metav1.NewTime(stepNow)
	}
	checkConditionInvariants(t, c)
}

// TestOwnWritesAreExpectedForAWindow runs the own-write bookkeeping on a
// fake clock: each expected write absorbs one advisory within the window,
// and none after it.
func TestOwnWritesAreExpectedForAWindow(t *testing.T) {
	clk := newFakeClock()
	tr := &Triggers{own: map[string]ownWrite{}, clock: clk}

	if tr.consumeOwnWrite("S") {
		t.Error("an advisory nobody expected was taken for an own write")
	}
	tr.ExpectOwnWrite("S", "")
	tr.ExpectOwnWrite("S", "")
	tr.ExpectOwnWrite("S", "c")
	for i := range 2 {
		if !tr.consumeOwnWrite("S") {
			t.Errorf("expected write %d did not absorb its advisory", i+1)
		}
	}
	if tr.consumeOwnWrite("S") {
		t.Error("a third advisory was absorbed by two writes")
	}
	clk.Step(ownWriteWindow + time.Millisecond)
	if tr.consumeOwnWrite("S/c") {
		t.Error("an advisory after the window was taken for an own write")
	}
	if len(tr.own) != 0 {
		t.Errorf("expired expectations kept: %v", tr.own)
	}
	tr.ExpectOwnWrite("S", "c")
	clk.Step(ownWriteWindow - time.Millisecond)
	if !tr.consumeOwnWrite("S/c") {
		t.Error("an advisory inside the window was not absorbed")
	}
}

func TestTriggerMapping(t *testing.T) {
	notStored := []metav1.Condition{{Type: eventsv1.ConditionDeadLetterStored, Status: metav1.ConditionFalse}}
	stored := []metav1.Condition{{Type: eventsv1.ConditionDeadLetterStored, Status: metav1.ConditionTrue}}
	consumer := func(stream string, conds []metav1.Condition) *eventsv1.EventConsumer {
		c := genConsumer("c", "s")
		c.Status.StreamName, c.Status.Conditions = stream, conds
		return c
	}
	cases := []struct {
		name    string
		trigger string
		c       *eventsv1.EventConsumer
		want    bool
	}{
		{"every stream", All, consumer("A", stored), true},
		{"its stream", "A", consumer("A", stored), true},
		{"another stream", "B", consumer("A", stored), false},
		{"a consumer that never found its stream", "B", consumer("", nil), true},
		{"a consumer whose dead letters are not stored yet", "B", consumer("A", notStored), true},
	}
	for _, tc := range cases {
		if got := triggerConcerns(tc.trigger, tc.c); got != tc.want {
			t.Errorf("%s: triggerConcerns = %v", tc.name, got)
		}
	}

	// A direct trigger names the EventConsumer itself; nothing is listed.
	r := &EventConsumerReconciler{}
	key := types.NamespacedName{Namespace: "ns", Name: "billing"}
	reqs := r.requestsForTrigger(context.Background(), directTrigger(key).Object)
	if len(reqs) != 1 || reqs[0].NamespacedName != key {
		t.Errorf("direct trigger mapped to %v", reqs)
	}

	// The EventStream watch passes what its consumers see, not counters.
	ready := genStream("s", streamReady())
	counted := ready.DeepCopy()
	counted.Status.State = &eventsv1.EventStreamState{Messages: 5}
	failed := genStream("s", streamNotReady(eventsv1.ReasonInvalidSpec))
	deleting := ready.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: stepNow}
	for _, tc := range []struct {
		name     string
		old, new *eventsv1.EventStream
		want     bool
	}{
		{"state counters", ready, counted, false},
		{"Ready turns False", ready, failed, true},
		{"Ready turns True", failed, ready, true},
		{"deletion", ready, deleting, true},
	} {
		if got := (streamReadinessChanged{}).Update(event.UpdateEvent{ObjectOld: tc.old, ObjectNew: tc.new}); got != tc.want {
			t.Errorf("streamReadinessChanged %s = %v", tc.name, got)
		}
	}
}

// TestReleaseByDeletionPolicy runs the engine's release on streams and
// consumers.
func TestReleaseByDeletionPolicy(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	r := &EventStreamReconciler{reconciler: *stepReconciler(t, srv, nil)}
	js := jsOf(t, &r.reconciler)
	ctx := context.Background()

	for _, tc := range []struct {
		name        string
		owner       string
		policy      eventsv1.DeletionPolicy
		wantGone    bool
		wantOwner   string
		wantRelease string
	}{
		{name: "Delete removes its own", owner: "default/del", policy: eventsv1.DeletionPolicyDelete, wantGone: true},
		{name: "Retain releases its own", owner: "default/ret", policy: eventsv1.DeletionPolicyRetain, wantRelease: "default/ret"},
		{name: "Delete leaves another's alone", owner: "other/x", policy: eventsv1.DeletionPolicyDelete, wantOwner: "other/x"},
		{name: "Retain leaves another's alone", owner: "other/y", policy: eventsv1.DeletionPolicyRetain, wantOwner: "other/y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("REL_%d", time.Now().UnixNano())
			eventstest.CreateStream(t, js, name, []string{name + ".>"}, func(c *events.StreamConfig) {
				c.Metadata = map[string]string{eventsv1.OwnerMetadataKey: tc.owner}
			})
			evs := genStream("mine", func(s *eventsv1.EventStream) { s.Spec.DeletionPolicy = tc.policy })
			marker := tc.owner
			if tc.wantOwner != "" {
				marker = "default/mine"
			}
			// The consumer's type as well: one on the stream, owned alike.
			if _, err := js.CreateOrUpdateConsumer(ctx, name, jetstream.ConsumerConfig{Durable: "dur",
				Metadata: map[string]string{eventsv1.OwnerMetadataKey: tc.owner}}); err != nil {
				t.Fatal(err)
			}
			if err := release(ctx, &r.reconciler, consumerType{}, js, jsID{stream: name, consumer: "dur"}, marker, tc.policy, evs); err != nil {
				t.Fatalf("consumer: %v", err)
			}
			if err := release(ctx, &r.reconciler, streamType{}, js, jsID{stream: name}, marker, tc.policy, evs); err != nil {
				t.Fatalf("stream: %v", err)
			}
			info, err := events.GetStreamInfo(ctx, js, name)
			if tc.wantGone {
				if !errors.Is(err, events.ErrNotFound) {
					t.Errorf("stream still there: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			md := info.Config.Metadata
			if md[eventsv1.OwnerMetadataKey] != tc.wantOwner || md[eventsv1.ReleasedByMetadataKey] != tc.wantRelease {
				t.Errorf("stream metadata %v", md)
			}
			cinfo, err := admin.GetConsumerInfo(ctx, js, name, "dur")
			if err != nil {
				t.Fatal(err)
			}
			if cmd := cinfo.Config.Metadata; cmd[eventsv1.OwnerMetadataKey] != tc.wantOwner || cmd[eventsv1.ReleasedByMetadataKey] != tc.wantRelease {
				t.Errorf("consumer metadata %v", cmd)
			}
			// Released or gone twice is no error.
			if err := release(ctx, &r.reconciler, streamType{}, js, jsID{stream: "NEVER_THERE"}, marker, tc.policy, evs); err != nil {
				t.Errorf("a missing stream: %v", err)
			}
		})
	}
}

// TestKstatusOfEachState computes, with cli-utils' kstatus (what Flux and
// kpt use), the status of an EventStream after the steps in each state:
// Ready → Current, NATS down → InProgress, a terminal failure → Failed.
// (The step tables check the kstatus of every case too, the consumer's
// waiting for its stream → InProgress and dead letters not stored → Failed
// among them.)
func TestKstatusOfEachState(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	up := &EventStreamReconciler{reconciler: *stepReconciler(t, srv, nil)}
	ctx := context.Background()
	dead, err := natsconn.Connect(natsconn.Options{URL: "nats://127.0.0.1:1", Name: "kstatus-down"}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	down := &EventStreamReconciler{reconciler: up.reconciler}
	down.NATS = dead

	run := func(r *EventStreamReconciler, evs *eventsv1.EventStream) *eventsv1.EventStream {
		res, err := r.kind().steps(ctx, evs)
		var se *stepError
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("steps: %v", err)
		}
		summarize(streamStatus(evs), evs.Generation, stepNow, res, se)
		checkConditionInvariants(t, evs.Status.Conditions)
		return evs
	}
	ready := run(up, genStream("k-ready"))
	cases := []struct {
		name string
		evs  *eventsv1.EventStream
		want status.Status
	}{
		{"Ready", ready, status.CurrentStatus},
		{"NATS down", run(down, genStream("k-down")), status.InProgressStatus},
		{"NATS down after it was Ready, at a new generation", func() *eventsv1.EventStream {
			evs := ready.DeepCopy()
			evs.Generation = 2
			return run(down, evs)
		}(), status.InProgressStatus},
		{"three replicas on one server", run(up, genStream("k-r3", streamReplicas(3))), status.FailedStatus},
	}
	for _, tc := range cases {
		if got := kstatusOf(t, tc.evs); got != tc.want {
			t.Errorf("%s: kstatus %s, want %s (%v)", tc.name, got, tc.want, tc.evs.Status.Conditions)
		}
	}
}

// TestPatchStatusOverAStaleCache: a reconcile whose cached object does not
// hold the operator's last status write yet still writes its status when
// it equals the stale one.
func TestPatchStatusOverAStaleCache(t *testing.T) {
	c := apiClient(t)
	ctx := context.Background()
	r := &reconciler{Client: c, statusWrites: &sync.Map{}}
	evs := genStream("stale-cache")
	evs.Generation = 0
	if err := c.Create(ctx, evs); err != nil {
		t.Fatal(err)
	}
	set := func(obj *eventsv1.EventStream, s metav1.ConditionStatus, reason string) {
		setCondition(&obj.Status.Conditions, eventsv1.ConditionReady, s, obj.Generation, stepNow, reason, reason)
	}
	// Ready=True written; the cache keeps this version (stale).
	orig := evs.DeepCopy()
	set(evs, metav1.ConditionTrue, eventsv1.ReasonCreated)
	if err := r.patchStatus(ctx, evs, orig); err != nil {
		t.Fatal(err)
	}
	stale := evs.DeepCopy()
	// Ready=False written by the next reconcile.
	set(evs, metav1.ConditionFalse, eventsv1.ReasonStreamNotReady)
	if err := r.patchStatus(ctx, evs, stale.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	// A third reconcile reads the stale Ready=True and finds Ready=True.
	again := stale.DeepCopy()
	if err := r.patchStatus(ctx, again, stale); err != nil {
		t.Fatal(err)
	}
	got := &eventsv1.EventStream{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(evs), got); err != nil {
		t.Fatal(err)
	}
	if cond := meta.FindStatusCondition(got.Status.Conditions, eventsv1.ConditionReady); cond == nil || cond.Status != metav1.ConditionTrue {
		t.Errorf("the server kept %+v: the status equal to the stale cache was not written", cond)
	}
	// Fresh again: an unchanged status is not written.
	rv := got.ResourceVersion
	if err := r.patchStatus(ctx, got.DeepCopy(), got); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(evs), got); err != nil || got.ResourceVersion != rv {
		t.Errorf("an unchanged status was written (%v, resourceVersion %s → %s)", err, rv, got.ResourceVersion)
	}
}

// An EventStream whose stream would be a bucket's (KV_…, OBJ_…) is refused
// by the translation too (an object admitted before the CEL rule existed):
// with the same owner marker as an EventKeyValue of its namespace and name,
// it would fight it over the stream.
func TestStreamConfigRefusesBucketStreamNames(t *testing.T) {
	for _, name := range []string{"KV_CONFIG", "OBJ_files"} {
		_, err := streamConfig(genStream("config", func(e *eventsv1.EventStream) { e.Spec.Name = name }))
		var verr *events.ValidationError
		if !errors.As(err, &verr) || verr.Field != "name" || !strings.Contains(verr.Reason, "EventKeyValue") {
			t.Errorf("streamConfig(name %s) = %v, want a ValidationError for name", name, err)
		}
	}
	if _, err := streamConfig(genStream("kvx", func(e *eventsv1.EventStream) { e.Spec.Name = "KVX_EVENTS" })); err != nil {
		t.Errorf("streamConfig(KVX_EVENTS) = %v, want no error", err)
	}
}
