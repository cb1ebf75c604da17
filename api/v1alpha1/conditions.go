package v1alpha1

// Finalizer keeps an EventStream until its JetStream stream has been handled
// according to its deletion policy.
const Finalizer = "events.giia.io/finalizer"

// Ownership markers the operator stamps into the JetStream metadata of the
// objects it manages.
const (
	OwnerMetadataKey = "events.giia.io/owner" // "<namespace>/<name>"
	UIDMetadataKey   = "events.giia.io/uid"
	// ReleasedByMetadataKey replaces the owner marker when a resource with
	// deletionPolicy Retain is deleted: "<namespace>/<name>" of the resource
	// that released the object. Only a resource of that namespace and name
	// can take it back.
	ReleasedByMetadataKey = "events.giia.io/released-by"
)

// AdoptAnnotation, set to "true" on a resource, asks the operator to adopt a
// JetStream object of the same name that no resource has ever managed (made
// by hand or by a setup script). The operator adopts only in the namespaces
// its administrator listed in --adopt-namespaces.
const AdoptAnnotation = "events.giia.io/adopt"

// Condition types. Every kind has Ready, and Reconciling or Stalled while
// either is True (they are removed when False), as kstatus
// (sigs.k8s.io/cli-utils/pkg/kstatus), Flux and kpt read them: Ready=True is
// Current, Reconciling=True is InProgress, Stalled=True is Failed.
// docs/design.md "Conditions and reasons" has the table.
const (
	// ConditionReady is the summary condition of every kind in this group.
	ConditionReady = "Ready"
	// ConditionReconciling: work is under way — waiting for a dependency,
	// or a transient failure being retried with backoff.
	ConditionReconciling = "Reconciling"
	// ConditionStalled: a terminal failure that only a change to the spec,
	// to JetStream or to the operator's configuration can resolve.
	ConditionStalled = "Stalled"
	// ConditionStreamReady (EventConsumers): the EventStream named by
	// spec.streamRef exists and is Ready.
	ConditionStreamReady = "StreamReady"
	// ConditionDeadLetterStored (EventConsumers): some stream captures the
	// consumer's dead-letter subject(s), or the consumer has no deadLetter.
	ConditionDeadLetterStored = "DeadLetterStored"
)

