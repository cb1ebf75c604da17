package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// This file is the reconcile engine of every JetStream object the operator
// manages. A kind (EventStream, EventConsumer, EventKeyValue, ...) supplies
// only its translation (the desired configuration) and its naming (a jsID);
// the engine reads the object, creates it, adopts or refuses it by its owner
// marker (ownership.go), compares the whole managed configuration, checks
// the fields JetStream cannot change, updates it, and releases it by the
// deletion policy — with the request timeout, the metrics and the own-write
// notices of advisories.go.

// jsID names one JetStream object: a stream (consumer empty) or a consumer
// of a stream. A bucket is its stream (KV_CONFIG) with the bucket's kind
// and name, which messages use instead.
type jsID struct {
	stream, consumer string
	// bucket is the bucket's name and bucketKind "KeyValue bucket" or
	// "ObjectStore bucket" when the stream is a bucket's.
	bucket, bucketKind string
}

// String is the object as messages name it: `stream ORDERS`, `consumer
// billing on stream ORDERS`, `KeyValue bucket CONFIG`.
func (id jsID) String() string {
	if id.bucket != "" {
		return id.bucketKind + " " + id.bucket
	}
	if id.consumer == "" {
		return "stream " + id.stream
	}
	return "consumer " + id.consumer + " on stream " + id.stream
}

// jsType is one type of JetStream object (a stream, a consumer), C its
// desired configuration and I what JetStream reports about it.
type jsType[C, I any] interface {
	// name is the type's name in metrics operations ("stream": stream_info,
	// create_stream, update_stream, delete_stream).
	name() string
	get(ctx context.Context, js jetstream.JetStream, id jsID) (I, error)
	create(ctx context.Context, js jetstream.JetStream, id jsID, desired C) (I, error)
	update(ctx context.Context, js jetstream.JetStream, id jsID, desired C) (I, error)
	delete(ctx context.Context, js jetstream.JetStream, id jsID) error
	// setMetadata sets and removes keys of the object's metadata only.
	setMetadata(ctx context.Context, js jetstream.JetStream, id jsID, set map[string]string, remove ...string) error
	metadata(info I) map[string]string
	// diff names the managed fields where actual differs from desired.
	diff(desired C, info I) []string
	// checkUpdate refuses a change JetStream cannot make in place.
	checkUpdate(desired C, info I) error
	// updateAdvised: JetStream announces an update with an advisory the
	// operator listens to (so the update is an own write to expect).
	updateAdvised() bool
}

// recreateDelay is how long ensure waits before re-creating an object it
// had seen and found deleted (drift repair): longer than nats-server takes
// to finish a deletion it has already announced.
var recreateDelay = 200 * time.Millisecond

// ensured is the outcome of ensure: the object as JetStream reports it and
// the Ready reason of what was done (Created, Updated, Adopted, InSync).
type ensured[I any] struct {
	info   I
	reason string
}

