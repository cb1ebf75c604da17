// Package v1alpha1 contains the API of eventstream-operator: EventStream (a
// JetStream stream), EventConsumer (a durable consumer on one) and
// EventSchema (an event type's JSON Schema in the schema registry),
// EventReplay, and EventKeyValue and EventObjectStore (JetStream buckets).
// +kubebuilder:object:generate=true
// +groupName=events.giia.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of these objects.
	GroupVersion = schema.GroupVersion{Group: "events.giia.io", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types in this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&EventStream{}, &EventStreamList{},
		&EventConsumer{}, &EventConsumerList{},
		&EventSchema{}, &EventSchemaList{},
		&EventReplay{}, &EventReplayList{},
		&EventKeyValue{}, &EventKeyValueList{},
		&EventObjectStore{}, &EventObjectStoreList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
