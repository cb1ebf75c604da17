package controller

import (
	"reflect"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// The field table of jetstream.StreamConfig: where EventStream declares each
// field, its default and whether it changes in place (see fields_test.go).
// TestEveryDeclaredStreamFieldRoundTrips has a case for every declared one.
const oneWay = "only false → true: JetStream refuses turning it off (refused at admission)"

var streamFieldTable = map[string]jsField{
	"Name":                 {path: "spec.name", def: "metadata.name upper-cased, '-' → '_'", inPlace: "no: JetStream cannot rename a stream"},
	"Description":          {path: "spec.description", def: "none", inPlace: "yes"},
	"Subjects":             {path: "spec.subjects", def: "none (required unless mirror or sources)", inPlace: "yes"},
	"Retention":            {path: "spec.retention", def: "Limits", inPlace: "Limits ↔ Interest only: not to or from WorkQueue"},
	"MaxConsumers":         {path: "spec.maxConsumers", def: "-1 (unlimited)", inPlace: "yes"},
	"MaxMsgs":              {path: "spec.maxMsgs", def: "-1 (unlimited)", inPlace: "yes"},
	"MaxBytes":             {path: "spec.maxBytes", def: "1Gi", inPlace: "yes"},
	"Discard":              {path: "spec.discard", def: "Old", inPlace: "yes"},
	"DiscardNewPerSubject": {path: "spec.discardNewPerSubject", def: "false", inPlace: "yes"},
	"MaxAge":               {path: "spec.maxAge", def: "168h", inPlace: "yes"},
	"MaxMsgsPerSubject":    {path: "spec.maxMsgsPerSubject", def: "-1 (unlimited)", inPlace: "yes"},
	"MaxMsgSize":           {path: "spec.maxMsgSize", def: "-1 (unlimited)", inPlace: "yes"},
	"Storage":              {path: "spec.storage", def: "File", inPlace: "no: JetStream cannot move a stream between file and memory"},
	"Replicas":             {path: "spec.replicas", def: "1", inPlace: "yes (in a cluster)"},
	"NoAck":                {path: "spec.noAck", def: "false", inPlace: "yes"},
	"Duplicates":           {path: "spec.duplicateWindow", def: "2m", inPlace: "yes"},
	"Placement":            {path: "spec.placement", def: "none", inPlace: "yes (JetStream moves the replicas)"},
	"Mirror":               {path: "spec.mirror", def: "none", inPlace: "no: JetStream cannot change a stream's mirror"},
	"Sources":              {path: "spec.sources", def: "none", inPlace: "yes"},
	"Sealed":               {path: "spec.sealed", def: "false", inPlace: "only false → true: a sealed stream cannot be unsealed (created open, then sealed)"},
	"DenyDelete":           {path: "spec.denyDelete", def: "false", inPlace: oneWay},
	"DenyPurge":            {path: "spec.denyPurge", def: "false", inPlace: oneWay},
	"AllowRollup":          {path: "spec.allowRollup", def: "false", inPlace: "yes"},
	"Compression":          {path: "spec.compression", def: "None", inPlace: "yes"},
	"FirstSeq":             {path: "spec.firstSequence", def: "1", inPlace: "no: applies only when the stream is created"},
	"SubjectTransform":     {path: "spec.subjectTransform", def: "none", inPlace: "yes"},
	"RePublish":            {path: "spec.republish", def: "none", inPlace: "yes"},
	"AllowDirect":          {path: "spec.allowDirect", def: "false", inPlace: "yes"},
	"MirrorDirect": {omitted: "JetStream sets it from the origin stream's allowDirect whenever it can see the origin, " +
		"so a declared value would be overwritten and read as drift; set allowDirect on the origin stream"},
	"ConsumerLimits":         {path: "spec.consumerLimits", def: "none", inPlace: "yes (refused while a consumer exceeds the new limit)"},
	"Metadata":               {path: "spec.metadata", def: "the owner markers only", inPlace: "yes"},
	"Template":               {omitted: "stream templates were removed from nats-server (2.10); nats.go keeps the field for old servers"},
	"AllowMsgTTL":            {path: "spec.allowMsgTTL", def: "false", inPlace: oneWay},
	"SubjectDeleteMarkerTTL": {path: "spec.subjectDeleteMarkerTTL", def: "none", inPlace: "yes"},
	"AllowMsgCounter":        {path: "spec.allowMsgCounter", def: "false", inPlace: "no: fixed at creation"},
	"AllowAtomicPublish":     {path: "spec.allowAtomicPublish", def: "false", inPlace: "yes"},
	"AllowMsgSchedules":      {path: "spec.allowMsgSchedules", def: "false", inPlace: oneWay},
	"PersistMode":            {path: "spec.persistMode", def: "Default", inPlace: "no: fixed at creation"},
	"AllowBatchPublish":      {path: "spec.allowBatchPublish", def: "false", inPlace: "yes"},
}

func init() {
	fieldTables = append(fieldTables, fieldTable{
		config: reflect.TypeFor[jetstream.StreamConfig](), resource: &eventsv1.EventStream{}, fields: streamFieldTable})
}