// ensure makes the object id match desired for the resource obj (claimant
// c), which has seen it exist before (seen) or not. A never-seen object is
// created first (one request instead of two; one that exists is refused
// with ErrExists and read instead). An object that exists is claimed by the
// ownership rules, compared field by field, checked for changes JetStream
// cannot make, and updated. Errors are returned as they are: the calling
// step classifies them.
func ensure[C, I any](ctx context.Context, r *reconciler, t jsType[C, I], js jetstream.JetStream, id jsID,
	desired C, c claimant, seen bool, obj client.Object) (ensured[I], error) {
	if !seen {
		info, err := createJS(ctx, r, t, js, id, desired, obj)
		if err == nil || !errors.Is(err, events.ErrExists) {
			return ensured[I]{info: info, reason: eventsv1.ReasonCreated}, err
		}
	}
	info, err := getJS(ctx, r, t, js, id)
	if errors.Is(err, events.ErrNotFound) {
		if seen {
			// Deleted by someone else: nats-server sends the DELETED
			// advisory before it has finished removing the object, and a
			// re-create in that window can fail (10049, 10149) or, worse,
			// get a store whose files the deletion then removes or
			// revives (seen in e2e and in the controller suite with
			// nats-server 2.15.2). Let the deletion finish first.
			select {
			case <-time.After(recreateDelay):
			case <-ctx.Done():
				return ensured[I]{}, ctx.Err()
			}
		}
		info, err = createJS(ctx, r, t, js, id, desired, obj)
		if err == nil && seen {
			// It existed, and something other than the operator deleted it.
			driftRepairs.WithLabelValues(resourceKind(obj)).Inc()
		}
		return ensured[I]{info: info, reason: eventsv1.ReasonCreated}, err
	}
	if err != nil {
		return ensured[I]{}, err
	}
	adopting, err := r.Adopt.claim(c, id.String(), t.metadata(info))
	if err != nil {
		return ensured[I]{}, err
	}
	diff := t.diff(desired, info)
	if len(diff) == 0 {
		return ensured[I]{info: info, reason: eventsv1.ReasonInSync}, nil
	}
	if err := t.checkUpdate(desired, info); err != nil {
		return ensured[I]{}, err
	}
	logf.FromContext(ctx).Info("updating "+t.name(), "object", id.String(), "fields", diff, "adopt", adopting)
	if t.updateAdvised() {
		r.expectOwnWrite(id.stream, id.consumer)
	}
	info, err = call(ctx, "update_"+t.name(), func(ctx context.Context) (I, error) { return t.update(ctx, js, id, desired) })
	if err != nil {
		return ensured[I]{}, err
	}
	reason, action := eventsv1.ReasonUpdated, "Update"
	if adopting {
		reason, action = eventsv1.ReasonAdopted, "Adopt"
	} else if seen && observedGeneration(obj) == obj.GetGeneration() {
		// The resource did not change since it was last reconciled: the
		// object was changed outside the operator (or by an operator
		// upgrade that translates the spec differently).
		driftRepairs.WithLabelValues(resourceKind(obj)).Inc()
	}
	r.event(obj, corev1.EventTypeNormal, reason, action, fmt.Sprintf("%s: %v", id, diff))
	return ensured[I]{info: info, reason: reason}, nil
}

func getJS[C, I any](ctx context.Context, r *reconciler, t jsType[C, I], js jetstream.JetStream, id jsID) (I, error) {
	return call(ctx, t.name()+"_info", func(ctx context.Context) (I, error) { return t.get(ctx, js, id) })
}

// createJS creates the object, telling the advisory watcher first. (A
// create refused while nats-server is still removing a deleted stream's
// directories, error 10049, is retried by the library's create functions.)
func createJS[C, I any](ctx context.Context, r *reconciler, t jsType[C, I], js jetstream.JetStream, id jsID, desired C, obj client.Object) (I, error) {
	r.expectOwnWrite(id.stream, id.consumer)
	info, err := call(ctx, "create_"+t.name(), func(ctx context.Context) (I, error) { return t.create(ctx, js, id, desired) })
	if err == nil {
		r.event(obj, corev1.EventTypeNormal, eventsv1.ReasonCreated, "Create", id.String()+" created")
	}
	return info, err
}

