package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
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

// Reconcile is level-triggered and idempotent, like the stream's.
func (r *EventConsumerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	evc := &eventsv1.EventConsumer{}
	if err := r.Get(ctx, req.NamespacedName, evc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !evc.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, evc)
	}
	if err := r.ensureFinalizer(ctx, evc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	orig := evc.DeepCopy()
	result, syncErr := r.sync(ctx, evc)
	r.setDeadLettered(evc)
	err := r.patchStatus(ctx, evc, orig, !equality.Semantic.DeepEqual(orig.Status, evc.Status))
	if err != nil {
		return ctrl.Result{}, errors.Join(syncErr, err)
	}
	return result, syncErr
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

func (r *EventConsumerReconciler) sync(ctx context.Context, evc *eventsv1.EventConsumer) (ctrl.Result, error) {
	gen := evc.Generation
	name := evc.JetStreamName()
	evc.Status.ObservedGeneration = gen
	fail := func(err error) (ctrl.Result, error) {
		reason, transient := failureReason(err)
		msg := failureMessage(reason, err)
		setReady(&evc.Status.Conditions, gen, metav1.ConditionFalse, reason, msg)
		if transient {
			return ctrl.Result{}, err
		}
		r.event(evc, corev1.EventTypeWarning, reason, "Reconcile", msg)
		return ctrl.Result{RequeueAfter: r.resync()}, nil
	}
	// Waiting for the stream is not a failure: the EventStream watch brings
	// the consumer back when the stream becomes Ready.
	waitForStream := func(msg string) (ctrl.Result, error) {
		setReady(&evc.Status.Conditions, gen, metav1.ConditionFalse, eventsv1.ReasonStreamNotReady, msg)
		return ctrl.Result{RequeueAfter: r.resync()}, nil
	}

	evs := &eventsv1.EventStream{}
	err := r.Get(ctx, types.NamespacedName{Namespace: evc.Namespace, Name: evc.Spec.StreamRef.Name}, evs)
	switch {
	case client.IgnoreNotFound(err) != nil:
		return ctrl.Result{}, err
	case err != nil:
		return waitForStream(fmt.Sprintf("EventStream %q does not exist in namespace %s", evc.Spec.StreamRef.Name, evc.Namespace))
	case !evs.DeletionTimestamp.IsZero():
		return waitForStream(fmt.Sprintf("EventStream %q is being deleted", evs.Name))
	}
	if c := meta.FindStatusCondition(evs.Status.Conditions, eventsv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		why := "not reconciled yet"
		if c != nil {
			why = c.Reason + ": " + c.Message
		}
		return waitForStream(fmt.Sprintf("EventStream %q is not Ready (%s)", evs.Name, why))
	}
	stream := evs.JetStreamName()
	evc.Status.StreamName = stream

	desired, err := consumerConfig(evc)
	if err != nil {
		return fail(err)
	}
	js, err := r.jetStreamFor(ctx, evs.Namespace, evs.Spec.Connection, userKey("EventConsumer", evc))
	if err != nil {
		return fail(err)
	}
	create := func() (*jetstream.ConsumerInfo, error) {
		r.expectOwnWrite(stream, name)
		return call(ctx, "create_consumer", func(ctx context.Context) (*jetstream.ConsumerInfo, error) {
			return admin.CreateConsumer(ctx, js, stream, desired)
		})
	}
	var info *jetstream.ConsumerInfo
	created := false
	if evc.Status.ConsumerName == "" {
		// Never seen: most likely new, so create it straight away (one
		// request instead of two). One that exists with another
		// configuration is refused (ErrExists) and read instead.
		info, err = create()
		created = err == nil
		if errors.Is(err, events.ErrExists) {
			info, err = r.getConsumer(ctx, js, stream, name)
		}
	} else {
		info, err = r.getConsumer(ctx, js, stream, name)
	}
	var reason, action string
	switch {
	case created:
		reason, action = eventsv1.ReasonCreated, "Create"
		r.event(evc, corev1.EventTypeNormal, reason, action, fmt.Sprintf("consumer %s created on stream %s", name, stream))
	case errors.Is(err, events.ErrNotFound):
		info, err = create()
		if errors.Is(err, events.ErrNotFound) {
			// The stream itself is missing; the stream controller recreates
			// it and its CREATED advisory brings this consumer back.
			return waitForStream(fmt.Sprintf("stream %s does not exist in JetStream yet", stream))
		}
		if err != nil {
			return fail(err)
		}
		reason, action = eventsv1.ReasonCreated, "Create"
		r.event(evc, corev1.EventTypeNormal, reason, action, fmt.Sprintf("consumer %s created on stream %s", name, stream))
	case err != nil:
		return fail(err)
	default:
		adopting, err := r.Adopt.claim(newClaimant("EventConsumer", evc.Namespace, evc.Name, evc.Annotations),
			"consumer "+name+" on stream "+stream, info.Config.Metadata)
		if err != nil {
			return fail(err)
		}
		diff := admin.DiffConsumer(desired, info.Config)
		if len(diff) == 0 {
			reason = eventsv1.ReasonInSync
			break
		}
		if err := admin.CheckConsumerUpdate(desired, info.Config); err != nil {
			return fail(err)
		}
		logf.FromContext(ctx).Info("updating consumer", "stream", stream, "consumer", name, "fields", diff, "adopt", adopting)
		info, err = call(ctx, "update_consumer", func(ctx context.Context) (*jetstream.ConsumerInfo, error) {
			return admin.UpdateConsumer(ctx, js, stream, desired)
		})
		if err != nil {
			return fail(err)
		}
		reason, action = eventsv1.ReasonUpdated, "Update"
		if adopting {
			reason, action = eventsv1.ReasonAdopted, "Adopt"
		}
		r.event(evc, corev1.EventTypeNormal, reason, action, fmt.Sprintf("consumer %s on stream %s: %v", name, stream, diff))
	}
	// Set once the consumer is known to exist: finalize relies on it.
	evc.Status.ConsumerName = name
	evc.Status.State = consumerState(info, evc.Status.State)

	if subject, stored, err := r.cachedDeadLetterStored(ctx, js, evc, evs); err != nil {
		return fail(err)
	} else if !stored {
		setReady(&evc.Status.Conditions, gen, metav1.ConditionFalse, eventsv1.ReasonDeadLetterNotStored,
			fmt.Sprintf("no stream captures the dead-letter subject %s: dead letters would be lost; create a stream for it (DLQ_EVENTS captures dlq.>) or change spec.deadLetter.subject", subject))
		return ctrl.Result{RequeueAfter: r.resync()}, nil
	}
	setReadyTrue(&evc.Status.Conditions, gen, reason, consumerReadyMessage(reason, name, stream))
	return ctrl.Result{RequeueAfter: r.resync()}, nil
}

func consumerReadyMessage(reason, name, stream string) string {
	what := "consumer " + name + " on stream " + stream
	switch reason {
	case eventsv1.ReasonCreated:
		return what + " created"
	case eventsv1.ReasonUpdated:
		return what + " updated to match the spec"
	case eventsv1.ReasonAdopted:
		return "existing " + what + " adopted"
	}
	return what + " matches the spec"
}

func consumerState(info *jetstream.ConsumerInfo, prev *eventsv1.EventConsumerState) *eventsv1.EventConsumerState {
	st := &eventsv1.EventConsumerState{
		NumPending:     int64(info.NumPending),
		NumAckPending:  int64(info.NumAckPending),
		NumRedelivered: int64(info.NumRedelivered),
		NumWaiting:     int64(info.NumWaiting),
	}
	if prev != nil {
		st.DeadLettered = prev.DeadLettered
	}
	return st
}

// cachedDeadLetterStored answers deadLetterStored from the cache while
// neither the consumer's spec nor the set of streams changed, so that a
// resync costs no extra JetStream request.
func (r *EventConsumerReconciler) cachedDeadLetterStored(ctx context.Context, js jetstream.JetStream, evc *eventsv1.EventConsumer, evs *eventsv1.EventStream) (string, bool, error) {
	if r.StreamsEpoch == nil {
		return r.deadLetterStored(ctx, js, evc, evs)
	}
	key := client.ObjectKeyFromObject(evc)
	epoch := r.StreamsEpoch()
	if v, ok := r.dlqChecks.Load(key); ok {
		if c := v.(dlqCheck); c.generation == evc.Generation && c.epoch == epoch {
			return c.subject, c.stored, nil
		}
	}
	subject, stored, err := r.deadLetterStored(ctx, js, evc, evs)
	if err == nil {
		r.dlqChecks.Store(key, dlqCheck{generation: evc.Generation, epoch: epoch, subject: subject, stored: stored})
	}
	return subject, stored, err
}

// deadLetterStored checks that some stream captures the consumer's
// dead-letter subject(s). It returns the first subject nothing captures.
func (r *EventConsumerReconciler) deadLetterStored(ctx context.Context, js jetstream.JetStream, evc *eventsv1.EventConsumer, evs *eventsv1.EventStream) (string, bool, error) {
	if evc.Spec.DeadLetter == nil {
		return "", true, nil
	}
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
			return "", false, &events.OpError{Op: "find stream for subject", Name: subject, Kind: events.ErrConnection, Err: err}
		}
	}
	return "", true, nil
}

