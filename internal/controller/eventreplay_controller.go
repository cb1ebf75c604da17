package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
)

// replaySourceIndex indexes EventReplays by the EventStream they read: a
// replay waiting for its stream starts when the stream becomes Ready.
const replaySourceIndex = "spec.source.streamRef.name"

// progressInterval is the least time between two progress writes of a
// running replay (the last progress is always written).
const progressInterval = 500 * time.Millisecond

// EventReplayReconciler runs each EventReplay: it resolves the EventStream
// and the connections, then republishes the range with events.Replay in a
// goroutine of its own (a replay can take hours; a reconcile worker must
// not wait for it), writing its progress to status. Replays run only on the
// leader: the goroutines hang off the context of a leader-elected runnable,
// so a manager that stops or loses the lease stops them, and the next
// leader resumes each from its status (the checkpoint) and the target
// stream (the truth, see events.Replay).
type EventReplayReconciler struct {
	reconciler

	mu   sync.Mutex
	ctx  context.Context // the leader's; nil until Start
	runs map[types.UID]*replayRun
	// finished: replays this process saw to their end, whose final status
	// the cache may not hold yet (not started again meanwhile).
	finished map[types.UID]bool
	wg       sync.WaitGroup
}

// replayRun is a running replay.
type replayRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// +kubebuilder:rbac:groups=events.giia.io,resources=eventreplays,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventreplays/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventreplays/finalizers,verbs=update

