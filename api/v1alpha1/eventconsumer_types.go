package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeliverPolicy is where a new consumer starts in its stream.
// +kubebuilder:validation:Enum=All;Last;New;ByStartSequence;ByStartTime;LastPerSubject
type DeliverPolicy string

const (
	DeliverAll             DeliverPolicy = "All"
	DeliverLast            DeliverPolicy = "Last"
	DeliverNew             DeliverPolicy = "New"
	DeliverByStartSequence DeliverPolicy = "ByStartSequence"
	DeliverByStartTime     DeliverPolicy = "ByStartTime"
	DeliverLastPerSubject  DeliverPolicy = "LastPerSubject"
)

// AckPolicy is how messages are acknowledged.
// +kubebuilder:validation:Enum=Explicit;All;None
type AckPolicy string

const (
	AckExplicit AckPolicy = "Explicit"
	AckAll      AckPolicy = "All"
	AckNone     AckPolicy = "None"
)

// DeadLetter configures the operator's dead-letter forwarding for a consumer.
type DeadLetter struct {
	// Subject receives every dead letter of this consumer. Empty: each goes to
	// "dlq.<original subject>" (captured by DLQ_EVENTS' "dlq.>").
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^.*> \\t]+([.][^.*> \\t]+)*$')",message="must be a NATS subject without wildcards"
	Subject string `json:"subject,omitempty"`
}

