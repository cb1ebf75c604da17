package v1alpha1

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RetentionPolicy decides when JetStream removes messages.
// +kubebuilder:validation:Enum=Limits;Interest;WorkQueue
type RetentionPolicy string

const (
	RetentionLimits    RetentionPolicy = "Limits"
	RetentionInterest  RetentionPolicy = "Interest"
	RetentionWorkQueue RetentionPolicy = "WorkQueue"
)

// StorageType is where JetStream keeps messages.
// +kubebuilder:validation:Enum=File;Memory
type StorageType string

const (
	StorageFile   StorageType = "File"
	StorageMemory StorageType = "Memory"
)

// DiscardPolicy decides what happens when a stream reaches a limit.
// +kubebuilder:validation:Enum=Old;New
type DiscardPolicy string

const (
	DiscardOld DiscardPolicy = "Old"
	DiscardNew DiscardPolicy = "New"
)

// Compression of a file-backed stream.
// +kubebuilder:validation:Enum=None;S2
type Compression string

const (
	CompressionNone Compression = "None"
	CompressionS2   Compression = "S2"
)

// Placement pins a stream's replicas to a cluster and/or servers with tags.
type Placement struct {
	// Cluster is the name of the JetStream cluster.
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Tags the servers must have.
	// +optional
	// +listType=set
	Tags []string `json:"tags,omitempty"`
}

// StreamSource names another stream to mirror or source messages from: in
// the same JetStream account and domain, or, with domain or external, in
// another JetStream domain (a leaf node's) or account.
// +kubebuilder:validation:XValidation:rule="!has(self.domain) || !has(self.external)",message="set domain or external, not both: domain is a shorthand for external.apiPrefix $JS.<domain>.API"
// +kubebuilder:validation:XValidation:rule="!has(self.optStartSeq) || !has(self.optStartTime)",message="set optStartSeq or optStartTime, not both"
type StreamSource struct {
	// Name of the JetStream stream.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_-]+$')",message="must contain only letters, digits, '_' and '-'"
	Name string `json:"name"`
	// FilterSubject takes only messages on this subject.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[^\s]+$`
	FilterSubject string `json:"filterSubject,omitempty"`
	// OptStartSeq starts at this stream sequence.
	// +optional
	// +kubebuilder:validation:Minimum=0
	OptStartSeq int64 `json:"optStartSeq,omitempty"`
	// OptStartTime starts at the first message at or after this time.
	// +optional
	OptStartTime *metav1.Time `json:"optStartTime,omitempty"`
	// SubjectTransforms take only messages matching one of the sources and
	// rewrite their subjects (not with filterSubject).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	SubjectTransforms []SubjectTransform `json:"subjectTransforms,omitempty"`
	// Domain is the JetStream domain (a leaf node's) the stream lives in: a
	// shorthand for external.apiPrefix "$JS.<domain>.API".
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_-]+$')",message="must be a JetStream domain name: only letters, digits, '_' and '-'"
	Domain string `json:"domain,omitempty"`
	// External reaches the stream through another account's or domain's
	// JetStream API prefix.
	// +optional
	External *ExternalStream `json:"external,omitempty"`
}

// SubjectTransform rewrites subjects that match Source into Destination,
// with NATS subject-mapping functions ({{wildcard(1)}}, {{partition(3,1)}}).
type SubjectTransform struct {
	// Source subject filter (wildcards allowed); empty matches every subject.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[^\s]*$`
	Source string `json:"source,omitempty"`
	// Destination subject, with mapping functions.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[^\s]+$`
	Destination string `json:"destination"`
}

// ExternalStream is another account's or domain's JetStream API.
type ExternalStream struct {
	// APIPrefix is the subject prefix of that JetStream API, such as
	// "$JS.leaf.API".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[^\s*>]+$`
	APIPrefix string `json:"apiPrefix"`
	// DeliverPrefix is the subject prefix messages are delivered on across
	// the account boundary.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[^\s*>]+$`
	DeliverPrefix string `json:"deliverPrefix,omitempty"`
}

