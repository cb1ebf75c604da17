package v1alpha1

// Finalizer keeps an EventStream until its JetStream stream has been handled
// according to its deletion policy.
const Finalizer = "events.giia.io/finalizer"

// Ownership markers the operator stamps into the JetStream metadata of the
// objects it manages.
const (
	OwnerMetadataKey = "events.giia.io/owner" // "<namespace>/<name>"
	UIDMetadataKey   = "events.giia.io/uid"
)

// ConditionReady is the summary condition of every kind in this group.
const ConditionReady = "Ready"

// Reasons of the Ready condition. Each says why the object is or is not ready;
// README "Troubleshooting" explains them.
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
	// operator's own checks) refused it.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonImmutableFieldChanged: the spec changes a field JetStream cannot
	// change in place; recreate the resource to change it.
	ReasonImmutableFieldChanged = "ImmutableFieldChanged"
	// ReasonConflict: the JetStream object belongs to another resource, or its
	// subjects overlap another stream's.
	ReasonConflict = "Conflict"
	// ReasonConnectionNotAllowed: spec.connection names a NATS server the
	// operator may not dial: per-resource connections are off
	// (--allow-resource-connections=false), or the Secret's url matches none
	// of --resource-connection-urls. Nothing was dialled; it is checked again
	// when the resource or its Secret is reconciled next.
	ReasonConnectionNotAllowed = "ConnectionNotAllowed"
	// ReasonInsufficientResources: JetStream has no room for the stream (API
	// error 10047: max bytes beyond the server's or account's storage limit).
	ReasonInsufficientResources = "InsufficientResources"
	// ReasonJetStreamError: JetStream refused the request for another reason;
	// the message has its words.
	ReasonJetStreamError = "JetStreamError"
	// ReasonDeleting: the resource is being deleted.
	ReasonDeleting = "Deleting"
	// ReasonStreamNotReady: the consumer's EventStream is missing or not
	// Ready yet; the consumer is created once it is.
	ReasonStreamNotReady = "StreamNotReady"
	// ReasonDeadLetterNotStored: the consumer is Ready but no stream captures
	// its dead-letter subject, so dead letters would be lost.
	ReasonDeadLetterNotStored = "DeadLetterNotStored"
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
