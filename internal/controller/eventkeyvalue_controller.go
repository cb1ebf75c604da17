package controller

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// keyValueStreamIndex indexes EventKeyValues by the name of their bucket's
// stream (KV_<bucket>), so that a stream advisory finds its resources.
const keyValueStreamIndex = "keyValueStream"

// EventKeyValueReconciler makes a JetStream KeyValue bucket match each
// EventKeyValue, through the same engine as streams (ensure, release).
type EventKeyValueReconciler struct {
	reconciler
	// Triggers, when set, receives the stream names (KV_<bucket>) whose
	// resources must be reconciled now (advisories, the deletion audit,
	// reconnects).
	Triggers <-chan event.GenericEvent
}

// +kubebuilder:rbac:groups=events.giia.io,resources=eventkeyvalues,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventkeyvalues/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventkeyvalues/finalizers,verbs=update

// Reconcile reads the resource, makes the bucket match it and writes status
// only when status changed.
func (r *EventKeyValueReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileObject(ctx, &r.reconciler, req, &eventsv1.EventKeyValue{}, r.kind())
}

func (r *EventKeyValueReconciler) kind() kind[*eventsv1.EventKeyValue] {
	return kind[*eventsv1.EventKeyValue]{
		status: func(kv *eventsv1.EventKeyValue) statusRef {
			return statusRef{&kv.Status.Conditions, &kv.Status.ObservedGeneration}
		},
		steps: func(ctx context.Context, kv *eventsv1.EventKeyValue) (stepResult, error) {
			js, err := r.reconcileConnection(ctx, kv.Namespace, kv.Spec.Connection, kv.Spec.Domain, userKey("EventKeyValue", kv))
			if err != nil {
				return stepResult{}, err
			}
			return r.reconcileBucket(ctx, js, kv)
		},
		finalizer: finalizer[*eventsv1.EventKeyValue]{
			what:   func(kv *eventsv1.EventKeyValue) string { return keyValueID(kv.BucketName()).String() },
			policy: func(kv *eventsv1.EventKeyValue) eventsv1.DeletionPolicy { return kv.Spec.DeletionPolicy },
			release: func(ctx context.Context, kv *eventsv1.EventKeyValue) error {
				if kv.Status.BucketName == "" {
					return nil // never seen to exist: nothing to release
				}
				js, err := r.jetStreamFor(ctx, kv.Namespace, kv.Spec.Connection, kv.Spec.Domain, userKey("EventKeyValue", kv))
				if err != nil {
					return err
				}
				return release(ctx, &r.reconciler, keyValueType{}, js, keyValueID(kv.Status.BucketName), kv.OwnerMarker(), kv.Spec.DeletionPolicy, kv)
			},
			done: func(_ context.Context, kv *eventsv1.EventKeyValue) { r.releaseConnection(userKey("EventKeyValue", kv)) },
		},
	}
}

// reconcileBucket translates the spec and makes the bucket match it,
// recording its name and state from the INFO ensure read.
func (r *EventKeyValueReconciler) reconcileBucket(ctx context.Context, js jetstream.JetStream, kv *eventsv1.EventKeyValue) (stepResult, error) {
	desired, err := keyValueConfig(kv)
	if err != nil {
		return stepResult{}, classify(err)
	}
	if err := r.checkStreamSources(kv.Spec.Connection, kv.Spec.Mirror, kv.Spec.Sources); err != nil {
		return stepResult{}, classify(err)
	}
	id := keyValueID(kv.BucketName())
	got, err := ensure(ctx, &r.reconciler, keyValueType{}, js, id, desired,
		newClaimant("EventKeyValue", kv.Namespace, kv.Name, kv.Annotations), kv.Status.BucketName != "", kv)
	if err != nil {
		return stepResult{}, classify(err)
	}
	kv.Status.BucketName = id.bucket // set once it exists: the finalizer relies on it
	st := got.info.State
	kv.Status.State = &eventsv1.EventKeyValueState{Values: int64(st.Msgs), Bytes: int64(st.Bytes), Keys: int64(st.NumSubjects)}
	return stepResult{reason: got.reason, message: readyMessage(got.reason, id)}, nil
}

// SetupWithManager registers the controller, the stream-name index and the
// trigger source.
func (r *EventKeyValueReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &eventsv1.EventKeyValue{}, keyValueStreamIndex,
		func(o client.Object) []string { return []string{o.(*eventsv1.EventKeyValue).StreamName()} }); err != nil {
		return err
	}
	return watchTriggers(r.controllerFor(mgr, &eventsv1.EventKeyValue{}, "eventkeyvalue"), r.Triggers,
		func(ctx context.Context, obj client.Object) []ctrl.Request {
			list := &eventsv1.EventKeyValueList{}
			if !r.listByIndex(ctx, list, keyValueStreamIndex, obj.GetName()) {
				return nil
			}
			reqs := make([]ctrl.Request, 0, len(list.Items))
			for i := range list.Items {
				reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
			return reqs
		}).Complete(r)
}
