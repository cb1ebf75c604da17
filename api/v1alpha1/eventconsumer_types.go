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

// ReplayPolicy is the pace at which messages are delivered.
// +kubebuilder:validation:Enum=Instant;Original
type ReplayPolicy string

const (
	ReplayInstant  ReplayPolicy = "Instant"
	ReplayOriginal ReplayPolicy = "Original"
)

// PriorityPolicy is how a pull consumer shares messages between the
// clients of its priority groups.
// +kubebuilder:validation:Enum=None;Overflow;Pinned;Prioritized
type PriorityPolicy string

const (
	PriorityNone        PriorityPolicy = "None"
	PriorityOverflow    PriorityPolicy = "Overflow"
	PriorityPinned      PriorityPolicy = "Pinned"
	PriorityPrioritized PriorityPolicy = "Prioritized"
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

// EventConsumerSpec declares a durable consumer on an EventStream: a pull
// consumer, or a push consumer when deliverSubject is set.
// +kubebuilder:validation:XValidation:rule="has(self.deliverSubject) == has(oldSelf.deliverSubject)",message="deliverSubject cannot be set or removed: JetStream cannot turn a pull consumer into a push consumer or back; delete and recreate the EventConsumer",fieldPath=".deliverSubject"
// +kubebuilder:validation:XValidation:rule="(has(self.flowControl) && self.flowControl) == (has(oldSelf.flowControl) && oldSelf.flowControl)",message="flowControl is immutable: JetStream cannot change it; delete and recreate the EventConsumer",fieldPath=".flowControl"
// +kubebuilder:validation:XValidation:rule="has(self.idleHeartbeat) == has(oldSelf.idleHeartbeat) && (!has(self.idleHeartbeat) || self.idleHeartbeat == oldSelf.idleHeartbeat)",message="idleHeartbeat is immutable: JetStream cannot change it; delete and recreate the EventConsumer",fieldPath=".idleHeartbeat"
// +kubebuilder:validation:XValidation:rule="has(self.maxWaiting) == has(oldSelf.maxWaiting) && (!has(self.maxWaiting) || self.maxWaiting == oldSelf.maxWaiting)",message="maxWaiting is immutable: JetStream cannot change it; delete and recreate the EventConsumer",fieldPath=".maxWaiting"
// +kubebuilder:validation:XValidation:rule="has(self.deliverSubject) || !has(self.deliverGroup)",message="deliverGroup is for push consumers: set deliverSubject",fieldPath=".deliverGroup"
// +kubebuilder:validation:XValidation:rule="has(self.deliverSubject) || !has(self.flowControl) || !self.flowControl",message="flowControl is for push consumers: set deliverSubject",fieldPath=".flowControl"
// +kubebuilder:validation:XValidation:rule="has(self.deliverSubject) || !has(self.idleHeartbeat)",message="idleHeartbeat is for push consumers: set deliverSubject",fieldPath=".idleHeartbeat"
// +kubebuilder:validation:XValidation:rule="has(self.deliverSubject) || !has(self.rateLimitBps) || self.rateLimitBps == 0",message="rateLimitBps is for push consumers: set deliverSubject",fieldPath=".rateLimitBps"
// +kubebuilder:validation:XValidation:rule="!has(self.flowControl) || !self.flowControl || has(self.idleHeartbeat)",message="flowControl needs idleHeartbeat",fieldPath=".flowControl"
// +kubebuilder:validation:XValidation:rule="!has(self.deliverSubject) || !has(self.maxWaiting)",message="maxWaiting is for pull consumers; this one is a push consumer (deliverSubject is set)",fieldPath=".maxWaiting"
// +kubebuilder:validation:XValidation:rule="!has(self.deliverSubject) || !has(self.maxRequestBatch)",message="maxRequestBatch is for pull consumers; this one is a push consumer (deliverSubject is set)",fieldPath=".maxRequestBatch"
// +kubebuilder:validation:XValidation:rule="!has(self.deliverSubject) || !has(self.maxRequestExpires)",message="maxRequestExpires is for pull consumers; this one is a push consumer (deliverSubject is set)",fieldPath=".maxRequestExpires"
// +kubebuilder:validation:XValidation:rule="!has(self.deliverSubject) || !has(self.maxRequestMaxBytes)",message="maxRequestMaxBytes is for pull consumers; this one is a push consumer (deliverSubject is set)",fieldPath=".maxRequestMaxBytes"
// +kubebuilder:validation:XValidation:rule="!has(self.deliverSubject) || !has(self.priorityPolicy) || self.priorityPolicy == 'None'",message="priorityPolicy is for pull consumers; this one is a push consumer (deliverSubject is set)",fieldPath=".priorityPolicy"
// +kubebuilder:validation:XValidation:rule="!has(self.deliverSubject) || !has(self.maxAckPending) || self.maxAckPending <= 0 || self.ackPolicy != 'None'",message="maxAckPending needs acknowledgements on a push consumer (ackPolicy None)",fieldPath=".maxAckPending"
// +kubebuilder:validation:XValidation:rule="(has(self.priorityPolicy) && self.priorityPolicy != 'None') == (has(self.priorityGroups) && size(self.priorityGroups) > 0)",message="priorityGroups are required with, and only with, a priorityPolicy other than None",fieldPath=".priorityGroups"
// +kubebuilder:validation:XValidation:rule="!has(self.pinnedTTL) || (has(self.priorityPolicy) && self.priorityPolicy == 'Pinned')",message="pinnedTTL is only allowed with priorityPolicy Pinned",fieldPath=".pinnedTTL"
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

	// ReplayPolicy: Instant delivers as fast as the consumer takes them;
	// Original at the pace they were published. Immutable.
	// +kubebuilder:default=Instant
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="replayPolicy is immutable: JetStream cannot change it; delete and recreate the EventConsumer"
	// +optional
	ReplayPolicy ReplayPolicy `json:"replayPolicy,omitempty"`

	// HeadersOnly delivers the headers of each message without its body
	// (its size in the Nats-Msg-Size header).
	// +optional
	HeadersOnly bool `json:"headersOnly,omitempty"`

	// SampleFrequency is the percentage of acknowledgements JetStream
	// samples into its CONSUMER.ACK advisories ("50" or "50%"; unset: none).
	// +optional
	// +kubebuilder:validation:MaxLength=4
	// +kubebuilder:validation:XValidation:rule="self.matches('^(100|[1-9][0-9]?)%?$')",message="must be a percentage from 1 to 100, such as 50 or 50%"
	SampleFrequency string `json:"sampleFrequency,omitempty"`

	// DeliverSubject makes this a push consumer: JetStream sends messages
	// to this subject (no wildcards, not one of the stream's). Unset: a
	// pull consumer. It can change, but not be set or removed.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[^.*> \\t]+([.][^.*> \\t]+)*$')",message="must be a NATS subject without wildcards"
	DeliverSubject string `json:"deliverSubject,omitempty"`

	// DeliverGroup is the queue group of the push consumer's subscribers:
	// each message goes to one of them.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_-]+$')",message="must be a queue group name: only letters, digits, '_' and '-'"
	DeliverGroup string `json:"deliverGroup,omitempty"`

	// FlowControl makes a push consumer wait for its subscriber to keep up.
	// Needs idleHeartbeat. Immutable.
	// +optional
	FlowControl bool `json:"flowControl,omitempty"`

	// IdleHeartbeat is how often a push consumer with nothing to deliver
	// sends a heartbeat (at least 100ms). Immutable.
	// +optional
	IdleHeartbeat Duration `json:"idleHeartbeat,omitempty"`

	// RateLimitBps bounds a push consumer's delivery rate, in bits per
	// second (unset: unlimited).
	// +optional
	// +kubebuilder:validation:Minimum=0
	RateLimitBps int64 `json:"rateLimitBps,omitempty"`

	// MaxRequestBatch bounds the messages one pull request may ask for
	// (unset: unlimited). Pull consumers only.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRequestBatch int32 `json:"maxRequestBatch,omitempty"`

	// MaxRequestExpires bounds how long a pull request may wait (at least
	// 1ms; unset: unlimited). Pull consumers only.
	// +optional
	MaxRequestExpires Duration `json:"maxRequestExpires,omitempty"`

	// MaxRequestMaxBytes bounds the bytes one pull request may ask for
	// (unset: unlimited; at most 2147483647). Pull consumers only.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2147483647
	MaxRequestMaxBytes int64 `json:"maxRequestMaxBytes,omitempty"`

	// PriorityPolicy shares a pull consumer's messages between the clients
	// of its priorityGroups: Overflow (to clients asking past a pending
	// threshold), Pinned (to one pinned client at a time), Prioritized (by
	// the priority of each request). None or unset: no priority groups.
	// +optional
	PriorityPolicy PriorityPolicy `json:"priorityPolicy,omitempty"`

	// PriorityGroups of the pull consumer, required with a priorityPolicy:
	// names of 1 to 16 letters, digits, '-', '_', '/' or '='.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Pattern=`^[a-zA-Z0-9/_=-]{1,16}$`
	PriorityGroups []string `json:"priorityGroups,omitempty"`

	// PinnedTTL unpins a client that sent no pull request for this long,
	// with priorityPolicy Pinned (unset: JetStream's 2m).
	// +optional
	PinnedTTL Duration `json:"pinnedTTL,omitempty"`

	// PauseUntil pauses deliveries until this time; removing it, or a time
	// already past, resumes them.
	// +optional
	PauseUntil *metav1.Time `json:"pauseUntil,omitempty"`

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
	// Paused is true while JetStream holds deliveries back (spec.pauseUntil
	// is in the future).
	// +optional
	Paused bool `json:"paused,omitempty"`
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

// EventConsumer is a durable JetStream consumer (pull, or push with
// spec.deliverSubject) managed by the operator.
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
// +kubebuilder:printcolumn:name="Paused",type=boolean,JSONPath=`.status.state.paused`,priority=1
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
