package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/dlq"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// schemaTypeIndex indexes EventSchemas by spec.type: the resources a change
// of one schema (or of its key in the registry) may concern.
const schemaTypeIndex = "spec.type"

// EventSchemaReconciler keeps each EventSchema's record in the schema
// registry, a JetStream KeyValue bucket (Bucket), under
// schemas.Key(type, version).
//
// Its steps: the connection; compiling the schema (InvalidSchema); the
// resource-level conflicts (Conflict: one namespace per event type, one
// resource per type and version); the bucket (created with the operator's
// owner marker if missing, never deleted); the record itself: a key another
// owner holds is Conflict and never overwritten, a new or changed record is
// checked against the other minors of its major (Incompatible) and written,
// an equal one is left alone (a steady state writes nothing).
type EventSchemaReconciler struct {
	reconciler
	// Bucket is the registry's KeyValue bucket (--schema-bucket).
	Bucket string
	// Watch, when set, is told of the operator's own writes (so that their
	// echo in the bucket's watch triggers nothing) and feeds the triggers of
	// changes made out of band.
	Watch *schemaWatch
}

// +kubebuilder:rbac:groups=events.giia.io,resources=eventschemas,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventschemas/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.giia.io,resources=eventschemas/finalizers,verbs=update

// Reconcile is level-triggered and idempotent, like every kind's.
func (r *EventSchemaReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileObject(ctx, &r.reconciler, req, &eventsv1.EventSchema{}, r.kind())
}

func (r *EventSchemaReconciler) bucket() string {
	if r.Bucket == "" {
		return schemas.DefaultBucket
	}
	return r.Bucket
}

// kind hands the shared reconcile what is specific to EventSchemas.
func (r *EventSchemaReconciler) kind() kind[*eventsv1.EventSchema] {
	return kind[*eventsv1.EventSchema]{
		status: func(es *eventsv1.EventSchema) statusRef {
			return statusRef{&es.Status.Conditions, &es.Status.ObservedGeneration}
		},
		steps: func(ctx context.Context, es *eventsv1.EventSchema) (stepResult, error) {
			js, err := r.reconcileConnection(ctx, es.Namespace, es.Spec.Connection, "", userKey("EventSchema", es))
			if err != nil {
				return stepResult{}, err
			}
			if err := r.reconcileCompile(es); err != nil {
				return stepResult{}, err
			}
			if err := r.reconcileResourceConflicts(ctx, es); err != nil {
				// A resource that lost its claim but still holds the key
				// (two created in the same second, the later-named one
				// reconciled first) lets go of it, so the winner can
				// write it.
				var se *stepError
				if errors.As(err, &se) && se.reason == eventsv1.ReasonConflict {
					if yerr := r.deleteOwnRecord(ctx, js, es, false); yerr != nil {
						return stepResult{}, classify(yerr)
					}
				}
				return stepResult{}, err
			}
			return r.reconcileRecord(ctx, js, es)
		},
		finalizer: finalizer[*eventsv1.EventSchema]{
			what: func(es *eventsv1.EventSchema) string {
				return fmt.Sprintf("key %s of bucket %s", schemas.Key(es.Spec.Type, es.Spec.Version), r.bucket())
			},
			policy:  func(*eventsv1.EventSchema) eventsv1.DeletionPolicy { return eventsv1.DeletionPolicyDelete },
			release: r.releaseRecord,
			done: func(_ context.Context, es *eventsv1.EventSchema) {
				r.releaseConnection(userKey("EventSchema", es))
			},
		},
	}
}

// reconcileCompile compiles spec.schema as the library will: an invalid
// schema is terminal, with the compiler's message.
func (r *EventSchemaReconciler) reconcileCompile(es *eventsv1.EventSchema) error {
	if _, err := schemas.Compile(es.Spec.Schema.Raw); err != nil {
		return newStepError(terminal, eventsv1.ReasonInvalidSchema, "spec.schema: "+err.Error())
	}
	return nil
}

// registryOf names the registry a resource writes to: the operator's default
// connection (""), or the Secret its spec.connection names.
func registryOf(es *eventsv1.EventSchema) string {
	if es.Spec.Connection == nil {
		return ""
	}
	return es.Namespace + "/" + es.Spec.Connection.SecretRef.Name
}