// Republish publishes a copy of every stored message (or only its headers)
// on another subject, for clients that watch without a consumer.
type Republish struct {
	// Source subject filter of the messages republished (default: all).
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[^\s]*$`
	Source string `json:"source,omitempty"`
	// Destination subject, with mapping functions; it must not overlap the
	// stream's own subjects.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[^\s]+$`
	Destination string `json:"destination"`
	// HeadersOnly republishes headers (and the message size) without the
	// payload.
	// +optional
	HeadersOnly bool `json:"headersOnly,omitempty"`
}

// PersistMode is when JetStream acknowledges a publish: after the write is
// flushed (Default) or before (Async: faster, but a crash can lose
// acknowledged messages).
// +kubebuilder:validation:Enum=Default;Async
type PersistMode string

const (
	PersistDefault PersistMode = "Default"
	PersistAsync   PersistMode = "Async"
)

// StreamConsumerLimits are defaults and maximums for every consumer of the
// stream: a consumer that declares a larger value is refused.
type StreamConsumerLimits struct {
	// InactiveThreshold removes a consumer inactive this long (the default,
	// and the most a consumer may declare).
	// +optional
	InactiveThreshold Duration `json:"inactiveThreshold,omitempty"`
	// MaxAckPending is the most unacknowledged messages a consumer may
	// have (the default, and the most it may declare); 0 is no limit.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxAckPending int32 `json:"maxAckPending,omitempty"`
}

