package controller

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// objectStoreStreamIndex indexes EventObjectStores by the name of their
// bucket's stream (OBJ_<bucket>).
const objectStoreStreamIndex = "objectStoreStream"

// EventObjectStoreReconciler makes a JetStream ObjectStore bucket match each
// EventObjectStore, through the same engine as streams.
type EventObjectStoreReconciler struct {
	reconciler
	// Triggers, when set, receives the stream names (OBJ_<bucket>) whose
	// resources must be reconciled now.
	Triggers <-chan event.GenericEvent
}

// +kubebuilder:rbac:groups=events.giia.io,resources=eventobjectstores,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventobjectstores/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventobjectstores/finalizers,verbs=update

// Reconcile reads the resource, makes the bucket match it and writes status
// only when status changed.
func (r *EventObjectStoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileObject(ctx, &r.reconciler, req, &eventsv1.EventObjectStore{}, r.kind())
}

func (r *EventObjectStoreReconciler) kind() kind[*eventsv1.EventObjectStore] {
	return kind[*eventsv1.EventObjectStore]{
		status: func(o *eventsv1.EventObjectStore) statusRef {
			return statusRef{&o.Status.Conditions, &o.Status.ObservedGeneration}
		},
		steps: func(ctx context.Context, o *eventsv1.EventObjectStore) (stepResult, error) {
			js, err := r.reconcileConnection(ctx, o.Namespace, o.Spec.Connection, userKey("EventObjectStore", o))
			if err != nil {
				return stepResult{}, err
			}
			return r.reconcileBucket(ctx, js, o)
		},
		finalizer: finalizer[*eventsv1.EventObjectStore]{
			what:   func(o *eventsv1.EventObjectStore) string { return objectStoreID(o.BucketName()).String() },
			policy: func(o *eventsv1.EventObjectStore) eventsv1.DeletionPolicy { return o.Spec.DeletionPolicy },
			release: func(ctx context.Context, o *eventsv1.EventObjectStore) error {
				if o.Status.BucketName == "" {
					return nil // never seen to exist: nothing to release
				}
				js, err := r.jetStreamFor(ctx, o.Namespace, o.Spec.Connection, userKey("EventObjectStore", o))
				if err != nil {
					return err
				}
				return release(ctx, &r.reconciler, objectStoreType{}, js, objectStoreID(o.Status.BucketName), o.OwnerMarker(), o.Spec.DeletionPolicy, o)
			},
			done: func(_ context.Context, o *eventsv1.EventObjectStore) {
				r.releaseConnection(userKey("EventObjectStore", o))
			},
		},
	}
}

// reconcileBucket translates the spec and makes the bucket match it,
// recording its name and state: bytes and sealed from the INFO ensure read,
// the object count from one batched read of the bucket's metadata entries.
func (r *EventObjectStoreReconciler) reconcileBucket(ctx context.Context, js jetstream.JetStream, o *eventsv1.EventObjectStore) (stepResult, error) {
	desired, err := objectStoreConfig(o)
	if err != nil {
		return stepResult{}, classify(err)
	}
	id := objectStoreID(o.BucketName())
	got, err := ensure(ctx, &r.reconciler, objectStoreType{}, js, id, desired,
		newClaimant("EventObjectStore", o.Namespace, o.Name, o.Annotations), o.Status.BucketName != "", o)
	if err != nil {
		return stepResult{}, classify(err)
	}
	o.Status.BucketName = id.bucket // set once it exists: the finalizer relies on it
	objects, err := call(ctx, "count_objects", func(ctx context.Context) (int64, error) {
		return admin.CountObjects(ctx, js, id.bucket)
	})
	if err != nil {
		return stepResult{}, classify(err)
	}
	o.Status.State = &eventsv1.EventObjectStoreState{Objects: objects, Bytes: int64(got.info.State.Bytes), Sealed: got.info.Config.Sealed}
	return stepResult{reason: got.reason, message: readyMessage(got.reason, id)}, nil
}

// SetupWithManager registers the controller, the stream-name index and the
// trigger source.
func (r *EventObjectStoreReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &eventsv1.EventObjectStore{}, objectStoreStreamIndex,
		func(o client.Object) []string { return []string{o.(*eventsv1.EventObjectStore).StreamName()} }); err != nil {
		return err
	}
	return watchTriggers(r.controllerFor(mgr, &eventsv1.EventObjectStore{}, "eventobjectstore"), r.Triggers,
		func(ctx context.Context, obj client.Object) []ctrl.Request {
			list := &eventsv1.EventObjectStoreList{}
			if !r.listByIndex(ctx, list, objectStoreStreamIndex, obj.GetName()) {
				return nil
			}
			reqs := make([]ctrl.Request, 0, len(list.Items))
			for i := range list.Items {
				reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
			}
			return reqs
		}).Complete(r)
}