// Reasons of the Ready condition. Each says why the object is or is not ready;
// the table in docs/design.md "Conditions and reasons" explains them.
const (
	// ReasonCreated: the JetStream object was created by this reconcile.
	ReasonCreated = "Created"
	// ReasonUpdated: the JetStream object differed and was updated.
	ReasonUpdated = "Updated"
	// ReasonAdopted: an existing JetStream object without an owner was taken over.
	ReasonAdopted = "Adopted"
	// ReasonInSync: the JetStream object matches the spec.
	ReasonInSync = "InSync"
	// ReasonNatsUnavailable: NATS or JetStream could not be reached; retried with backoff.
	ReasonNatsUnavailable = "NatsUnavailable"
	// ReasonInvalidSpec: the spec passed admission but JetStream (or the
	// operator's own checks) refused it, e.g. replicas > 1 on a server
	// without clustering (API error 10074) or any other refused setting.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonImmutableFieldChanged: the spec changes a field JetStream cannot
	// change in place; recreate the resource to change it.
	ReasonImmutableFieldChanged = "ImmutableFieldChanged"
	// ReasonConflict: the JetStream object belongs to another resource (or
	// was released by another resource with deletionPolicy Retain), or its
	// subjects overlap another stream's. The object is left untouched.
	ReasonConflict = "Conflict"
	// ReasonAdoptionNotAllowed: a JetStream object of that name exists that
	// no resource manages, and the resource may not adopt it: it lacks the
	// events.giia.io/adopt annotation, or its namespace is not listed in the
	// operator's --adopt-namespaces. The object is left untouched.
	ReasonAdoptionNotAllowed = "AdoptionNotAllowed"
	// ReasonAccountLimitExceeded: the NATS account's JetStream limits (max
	// streams, max consumers, max stream bytes, storage tiers) refuse the
	// object (API errors 10002, 10026, 10027, 10120, 10122).
	ReasonAccountLimitExceeded = "AccountLimitExceeded"
	// ReasonConnectionNotAllowed: spec.connection names a NATS server the
	// operator may not dial: per-resource connections are off
	// (--allow-resource-connections=false), or the Secret's url matches none
	// of --resource-connection-urls; or spec.domain names a JetStream domain
	// that --jetstream-domains does not allow on the operator's own
	// connection. Nothing was dialled or sent; it is checked again when the
	// resource or its Secret is reconciled next.
	ReasonConnectionNotAllowed = "ConnectionNotAllowed"
	// ReasonInsufficientResources: JetStream has no room for the object (API
	// errors 10047 and 10028: max bytes beyond the server's or account's
	// storage or memory limit; 10023: not enough servers or resources).
	ReasonInsufficientResources = "InsufficientResources"
	// ReasonJetStreamError: JetStream failed the request for another reason
	// (a server-side error); retried with backoff. The message has its words.
	ReasonJetStreamError = "JetStreamError"
	// ReasonDeleting: the resource is being deleted.
	ReasonDeleting = "Deleting"
	// ReasonStreamNotReady: the consumer's EventStream is missing or not
	// Ready yet; the consumer is created once it is.
	ReasonStreamNotReady = "StreamNotReady"
	// ReasonDeadLetterNotStored: the consumer exists and matches its spec,
	// but no stream captures its dead-letter subject, so dead letters would
	// be lost. Terminal (Stalled) until a stream captures it.
	ReasonDeadLetterNotStored = "DeadLetterNotStored"
	// ReasonStreamReady: StreamReady=True.
	ReasonStreamReady = "StreamReady"
	// ReasonDeadLetterStored: DeadLetterStored=True, a stream captures
	// every dead-letter subject of the consumer.
	ReasonDeadLetterStored = "DeadLetterStored"
	// ReasonNoDeadLetter: DeadLetterStored=True, the consumer has no
	// spec.deadLetter (nothing to store).
	ReasonNoDeadLetter = "NoDeadLetter"
	// ReasonInvalidSchema (EventSchemas): spec.schema does not compile as a
	// JSON Schema; the message is the compiler's. Terminal (Stalled).
	ReasonInvalidSchema = "InvalidSchema"
	// ReasonIncompatible (EventSchemas): the schema breaks its compatibility
	// rule (Backward) against another minor of its major version in the
	// registry; the message names the property and the other version.
	// Terminal (Stalled) until either changes or goes.
	ReasonIncompatible = "Incompatible"
	// ReasonReplayPending (EventReplays): the replay has not started;
	// Reconciling=True while it waits (its EventStream not Ready yet).
	ReasonReplayPending = "Pending"
	// ReasonReplaying (EventReplays): Reconciling=True while messages are
	// being republished; the message has the progress.
	ReasonReplaying = "Replaying"
	// ReasonReplayed (EventReplays): Ready=True, every message of the range
	// was republished or skipped.
	ReasonReplayed = "Replayed"
	// ReasonReplayFailed (EventReplays): Stalled=True when the replay
	// failed for a reason no other reason names; the message has it.
	ReasonReplayFailed = "ReplayFailed"
)

// DeadLetterPrefix is prepended to a message's subject to make its default
// dead-letter subject ("dlq.<original subject>"), matching pkg/events.
const DeadLetterPrefix = "dlq."

// DeletionPolicy says what happens to the JetStream object when its resource
// is deleted.
// +kubebuilder:validation:Enum=Delete;Retain
type DeletionPolicy string

const (
	// DeletionPolicyDelete removes the JetStream object (only if this resource owns it).
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyRetain leaves the JetStream object and its data in place
	// and removes the ownership marker, so that a new resource can adopt it.
	DeletionPolicyRetain DeletionPolicy = "Retain"
)
