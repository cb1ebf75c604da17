package controller

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// streamNameIndex indexes EventStreams by the name of their JetStream stream,
// so that an advisory about a stream finds its resources.
const streamNameIndex = "jetStreamName"

// EventStreamReconciler makes a JetStream stream match each EventStream.
type EventStreamReconciler struct {
	reconciler
	// Triggers, when set, receives stream names whose resources must be
	// reconciled now (from JetStream advisories and reconnects).
	Triggers <-chan event.GenericEvent
}

// +kubebuilder:rbac:groups=events.giia.io,resources=eventstreams,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventstreams/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventstreams/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// Reconcile is level-triggered and idempotent: it reads the resource, runs
// the steps (reconcileConnection, reconcileStream) and writes status only
// when status changed.
func (r *EventStreamReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileObject(ctx, &r.reconciler, req, &eventsv1.EventStream{}, r.kind())
}

// kind hands the shared reconcile what is specific to EventStreams.
func (r *EventStreamReconciler) kind() kind[*eventsv1.EventStream] {
	return kind[*eventsv1.EventStream]{
		status: func(evs *eventsv1.EventStream) statusRef {
			return statusRef{&evs.Status.Conditions, &evs.Status.ObservedGeneration}
		},
		steps: func(ctx context.Context, evs *eventsv1.EventStream) (stepResult, error) {
			js, err := r.reconcileConnection(ctx, evs.Namespace, evs.Spec.Connection, evs.Spec.Domain, userKey("EventStream", evs))
			if err != nil {
				return stepResult{}, err
			}
			return r.reconcileStream(ctx, js, evs)
		},
		finalizer: finalizer[*eventsv1.EventStream]{
			what:   func(evs *eventsv1.EventStream) string { return streamID(evs).String() },
			policy: func(evs *eventsv1.EventStream) eventsv1.DeletionPolicy { return evs.Spec.DeletionPolicy },
			release: func(ctx context.Context, evs *eventsv1.EventStream) error {
				if evs.Status.StreamName == "" {
					// Never created (or never seen to exist): there is
					// nothing to release, and its server may never have
					// been reachable.
					return nil
				}
				js, err := r.jetStreamFor(ctx, evs.Namespace, evs.Spec.Connection, evs.Spec.Domain, userKey("EventStream", evs))
				if err != nil {
					return err
				}
				return release(ctx, &r.reconciler, streamType{}, js, streamID(evs), evs.OwnerMarker(), evs.Spec.DeletionPolicy, evs)
			},
			done: func(_ context.Context, evs *eventsv1.EventStream) { r.releaseConnection(userKey("EventStream", evs)) },
		},
	}
}

// streamID names an EventStream's JetStream stream.
func streamID(evs *eventsv1.EventStream) jsID { return jsID{stream: evs.JetStreamName()} }

// reconcileStream translates the spec and makes the stream match it
// (ensure), recording the stream's name and state.
func (r *EventStreamReconciler) reconcileStream(ctx context.Context, js jetstream.JetStream, evs *eventsv1.EventStream) (stepResult, error) {
	desired, err := streamConfig(evs)
	if err != nil {
		return stepResult{}, classify(err)
	}
	if err := r.checkStreamSources(evs.Spec.Connection, evs.Spec.Mirror, evs.Spec.Sources); err != nil {
		return stepResult{}, classify(err)
	}
	id := streamID(evs)
	got, err := ensure(ctx, &r.reconciler, streamType{}, js, id, desired,
		newClaimant("EventStream", evs.Namespace, evs.Name, evs.Annotations), evs.Status.StreamName != "", evs)
	if err != nil {
		return stepResult{}, classify(err)
	}
	// Set once the stream is known to exist: the finalizer relies on it.
	evs.Status.StreamName = id.stream
	evs.Status.State = streamState(got.info.State)
	observeStream(evs, id.stream, got.info.State, r.clock().Now())
	return stepResult{reason: got.reason, message: readyMessage(got.reason, id)}, nil
}

func streamState(s jetstream.StreamState) *eventsv1.EventStreamState {
	return &eventsv1.EventStreamState{
		Messages:      int64(s.Msgs),
		Bytes:         int64(s.Bytes),
		FirstSequence: int64(s.FirstSeq),
		LastSequence:  int64(s.LastSeq),
		Consumers:     int32(s.Consumers),
	}
}

// SetupWithManager registers the controller, the stream-name index and the
// trigger source.
func (r *EventStreamReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &eventsv1.EventStream{}, streamNameIndex,
		func(o client.Object) []string { return []string{o.(*eventsv1.EventStream).JetStreamName()} }); err != nil {
		return err
	}
	return watchTriggers(r.controllerFor(mgr, &eventsv1.EventStream{}, "eventstream"), r.Triggers, r.requestsForStream).Complete(r)
}

// requestsForStream maps a trigger (an object carrying only a stream name, or
// "*" for every stream) to the EventStreams it concerns.
func (r *EventStreamReconciler) requestsForStream(ctx context.Context, obj client.Object) []ctrl.Request {
	list := &eventsv1.EventStreamList{}
	if !r.listByIndex(ctx, list, streamNameIndex, obj.GetName()) {
		return nil
	}
	reqs := make([]ctrl.Request, 0, len(list.Items))
	for _, evs := range list.Items {
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&evs)})
	}
	return reqs
}