// EventConsumerSpec declares a durable pull consumer on an EventStream.
// +kubebuilder:validation:XValidation:rule="self.streamRef == oldSelf.streamRef",message="streamRef is immutable: a consumer cannot move to another stream",fieldPath=".streamRef"
// +kubebuilder:validation:XValidation:rule="has(self.durableName) == has(oldSelf.durableName) && (!has(self.durableName) || self.durableName == oldSelf.durableName)",message="durableName is immutable: JetStream cannot rename a consumer",fieldPath=".durableName"
// +kubebuilder:validation:XValidation:rule="has(self.optStartSeq) == has(oldSelf.optStartSeq) && (!has(self.optStartSeq) || self.optStartSeq == oldSelf.optStartSeq)",message="optStartSeq is immutable",fieldPath=".optStartSeq"
// +kubebuilder:validation:XValidation:rule="has(self.optStartTime) == has(oldSelf.optStartTime) && (!has(self.optStartTime) || self.optStartTime == oldSelf.optStartTime)",message="optStartTime is immutable",fieldPath=".optStartTime"
// +kubebuilder:validation:XValidation:rule="!has(self.optStartSeq) || self.deliverPolicy == 'ByStartSequence'",message="optStartSeq is only allowed with deliverPolicy ByStartSequence",fieldPath=".optStartSeq"
// +kubebuilder:validation:XValidation:rule="self.deliverPolicy != 'ByStartSequence' || has(self.optStartSeq)",message="deliverPolicy ByStartSequence needs optStartSeq",fieldPath=".optStartSeq"
// +kubebuilder:validation:XValidation:rule="!has(self.optStartTime) || self.deliverPolicy == 'ByStartTime'",message="optStartTime is only allowed with deliverPolicy ByStartTime",fieldPath=".optStartTime"
// +kubebuilder:validation:XValidation:rule="self.deliverPolicy != 'ByStartTime' || has(self.optStartTime)",message="deliverPolicy ByStartTime needs optStartTime",fieldPath=".optStartTime"
// +kubebuilder:validation:XValidation:rule="!has(self.backoff) || self.maxDeliver == -1 || size(self.backoff) <= self.maxDeliver",message="backoff must not have more entries than maxDeliver",fieldPath=".backoff"
// +kubebuilder:validation:XValidation:rule="!has(self.backoff) || size(self.backoff) == 0 || self.ackPolicy != 'None'",message="backoff needs acknowledgements: ackPolicy None has no redeliveries",fieldPath=".backoff"
// +kubebuilder:validation:XValidation:rule="!has(self.deadLetter) || self.ackPolicy != 'None'",message="deadLetter needs acknowledgements: with ackPolicy None nothing is ever dead-lettered",fieldPath=".deadLetter"
type EventConsumerSpec struct {
	// StreamRef is the EventStream, in the same namespace, the consumer reads.
	StreamRef LocalObjectReference `json:"streamRef"`

	// DurableName of the JetStream consumer. Defaults to metadata.name.
	// Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_-]+$')",message="must be a JetStream consumer name: only letters, digits, '_' and '-'"
	DurableName string `json:"durableName,omitempty"`

	// Description of the consumer.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Description string `json:"description,omitempty"`

	// FilterSubjects limits the consumer to these subjects (empty: all).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	// +kubebuilder:validation:items:Pattern=`^[^\s]+$`
	FilterSubjects []string `json:"filterSubjects,omitempty"`

	// DeliverPolicy is where the consumer starts. Immutable.
	// +kubebuilder:default=All
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="deliverPolicy is immutable: JetStream cannot change where a consumer starts"
	// +optional
	DeliverPolicy DeliverPolicy `json:"deliverPolicy,omitempty"`

	// OptStartSeq is the first stream sequence, with deliverPolicy
	// ByStartSequence. Immutable.
	// +optional
	// +kubebuilder:validation:Minimum=1
	OptStartSeq *int64 `json:"optStartSeq,omitempty"`

	// OptStartTime is the first message time, with deliverPolicy ByStartTime.
	// Immutable.
	// +optional
	OptStartTime *metav1.Time `json:"optStartTime,omitempty"`

	// AckPolicy. Immutable.
	// +kubebuilder:default=Explicit
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="ackPolicy is immutable: JetStream cannot change a consumer's ack policy"
	// +optional
	AckPolicy AckPolicy `json:"ackPolicy,omitempty"`

	// AckWait is how long JetStream waits for an ack before redelivering.
	// With backoff set, JetStream uses the first backoff value instead.
	// +kubebuilder:default="10s"
	// +optional
	AckWait Duration `json:"ackWait,omitempty"`

	// MaxDeliver is how many times a message is delivered before JetStream
	// gives up on it (and the operator dead-letters it); -1 is unlimited.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=-1
	// +kubebuilder:validation:XValidation:rule="self != 0",message="must be -1 (unlimited) or positive"
	// +optional
	MaxDeliver int32 `json:"maxDeliver,omitempty"`

	// Backoff are the redelivery delays after each delivery that was not
	// acknowledged (the last repeats); no more entries than maxDeliver. The
	// first one is also the ack wait.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Backoff []Duration `json:"backoff,omitempty"`

	// MaxAckPending bounds unacknowledged messages (-1: unlimited; unset:
	// JetStream's default, 1000).
	// +optional
	// +kubebuilder:validation:Minimum=-1
	MaxAckPending *int32 `json:"maxAckPending,omitempty"`

	// MaxWaiting bounds outstanding pull requests (unset: JetStream's
	// default, 512).
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxWaiting *int32 `json:"maxWaiting,omitempty"`

	// Replicas of the consumer (0 or unset: the stream's).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=5
	Replicas int32 `json:"replicas,omitempty"`

	// MemoryStorage keeps the consumer's state in memory. Immutable.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="memoryStorage is immutable"
	MemoryStorage bool `json:"memoryStorage,omitempty"`

	// InactiveThreshold removes the consumer after this long without
	// activity (unset: never, as befits a durable consumer).
	// +optional
	InactiveThreshold Duration `json:"inactiveThreshold,omitempty"`

	// Metadata is copied into the consumer's JetStream metadata. Keys in the
	// events.giia.io/ and _nats. prefixes are reserved.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('events.giia.io/') && !k.startsWith('_nats.'))",message="keys starting with events.giia.io/ or _nats. are reserved"
	Metadata map[string]string `json:"metadata,omitempty"`

	// DeadLetter, when set, makes the operator republish every message
	// JetStream gives up on (max deliveries reached, or terminated) to a
	// dead-letter subject. Absent: no dead-lettering.
	// +optional
	DeadLetter *DeadLetter `json:"deadLetter,omitempty"`

	// DeletionPolicy: Delete removes the JetStream consumer with this
	// resource; Retain keeps it.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// EventConsumerState summarises the consumer, refreshed at each resync.
type EventConsumerState struct {
	// NumPending is how many stream messages the consumer has yet to deliver.
	NumPending int64 `json:"numPending"`
	// NumAckPending is how many delivered messages await an ack.
	NumAckPending int64 `json:"numAckPending"`
	// NumRedelivered is how many messages were delivered more than once.
	NumRedelivered int64 `json:"numRedelivered"`
	// NumWaiting is how many pull requests are waiting.
	NumWaiting int64 `json:"numWaiting"`
	// DeadLettered is how many messages the operator dead-lettered.
	DeadLettered int64 `json:"deadLettered"`
}

// EventConsumerStatus is what the operator last saw.
type EventConsumerStatus struct {
	// ObservedGeneration is the generation the status describes: set when
	// the outcome for that generation is known (Ready, or Stalled), not
	// while it is still being reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready summarises the consumer; Reconciling (work under
	// way, a transient failure retried) and Stalled (a terminal failure) are
	// present only while True; StreamReady says whether its EventStream is
	// Ready, DeadLetterStored whether some stream captures its dead letters.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// StreamName is the JetStream stream of the consumer.
	// +optional
	StreamName string `json:"streamName,omitempty"`
	// ConsumerName is the JetStream consumer's name.
	// +optional
	ConsumerName string `json:"consumerName,omitempty"`
	// State of the consumer.
	// +optional
	State *EventConsumerState `json:"state,omitempty"`
}

// EventConsumer is a durable JetStream pull consumer managed by the operator.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=evc,categories=jetstream
// +kubebuilder:validation:XValidation:rule="has(self.spec.durableName) || self.metadata.name.matches('^[a-z0-9-]+$')",message="metadata.name contains '.', which a JetStream consumer name cannot: set spec.durableName"
// +kubebuilder:printcolumn:name="Stream",type=string,JSONPath=`.status.streamName`
// +kubebuilder:printcolumn:name="Consumer",type=string,JSONPath=`.status.consumerName`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.state.numPending`
// +kubebuilder:printcolumn:name="AckPending",type=integer,JSONPath=`.status.state.numAckPending`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="DeadLettered",type=integer,JSONPath=`.status.state.deadLettered`,priority=1
// +kubebuilder:printcolumn:name="DeadLetterStored",type=string,JSONPath=`.status.conditions[?(@.type=="DeadLetterStored")].status`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EventConsumer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EventConsumerSpec   `json:"spec"`
	Status EventConsumerStatus `json:"status,omitempty"`
}

// EventConsumerList is a list of EventConsumers.
// +kubebuilder:object:root=true
type EventConsumerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventConsumer `json:"items"`
}

// JetStreamName is the durable name of the JetStream consumer:
// spec.durableName, or metadata.name.
func (c *EventConsumer) JetStreamName() string {
	if c.Spec.DurableName != "" {
		return c.Spec.DurableName
	}
	return c.Name
}

// OwnerMarker is the value of OwnerMetadataKey for this resource.
func (c *EventConsumer) OwnerMarker() string { return c.Namespace + "/" + c.Name }

// DeadLetterSubject is where a dead letter of a message first published on
// subject goes, or "" when the consumer has no dead-lettering.
func (c *EventConsumer) DeadLetterSubject(subject string) string {
	switch {
	case c.Spec.DeadLetter == nil:
		return ""
	case c.Spec.DeadLetter.Subject != "":
		return c.Spec.DeadLetter.Subject
	}
	return DeadLetterPrefix + subject
}
