package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
)

// Field indexes of EventConsumers.
const (
	streamRefIndex    = "spec.streamRef.name" // the EventStream resource
	consumerNameIndex = "jetStreamConsumer"   // the JetStream durable name
)

// DeadLetterCounts supplies the durable dead-lettered counts (the operator's
// forwarder keeps them in a JetStream KeyValue ledger).
type DeadLetterCounts interface {
	// DeadLettered returns the count of the resource with uid, or false
	// when there is none for it yet.
	DeadLettered(key types.NamespacedName, uid types.UID) (int64, bool)
	// Forget deletes a deleted resource's count.
	Forget(ctx context.Context, key types.NamespacedName) error
}

// EventConsumerReconciler makes a durable JetStream consumer match each
// EventConsumer, once its EventStream is Ready.
type EventConsumerReconciler struct {
	reconciler
	// Triggers, when set, receives consumer triggers (advisories, reconnects,
	// dead letters forwarded).
	Triggers <-chan event.GenericEvent
	// DeadLetters, when set, supplies the dead-lettered counts for status.
	DeadLetters DeadLetterCounts
	// StreamsEpoch, when set, changes whenever streams come, go or change;
	// the dead-letter check is cached until it does (or the spec changes).
	StreamsEpoch func() uint64

	dlqChecks sync.Map // types.NamespacedName → dlqCheck
}

// dlqCheck is a cached answer of deadLetterStored.
type dlqCheck struct {
	generation int64
	epoch      uint64
	subject    string
	stored     bool
}

// +kubebuilder:rbac:groups=events.giia.io,resources=eventconsumers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventconsumers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventconsumers/finalizers,verbs=update

// Reconcile is level-triggered and idempotent, like the stream's; its steps
// are reconcileStreamDependency, reconcileConnection, reconcileConsumer and
// reconcileDeadLetterStorage.
func (r *EventConsumerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileObject(ctx, &r.reconciler, req, &eventsv1.EventConsumer{}, kind[*eventsv1.EventConsumer]{
		status: func(evc *eventsv1.EventConsumer) statusRef {
			return statusRef{&evc.Status.Conditions, &evc.Status.ObservedGeneration}
		},
		steps: r.steps,
		finalizer: finalizer[*eventsv1.EventConsumer]{
			what:    func(evc *eventsv1.EventConsumer) string { return consumerID(evc, evc.Status.StreamName).String() },
			policy:  func(evc *eventsv1.EventConsumer) eventsv1.DeletionPolicy { return evc.Spec.DeletionPolicy },
			release: r.release,
			done:    r.forget,
		},
	})
}

// consumerID names an EventConsumer's JetStream consumer on stream.
func consumerID(evc *eventsv1.EventConsumer, stream string) jsID {
	return jsID{stream: stream, consumer: evc.JetStreamName()}
}

// steps runs the consumer's steps in order; the dead-lettered count is
// copied into status whatever they found.
func (r *EventConsumerReconciler) steps(ctx context.Context, evc *eventsv1.EventConsumer) (stepResult, error) {
	defer func() {
		r.setDeadLettered(evc)
		observeConsumer(evc)
	}()
	evs, err := r.reconcileStreamDependency(ctx, evc)
	if err != nil {
		return stepResult{}, err
	}
	js, err := r.reconcileConnection(ctx, evs.Namespace, evs.Spec.Connection, evs.Spec.Domain, userKey("EventConsumer", evc))
	if err != nil {
		return stepResult{}, err
	}
	res, err := r.reconcileConsumer(ctx, js, evc, evs)
	if err != nil {
		return stepResult{}, err
	}
	return res, r.reconcileDeadLetterStorage(ctx, js, evc, evs)
}

// setDeadLettered copies the ledger's count into status. The value is
// absolute, so a stale cache or a write lost with a killed manager is
// corrected by the next reconcile, and an unchanged count writes nothing.
// Without a ledger count (an operator from before the ledger counted in
// status only) the status is left as it is; the ledger starts from it.
func (r *EventConsumerReconciler) setDeadLettered(evc *eventsv1.EventConsumer) {
	if r.DeadLetters == nil {
		return
	}
	n, ok := r.DeadLetters.DeadLettered(client.ObjectKeyFromObject(evc), evc.UID)
	if !ok {
		return
	}
	if evc.Status.State == nil {
		evc.Status.State = &eventsv1.EventConsumerState{}
	}
	evc.Status.State.DeadLettered = n
}

