package controller

import (
	"reflect"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

func init() {
	fieldTables = append(fieldTables, fieldTable{
		config: reflect.TypeFor[jetstream.KeyValueConfig](), resource: &eventsv1.EventKeyValue{},
		fields: map[string]jsField{
			"Bucket":         {path: "spec.bucket", def: "metadata.name", inPlace: "no: JetStream cannot rename a bucket (refused at admission)"},
			"Description":    {path: "spec.description", def: "none", inPlace: "yes"},
			"MaxValueSize":   {path: "spec.maxValueSize", def: "-1 (unlimited)", inPlace: "yes"},
			"History":        {path: "spec.history", def: "1", inPlace: "yes"},
			"TTL":            {path: "spec.ttl", def: "0 (values kept until deleted)", inPlace: "yes"},
			"MaxBytes":       {path: "spec.maxBytes", def: "1Gi", inPlace: "yes"},
			"Storage":        {path: "spec.storage", def: "File", inPlace: "no: JetStream cannot move a bucket between file and memory (refused at admission)"},
			"Replicas":       {path: "spec.replicas", def: "1", inPlace: "yes"},
			"Placement":      {path: "spec.placement", def: "none", inPlace: "yes (JetStream moves the replicas)"},
			"RePublish":      {path: "spec.republish", def: "none", inPlace: "yes"},
			"Mirror":         {path: "spec.mirror", def: "none", inPlace: "no: JetStream cannot change a bucket's mirror (refused at admission)"},
			"Sources":        {path: "spec.sources", def: "none", inPlace: "yes"},
			"Compression":    {path: "spec.compression", def: "None", inPlace: "yes (new blocks)"},
			"LimitMarkerTTL": {path: "spec.limitMarkerTTL", def: "0 (no markers)", inPlace: "yes, but not back to 0: JetStream cannot turn per-message TTLs off"},
			"Metadata":       {path: "spec.metadata", def: "none (plus the operator's owner marker)", inPlace: "yes"},
		}})
}