// EventStreamSpec declares a JetStream stream. Unset fields take the house
// defaults: file storage, limits retention, 7 days, 1 GiB, discard old,
// a 2-minute duplicate window, one replica.
// +kubebuilder:validation:XValidation:rule="has(self.name) == has(oldSelf.name) && (!has(self.name) || self.name == oldSelf.name)",message="name is immutable: JetStream cannot rename a stream; create a new EventStream instead",fieldPath=".name"
// +kubebuilder:validation:XValidation:rule="(has(self.subjects) && size(self.subjects) > 0) || has(self.mirror) || (has(self.sources) && size(self.sources) > 0)",message="at least one subject is required unless the stream is a mirror or has sources",fieldPath=".subjects"
// +kubebuilder:validation:XValidation:rule="!has(self.mirror) || !has(self.subjects) || size(self.subjects) == 0",message="a mirror stream cannot have subjects of its own",fieldPath=".subjects"
// +kubebuilder:validation:XValidation:rule="has(self.connection) == has(oldSelf.connection) && (!has(self.connection) || self.connection == oldSelf.connection)",message="connection is immutable: the stream would be left behind on the old server; create a new EventStream instead",fieldPath=".connection"
// +kubebuilder:validation:XValidation:rule="has(self.domain) == has(oldSelf.domain) && (!has(self.domain) || self.domain == oldSelf.domain)",message="domain is immutable: the stream would be left behind in the old JetStream domain; create a new EventStream instead",fieldPath=".domain"
// +kubebuilder:validation:XValidation:rule="has(self.mirror) == has(oldSelf.mirror) && (!has(self.mirror) || self.mirror == oldSelf.mirror)",message="mirror is immutable: JetStream cannot change a stream's mirror after creation",fieldPath=".mirror"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.sealed) || !oldSelf.sealed || (has(self.sealed) && self.sealed)",message="sealed cannot be unset: JetStream cannot unseal a stream; create a new EventStream instead",fieldPath=".sealed"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.denyDelete) || !oldSelf.denyDelete || (has(self.denyDelete) && self.denyDelete)",message="denyDelete cannot be turned off once set: JetStream refuses it; create a new EventStream instead",fieldPath=".denyDelete"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.denyPurge) || !oldSelf.denyPurge || (has(self.denyPurge) && self.denyPurge)",message="denyPurge cannot be turned off once set: JetStream refuses it; create a new EventStream instead",fieldPath=".denyPurge"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.allowMsgTTL) || !oldSelf.allowMsgTTL || (has(self.allowMsgTTL) && self.allowMsgTTL)",message="allowMsgTTL cannot be turned off once set: JetStream refuses it; create a new EventStream instead",fieldPath=".allowMsgTTL"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.allowMsgSchedules) || !oldSelf.allowMsgSchedules || (has(self.allowMsgSchedules) && self.allowMsgSchedules)",message="allowMsgSchedules cannot be turned off once set: JetStream refuses it; create a new EventStream instead",fieldPath=".allowMsgSchedules"
// +kubebuilder:validation:XValidation:rule="(has(self.allowMsgCounter) && self.allowMsgCounter) == (has(oldSelf.allowMsgCounter) && oldSelf.allowMsgCounter)",message="allowMsgCounter is immutable: a stream is a counter stream or not from its creation; create a new EventStream instead",fieldPath=".allowMsgCounter"
// +kubebuilder:validation:XValidation:rule="(has(self.persistMode) ? self.persistMode : 'Default') == (has(oldSelf.persistMode) ? oldSelf.persistMode : 'Default')",message="persistMode is immutable: JetStream fixes it at creation; create a new EventStream instead",fieldPath=".persistMode"
// +kubebuilder:validation:XValidation:rule="(has(self.firstSequence) ? self.firstSequence : 0) == (has(oldSelf.firstSequence) ? oldSelf.firstSequence : 0)",message="firstSequence is immutable: it applies only when the stream is created",fieldPath=".firstSequence"
// +kubebuilder:validation:XValidation:rule="!(has(self.allowRollup) && self.allowRollup) || !(has(self.denyPurge) && self.denyPurge)",message="allowRollup cannot be combined with denyPurge: a roll-up purges older messages; unset one of them",fieldPath=".allowRollup"
// +kubebuilder:validation:XValidation:rule="!(has(self.discardNewPerSubject) && self.discardNewPerSubject) || (self.discard == 'New' && has(self.maxMsgsPerSubject) && self.maxMsgsPerSubject > 0)",message="discardNewPerSubject needs discard: New and maxMsgsPerSubject above 0",fieldPath=".discardNewPerSubject"
// +kubebuilder:validation:XValidation:rule="!has(self.subjectDeleteMarkerTTL) || self.subjectDeleteMarkerTTL == '0' || ((has(self.allowMsgTTL) && self.allowMsgTTL) && (has(self.allowRollup) && self.allowRollup) && !has(self.mirror))",message="subjectDeleteMarkerTTL needs allowMsgTTL and allowRollup set, and cannot be set on a mirror",fieldPath=".subjectDeleteMarkerTTL"
// +kubebuilder:validation:XValidation:rule="!(has(self.allowMsgCounter) && self.allowMsgCounter) || (self.discard != 'New' && self.retention == 'Limits' && !(has(self.allowMsgTTL) && self.allowMsgTTL) && !(has(self.allowMsgSchedules) && self.allowMsgSchedules))",message="allowMsgCounter needs retention Limits and discard Old, without allowMsgTTL or allowMsgSchedules",fieldPath=".allowMsgCounter"
// +kubebuilder:validation:XValidation:rule="!(has(self.allowMsgSchedules) && self.allowMsgSchedules) || (self.discard != 'New' && has(self.allowRollup) && self.allowRollup && (!has(self.sources) || size(self.sources) == 0))",message="allowMsgSchedules needs allowRollup and discard Old, and a stream with sources cannot schedule messages",fieldPath=".allowMsgSchedules"
// +kubebuilder:validation:XValidation:rule="!has(self.persistMode) || self.persistMode != 'Async' || (self.storage == 'File' && self.replicas <= 1 && !(has(self.allowAtomicPublish) && self.allowAtomicPublish))",message="persistMode Async needs file storage and one replica, without allowAtomicPublish",fieldPath=".persistMode"
// +kubebuilder:validation:XValidation:rule="!has(self.mirror) || (!has(self.firstSequence) && !(has(self.allowMsgCounter) && self.allowMsgCounter) && !(has(self.allowAtomicPublish) && self.allowAtomicPublish) && !(has(self.allowBatchPublish) && self.allowBatchPublish) && !(has(self.allowMsgSchedules) && self.allowMsgSchedules))",message="a mirror cannot set firstSequence, allowMsgCounter, allowAtomicPublish, allowBatchPublish or allowMsgSchedules: it copies the origin stream as it is",fieldPath=".mirror"
type EventStreamSpec struct {
	// Name of the JetStream stream. Defaults to metadata.name upper-cased with
	// '-' replaced by '_' (auth-events → AUTH_EVENTS). Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_-]+$')",message="must be a JetStream stream name: only letters, digits, '_' and '-'"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('KV_') && !self.startsWith('OBJ_')",message="KV_ and OBJ_ name the streams of KeyValue and ObjectStore buckets: declare an EventKeyValue or an EventObjectStore instead"
	Name string `json:"name,omitempty"`

	// Description of the stream.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Description string `json:"description,omitempty"`

	// Subjects the stream captures, e.g. "auth.>". Required unless the
	// stream is a mirror or has sources.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=255
	// +kubebuilder:validation:items:Pattern=`^[^\s]+$`
	Subjects []string `json:"subjects,omitempty"`

	// Retention policy. Cannot change to or from WorkQueue.
	// +kubebuilder:default=Limits
	// +kubebuilder:validation:XValidation:rule="(self == 'WorkQueue') == (oldSelf == 'WorkQueue')",message="retention cannot change to or from WorkQueue: JetStream cannot convert a stream's retention in place"
	// +optional
	Retention RetentionPolicy `json:"retention,omitempty"`

	// MaxAge is how long messages are kept; "0" keeps them until another
	// limit removes them.
	// +kubebuilder:default="168h"
	// +optional
	MaxAge Duration `json:"maxAge,omitempty"`

	// MaxBytes is the most the stream stores, e.g. 1Gi; -1 is unlimited.
	// JetStream reserves it against the server's storage limit.
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('-1')) >= 0",message="must be -1 (unlimited) or a size such as 512Mi or 1Gi"
	// +optional
	MaxBytes *resource.Quantity `json:"maxBytes,omitempty"`

	// MaxMsgs is the most messages the stream stores; -1 is unlimited.
	// +kubebuilder:validation:Minimum=-1
	// +optional
	MaxMsgs *int64 `json:"maxMsgs,omitempty"`

	// MaxMsgSize is the largest message the stream accepts, in bytes; -1 is
	// unlimited (the server's max payload still applies).
	// +kubebuilder:validation:Minimum=-1
	// +kubebuilder:validation:Maximum=2147483647
	// +optional
	MaxMsgSize *int32 `json:"maxMsgSize,omitempty"`

	// MaxMsgsPerSubject is the most messages kept per subject; -1 is unlimited.
	// +kubebuilder:validation:Minimum=-1
	// +optional
	MaxMsgsPerSubject *int64 `json:"maxMsgsPerSubject,omitempty"`

	// DuplicateWindow is how long message IDs are remembered for deduplication.
	// +kubebuilder:default="2m"
	// +optional
	DuplicateWindow Duration `json:"duplicateWindow,omitempty"`

	// Storage type. Immutable.
	// +kubebuilder:default=File
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storage is immutable: JetStream cannot move a stream between file and memory storage"
	// +optional
	Storage StorageType `json:"storage,omitempty"`

	// Discard policy when a limit is reached.
	// +kubebuilder:default=Old
	// +optional
	Discard DiscardPolicy `json:"discard,omitempty"`

	// Replicas of the stream in a JetStream cluster (1 to 5).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=5
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// Placement of the replicas.
	// +optional
	Placement *Placement `json:"placement,omitempty"`

	// Compression of file storage.
	// +kubebuilder:default=None
	// +optional
	Compression Compression `json:"compression,omitempty"`

	// AllowDirect lets any replica answer direct get requests.
	// +optional
	AllowDirect bool `json:"allowDirect,omitempty"`

	// DenyDelete forbids deleting single messages.
	// +optional
	DenyDelete bool `json:"denyDelete,omitempty"`

	// DenyPurge forbids purging the stream.
	// +optional
	DenyPurge bool `json:"denyPurge,omitempty"`

	// Mirror makes this stream a read-only copy of another. Immutable.
	// +optional
	Mirror *StreamSource `json:"mirror,omitempty"`

	// Sources are streams whose messages are copied into this one.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Sources []StreamSource `json:"sources,omitempty"`

	// Metadata is copied into the stream's JetStream metadata. Keys in the
	// events.giia.io/ and _nats. prefixes are reserved.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('events.giia.io/') && !k.startsWith('_nats.'))",message="keys starting with events.giia.io/ or _nats. are reserved"
	Metadata map[string]string `json:"metadata,omitempty"`

	// SubjectTransform rewrites the subjects of incoming messages before
	// they are stored.
	// +optional
	SubjectTransform *SubjectTransform `json:"subjectTransform,omitempty"`

	// Republish publishes a copy of every stored message on another subject
	// (which must not overlap the stream's subjects).
	// +optional
	Republish *Republish `json:"republish,omitempty"`

	// Sealed stops the stream for good: no message in or out, no delete,
	// no purge, no expiry (JetStream then reports maxAge 0, discard New,
	// denyDelete and denyPurge). It cannot be unset.
	// +optional
	Sealed bool `json:"sealed,omitempty"`

	// AllowRollup lets publishers replace a subject's (or the whole
	// stream's) messages with a Nats-Rollup header. Not with denyPurge.
	// +optional
	AllowRollup bool `json:"allowRollup,omitempty"`

	// DiscardNewPerSubject refuses a new message on a subject that already
	// has maxMsgsPerSubject messages (needs discard New).
	// +optional
	DiscardNewPerSubject bool `json:"discardNewPerSubject,omitempty"`

	// FirstSequence is the sequence of the stream's first message. Only at
	// creation; immutable.
	// +optional
	// +kubebuilder:validation:Minimum=0
	FirstSequence int64 `json:"firstSequence,omitempty"`

	// AllowMsgTTL lets publishers give a message its own TTL (Nats-TTL
	// header). It cannot be turned off again.
	// +optional
	AllowMsgTTL bool `json:"allowMsgTTL,omitempty"`

	// SubjectDeleteMarkerTTL leaves a delete marker, kept this long, when
	// maxAge removes a subject's last message (at least 1s; needs
	// allowMsgTTL and allowRollup).
	// +optional
	SubjectDeleteMarkerTTL Duration `json:"subjectDeleteMarkerTTL,omitempty"`

	// ConsumerLimits are defaults and maximums for the stream's consumers.
	// +optional
	ConsumerLimits *StreamConsumerLimits `json:"consumerLimits,omitempty"`

	// NoAck: publishes to the stream are not acknowledged.
	// +optional
	NoAck bool `json:"noAck,omitempty"`

	// MaxConsumers is the most consumers the stream takes; -1 (the
	// default) is unlimited.
	// +optional
	// +kubebuilder:validation:Minimum=-1
	MaxConsumers *int32 `json:"maxConsumers,omitempty"`

	// AllowMsgCounter makes the stream a counter stream: publishes with a
	// Nats-Incr header add to the subject's value. Immutable.
	// +optional
	AllowMsgCounter bool `json:"allowMsgCounter,omitempty"`

	// AllowAtomicPublish allows atomic batch publishing.
	// +optional
	AllowAtomicPublish bool `json:"allowAtomicPublish,omitempty"`

	// AllowMsgSchedules allows scheduled messages (Nats-Schedule header).
	// Needs allowRollup; cannot be turned off again.
	// +optional
	AllowMsgSchedules bool `json:"allowMsgSchedules,omitempty"`

	// AllowBatchPublish allows fast (non-atomic) batch publishing.
	// +optional
	AllowBatchPublish bool `json:"allowBatchPublish,omitempty"`

	// PersistMode Async acknowledges a publish before it is flushed to
	// disk: faster, but a crash can lose acknowledged messages (file
	// storage, one replica, no allowAtomicPublish). Default when unset.
	// Immutable.
	// +optional
	PersistMode PersistMode `json:"persistMode,omitempty"`

	// DeletionPolicy: Delete removes the JetStream stream (and its messages)
	// with this resource; Retain keeps it.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// Connection, when set, manages the stream on the NATS server named in a
	// Secret of this namespace instead of the operator's default one. The
	// stream's EventConsumers use the same connection. Immutable.
	// +optional
	Connection *ConnectionSpec `json:"connection,omitempty"`

	// Domain is the JetStream domain the stream lives in, e.g. a leaf
	// node's (the API prefix $JS.<domain>.API); empty is the connection's
	// own JetStream (or the "domain" key of spec.connection's Secret). On
	// the operator's own connection only the domains the administrator
	// allows (--jetstream-domains) may be named. The stream's
	// EventConsumers use the same domain. Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_-]+$')",message="must be a JetStream domain name: only letters, digits, '_' and '-'"
	Domain string `json:"domain,omitempty"`
}