// olderSchema orders resources by age: the oldest creationTimestamp, then
// namespace/name, comes first.
func olderSchema(a, b *eventsv1.EventSchema) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
}

// reconcileResourceConflicts applies the registry's rules among resources
// of one registry (resources being deleted no longer count):
//
//   - an event type belongs to one namespace, the namespace of its oldest
//     EventSchema: a tenant cannot add versions to, or shadow, a type
//     another tenant registered (Conflict);
//   - (type, version) is declared by one resource, the oldest; the others
//     are Conflict, and become Ready when it goes.
func (r *EventSchemaReconciler) reconcileResourceConflicts(ctx context.Context, es *eventsv1.EventSchema) error {
	list := &eventsv1.EventSchemaList{}
	if err := r.List(ctx, list, client.MatchingFields{schemaTypeIndex: es.Spec.Type}); err != nil {
		return err
	}
	rivals := []*eventsv1.EventSchema{es}
	for i := range list.Items {
		o := &list.Items[i]
		if (o.Namespace == es.Namespace && o.Name == es.Name) || !o.DeletionTimestamp.IsZero() || registryOf(o) != registryOf(es) {
			continue
		}
		rivals = append(rivals, o)
	}
	sort.Slice(rivals, func(i, j int) bool { return olderSchema(rivals[i], rivals[j]) })
	if first := rivals[0]; first.Namespace != es.Namespace {
		return newStepError(terminal, eventsv1.ReasonConflict, fmt.Sprintf(
			"event type %s belongs to namespace %s, where EventSchema %s registered it first; the schemas of one type live in one namespace, "+
				"so this one is not registered", es.Spec.Type, first.Namespace, first.Name))
	}
	for _, o := range rivals {
		if o.Spec.Version != es.Spec.Version {
			continue
		}
		if o != es {
			return newStepError(terminal, eventsv1.ReasonConflict, fmt.Sprintf(
				"%s version %s is already declared by EventSchema %s/%s (older); this one is not registered until that one goes",
				es.Spec.Type, es.Spec.Version, o.Namespace, o.Name))
		}
		break
	}
	return nil
}

// desiredRecord is what es stores in the registry.
func desiredRecord(es *eventsv1.EventSchema) (schemas.Record, []byte, error) {
	var compact bytes.Buffer
	if err := json.Compact(&compact, es.Spec.Schema.Raw); err != nil {
		return schemas.Record{}, nil, newStepError(terminal, eventsv1.ReasonInvalidSchema, "spec.schema: "+err.Error())
	}
	compat := schemas.Compatibility(es.Spec.Compatibility)
	if compat == "" {
		compat = schemas.Backward
	}
	rec := schemas.Record{
		Type: es.Spec.Type, Version: es.Spec.Version, Schema: compact.Bytes(),
		Compatibility: compat, Description: es.Spec.Description, Owner: es.OwnerMarker(),
	}
	value, err := json.Marshal(rec)
	return rec, value, err
}

// sameRecord compares two records, their schemas as JSON values.
func sameRecord(a, b schemas.Record) bool {
	sa, sb := a.Schema, b.Schema
	a.Schema, b.Schema = nil, nil
	if !reflect.DeepEqual(a, b) {
		return false
	}
	var va, vb any
	return json.Unmarshal(sa, &va) == nil && json.Unmarshal(sb, &vb) == nil && reflect.DeepEqual(va, vb)
}