func (r *EventConsumerReconciler) getConsumer(ctx context.Context, js jetstream.JetStream, stream, name string) (*jetstream.ConsumerInfo, error) {
	return call(ctx, "consumer_info", func(ctx context.Context) (*jetstream.ConsumerInfo, error) {
		return admin.GetConsumerInfo(ctx, js, stream, name)
	})
}

// finalize handles a deleted EventConsumer according to its deletion policy.
// A consumer whose stream is gone is gone too.
func (r *EventConsumerReconciler) finalize(ctx context.Context, evc *eventsv1.EventConsumer) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(evc, eventsv1.Finalizer) {
		return ctrl.Result{}, nil
	}
	err := r.release(ctx, evc)
	if connectionUnresolvable(err) {
		// The server cannot be determined at all (per-resource connections
		// disabled or refused, Secret gone): waiting would block the
		// deletion forever.
		r.event(evc, corev1.EventTypeWarning, "NotReleased", "Delete",
			fmt.Sprintf("consumer %s left in place: %v", evc.JetStreamName(), err))
		err = nil
	}
	if err != nil {
		orig := evc.DeepCopy()
		reason, _ := failureReason(err)
		msg := fmt.Sprintf("deleting (policy %s): %s", evc.Spec.DeletionPolicy, failureMessage(reason, err))
		setReady(&evc.Status.Conditions, evc.Generation, metav1.ConditionFalse, eventsv1.ReasonDeleting, msg)
		return ctrl.Result{}, errors.Join(err, r.patchStatus(ctx, evc, orig, !equality.Semantic.DeepEqual(orig.Status, evc.Status)))
	}
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
	return ctrl.Result{}, r.removeFinalizer(ctx, evc)
}