// EventStreamState is a summary of the stream's state, refreshed at each
// resync.
type EventStreamState struct {
	// Messages stored.
	Messages int64 `json:"messages"`
	// Bytes stored.
	Bytes int64 `json:"bytes"`
	// FirstSequence is the sequence of the oldest stored message.
	FirstSequence int64 `json:"firstSequence"`
	// LastSequence is the sequence of the newest stored message.
	LastSequence int64 `json:"lastSequence"`
	// Consumers on the stream.
	Consumers int32 `json:"consumers"`
}

// EventStreamStatus is what the operator last saw.
type EventStreamStatus struct {
	// ObservedGeneration is the generation the status describes: set when
	// the outcome for that generation is known (Ready, or Stalled), not
	// while it is still being reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready summarises the stream; Reconciling (work under way,
	// a transient failure retried) and Stalled (a terminal failure) are
	// present only while True.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// StreamName is the name of the JetStream stream.
	// +optional
	StreamName string `json:"streamName,omitempty"`
	// State of the stream.
	// +optional
	State *EventStreamState `json:"state,omitempty"`
}

// EventStream is a NATS JetStream stream managed by the operator.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=evs,categories=jetstream
// +kubebuilder:validation:XValidation:rule="has(self.spec.name) || self.metadata.name.matches('^[a-z0-9-]+$')",message="metadata.name contains '.', which a JetStream stream name cannot: set spec.name"
// +kubebuilder:validation:XValidation:rule="has(self.spec.name) || !(self.metadata.name.startsWith('kv-') || self.metadata.name.startsWith('obj-'))",message="metadata.name would make the stream KV_… or OBJ_…, the names of KeyValue and ObjectStore buckets' streams: set spec.name, or declare an EventKeyValue or an EventObjectStore"
// +kubebuilder:printcolumn:name="Stream",type=string,JSONPath=`.status.streamName`
// +kubebuilder:printcolumn:name="Subjects",type=string,JSONPath=`.spec.subjects[*]`
// +kubebuilder:printcolumn:name="Messages",type=integer,JSONPath=`.status.state.messages`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EventStream struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EventStreamSpec   `json:"spec"`
	Status EventStreamStatus `json:"status,omitempty"`
}

// EventStreamList is a list of EventStreams.
// +kubebuilder:object:root=true
type EventStreamList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventStream `json:"items"`
}

// JetStreamName is the name of the JetStream stream: spec.name, or
// metadata.name upper-cased with '-' replaced by '_' (auth-events →
// AUTH_EVENTS).
func (s *EventStream) JetStreamName() string {
	if s.Spec.Name != "" {
		return s.Spec.Name
	}
	return strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
}

// OwnerMarker is the value of OwnerMetadataKey for this resource.
func (s *EventStream) OwnerMarker() string { return s.Namespace + "/" + s.Name }