// reconcileRecord makes the registry hold es's record.
func (r *EventSchemaReconciler) reconcileRecord(ctx context.Context, js jetstream.JetStream, es *eventsv1.EventSchema) (stepResult, error) {
	want, value, err := desiredRecord(es)
	if err != nil {
		return stepResult{}, classify(err)
	}
	kv, err := r.ensureBucket(ctx, js, es)
	if err != nil {
		return stepResult{}, classify(err)
	}
	key := schemas.Key(es.Spec.Type, es.Spec.Version)
	what := fmt.Sprintf("key %s of bucket %s", key, r.bucket())
	entry, err := kvCall(ctx, "kv_get", func(ctx context.Context) (jetstream.KeyValueEntry, error) { return kv.Get(ctx, key) })
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return stepResult{}, classify(err)
	}
	exists := err == nil
	if exists {
		var have schemas.Record
		// A value that is not a record, or a record without an owner, is
		// no one's: it is repaired like drift.
		if json.Unmarshal(entry.Value(), &have) == nil {
			if have.Owner != "" && have.Owner != want.Owner {
				return stepResult{}, newStepError(terminal, eventsv1.ReasonConflict, fmt.Sprintf(
					"%s is held by %s; the operator never overwrites a schema another owner registered", what, have.Owner))
			}
			if sameRecord(have, want) {
				r.recordStatus(es, key, entry.Revision())
				return stepResult{reason: eventsv1.ReasonInSync, message: what + " holds the schema"}, nil
			}
		}
	}
	if want.Compatibility == schemas.Backward {
		if err := r.checkCompatibility(ctx, kv, want); err != nil {
			return stepResult{}, err
		}
	}
	if r.Watch != nil && es.Spec.Connection == nil {
		r.Watch.expectOwnWrite(key)
	}
	var rev uint64
	if exists {
		rev, err = kvCall(ctx, "kv_update", func(ctx context.Context) (uint64, error) { return kv.Update(ctx, key, value, entry.Revision()) })
	} else {
		rev, err = kvCall(ctx, "kv_create", func(ctx context.Context) (uint64, error) { return kv.Create(ctx, key, value) })
	}
	if err != nil && r.Watch != nil && es.Spec.Connection == nil {
		r.Watch.forgetOwnWrite(key)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// Someone wrote the key since it was read: read it again.
		return stepResult{}, newStepError(transient, eventsv1.ReasonJetStreamError,
			fmt.Sprintf("%s was written by someone else meanwhile; reading it again: %v", what, err))
	}
	if err != nil {
		return stepResult{}, classify(fmt.Errorf("writing %s: %w", what, err))
	}
	r.recordStatus(es, key, rev)
	reason, action := eventsv1.ReasonCreated, "Create"
	if exists {
		reason, action = eventsv1.ReasonUpdated, "Update"
	}
	r.event(es, corev1.EventTypeNormal, reason, action, fmt.Sprintf("%s written (revision %d)", what, rev))
	return stepResult{reason: reason, message: fmt.Sprintf("%s written (revision %d)", what, rev)}, nil
}

func (r *EventSchemaReconciler) recordStatus(es *eventsv1.EventSchema, key string, rev uint64) {
	es.Status.Bucket = r.bucket()
	es.Status.Key = key
	es.Status.URI = schemas.URI(es.Spec.Type, es.Spec.Version)
	es.Status.Revision = rev
}

// checkCompatibility checks want (Backward) against every other minor of
// its major in the registry, in both directions by minor number: an older
// minor must be followed compatibly by want, want by a newer one. A new
// major is not checked.
func (r *EventSchemaReconciler) checkCompatibility(ctx context.Context, kv jetstream.KeyValue, want schemas.Record) error {
	major, minor, err := schemas.ParseVersion(want.Version)
	if err != nil {
		return newStepError(terminal, eventsv1.ReasonInvalidSpec, "spec.version: "+err.Error())
	}
	others, err := r.recordsOfType(ctx, kv, want.Type)
	if err != nil {
		return classify(err)
	}
	for _, o := range others {
		maj, min, err := schemas.ParseVersion(o.Version)
		if err != nil || maj != major || min == minor {
			continue
		}
		older, newer := o, want
		if min > minor {
			older, newer = want, o
		}
		err = schemas.CheckCompatible(older.Schema, newer.Schema)
		var ie *schemas.IncompatibleError
		if errors.As(err, &ie) {
			return newStepError(terminal, eventsv1.ReasonIncompatible, fmt.Sprintf(
				"%s %s is not backward compatible with %s %s (in the registry, owner %s): property %s: %s; a new minor may only add "+
					"optional properties (make it a new major version, or set compatibility: None)",
				want.Type, newer.Version, want.Type, older.Version, o.Owner, ie.Property, ie.Reason))
		}
		// Any other error is a record of the registry that is not a JSON
		// object: not this schema's fault, and nothing to compare with.
	}
	return nil
}