// release handles the object id of a deleted resource (owner marker
// marker) by its deletion policy: Delete removes it, Retain replaces the
// owner marker by a release marker naming the resource. An object the
// resource does not own, or that is gone, is left alone.
func release[C, I any](ctx context.Context, r *reconciler, t jsType[C, I], js jetstream.JetStream, id jsID,
	marker string, policy eventsv1.DeletionPolicy, obj client.Object) error {
	info, err := getJS(ctx, r, t, js, id)
	if errors.Is(err, events.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if owner := t.metadata(info)[eventsv1.OwnerMetadataKey]; owner != marker {
		if owner != "" {
			r.event(obj, corev1.EventTypeNormal, "NotDeleted", "Delete",
				fmt.Sprintf("%s is owned by %s and was left alone", id, owner))
		}
		return nil
	}
	if policy == eventsv1.DeletionPolicyRetain {
		_, err = call(ctx, "update_"+t.name(), func(ctx context.Context) (struct{}, error) {
			return struct{}{}, t.setMetadata(ctx, js, id, releaseMarker(marker), eventsv1.OwnerMetadataKey, eventsv1.UIDMetadataKey)
		})
		if err == nil {
			r.event(obj, corev1.EventTypeNormal, "Retained", "Delete", id.String()+" retained (deletionPolicy Retain)")
		}
		return ignoreNotFound(err)
	}
	_, err = call(ctx, "delete_"+t.name(), func(ctx context.Context) (struct{}, error) {
		return struct{}{}, t.delete(ctx, js, id)
	})
	if err == nil {
		r.event(obj, corev1.EventTypeNormal, "Deleted", "Delete", id.String()+" deleted")
	}
	return ignoreNotFound(err)
}

// ignoreNotFound drops a JetStream not-found error (the object, or its
// stream, is gone).
func ignoreNotFound(err error) error {
	if errors.Is(err, events.ErrNotFound) {
		return nil
	}
	return err
}

// streamType is the jsType of streams.
type streamType struct{}

func (streamType) name() string { return "stream" }
func (streamType) get(ctx context.Context, js jetstream.JetStream, id jsID) (*jetstream.StreamInfo, error) {
	return events.GetStreamInfo(ctx, js, id.stream)
}
func (streamType) create(ctx context.Context, js jetstream.JetStream, _ jsID, desired events.StreamConfig) (*jetstream.StreamInfo, error) {
	return events.CreateStream(ctx, js, desired)
}
func (streamType) update(ctx context.Context, js jetstream.JetStream, _ jsID, desired events.StreamConfig) (*jetstream.StreamInfo, error) {
	return events.UpdateStream(ctx, js, desired)
}
func (streamType) delete(ctx context.Context, js jetstream.JetStream, id jsID) error {
	return events.DeleteStream(ctx, js, id.stream)
}
func (streamType) setMetadata(ctx context.Context, js jetstream.JetStream, id jsID, set map[string]string, remove ...string) error {
	return admin.UpdateStreamMetadata(ctx, js, id.stream, set, remove...)
}
func (streamType) metadata(info *jetstream.StreamInfo) map[string]string { return info.Config.Metadata }
func (streamType) diff(desired events.StreamConfig, info *jetstream.StreamInfo) []string {
	return admin.DiffStream(desired, info.Config)
}
func (streamType) checkUpdate(desired events.StreamConfig, info *jetstream.StreamInfo) error {
	return admin.CheckStreamUpdate(desired, info.Config)
}
func (streamType) updateAdvised() bool { return true }

// consumerType is the jsType of durable consumers. JetStream announces no
// consumer update the operator listens to.
type consumerType struct{}

func (consumerType) name() string { return "consumer" }
func (consumerType) get(ctx context.Context, js jetstream.JetStream, id jsID) (*jetstream.ConsumerInfo, error) {
	return admin.GetConsumerInfo(ctx, js, id.stream, id.consumer)
}
func (consumerType) create(ctx context.Context, js jetstream.JetStream, id jsID, desired admin.ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	return admin.CreateConsumer(ctx, js, id.stream, desired)
}
func (consumerType) update(ctx context.Context, js jetstream.JetStream, id jsID, desired admin.ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	return admin.UpdateConsumer(ctx, js, id.stream, desired)
}
func (consumerType) delete(ctx context.Context, js jetstream.JetStream, id jsID) error {
	return admin.DeleteConsumer(ctx, js, id.stream, id.consumer)
}
func (consumerType) setMetadata(ctx context.Context, js jetstream.JetStream, id jsID, set map[string]string, remove ...string) error {
	return admin.UpdateConsumerMetadata(ctx, js, id.stream, id.consumer, set, remove...)
}
func (consumerType) metadata(info *jetstream.ConsumerInfo) map[string]string {
	return info.Config.Metadata
}
func (consumerType) diff(desired admin.ConsumerConfig, info *jetstream.ConsumerInfo) []string {
	return admin.DiffConsumer(desired, info.Config)
}
func (consumerType) checkUpdate(desired admin.ConsumerConfig, info *jetstream.ConsumerInfo) error {
	return admin.CheckConsumerUpdate(desired, info.Config)
}
func (consumerType) updateAdvised() bool { return false }

var (
	_ jsType[events.StreamConfig, *jetstream.StreamInfo]    = streamType{}
	_ jsType[admin.ConsumerConfig, *jetstream.ConsumerInfo] = consumerType{}
)

// observedGeneration is status.observedGeneration of a resource that
// ensures a JetStream object (-1 for any other).
func observedGeneration(obj client.Object) int64 {
	switch o := obj.(type) {
	case *eventsv1.EventStream:
		return o.Status.ObservedGeneration
	case *eventsv1.EventConsumer:
		return o.Status.ObservedGeneration
	case *eventsv1.EventKeyValue:
		return o.Status.ObservedGeneration
	case *eventsv1.EventObjectStore:
		return o.Status.ObservedGeneration
	}
	return -1
}

// clock is the reconciler's clock: the real one unless a test injected one.
func (r *reconciler) clock() clock.PassiveClock {
	if r.Clock != nil {
		return r.Clock
	}
	return clock.RealClock{}
}
