package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SchemaCompatibility is the rule a new minor version of a schema must
// follow against the other minors of its major version (pkg/events/schemas
// Compatibility).
// +kubebuilder:validation:Enum=Backward;None
type SchemaCompatibility string

const (
	// SchemaCompatibilityBackward: a new minor may only add optional
	// properties — no new required property, no removed property, no
	// changed type, no narrowed enum.
	SchemaCompatibilityBackward SchemaCompatibility = "Backward"
	// SchemaCompatibilityNone: no check.
	SchemaCompatibilityNone SchemaCompatibility = "None"
)

// EventSchemaSpec declares the JSON Schema of the data of one event type at
// one schema version.
// +kubebuilder:validation:XValidation:rule="has(self.connection) == has(oldSelf.connection) && (!has(self.connection) || self.connection == oldSelf.connection)",message="connection is immutable: the schema would be left behind on the old server; create a new EventSchema instead",fieldPath=".connection"
type EventSchemaSpec struct {
	// Type is the event type the schema is for, e.g. "user.created":
	// dot-separated tokens of letters, digits, '_' and '-'. Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_-]+([.][A-Za-z0-9_-]+)*$')",message="must be an event type such as user.created: dot-separated tokens of letters, digits, '_' and '-'"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="type is immutable: create a new EventSchema for another type"
	Type string `json:"type"`

	// Version is the schema version, "major.minor" (e.g. "1.0"): the
	// schemaversion of the events it describes. Immutable.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=19
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]{0,8})[.](0|[1-9][0-9]{0,8})$')",message="must be major.minor such as 1.0 or 2.3 (digits, no leading zeros)"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="version is immutable: create a new EventSchema for a new version"
	Version string `json:"version"`

	// Schema is the JSON Schema (draft 2020-12 unless its $schema names
	// another draft) that the data of events of this type and version
	// follow. References ($ref) resolve only inside the document.
	// +kubebuilder:validation:Type=object
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Schema apiextensionsv1.JSON `json:"schema"`

	// Compatibility is the rule this version must follow against the other
	// minors of its major version present in the registry: Backward (a new
	// minor may only add optional properties) or None (no check). A new
	// major version is never checked.
	// +kubebuilder:default=Backward
	// +optional
	Compatibility SchemaCompatibility `json:"compatibility,omitempty"`

	// Description of the event, for humans.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Description string `json:"description,omitempty"`

	// Connection, when set, registers the schema in the registry bucket on
	// the NATS server named in a Secret of this namespace instead of the
	// operator's default one (only where the operator allows per-resource
	// connections). Immutable.
	// +optional
	Connection *ConnectionSpec `json:"connection,omitempty"`
}

// EventSchemaStatus is what the operator last saw.
type EventSchemaStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready summarises the schema; Reconciling and Stalled are
	// present only while True.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Bucket is the registry's KeyValue bucket.
	// +optional
	Bucket string `json:"bucket,omitempty"`
	// Key is the schema's key in the bucket, "<type>.<version>".
	// +optional
	Key string `json:"key,omitempty"`
	// URI names the schema; publishers put it in the events' dataschema.
	// +optional
	URI string `json:"uri,omitempty"`
	// Revision is the bucket's revision of the stored schema.
	// +optional
	Revision uint64 `json:"revision,omitempty"`
}

// EventSchema is the JSON Schema of one event type at one version, stored by
// the operator in the schema registry (a JetStream KeyValue bucket) that
// services validate against.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=evsc,categories=jetstream
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Compatibility",type=string,JSONPath=`.spec.compatibility`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type EventSchema struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EventSchemaSpec   `json:"spec"`
	Status EventSchemaStatus `json:"status,omitempty"`
}

// EventSchemaList is a list of EventSchemas.
// +kubebuilder:object:root=true
type EventSchemaList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EventSchema `json:"items"`
}

// OwnerMarker is the Owner this resource writes into its registry record.
func (s *EventSchema) OwnerMarker() string { return s.Namespace + "/" + s.Name }
