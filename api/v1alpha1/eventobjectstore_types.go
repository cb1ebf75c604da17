package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EventObjectStoreSpec declares a JetStream ObjectStore bucket (a stream
// named OBJ_<bucket> underneath). Unset fields take the house defaults:
// file storage, one replica, 1 GiB, no TTL.
// +kubebuilder:validation:XValidation:rule="has(self.bucket) == has(oldSelf.bucket) && (!has(self.bucket) || self.bucket == oldSelf.bucket)",message="bucket is immutable: JetStream cannot rename a bucket; create a new EventObjectStore instead",fieldPath=".bucket"
// +kubebuilder:validation:XValidation:rule="has(self.connection) == has(oldSelf.connection) && (!has(self.connection) || self.connection == oldSelf.connection)",message="connection is immutable: the bucket would be left behind on the old server; create a new EventObjectStore instead",fieldPath=".connection"
type EventObjectStoreSpec struct {
	// Bucket is the name of the ObjectStore bucket. Defaults to
	// metadata.name. Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=251
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_-]+$')",message="must be a bucket name: only letters, digits, '_' and '-'"
	Bucket string `json:"bucket,omitempty"`

	// Description of the bucket.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Description string `json:"description,omitempty"`

	// TTL is how long an object is kept after it was written; "0" (the
	// default) keeps objects until they are deleted.
	// +optional
	TTL Duration `json:"ttl,omitempty"`

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

	// Metadata is copied into the bucket's JetStream metadata. Keys in the
	// events.giia.io/ and _nats. prefixes are reserved.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self.all(k, !k.startsWith('events.giia.io/') && !k.startsWith('_nats.'))",message="keys starting with events.giia.io/ or _nats. are reserved"
	Metadata map[string]string `json:"metadata,omitempty"`

	// DeletionPolicy: Delete removes the bucket (and its objects) with this
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

// EventObjectStoreState is a summary of the bucket's state, refreshed at
// each resync.
type EventObjectStoreState struct {
	// Objects stored, links included and deleted objects not: counted from
	// the bucket's metadata entries (one per object name, the last written)
	// with one batched read of the bucket's stream per refresh.
	Objects int64 `json:"objects"`
	// Bytes stored: the objects' data and metadata in the bucket's stream.
	Bytes int64 `json:"bytes"`
	// Sealed buckets accept no more changes.
	Sealed bool `json:"sealed"`
}

// EventObjectStoreStatus is what the operator last saw.
type EventObjectStoreStatus struct {
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
	State *EventObjectStoreState `json:"state,omitempty"`
}

// EventObjectStore is a NATS JetStream ObjectStore bucket managed by the
// operator.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=evos,categories=jetstream
// +kubebuilder:validation:XValidation:rule="has(self.spec.bucket) || self.metadata.name.matches('^[a-z0-9-]+$')",message="metadata.name contains '.', which a bucket name cannot: set spec.bucket"
// +kubebuilder:printcolumn:name="Bucket",type=string,JSONPath=`.status.bucketName`
// +kubebuilder:printcolumn:name="Objects",type=integer,JSONPath=`.status.state.objects`
// +kubebuilder:printcolumn:name="Bytes",type=integer,JSONPath=`.status.state.bytes`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EventObjectStore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	Spec   EventObjectStoreSpec   `json:"spec"`
	Status EventObjectStoreStatus `json:"status,omitempty"`
}

// EventObjectStoreList is a list of EventObjectStores.
// +kubebuilder:object:root=true
type EventObjectStoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventObjectStore `json:"items"`
}

// BucketName is the name of the bucket: spec.bucket, or metadata.name.
func (o *EventObjectStore) BucketName() string {
	if o.Spec.Bucket != "" {
		return o.Spec.Bucket
	}
	return o.Name
}

// StreamName is the name of the bucket's JetStream stream (OBJ_<bucket>).
func (o *EventObjectStore) StreamName() string { return "OBJ_" + o.BucketName() }

// OwnerMarker is the value of OwnerMetadataKey for this resource.
func (o *EventObjectStore) OwnerMarker() string { return o.Namespace + "/" + o.Name }