// recordsOfType reads the registry's records of eventType.
func (r *EventSchemaReconciler) recordsOfType(ctx context.Context, kv jetstream.KeyValue, eventType string) ([]schemas.Record, error) {
	prefix := strings.TrimSuffix(schemas.Key(eventType, "0.0"), ".0.0")
	return kvCall(ctx, "kv_list", func(ctx context.Context) ([]schemas.Record, error) {
		lister, err := kv.ListKeysFiltered(ctx, prefix+".*.*")
		if err != nil {
			return nil, err
		}
		defer func() { _ = lister.Stop() }()
		var keys []string
		for k := range lister.Keys() {
			keys = append(keys, k)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var out []schemas.Record
		for _, k := range keys {
			e, err := kv.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			var rec schemas.Record
			if json.Unmarshal(e.Value(), &rec) != nil || rec.Type != eventType {
				continue
			}
			out = append(out, rec)
		}
		return out, nil
	})
}

// ensureBucket opens the registry's bucket, creating it (with the
// operator's owner marker) when it does not exist.
func (r *EventSchemaReconciler) ensureBucket(ctx context.Context, js jetstream.JetStream, es *eventsv1.EventSchema) (jetstream.KeyValue, error) {
	kv, err := kvCall(ctx, "kv_bucket_info", func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, r.bucket()) })
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	kv, err = kvCall(ctx, "create_kv_bucket", func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateKeyValue(ctx, r.schemaBucketConfig())
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		return kvCall(ctx, "kv_bucket_info", func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, r.bucket()) })
	}
	if err == nil {
		r.event(es, corev1.EventTypeNormal, eventsv1.ReasonCreated, "Create", "schema registry bucket "+r.bucket()+" created")
		if r.Watch != nil && es.Spec.Connection == nil {
			r.Watch.bucketCreated()
		}
	}
	return kv, err
}

// schemaBucketConfig is the registry bucket the operator creates.
func (r *EventSchemaReconciler) schemaBucketConfig() jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      r.bucket(),
		Description: "Event schema registry of the eventstream-operator (EventSchemas)",
		Storage:     jetstream.FileStorage,
		Metadata:    map[string]string{eventsv1.OwnerMetadataKey: dlq.OwnerMetadataValue},
	}
}

// releaseRecord deletes es's key when it still holds es's record; the
// bucket stays.
func (r *EventSchemaReconciler) releaseRecord(ctx context.Context, es *eventsv1.EventSchema) error {
	if es.Status.Key == "" {
		return nil // never written
	}
	js, err := r.jetStreamFor(ctx, es.Namespace, es.Spec.Connection, "", userKey("EventSchema", es))
	if err != nil {
		return err
	}
	return r.deleteOwnRecord(ctx, js, es, true)
}

// deleteOwnRecord deletes es's key of the registry if it holds es's record
// (compare-and-delete on the revision read), and leaves anyone else's.
// deleting: es is being deleted (an Event says what became of the key).
func (r *EventSchemaReconciler) deleteOwnRecord(ctx context.Context, js jetstream.JetStream, es *eventsv1.EventSchema, deleting bool) error {
	kv, err := kvCall(ctx, "kv_bucket_info", func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, r.bucket()) })
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	key := schemas.Key(es.Spec.Type, es.Spec.Version)
	entry, err := kvCall(ctx, "kv_get", func(ctx context.Context) (jetstream.KeyValueEntry, error) { return kv.Get(ctx, key) })
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if owner := recordOwner(entry.Value()); owner != es.OwnerMarker() {
		if deleting {
			r.event(es, corev1.EventTypeNormal, "NotDeleted", "Delete",
				fmt.Sprintf("key %s of bucket %s is not this EventSchema's (owner %q) and was left alone", key, r.bucket(), owner))
		}
		return nil
	}
	_, err = kvCall(ctx, "kv_delete", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, kv.Delete(ctx, key, jetstream.LastRevision(entry.Revision()))
	})
	if err != nil {
		return fmt.Errorf("deleting key %s of bucket %s: %w", key, r.bucket(), err)
	}
	if deleting {
		r.event(es, corev1.EventTypeNormal, "Deleted", "Delete", fmt.Sprintf("key %s of bucket %s deleted", key, r.bucket()))
	} else {
		r.event(es, corev1.EventTypeNormal, "Yielded", "Delete",
			fmt.Sprintf("key %s of bucket %s deleted: another EventSchema has the better claim to it", key, r.bucket()))
	}
	return nil
}

