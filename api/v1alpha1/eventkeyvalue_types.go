package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EventKeyValueSpec declares a JetStream KeyValue bucket (a stream named
// KV_<bucket> underneath). Unset fields take the house defaults: file
// storage, one replica, history 1, 1 GiB, no TTL (a bucket is not an event
// log: values stay until they are deleted or replaced).
// +kubebuilder:validation:XValidation:rule="has(self.bucket) == has(oldSelf.bucket) && (!has(self.bucket) || self.bucket == oldSelf.bucket)",message="bucket is immutable: JetStream cannot rename a bucket; create a new EventKeyValue instead",fieldPath=".bucket"
// +kubebuilder:validation:XValidation:rule="has(self.connection) == has(oldSelf.connection) && (!has(self.connection) || self.connection == oldSelf.connection)",message="connection is immutable: the bucket would be left behind on the old server; create a new EventKeyValue instead",fieldPath=".connection"
// +kubebuilder:validation:XValidation:rule="has(self.mirror) == has(oldSelf.mirror) && (!has(self.mirror) || self.mirror == oldSelf.mirror)",message="mirror is immutable: JetStream cannot change a bucket's mirror after creation",fieldPath=".mirror"
// +kubebuilder:validation:XValidation:rule="!has(self.mirror) || !has(self.sources) || size(self.sources) == 0",message="a mirror bucket cannot also have sources",fieldPath=".sources"
type EventKeyValueSpec struct {
	// Bucket is the name of the KeyValue bucket. Defaults to metadata.name.
	// Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=252
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_-]+$')",message="must be a bucket name: only letters, digits, '_' and '-'"
	Bucket string `json:"bucket,omitempty"`

	// Description of the bucket.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Description string `json:"description,omitempty"`

	// History is how many values are kept per key (1 to 64).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	History int32 `json:"history,omitempty"`

	// TTL is how long a value is kept after it was written; "0" (the
	// default) keeps values until they are deleted or replaced.
	// +optional
	TTL Duration `json:"ttl,omitempty"`

	// MaxValueSize is the largest value the bucket accepts, in bytes; -1
	// (the default) is unlimited (the server's max payload still applies).
	// +kubebuilder:validation:Minimum=-1
	// +kubebuilder:validation:Maximum=2147483647
	// +optional
	MaxValueSize *int32 `json:"maxValueSize,omitempty"`

	// MaxBytes is the most the bucket stores, e.g. 1Gi; -1 is unlimited.
	// JetStream reserves it against the server's storage limit.
	// +kubebuilder:default="1Gi"
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).compareTo(quantity('-1')) >= 0",message="must be -1 (unlimited) or a size such as 512Mi or 1Gi"
	// +optional
	MaxBytes *resource.Quantity `json:"maxBytes,omitempty"`

	// Storage type. Immutable.
	// +kubebuilder:default=File
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storage is immutable: JetStream cannot move a bucket between file and memory storage"
	// +optional
	Storage StorageType `json:"storage,omitempty"`

	// Replicas of the bucket in a JetStream cluster (1 to 5).
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

	// Republish publishes a copy of every change (or only its headers) on
	// another subject.
	// +optional
	Republish *Republish `json:"republish,omitempty"`

	// Mirror makes this bucket a read-only copy of another bucket (name the
	// other bucket, not its KV_ stream). Immutable.
	// +optional
	Mirror *StreamSource `json:"mirror,omitempty"`

	// Sources are buckets (by bucket name) whose keys are copied into this
	// one.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Sources []StreamSource `json:"sources,omitempty"`

	// LimitMarkerTTL, when set, makes JetStream leave a delete marker, kept
	// this long, when a limit (TTL, history) removes a key's last value, so
	// that watchers see the removal. It needs nats-server 2.11 or later.
	// +optional
	LimitMarkerTTL Duration `json:"limitMarkerTTL,omitempty"`

	// Metadata is copied into the bucket's JetStream metadata. Keys in the
	// events.giia.io/ and _nats. prefixes are reserved.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('events.giia.io/') && !k.startsWith('_nats.'))",message="keys starting with events.giia.io/ or _nats. are reserved"
	Metadata map[string]string `json:"metadata,omitempty"`

	// DeletionPolicy: Delete removes the bucket (and its values) with this
	// resource; Retain keeps it.
	// +kubebuilder:default=Delete
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// Connection, when set, manages the bucket on the NATS server named in a
	// Secret of this namespace instead of the operator's default one.
	// Immutable.
	// +optional
	Connection *ConnectionSpec `json:"connection,omitempty"`
}

// EventKeyValueState is a summary of the bucket's state, refreshed at each
// resync.
type EventKeyValueState struct {
	// Values stored: every kept revision of every key, delete and purge
	// markers included (the messages of the bucket's stream).
	Values int64 `json:"values"`
	// Bytes stored.
	Bytes int64 `json:"bytes"`
	// Keys with at least one stored value or marker (the subjects of the
	// bucket's stream).
	Keys int64 `json:"keys"`
}

// EventKeyValueStatus is what the operator last saw.
type EventKeyValueStatus struct {
	// ObservedGeneration is the generation the status describes: set when
	// the outcome for that generation is known (Ready, or Stalled), not
	// while it is still being reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready summarises the bucket; Reconciling (work under way,
	// a transient failure retried) and Stalled (a terminal failure) are
	// present only while True.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// BucketName is the name of the bucket, set once it exists.
	// +optional
	BucketName string `json:"bucketName,omitempty"`
	// State of the bucket.
	// +optional
	State *EventKeyValueState `json:"state,omitempty"`
}

// EventKeyValue is a NATS JetStream KeyValue bucket managed by the operator.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=evkv,categories=jetstream
// +kubebuilder:validation:XValidation:rule="has(self.spec.bucket) || self.metadata.name.matches('^[a-z0-9-]+$')",message="metadata.name contains '.', which a bucket name cannot: set spec.bucket"
// +kubebuilder:printcolumn:name="Bucket",type=string,JSONPath=`.status.bucketName`
// +kubebuilder:printcolumn:name="Values",type=integer,JSONPath=`.status.state.values`
// +kubebuilder:printcolumn:name="Bytes",type=integer,JSONPath=`.status.state.bytes`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EventKeyValue struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	Spec   EventKeyValueSpec   `json:"spec"`
	Status EventKeyValueStatus `json:"status,omitempty"`
}

// EventKeyValueList is a list of EventKeyValues.
// +kubebuilder:object:root=true
type EventKeyValueList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventKeyValue `json:"items"`
}

// BucketName is the name of the bucket: spec.bucket, or metadata.name.
func (kv *EventKeyValue) BucketName() string {
	if kv.Spec.Bucket != "" {
		return kv.Spec.Bucket
	}
	return kv.Name
}

// StreamName is the name of the bucket's JetStream stream (KV_<bucket>).
func (kv *EventKeyValue) StreamName() string { return "KV_" + kv.BucketName() }

// OwnerMarker is the value of OwnerMetadataKey for this resource.
func (kv *EventKeyValue) OwnerMarker() string { return kv.Namespace + "/" + kv.Name }