// Start holds the context the replays run in until the manager stops or
// loses the lease, then cancels them and waits for them to stop.
func (r *EventReplayReconciler) Start(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	for _, run := range r.runs {
		run.cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// NeedLeaderElection: replays run on the leader only.
func (r *EventReplayReconciler) NeedLeaderElection() bool { return true }

// Reconcile starts a replay that is not running, cancels a deleted one, and
// does nothing for a finished one (no NATS call on resync).
func (r *EventReplayReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	evr := &eventsv1.EventReplay{}
	if err := r.Get(ctx, req.NamespacedName, evr); err != nil {
		if apierrors.IsNotFound(err) {
			evr.Namespace, evr.Name = req.Namespace, req.Name
			forgetMetrics(evr)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !evr.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, evr)
	}
	if err := r.ensureFinalizer(ctx, evr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	switch evr.Status.Phase {
	case eventsv1.ReplaySucceeded, eventsv1.ReplayFailed:
		resources.track(evr) // a finished replay writes no status again
		return ctrl.Result{}, nil
	}
	if r.running(evr.UID) {
		return ctrl.Result{}, nil
	}
	base := r.leaderContext()
	if base == nil { // Start has not run yet
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	orig := evr.DeepCopy()
	st := replayStatusRef(evr)
	if evr.Status.Phase == "" {
		evr.Status.Phase = eventsv1.ReplayPending
	}
	evr.Status.Target = evr.TargetDescription()
	if evr.Status.Progress == "" {
		evr.Status.Progress = progress(evr.Status.Replayed, evr.Status.Total)
	}
	evs, err := r.replaySource(ctx, evr)
	var src jetstream.JetStream
	if err == nil {
		// Resolved here for the condition it may set; the run resolves
		// them again at each attempt.
		src, _, err = r.replayConnections(ctx, evr, evs)
	}
	if err == nil && evr.Spec.Source.To == nil && evr.Status.EndSequence == 0 {
		err = r.pinEnd(ctx, src, evs.JetStreamName(), evr)
	}
	if err != nil {
		return r.summarizeAndPatch(ctx, evr, orig, st, stepResult{}, err)
	}
	first := evr.Status.StartTime == nil
	if first {
		now := metav1.NewTime(r.clock().Now())
		evr.Status.StartTime = &now
	}
	evr.Status.Phase = eventsv1.ReplayRunning
	evr.Status.StreamName = evs.JetStreamName()
	summarize(st, evr.Generation, r.clock().Now(), stepResult{}, runningStep(evr))
	if err := r.patchStatus(ctx, evr, orig); err != nil {
		return ctrl.Result{}, err
	}
	if first {
		r.event(evr, corev1.EventTypeNormal, "Started", "Replay", fmt.Sprintf("replaying stream %s to %s", evr.Status.StreamName, evr.Status.Target))
	} else {
		r.event(evr, corev1.EventTypeNormal, "Resumed", "Replay", fmt.Sprintf("resuming the replay of stream %s after sequence %d (%s)",
			evr.Status.StreamName, evr.Status.LastSequence, evr.Status.Progress))
	}
	r.launch(base, evr.DeepCopy())
	return ctrl.Result{}, nil
}

// pinEnd records the end of an open range, the stream's last sequence now,
// before the first run: a replay resumed later must not take in the
// messages stored meanwhile.
func (r *EventReplayReconciler) pinEnd(ctx context.Context, js jetstream.JetStream, stream string, evr *eventsv1.EventReplay) error {
	info, err := call(ctx, "stream_info", func(ctx context.Context) (*jetstream.StreamInfo, error) {
		return events.GetStreamInfo(ctx, js, stream)
	})
	if err != nil {
		if errors.Is(err, events.ErrNotFound) {
			return newStepError(waiting, eventsv1.ReasonStreamNotReady, fmt.Sprintf("stream %s does not exist in JetStream yet", stream))
		}
		return classify(err)
	}
	evr.Status.EndSequence = int64(info.State.LastSeq)
	return nil
}

func replayStatusRef(evr *eventsv1.EventReplay) statusRef {
	return statusRef{&evr.Status.Conditions, &evr.Status.ObservedGeneration}
}

// runningStep is the Reconciling=True outcome of a running replay.
func runningStep(evr *eventsv1.EventReplay) *stepError {
	return newStepError(transient, eventsv1.ReasonReplaying, fmt.Sprintf("replaying stream %s to %s: %s messages",
		evr.Status.StreamName, evr.Status.Target, evr.Status.Progress))
}

func progress(replayed, total int64) string { return fmt.Sprintf("%d/%d", replayed, total) }

// replaySource finds the replay's EventStream; one that is missing, being
// deleted or not Ready is waited for (its watch brings the replay back).
func (r *EventReplayReconciler) replaySource(ctx context.Context, evr *eventsv1.EventReplay) (*eventsv1.EventStream, error) {
	name := evr.Spec.Source.StreamRef.Name
	evs := &eventsv1.EventStream{}
	err := r.Get(ctx, types.NamespacedName{Namespace: evr.Namespace, Name: name}, evs)
	switch {
	case client.IgnoreNotFound(err) != nil:
		return nil, err
	case err != nil:
		return nil, newStepError(waiting, eventsv1.ReasonStreamNotReady, fmt.Sprintf("EventStream %q does not exist in namespace %s", name, evr.Namespace))
	case !evs.DeletionTimestamp.IsZero():
		return nil, newStepError(waiting, eventsv1.ReasonStreamNotReady, fmt.Sprintf("EventStream %q is being deleted", name))
	}
	if c := meta.FindStatusCondition(evs.Status.Conditions, eventsv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || evs.Status.StreamName == "" {
		why := "not reconciled yet"
		if c != nil {
			why = c.Reason + ": " + c.Message
		}
		return nil, newStepError(waiting, eventsv1.ReasonStreamNotReady, fmt.Sprintf("EventStream %q is not Ready (%s)", name, why))
	}
	return evs, nil
}

// replayConnections resolves the source's JetStream (the EventStream's
// connection and domain) and the target's (spec.target.connection, in its
// Secret's "domain" if it has one; nil means the source's).
func (r *EventReplayReconciler) replayConnections(ctx context.Context, evr *eventsv1.EventReplay, evs *eventsv1.EventStream) (src, tgt jetstream.JetStream, err error) {
	user := userKey("EventReplay", evr)
	if src, err = r.reconcileConnection(ctx, evs.Namespace, evs.Spec.Connection, evs.Spec.Domain, user); err != nil {
		return nil, nil, err
	}
	if evr.Spec.Target.Connection != nil {
		if tgt, err = r.reconcileConnection(ctx, evr.Namespace, evr.Spec.Target.Connection, "", user); err != nil {
			return nil, nil, err
		}
	}
	return src, tgt, nil
}

func (r *EventReplayReconciler) leaderContext() context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctx
}

// running says whether this process is running the replay, or has run it
// to its end.
func (r *EventReplayReconciler) running(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.runs[uid]
	return ok || r.finished[uid]
}

// launch runs the replay in a goroutine, tracked by UID.
func (r *EventReplayReconciler) launch(base context.Context, evr *eventsv1.EventReplay) {
	ctx, cancel := context.WithCancel(base)
	run := &replayRun{cancel: cancel, done: make(chan struct{})}
	r.mu.Lock()
	if r.runs == nil {
		r.runs = map[types.UID]*replayRun{}
	}
	r.runs[evr.UID] = run
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer close(run.done)
		defer cancel()
		ended := r.run(ctx, evr)
		r.mu.Lock()
		delete(r.runs, evr.UID)
		if ended {
			if r.finished == nil {
				r.finished = map[types.UID]bool{}
			}
			r.finished[evr.UID] = true
		}
		r.mu.Unlock()
	}()
}

// replaySpec is the library's spec of a replay, resuming from checkpoint.
func replaySpec(evr *eventsv1.EventReplay, stream string, checkpoint events.ReplayProgress) events.ReplaySpec {
	s := evr.Spec
	spec := events.ReplaySpec{
		ID:             string(evr.UID),
		Stream:         stream,
		FilterSubjects: s.Source.FilterSubjects,
		Target: events.ReplayTarget{
			Subject:       s.Target.Subject,
			SubjectPrefix: s.Target.SubjectPrefix,
			Original:      s.Target.Original,
		},
		BatchSize:  int(s.BatchSize),
		Checkpoint: checkpoint,
	}
	if f := s.Source.From; f != nil {
		if f.Sequence != nil {
			spec.FromSequence = uint64(*f.Sequence)
		}
		if f.Time != nil {
			spec.FromTime = f.Time.Time
		}
	}
	if s.Source.To == nil && evr.Status.EndSequence > 0 {
		spec.ToSequence = uint64(evr.Status.EndSequence)
	}
	if t := s.Source.To; t != nil {
		if t.Sequence != nil {
			spec.ToSequence = uint64(*t.Sequence)
		}
		if t.Time != nil {
			spec.ToTime = t.Time.Time
		}
	}
	if s.Redrive != nil {
		spec.Redrive = true
		spec.DeleteRedriven = s.Redrive.DeleteRedriven
	}
	if s.RateLimit != nil {
		spec.RateLimit = int(*s.RateLimit)
	}
	return spec
}

// checkpointOf is the progress recorded in status.
func checkpointOf(st *eventsv1.EventReplayStatus) events.ReplayProgress {
	return events.ReplayProgress{
		Total:          uint64(max(st.Total, 0)),
		Replayed:       uint64(max(st.Replayed, 0)),
		Skipped:        uint64(max(st.Skipped, 0)),
		LastSequence:   uint64(max(st.LastSequence, 0)),
		TargetSequence: uint64(max(st.TargetSequence, 0)),
	}
}

// run republishes until the replay is done, fails terminally or ctx ends
// (deletion, manager stop, lost lease); it says whether the replay ended
// (Succeeded or Failed). A transient failure (NATS away, a
// JetStream error) is retried with backoff from the last progress; the
// library reads the truth back from the target, so a retry never
// duplicates.
func (r *EventReplayReconciler) run(ctx context.Context, evr *eventsv1.EventReplay) bool {
	log := logf.FromContext(ctx).WithValues("eventreplay", client.ObjectKeyFromObject(evr))
	key := client.ObjectKeyFromObject(evr)
	last := checkpointOf(&evr.Status)
	var lastWrite time.Time
	backoff := 250 * time.Millisecond
	for {
		evs, err := r.replaySource(ctx, evr)
		var src, tgt jetstream.JetStream
		if err == nil {
			src, tgt, err = r.replayConnections(ctx, evr, evs)
		}
		if err == nil {
			spec := replaySpec(evr, evs.JetStreamName(), last)
			spec.TargetJetStream = tgt
			spec.OnProgress = func(p events.ReplayProgress) {
				last = p
				if now := time.Now(); now.Sub(lastWrite) >= progressInterval {
					lastWrite = now
					r.writeProgress(ctx, key, p, nil)
				}
			}
			var p events.ReplayProgress
			p, err = events.Replay(ctx, src, spec)
			if p.Total > 0 || p.LastSequence > 0 {
				last = p
			}
		}
		if ctx.Err() != nil {
			// Cancelled: record how far it got, if the API server still
			// answers (a stopping manager; a deleted resource is gone).
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			r.writeProgress(wctx, key, last, nil)
			cancel()
			return false
		}
		if err == nil {
			r.finish(ctx, key, last, nil)
			return true
		}
		se := classifyReplay(err)
		if se.kind == terminal {
			r.finish(ctx, key, last, se)
			return true
		}
		log.Info("replay interrupted, retrying", "reason", se.reason, "error", se.message, "after", backoff)
		r.writeProgress(ctx, key, last, se)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// classifyReplay classifies a failure of events.Replay: the library's own
// refusals (a spec it rejects, a target no stream captures) are terminal;
// NATS and JetStream failures are classified as for every kind.
func classifyReplay(err error) *stepError {
	se := classify(err)
	if errors.Is(err, events.ErrPermanent) && se.kind != terminal {
		return &stepError{reason: eventsv1.ReasonReplayFailed, message: err.Error(), kind: terminal, err: err}
	}
	return se
}

// writeProgress records p in status; with a transient failure, Reconciling
// carries its reason until the retry succeeds.
func (r *EventReplayReconciler) writeProgress(ctx context.Context, key types.NamespacedName, p events.ReplayProgress, failure *stepError) {
	r.updateStatus(ctx, key, func(evr *eventsv1.EventReplay) {
		setProgress(&evr.Status, p)
		if evr.Status.Phase != eventsv1.ReplayRunning {
			return
		}
		step := runningStep(evr)
		if failure != nil {
			step = &stepError{reason: failure.reason, message: "replay interrupted, retrying with backoff: " + failure.message, kind: transient}
		}
		summarize(replayStatusRef(evr), evr.Generation, r.clock().Now(), stepResult{}, step)
	})
}

// finish records the end of a replay: Succeeded (Ready=True) or Failed
// (Stalled=True with the reason), with an Event.
func (r *EventReplayReconciler) finish(ctx context.Context, key types.NamespacedName, p events.ReplayProgress, failure *stepError) {
	var done *eventsv1.EventReplay
	r.updateStatus(ctx, key, func(evr *eventsv1.EventReplay) {
		setProgress(&evr.Status, p)
		now := metav1.NewTime(r.clock().Now())
		evr.Status.CompletionTime = &now
		st := replayStatusRef(evr)
		if failure == nil {
			evr.Status.Phase = eventsv1.ReplaySucceeded
			summarize(st, evr.Generation, now.Time, stepResult{reason: eventsv1.ReasonReplayed, message: fmt.Sprintf(
				"replayed %d of %d messages of stream %s to %s (%d skipped)", p.Replayed, p.Total, evr.Status.StreamName, evr.Status.Target, p.Skipped)}, nil)
		} else {
			evr.Status.Phase = eventsv1.ReplayFailed
			summarize(st, evr.Generation, now.Time, stepResult{}, &stepError{reason: failure.reason, kind: terminal,
				message: fmt.Sprintf("replay failed after %d of %d messages: %s", p.Replayed, p.Total, failure.message)})
		}
		done = evr
	})
	if done == nil {
		return
	}
	if failure == nil {
		r.event(done, corev1.EventTypeNormal, "Succeeded", "Replay", meta.FindStatusCondition(done.Status.Conditions, eventsv1.ConditionReady).Message)
	} else {
		r.event(done, corev1.EventTypeWarning, "Failed", "Replay", meta.FindStatusCondition(done.Status.Conditions, eventsv1.ConditionStalled).Message)
	}
}

func setProgress(st *eventsv1.EventReplayStatus, p events.ReplayProgress) {
	st.Total = int64(p.Total)
	st.Replayed = int64(p.Replayed)
	st.Skipped = int64(p.Skipped)
	st.LastSequence = int64(p.LastSequence)
	st.TargetSequence = int64(p.TargetSequence)
	st.Progress = progress(st.Replayed, st.Total)
}

// updateStatus applies change to the resource's status and writes it; a
// failure is logged (the next write, or the target scan on resume, makes
// up for a lost one).
func (r *EventReplayReconciler) updateStatus(ctx context.Context, key types.NamespacedName, change func(*eventsv1.EventReplay)) {
	evr := &eventsv1.EventReplay{}
	if err := r.Get(ctx, key, evr); err != nil {
		if client.IgnoreNotFound(err) != nil {
			logf.FromContext(ctx).Error(err, "reading the EventReplay to record progress", "eventreplay", key)
		}
		return
	}
	if !evr.DeletionTimestamp.IsZero() {
		return
	}
	orig := evr.DeepCopy()
	change(evr)
	if err := r.patchStatus(ctx, evr, orig); err != nil {
		logf.FromContext(ctx).Error(err, "recording replay progress", "eventreplay", key)
	}
}

// finalize cancels a running replay and waits for it to stop before the
// finalizer goes (the library deletes its ordered consumer on return).
func (r *EventReplayReconciler) finalize(ctx context.Context, evr *eventsv1.EventReplay) (ctrl.Result, error) {
	r.mu.Lock()
	run := r.runs[evr.UID]
	r.mu.Unlock()
	if run != nil {
		run.cancel()
		select {
		case <-run.done:
		case <-time.After(5 * time.Second):
			return ctrl.Result{RequeueAfter: time.Second}, nil
		case <-ctx.Done():
			return ctrl.Result{}, ctx.Err()
		}
		if evr.Status.Phase == eventsv1.ReplayRunning {
			r.event(evr, corev1.EventTypeNormal, "Cancelled", "Delete", fmt.Sprintf("replay cancelled at %s messages", evr.Status.Progress))
		}
	}
	r.mu.Lock()
	delete(r.finished, evr.UID)
	r.mu.Unlock()
	r.releaseConnection(userKey("EventReplay", evr))
	r.forgetStatusWrites(evr)
	return ctrl.Result{}, r.removeFinalizer(ctx, evr)
}

// SetupWithManager registers the controller (and its runnable) with mgr.
func (r *EventReplayReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &eventsv1.EventReplay{}, replaySourceIndex,
		func(o client.Object) []string { return []string{o.(*eventsv1.EventReplay).Spec.Source.StreamRef.Name} }); err != nil {
		return err
	}
	if err := mgr.Add(r); err != nil {
		return err
	}
	return r.controllerFor(mgr, &eventsv1.EventReplay{}, "eventreplay").
		Watches(&eventsv1.EventStream{}, handler.EnqueueRequestsFromMapFunc(r.replaysOf)).
		Complete(r)
}

// replaysOf maps an EventStream to the unfinished replays that read it.
func (r *EventReplayReconciler) replaysOf(ctx context.Context, obj client.Object) []ctrl.Request {
	list := &eventsv1.EventReplayList{}
	if err := r.List(ctx, list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{replaySourceIndex: obj.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "listing the EventReplays of an EventStream")
		return nil
	}
	var reqs []ctrl.Request
	for i := range list.Items {
		evr := &list.Items[i]
		if evr.Status.Phase == eventsv1.ReplaySucceeded || evr.Status.Phase == eventsv1.ReplayFailed {
			continue
		}
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(evr)})
	}
	return reqs
}