// kvCall is call for the registry's KeyValue requests, their failures
// typed as the library types JetStream's: a missing key or bucket is also
// events.ErrNotFound, an unreachable server events.ErrConnection or
// events.ErrTimeout (so Ready says NatsUnavailable, and the metrics count it
// as unavailable).
func kvCall[T any](ctx context.Context, op string, fn func(context.Context) (T, error)) (T, error) {
	return call(ctx, op, func(ctx context.Context) (T, error) {
		v, err := fn(ctx)
		return v, typeKVError(err)
	})
}

func typeKVError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrBucketNotFound):
		return fmt.Errorf("%w: %w", events.ErrNotFound, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%w: %w", events.ErrTimeout, err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, jetstream.ErrConnectionClosed), errors.Is(err, jetstream.ErrServerShutdown):
		return fmt.Errorf("%w: %w", events.ErrConnection, err)
	}
	return err
}

// recordOwner is the Owner of a stored record ("" when the value is not a
// record).
func recordOwner(value []byte) string {
	var rec schemas.Record
	if json.Unmarshal(value, &rec) != nil {
		return ""
	}
	return rec.Owner
}

// SetupWithManager registers the controller, the type index, the watch that
// re-evaluates the other schemas of a type when one changes or goes, and the
// registry watch's triggers.
func (r *EventSchemaReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &eventsv1.EventSchema{}, schemaTypeIndex,
		func(o client.Object) []string { return []string{o.(*eventsv1.EventSchema).Spec.Type} }); err != nil {
		return err
	}
	b := r.controllerFor(mgr, &eventsv1.EventSchema{}, "eventschema").
		Watches(&eventsv1.EventSchema{}, handler.EnqueueRequestsFromMapFunc(r.siblings),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionPredicate{})))
	if r.Watch != nil {
		b = b.WatchesRawSource(source.Channel(r.Watch.triggers, handler.EnqueueRequestsFromMapFunc(r.requestsForType)))
	}
	return b.Complete(r)
}

// siblings maps a change of one EventSchema to the other schemas of its
// type: a Conflict or Incompatible one may be resolved by it.
func (r *EventSchemaReconciler) siblings(ctx context.Context, obj client.Object) []ctrl.Request {
	es, ok := obj.(*eventsv1.EventSchema)
	if !ok {
		return nil
	}
	reqs := r.requestsForType(ctx, &eventsv1.EventSchema{Spec: eventsv1.EventSchemaSpec{Type: es.Spec.Type}})
	out := reqs[:0]
	for _, req := range reqs {
		if req.Namespace != es.Namespace || req.Name != es.Name {
			out = append(out, req)
		}
	}
	return out
}

// requestsForType maps a trigger naming an event type (in spec.type) to the
// EventSchemas of that type.
func (r *EventSchemaReconciler) requestsForType(ctx context.Context, obj client.Object) []ctrl.Request {
	es, ok := obj.(*eventsv1.EventSchema)
	if !ok {
		return nil
	}
	list := &eventsv1.EventSchemaList{}
	if !r.listByIndex(ctx, list, schemaTypeIndex, es.Spec.Type) {
		return nil
	}
	reqs := make([]ctrl.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// typeTrigger is the trigger of the EventSchemas of eventType.
func typeTrigger(eventType string) event.GenericEvent {
	return event.GenericEvent{Object: &eventsv1.EventSchema{Spec: eventsv1.EventSchemaSpec{Type: eventType}}}
}

// keyType recovers the event type from a registry key (schemas.Key): the
// version is the last two tokens, and "=XX" escapes a byte.
func keyType(key string) (string, bool) {
	i := strings.LastIndexByte(key, '.')
	if i <= 0 {
		return "", false
	}
	j := strings.LastIndexByte(key[:i], '.')
	if j <= 0 {
		return "", false
	}
	esc := key[:j]
	var b strings.Builder
	for k := 0; k < len(esc); k++ {
		if esc[k] != '=' {
			b.WriteByte(esc[k])
			continue
		}
		if k+2 >= len(esc) {
			return "", false
		}
		var c byte
		if _, err := fmt.Sscanf(esc[k+1:k+3], "%02X", &c); err != nil {
			return "", false
		}
		b.WriteByte(c)
		k += 2
	}
	return b.String(), true
}
