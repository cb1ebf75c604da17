package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// kind is what a reconciler of one resource kind hands the shared reconcile:
// where its status lives, its ordered steps, and how it lets go of its
// JetStream object when the resource is deleted.
type kind[T client.Object] struct {
	// status points into obj's status.
	status func(obj T) statusRef
	// steps runs the kind's steps in order, stopping at the first that
	// fails; a failure is a *stepError (any other error is returned to the
	// workqueue as it is, status untouched).
	steps func(ctx context.Context, obj T) (stepResult, error)
	// finalizer is the finalizer's part of the kind.
	finalizer finalizer[T]
}

// finalizer is how a kind releases its JetStream object.
type finalizer[T client.Object] struct {
	// what names the JetStream object in events ("stream ORDERS").
	what func(obj T) string
	// policy is the resource's deletion policy.
	policy func(obj T) eventsv1.DeletionPolicy
	// release deletes or releases the object (see release in jsobject.go).
	release func(ctx context.Context, obj T) error
	// done runs once the object is released, before the finalizer goes.
	done func(ctx context.Context, obj T)
}

// reconcileObject is the Reconcile of every kind: it reads the resource,
// finalizes it when deleted, and otherwise runs the kind's steps, with a
// deferred summarise-and-patch that writes status once, and only when it
// changed (a steady state writes nothing).
func reconcileObject[T client.Object](ctx context.Context, r *reconciler, req ctrl.Request, obj T, k kind[T]) (result ctrl.Result, retErr error) {
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			obj.SetNamespace(req.Namespace)
			obj.SetName(req.Name)
			forgetMetrics(obj)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return finalizeObject(ctx, r, obj, k)
	}
	if err := r.ensureFinalizer(ctx, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	orig := obj.DeepCopyObject().(client.Object)
	var (
		res     stepResult
		stepErr error
	)
	defer func() {
		result, retErr = r.summarizeAndPatch(ctx, obj, orig, k.status(obj), res, stepErr)
	}()
	res, stepErr = k.steps(ctx, obj)
	return ctrl.Result{}, nil
}

// summarizeAndPatch records the steps' outcome in status (summarize), writes
// status if it changed, and tells the workqueue what to do next: a transient
// failure is returned for exponential backoff; success, waiting and terminal
// failures are checked again at the resync (a terminal one with a Warning
// Event: only a change can fix it, and every change triggers a reconcile).
func (r *reconciler) summarizeAndPatch(ctx context.Context, obj, orig client.Object, st statusRef, res stepResult, err error) (ctrl.Result, error) {
	var se *stepError
	if err != nil && !errors.As(err, &se) {
		countOutcome(obj, "Error")
		return ctrl.Result{}, errors.Join(err, r.patchStatus(ctx, obj, orig))
	}
	if se != nil {
		countOutcome(obj, se.reason)
	} else {
		countOutcome(obj, res.reason)
	}
	summarize(st, obj.GetGeneration(), r.clock().Now(), res, se)
	if perr := r.patchStatus(ctx, obj, orig); perr != nil {
		return ctrl.Result{}, errors.Join(err, perr)
	}
	switch {
	case se == nil && res.requeueAfter > 0:
		return ctrl.Result{RequeueAfter: min(res.requeueAfter, r.resync())}, nil
	case se == nil, se.kind == waiting:
		return ctrl.Result{RequeueAfter: r.resync()}, nil
	case se.kind == terminal:
		r.event(obj, corev1.EventTypeWarning, se.reason, "Reconcile", se.message)
		return ctrl.Result{RequeueAfter: r.resync()}, nil
	}
	return ctrl.Result{}, se
}

// finalizeObject handles a deleted resource by its deletion policy: it
// releases the JetStream object, then removes the finalizer. A server that
// cannot be determined at all (per-resource connections disabled or
// refused, Secret gone) does not block the deletion; any other failure is
// Ready=False Deleting, retried with backoff.
func finalizeObject[T client.Object](ctx context.Context, r *reconciler, obj T, k kind[T]) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, eventsv1.Finalizer) {
		return ctrl.Result{}, nil
	}
	f := k.finalizer
	err := f.release(ctx, obj)
	if connectionUnresolvable(err) {
		r.event(obj, corev1.EventTypeWarning, "NotReleased", "Delete",
			fmt.Sprintf("%s left in place: %v", f.what(obj), err))
		err = nil
	}
	if err != nil {
		orig := obj.DeepCopyObject().(client.Object)
		msg := fmt.Sprintf("deleting (policy %s): %s", f.policy(obj), classify(err).message)
		summarize(k.status(obj), obj.GetGeneration(), r.clock().Now(), stepResult{},
			&stepError{reason: eventsv1.ReasonDeleting, message: msg, kind: transient, err: err})
		return ctrl.Result{}, errors.Join(err, r.patchStatus(ctx, obj, orig))
	}
	if f.done != nil {
		f.done(ctx, obj)
	}
	r.forgetStatusWrites(obj)
	return ctrl.Result{}, r.removeFinalizer(ctx, obj)
}

// patchStatus writes obj's status, as a merge patch against orig, only when
// it changed; a resource deleted meanwhile is not an error. Every status
// field the operator writes is computed afresh from JetStream and its
// ledger, so the patch needs no optimistic lock.
//
// orig comes from the cache, which may not hold the operator's own last
// status write yet (a reconcile right after another): a status equal to
// that stale one would not be written, and the newer one the server holds
// would stay. So the resourceVersion of each status write is remembered,
// and when orig is not that version the whole status is written, whether
// or not it differs from orig (a write the server finds unchanged is no
// write).
func (r *reconciler) patchStatus(ctx context.Context, obj, orig client.Object) error {
	resources.track(obj)
	key := statusKey(obj)
	stale := false
	if r.statusWrites != nil {
		if rv, ok := r.statusWrites.Load(key); ok && rv.(string) != orig.GetResourceVersion() {
			stale = true
		}
	}
	if !stale && equality.Semantic.DeepEqual(orig, obj) {
		return nil
	}
	patch := client.MergeFrom(orig)
	if stale {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return err
		}
		body, err := json.Marshal(map[string]any{"status": u["status"]})
		if err != nil {
			return err
		}
		patch = client.RawPatch(types.MergePatchType, body)
	}
	err := r.Status().Patch(ctx, obj, patch)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil && r.statusWrites != nil {
		r.statusWrites.Store(key, obj.GetResourceVersion())
	}
	return err
}

// forgetStatusWrites drops what patchStatus remembers of a deleted resource,
// and its metrics.
func (r *reconciler) forgetStatusWrites(obj client.Object) {
	forgetMetrics(obj)
	if r.statusWrites != nil {
		r.statusWrites.Delete(statusKey(obj))
	}
}

func statusKey(obj client.Object) string {
	return fmt.Sprintf("%T/%s/%s", obj, obj.GetNamespace(), obj.GetName())
}