// reconcileStreamDependency finds the consumer's EventStream and sets
// StreamReady. Waiting for the stream is not a failure: the EventStream
// watch brings the consumer back when the stream becomes Ready.
func (r *EventConsumerReconciler) reconcileStreamDependency(ctx context.Context, evc *eventsv1.EventConsumer) (*eventsv1.EventStream, error) {
	conds := &evc.Status.Conditions
	notReady := func(msg string) error {
		setCondition(conds, eventsv1.ConditionStreamReady, metav1.ConditionFalse, evc.Generation, r.clock().Now(), eventsv1.ReasonStreamNotReady, msg)
		return newStepError(waiting, eventsv1.ReasonStreamNotReady, msg)
	}
	evs := &eventsv1.EventStream{}
	err := r.Get(ctx, types.NamespacedName{Namespace: evc.Namespace, Name: evc.Spec.StreamRef.Name}, evs)
	switch {
	case client.IgnoreNotFound(err) != nil:
		return nil, err // the cache failed: retried, status untouched
	case err != nil:
		return nil, notReady(fmt.Sprintf("EventStream %q does not exist in namespace %s", evc.Spec.StreamRef.Name, evc.Namespace))
	case !evs.DeletionTimestamp.IsZero():
		return nil, notReady(fmt.Sprintf("EventStream %q is being deleted", evs.Name))
	}
	if c := meta.FindStatusCondition(evs.Status.Conditions, eventsv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		why := "not reconciled yet"
		if c != nil {
			why = c.Reason + ": " + c.Message
		}
		return nil, notReady(fmt.Sprintf("EventStream %q is not Ready (%s)", evs.Name, why))
	}
	setCondition(conds, eventsv1.ConditionStreamReady, metav1.ConditionTrue, evc.Generation, r.clock().Now(), eventsv1.ReasonStreamReady,
		fmt.Sprintf("EventStream %q is Ready", evs.Name))
	evc.Status.StreamName = evs.JetStreamName()
	return evs, nil
}

// reconcileConsumer translates the spec and makes the consumer match it
// (ensure), recording its name and state. A stream missing from JetStream
// is waited for: the stream controller recreates it and its CREATED
// advisory brings this consumer back.
func (r *EventConsumerReconciler) reconcileConsumer(ctx context.Context, js jetstream.JetStream, evc *eventsv1.EventConsumer, evs *eventsv1.EventStream) (stepResult, error) {
	desired, err := consumerConfig(evc)
	if err != nil {
		return stepResult{}, classify(err)
	}
	id := consumerID(evc, evs.JetStreamName())
	got, err := ensure(ctx, &r.reconciler, consumerType{}, js, id, desired,
		newClaimant("EventConsumer", evc.Namespace, evc.Name, evc.Annotations), evc.Status.ConsumerName != "", evc)
	if got.reason == eventsv1.ReasonCreated && errors.Is(err, events.ErrNotFound) {
		msg := fmt.Sprintf("stream %s does not exist in JetStream yet", id.stream)
		setCondition(&evc.Status.Conditions, eventsv1.ConditionStreamReady, metav1.ConditionFalse, evc.Generation, r.clock().Now(),
			eventsv1.ReasonStreamNotReady, msg)
		return stepResult{}, newStepError(waiting, eventsv1.ReasonStreamNotReady, msg)
	}
	if err != nil {
		return stepResult{}, classify(err)
	}
	// Set once the consumer is known to exist: the finalizer relies on it.
	evc.Status.ConsumerName = id.consumer
	evc.Status.State = consumerState(got.info, evc.Status.State)
	res := stepResult{reason: got.reason, message: readyMessage(got.reason, id)}
	if got.info.Paused && got.info.PauseRemaining > 0 {
		// status.state.paused turns false when the pause ends: look then.
		res.requeueAfter = got.info.PauseRemaining + time.Second
	}
	return res, nil
}

func consumerState(info *jetstream.ConsumerInfo, prev *eventsv1.EventConsumerState) *eventsv1.EventConsumerState {
	st := &eventsv1.EventConsumerState{
		NumPending:     int64(info.NumPending),
		NumAckPending:  int64(info.NumAckPending),
		NumRedelivered: int64(info.NumRedelivered),
		NumWaiting:     int64(info.NumWaiting),
		Paused:         info.Paused,
	}
	if prev != nil {
		st.DeadLettered = prev.DeadLettered
	}
	return st
}