func (r *EventConsumerReconciler) release(ctx context.Context, evc *eventsv1.EventConsumer) error {
	stream, name := evc.Status.StreamName, evc.JetStreamName()
	if stream == "" || evc.Status.ConsumerName == "" {
		return nil // never created
	}
	// The consumer lives where its stream does; with the EventStream gone,
	// that is the default connection or nowhere.
	var conn *eventsv1.ConnectionSpec
	evs := &eventsv1.EventStream{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: evc.Namespace, Name: evc.Spec.StreamRef.Name}, evs); err == nil {
		conn = evs.Spec.Connection
	}
	js, err := r.jetStreamFor(ctx, evc.Namespace, conn, userKey("EventConsumer", evc))
	if err != nil {
		return err
	}
	info, err := r.getConsumer(ctx, js, stream, name)
	if errors.Is(err, events.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if owner := info.Config.Metadata[eventsv1.OwnerMetadataKey]; owner != evc.OwnerMarker() {
		if owner != "" {
			r.event(evc, corev1.EventTypeNormal, "NotDeleted", "Delete",
				fmt.Sprintf("consumer %s on stream %s is owned by %s and was left alone", name, stream, owner))
		}
		return nil
	}
	if evc.Spec.DeletionPolicy == eventsv1.DeletionPolicyRetain {
		_, err = call(ctx, "update_consumer", func(ctx context.Context) (struct{}, error) {
			return struct{}{}, admin.UpdateConsumerMetadata(ctx, js, stream, name, releaseMarker(evc.OwnerMarker()), eventsv1.OwnerMetadataKey, eventsv1.UIDMetadataKey)
		})
		if err == nil {
			r.event(evc, corev1.EventTypeNormal, "Retained", "Delete", fmt.Sprintf("consumer %s retained (deletionPolicy Retain)", name))
		}
		return ignoreStreamNotFound(err)
	}
	_, err = call(ctx, "delete_consumer", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, admin.DeleteConsumer(ctx, js, stream, name)
	})
	if err == nil {
		r.event(evc, corev1.EventTypeNormal, "Deleted", "Delete", fmt.Sprintf("consumer %s deleted from stream %s", name, stream))
	}
	return ignoreStreamNotFound(err)
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
	b := ctrl.NewControllerManagedBy(mgr).
		For(&eventsv1.EventConsumer{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{},
			predicate.LabelChangedPredicate{}, deletionPredicate{}))).
		Watches(&eventsv1.EventStream{}, handler.EnqueueRequestsFromMapFunc(r.consumersOfStream),
			builder.WithPredicates(streamReadinessChanged{})).
		Named("eventconsumer").
		WithOptions(r.controllerOptions())
	if r.Triggers != nil {
		b = b.WatchesRawSource(source.Channel(r.Triggers, handler.EnqueueRequestsFromMapFunc(r.requestsForTrigger)))
	}
	return b.Complete(r)
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
	var opts []client.ListOption
	if consumer != All {
		opts = append(opts, client.MatchingFields{consumerNameIndex: consumer})
	}
	if err := r.List(ctx, list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "listing EventConsumers for a JetStream advisory")
		return nil
	}
	return consumerRequests(list.Items, func(c *eventsv1.EventConsumer) bool {
		// Status.StreamName is empty until the stream was first found; such
		// consumers are included, and so are those waiting for a stream to
		// store their dead letters, which any stream may be.
		return stream == All || c.Status.StreamName == "" || c.Status.StreamName == stream ||
			readyReasonOf(c.Status.Conditions) == eventsv1.ReasonDeadLetterNotStored
	})
}

func readyReasonOf(conds []metav1.Condition) string {
	if c := meta.FindStatusCondition(conds, eventsv1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
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
