package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// Reconcile is level-triggered and idempotent: it reads the resource, makes
// JetStream match it, and writes status only when status changed.
func (r *EventStreamReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	evs := &eventsv1.EventStream{}
	if err := r.Get(ctx, req.NamespacedName, evs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !evs.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, evs)
	}
	if err := r.ensureFinalizer(ctx, evs); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	orig := evs.DeepCopy()
	result, syncErr := r.sync(ctx, evs)
	if err := r.patchStatus(ctx, evs, orig, !equality.Semantic.DeepEqual(orig.Status, evs.Status)); err != nil {
		return ctrl.Result{}, errors.Join(syncErr, err)
	}
	return result, syncErr
}

// sync creates, adopts or updates the stream, and fills in evs.Status.
func (r *EventStreamReconciler) sync(ctx context.Context, evs *eventsv1.EventStream) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	gen := evs.Generation
	name := evs.JetStreamName()
	evs.Status.ObservedGeneration = gen

	fail := func(err error) (ctrl.Result, error) {
		reason, transient := failureReason(err)
		msg := failureMessage(reason, err)
		setReady(&evs.Status.Conditions, gen, metav1.ConditionFalse, reason, msg)
		if transient {
			// Returned so that the workqueue retries with exponential backoff.
			return ctrl.Result{}, err
		}
		r.event(evs, corev1.EventTypeWarning, reason, "Reconcile", msg)
		// Only a change to the spec or to JetStream can fix it: both trigger
		// a reconcile; the resync is the safety net.
		return ctrl.Result{RequeueAfter: r.resync()}, nil
	}

	desired, err := streamConfig(evs)
	if err != nil {
		return fail(err)
	}
	js, err := r.jetStreamFor(ctx, evs.Namespace, evs.Spec.Connection, userKey("EventStream", evs))
	if err != nil {
		return fail(err)
	}

	var info *jetstream.StreamInfo
	if evs.Status.StreamName == "" {
		// Never seen: most likely new, so create it straight away (one
		// request instead of two). An existing stream with another
		// configuration is refused (ErrExists) and handled below.
		info, err = r.create(ctx, js, desired)
		if err == nil {
			return r.ready(evs, info, eventsv1.ReasonCreated, "Create")
		}
		if !errors.Is(err, events.ErrExists) {
			return fail(err)
		}
	}
	info, err = r.getStream(ctx, js, name)
	var reason, action string
	switch {
	case errors.Is(err, events.ErrNotFound):
		info, err = r.create(ctx, js, desired)
		if err != nil {
			return fail(err)
		}
		reason, action = eventsv1.ReasonCreated, "Create"
	case err != nil:
		return fail(err)
	default:
		adopting, err := r.Adopt.claim(newClaimant("EventStream", evs.Namespace, evs.Name, evs.Annotations),
			"stream "+name, info.Config.Metadata)
		if err != nil {
			return fail(err)
		}
		diff := admin.DiffStream(desired, info.Config)
		if len(diff) == 0 {
			reason = eventsv1.ReasonInSync
			break
		}
		if err := admin.CheckStreamUpdate(desired, info.Config); err != nil {
			return fail(err)
		}
		log.Info("updating stream", "stream", name, "fields", diff, "adopt", adopting)
		r.expectOwnWrite(name, "")
		info, err = call(ctx, "update_stream", func(ctx context.Context) (*jetstream.StreamInfo, error) {
			return events.UpdateStream(ctx, js, desired)
		})
		if err != nil {
			return fail(err)
		}
		reason, action = eventsv1.ReasonUpdated, "Update"
		if adopting {
			reason, action = eventsv1.ReasonAdopted, "Adopt"
		}
		defer r.event(evs, corev1.EventTypeNormal, reason, action, fmt.Sprintf("stream %s: %v", name, diff))
	}
	return r.ready(evs, info, reason, action)
}

// create creates the stream, telling the advisory watcher first.
func (r *EventStreamReconciler) create(ctx context.Context, js jetstream.JetStream, desired events.StreamConfig) (*jetstream.StreamInfo, error) {
	for attempt := 0; ; attempt++ {
		r.expectOwnWrite(desired.Name, "")
		info, err := call(ctx, "create_stream", func(ctx context.Context) (*jetstream.StreamInfo, error) {
			return events.CreateStream(ctx, js, desired)
		})
		// Right after a stream is deleted, nats-server may still be removing
		// its directory and refuse a new one of the same name (10049); that
		// lasts milliseconds, so retry here rather than fail the reconcile.
		if attempt < 5 && isStoreNotReady(err) {
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-ctx.Done():
			}
		}
		return info, err
	}
}

// isStoreNotReady recognises JetStream API error 10049 ("error creating store
// for stream").
func isStoreNotReady(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == 10049
}

// ready records a stream that matches the spec.
func (r *EventStreamReconciler) ready(evs *eventsv1.EventStream, info *jetstream.StreamInfo, reason, action string) (ctrl.Result, error) {
	name := info.Config.Name
	if reason == eventsv1.ReasonCreated {
		r.event(evs, corev1.EventTypeNormal, reason, action, fmt.Sprintf("stream %s created", name))
	}
	// Set once the stream is known to exist: finalize relies on it.
	evs.Status.StreamName = name
	setReadyTrue(&evs.Status.Conditions, evs.Generation, reason, readyMessage(reason, name))
	evs.Status.State = streamState(info.State)
	return ctrl.Result{RequeueAfter: r.resync()}, nil
}