// reconcileDeadLetterStorage checks that some stream captures the
// consumer's dead-letter subjects and sets DeadLetterStored. A consumer
// whose dead letters would be lost exists and matches its spec, but is not
// Ready: it is Stalled (DeadLetterNotStored) until a stream captures the
// subject — only a change elsewhere (a new stream, or spec.deadLetter) can
// fix it, and any stream change brings the consumer back (requestsForTrigger).
func (r *EventConsumerReconciler) reconcileDeadLetterStorage(ctx context.Context, js jetstream.JetStream, evc *eventsv1.EventConsumer, evs *eventsv1.EventStream) error {
	set := func(status metav1.ConditionStatus, reason, msg string) {
		setCondition(&evc.Status.Conditions, eventsv1.ConditionDeadLetterStored, status, evc.Generation, r.clock().Now(), reason, msg)
	}
	if evc.Spec.DeadLetter == nil {
		set(metav1.ConditionTrue, eventsv1.ReasonNoDeadLetter, "the consumer has no spec.deadLetter")
		return nil
	}
	subject, stored, err := r.cachedDeadLetterStored(ctx, js, evc, evs)
	if err != nil {
		return err
	}
	if !stored {
		msg := fmt.Sprintf("no stream captures the dead-letter subject %s: dead letters would be lost; "+
			"create a stream for it (DLQ_EVENTS captures dlq.>) or change spec.deadLetter.subject", subject)
		set(metav1.ConditionFalse, eventsv1.ReasonDeadLetterNotStored, msg)
		return newStepError(terminal, eventsv1.ReasonDeadLetterNotStored, msg)
	}
	set(metav1.ConditionTrue, eventsv1.ReasonDeadLetterStored, "a stream captures every dead-letter subject of the consumer")
	return nil
}

// cachedDeadLetterStored answers deadLetterStored from the cache while
// neither the consumer's spec nor the set of streams changed, so that a
// resync costs no extra JetStream request.
func (r *EventConsumerReconciler) cachedDeadLetterStored(ctx context.Context, js jetstream.JetStream, evc *eventsv1.EventConsumer, evs *eventsv1.EventStream) (string, bool, error) {
	if r.StreamsEpoch == nil {
		return deadLetterStored(ctx, js, evc, evs)
	}
	key := client.ObjectKeyFromObject(evc)
	epoch := r.StreamsEpoch()
	if v, ok := r.dlqChecks.Load(key); ok {
		if c := v.(dlqCheck); c.generation == evc.Generation && c.epoch == epoch {
			return c.subject, c.stored, nil
		}
	}
	subject, stored, err := deadLetterStored(ctx, js, evc, evs)
	if err == nil {
		r.dlqChecks.Store(key, dlqCheck{generation: evc.Generation, epoch: epoch, subject: subject, stored: stored})
	}
	return subject, stored, err
}

// deadLetterStored checks that some stream captures the consumer's
// dead-letter subject(s). It returns the first subject nothing captures. A
// failed lookup is NatsUnavailable, retried with backoff.
func deadLetterStored(ctx context.Context, js jetstream.JetStream, evc *eventsv1.EventConsumer, evs *eventsv1.EventStream) (string, bool, error) {
	originals := evc.Spec.FilterSubjects
	if len(originals) == 0 {
		originals = evs.Spec.Subjects
	}
	seen := map[string]bool{}
	for _, o := range originals {
		subject := evc.DeadLetterSubject(o)
		if seen[subject] {
			continue
		}
		seen[subject] = true
		_, err := call(ctx, "stream_names", func(ctx context.Context) (string, error) {
			return js.StreamNameBySubject(ctx, subject)
		})
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return subject, false, nil
		}
		if err != nil {
			return "", false, &stepError{reason: eventsv1.ReasonNatsUnavailable, kind: transient, err: err,
				message: fmt.Sprintf("NATS JetStream is unreachable, retrying with backoff: finding the stream for dead-letter subject %s: %v", subject, err)}
		}
	}
	return "", true, nil
}

// release deletes or releases (by the deletion policy) the consumer of a
// deleted EventConsumer. The consumer lives where its stream does (its
// connection and JetStream domain); with the EventStream gone, that is the
// default connection's own JetStream or nowhere.
func (r *EventConsumerReconciler) release(ctx context.Context, evc *eventsv1.EventConsumer) error {
	if evc.Status.StreamName == "" || evc.Status.ConsumerName == "" {
		return nil // never created
	}
	var conn *eventsv1.ConnectionSpec
	domain := ""
	evs := &eventsv1.EventStream{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: evc.Namespace, Name: evc.Spec.StreamRef.Name}, evs); err == nil {
		conn, domain = evs.Spec.Connection, evs.Spec.Domain
	}
	js, err := r.jetStreamFor(ctx, evc.Namespace, conn, domain, userKey("EventConsumer", evc))
	if err != nil {
		return err
	}
	return release(ctx, &r.reconciler, consumerType{}, js, consumerID(evc, evc.Status.StreamName), evc.OwnerMarker(), evc.Spec.DeletionPolicy, evc)
}

// forget drops what the operator keeps about a deleted EventConsumer: its
// connection, its cached dead-letter check and its dead-lettered count.
func (r *EventConsumerReconciler) forget(ctx context.Context, evc *eventsv1.EventConsumer) {
	r.releaseConnection(userKey("EventConsumer", evc))
	r.dlqChecks.Delete(client.ObjectKeyFromObject(evc))
	if r.DeadLetters != nil {
		// A count left behind (NATS unreachable, or an increment racing
		// with this) does no harm: it carries this resource's UID, which a
		// new resource of the same name does not continue.
		if err := r.DeadLetters.Forget(ctx, client.ObjectKeyFromObject(evc)); err != nil {
			logf.FromContext(ctx).Info("cannot delete the dead-letter count; leaving it", "error", err.Error())
		}
	}
}

// SetupWithManager registers the controller, its indexes, the EventStream
// watch and the trigger source.
func (r *EventConsumerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(context.Background(), &eventsv1.EventConsumer{}, streamRefIndex,
		func(o client.Object) []string { return []string{o.(*eventsv1.EventConsumer).Spec.StreamRef.Name} }); err != nil {
		return err
	}
	if err := idx.IndexField(context.Background(), &eventsv1.EventConsumer{}, consumerNameIndex,
		func(o client.Object) []string { return []string{o.(*eventsv1.EventConsumer).JetStreamName()} }); err != nil {
		return err
	}
	b := r.controllerFor(mgr, &eventsv1.EventConsumer{}, "eventconsumer").
		Watches(&eventsv1.EventStream{}, handler.EnqueueRequestsFromMapFunc(r.consumersOfStream),
			builder.WithPredicates(streamReadinessChanged{}))
	return watchTriggers(b, r.Triggers, r.requestsForTrigger).Complete(r)
}

// consumersOfStream maps an EventStream to the EventConsumers that use it.
func (r *EventConsumerReconciler) consumersOfStream(ctx context.Context, obj client.Object) []ctrl.Request {
	list := &eventsv1.EventConsumerList{}
	if err := r.List(ctx, list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{streamRefIndex: obj.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "listing EventConsumers of an EventStream")
		return nil
	}
	return consumerRequests(list.Items, func(*eventsv1.EventConsumer) bool { return true })
}

// requestsForTrigger maps a trigger (see consumerTrigger, directTrigger) to
// EventConsumers.
func (r *EventConsumerReconciler) requestsForTrigger(ctx context.Context, obj client.Object) []ctrl.Request {
	if obj.GetLabels()[triggerDirectLabel] != "" {
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}}}
	}
	stream, consumer := obj.GetLabels()[triggerStreamLabel], obj.GetName()
	list := &eventsv1.EventConsumerList{}
	if !r.listByIndex(ctx, list, consumerNameIndex, consumer) {
		return nil
	}
	return consumerRequests(list.Items, func(c *eventsv1.EventConsumer) bool { return triggerConcerns(stream, c) })
}

// triggerConcerns says whether a trigger about stream (or All) concerns the
// consumer c. Status.StreamName is empty until the stream was first found;
// such consumers are included, and so are those waiting for a stream to
// store their dead letters, which any stream may be.
func triggerConcerns(stream string, c *eventsv1.EventConsumer) bool {
	return stream == All || c.Status.StreamName == "" || c.Status.StreamName == stream ||
		meta.IsStatusConditionFalse(c.Status.Conditions, eventsv1.ConditionDeadLetterStored)
}

func consumerRequests(items []eventsv1.EventConsumer, keep func(*eventsv1.EventConsumer) bool) []ctrl.Request {
	reqs := make([]ctrl.Request, 0, len(items))
	for i := range items {
		if keep(&items[i]) {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&items[i])})
		}
	}
	return reqs
}

// streamReadinessChanged passes EventStream events that can change what its
// consumers see: creation, deletion, and a change of the Ready status or the
// JetStream name — not the state counters refreshed at every resync.
type streamReadinessChanged struct{ predicate.Funcs }

func (streamReadinessChanged) Update(e event.UpdateEvent) bool {
	o, ok1 := e.ObjectOld.(*eventsv1.EventStream)
	n, ok2 := e.ObjectNew.(*eventsv1.EventStream)
	if !ok1 || !ok2 {
		return true
	}
	ready := func(s *eventsv1.EventStream) metav1.ConditionStatus {
		if c := meta.FindStatusCondition(s.Status.Conditions, eventsv1.ConditionReady); c != nil {
			return c.Status
		}
		return ""
	}
	return ready(o) != ready(n) || o.Status.StreamName != n.Status.StreamName ||
		o.DeletionTimestamp.IsZero() != n.DeletionTimestamp.IsZero()
}