func readyMessage(reason, name string) string {
	switch reason {
	case eventsv1.ReasonCreated:
		return "stream " + name + " created"
	case eventsv1.ReasonUpdated:
		return "stream " + name + " updated to match the spec"
	case eventsv1.ReasonAdopted:
		return "existing stream " + name + " adopted"
	}
	return "stream " + name + " matches the spec"
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

// finalize handles a deleted EventStream according to its deletion policy,
// and never touches a stream another resource owns.
func (r *EventStreamReconciler) finalize(ctx context.Context, evs *eventsv1.EventStream) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(evs, eventsv1.Finalizer) {
		return ctrl.Result{}, nil
	}
	name := evs.JetStreamName()
	if evs.Status.StreamName == "" {
		// Never created (or never seen to exist): there is nothing to
		// release, and its server may never have been reachable.
		return ctrl.Result{}, r.removeFinalizer(ctx, evs)
	}
	err := r.release(ctx, evs, name)
	if connectionUnresolvable(err) {
		// The server cannot be determined at all (per-resource connections
		// disabled or refused, Secret gone): waiting would block the
		// deletion forever.
		r.event(evs, corev1.EventTypeWarning, "NotReleased", "Delete",
			fmt.Sprintf("stream %s left in place: %v", name, err))
		err = nil
	}
	if err != nil {
		orig := evs.DeepCopy()
		reason, _ := failureReason(err)
		msg := fmt.Sprintf("deleting (policy %s): %s", evs.Spec.DeletionPolicy, failureMessage(reason, err))
		setReady(&evs.Status.Conditions, evs.Generation, metav1.ConditionFalse, eventsv1.ReasonDeleting, msg)
		return ctrl.Result{}, errors.Join(err, r.patchStatus(ctx, evs, orig, !equality.Semantic.DeepEqual(orig.Status, evs.Status)))
	}
	r.releaseConnection(userKey("EventStream", evs))
	return ctrl.Result{}, r.removeFinalizer(ctx, evs)
}

// release deletes (policy Delete) or releases (policy Retain: the owner
// marker is replaced by a release marker naming this resource) the stream if
// this resource owns it.
func (r *EventStreamReconciler) release(ctx context.Context, evs *eventsv1.EventStream, name string) error {
	js, err := r.jetStreamFor(ctx, evs.Namespace, evs.Spec.Connection, userKey("EventStream", evs))
	if err != nil {
		return err
	}
	info, err := r.getStream(ctx, js, name)
	if errors.Is(err, events.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if owner := info.Config.Metadata[eventsv1.OwnerMetadataKey]; owner != evs.OwnerMarker() {
		if owner != "" {
			r.event(evs, corev1.EventTypeNormal, "NotDeleted", "Delete",
				fmt.Sprintf("stream %s is owned by %s and was left alone", name, owner))
		}
		return nil
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if evs.Spec.DeletionPolicy == eventsv1.DeletionPolicyRetain {
		err = admin.UpdateStreamMetadata(cctx, js, name, releaseMarker(evs.OwnerMarker()), eventsv1.OwnerMetadataKey, eventsv1.UIDMetadataKey)
		observe("update_stream", start, err)
		if err == nil {
			r.event(evs, corev1.EventTypeNormal, "Retained", "Delete", fmt.Sprintf("stream %s retained (deletionPolicy Retain)", name))
		}
		return client.IgnoreNotFound(ignoreStreamNotFound(err))
	}
	err = events.DeleteStream(cctx, js, name)
	observe("delete_stream", start, err)
	if err == nil {
		r.event(evs, corev1.EventTypeNormal, "Deleted", "Delete", fmt.Sprintf("stream %s deleted", name))
	}
	return ignoreStreamNotFound(err)
}

func ignoreStreamNotFound(err error) error {
	if errors.Is(err, events.ErrNotFound) {
		return nil
	}
	return err
}

func (r *EventStreamReconciler) getStream(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	return call(ctx, "stream_info", func(ctx context.Context) (*jetstream.StreamInfo, error) {
		return events.GetStreamInfo(ctx, js, name)
	})
}

// SetupWithManager registers the controller, the stream-name index and the
// trigger source.
func (r *EventStreamReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &eventsv1.EventStream{}, streamNameIndex,
		func(o client.Object) []string { return []string{o.(*eventsv1.EventStream).JetStreamName()} }); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&eventsv1.EventStream{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{},
			predicate.LabelChangedPredicate{}, deletionPredicate{}))).
		Named("eventstream").
		WithOptions(r.controllerOptions())
	if r.Triggers != nil {
		b = b.WatchesRawSource(source.Channel(r.Triggers, handler.EnqueueRequestsFromMapFunc(r.requestsForStream)))
	}
	return b.Complete(r)
}

// requestsForStream maps a trigger (an object carrying only a stream name, or
// "*" for every stream) to the EventStreams it concerns.
func (r *EventStreamReconciler) requestsForStream(ctx context.Context, obj client.Object) []ctrl.Request {
	list := &eventsv1.EventStreamList{}
	var opts []client.ListOption
	if name := obj.GetName(); name != All {
		opts = append(opts, client.MatchingFields{streamNameIndex: name})
	}
	if err := r.List(ctx, list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "listing EventStreams for a JetStream advisory")
		return nil
	}
	reqs := make([]ctrl.Request, 0, len(list.Items))
	for _, evs := range list.Items {
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&evs)})
	}
	return reqs
}

// deletionPredicate lets through updates that mark the resource deleted,
// whether or not the API server bumped its generation.
type deletionPredicate struct{ predicate.Funcs }

func (deletionPredicate) Update(e event.UpdateEvent) bool {
	return e.ObjectNew != nil && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}
