package controller

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// Fuzz targets for the translation of EventStream / EventConsumer specs into
// JetStream configurations (translate.go). For any spec, including ones the
// API server's validation would refuse:
//
//   - streamConfig / consumerConfig never panic;
//   - an error is an *events.ValidationError (errors.Is ErrValidation) whose
//     Field is non-empty and names a field of the spec;
//   - a configuration they return is consistent: it validates, equals its
//     own JetStream translation (DiffStream / DiffConsumer report nothing and
//     CheckStreamUpdate / CheckConsumerUpdate see no immutable change), equals
//     that translation after a JSON round trip (as the server echoes it back,
//     so a freshly created object is never taken for drift), is the same on a
//     second translation, and carries the ownership markers.
//
// Run with: go test -run='^$' -fuzz=FuzzStreamConfig -fuzztime=30s ./internal/controller/
// (and -fuzz=FuzzConsumerConfig). The seed corpus is in testdata/fuzz.

// fzSplit splits a comma-separated fuzz string into a list; "" is no list.
func fzSplit(s, sep string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, sep)
}

// fzKeyValues parses "k=v;k2=v2" into a map ("" is nil).
func fzKeyValues(s string) map[string]string {
	if s == "" {
		return nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func fzSource(s string, seq int64) eventsv1.StreamSource {
	name, filter, _ := strings.Cut(s, "|")
	return eventsv1.StreamSource{Name: name, FilterSubject: filter, OptStartSeq: seq}
}

// Bits of the stream fuzzer's flags argument.
const (
	fzsMaxBytes = 1 << iota
	fzsMaxMsgs
	fzsMaxMsgSize
	fzsMaxMsgsPerSubject
	fzsPlacement
	fzsMirror
	fzsAllowDirect
	fzsDenyDelete
	fzsDenyPurge
)

// Bits of the stream fuzzer's features argument (the settings beyond
// limits and placement).
const (
	fzfSealed = 1 << iota
	fzfAllowRollup
	fzfDiscardNewPerSubject
	fzfAllowMsgTTL
	fzfNoAck
	fzfAllowMsgCounter
	fzfAllowAtomicPublish
	fzfAllowMsgSchedules
	fzfAllowBatchPublish
	fzfSubjectTransform
	fzfRepublish
	fzfRepublishHeadersOnly
	fzfConsumerLimits
	fzfMaxConsumers
)

// fzStreamFields are the spec fields a stream ValidationError may name (the
// part before any index or sub-field).
var fzStreamFields = map[string]bool{
	"name": true, "description": true, "subjects": true, "retention": true, "maxAge": true,
	"duplicateWindow": true, "maxBytes": true, "maxMsgs": true, "maxMsgSize": true,
	"maxMsgsPerSubject": true, "storage": true, "discard": true, "compression": true,
	"replicas": true, "placement": true, "mirror": true, "sources": true, "metadata": true,
	"subjectTransform": true, "republish": true, "sealed": true, "allowRollup": true,
	"discardNewPerSubject": true, "firstSequence": true, "allowMsgTTL": true,
	"subjectDeleteMarkerTTL": true, "consumerLimits": true, "noAck": true, "maxConsumers": true,
	"allowMsgCounter": true, "allowAtomicPublish": true, "allowMsgSchedules": true,
	"allowBatchPublish": true, "persistMode": true,
}

var fzConsumerFields = map[string]bool{
	"durableName": true, "description": true, "filterSubjects": true, "deliverPolicy": true,
	"optStartSeq": true, "optStartTime": true, "ackPolicy": true, "ackWait": true,
	"maxDeliver": true, "backoff": true, "maxAckPending": true, "maxWaiting": true,
	"replicas": true, "memoryStorage": true, "inactiveThreshold": true, "metadata": true,
	"replayPolicy": true, "headersOnly": true, "sampleFrequency": true, "deliverSubject": true,
	"deliverGroup": true, "flowControl": true, "idleHeartbeat": true, "rateLimitBps": true,
	"maxRequestBatch": true, "maxRequestExpires": true, "maxRequestMaxBytes": true,
	"priorityPolicy": true, "priorityGroups": true, "pinnedTTL": true, "pauseUntil": true,
}

// fzCheckTypedError checks err is a ValidationError naming a field in fields.
func fzCheckTypedError(t *testing.T, err error, fields map[string]bool) {
	t.Helper()
	if !errors.Is(err, events.ErrValidation) {
		t.Fatalf("error is not ErrValidation: %T %v", err, err)
	}
	var verr *events.ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error is not a *events.ValidationError: %T %v", err, err)
	}
	if verr.Field == "" {
		t.Fatalf("ValidationError without a field: %v", err)
	}
	top := verr.Field
	if i := strings.IndexAny(top, "[."); i >= 0 {
		top = top[:i]
	}
	if !fields[top] {
		t.Fatalf("ValidationError names %q, not a field of the spec: %v", verr.Field, err)
	}
}

// fzAPIRoundTrip stores obj as the API server would (JSON) and reads it back.
func fzAPIRoundTrip[T any](t *testing.T, obj *T) *T {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return out
}

// fzEcho is v as the server sends it back: through JSON.
func fzEcho[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return out
}

func FuzzStreamConfig(f *testing.F) {
	// The seed corpus in testdata/fuzz/FuzzStreamConfig covers the samples
	// and edge cases; one more here keeps the argument list documented.
	f.Add("auth-events", "", "Authentication events", "auth.>", "Limits", "168h", "2m", "1Gi",
		int64(-1), int32(-1), int64(-1), "File", "Old", "None", int32(1), "", "", "", int64(0), "team=auth",
		uint16(fzsMaxBytes),
		uint16(fzfAllowRollup|fzfAllowMsgTTL|fzfRepublish|fzfConsumerLimits), "auth.in.*|auth.out.{{wildcard(1)}}",
		"auth.>|copy.auth.>", int64(0), "10m", "1h", int32(100), int32(10), "Default")

	f.Fuzz(func(t *testing.T, name, specName, description, subjects, retention, maxAge, dupWindow, maxBytes string,
		maxMsgs int64, maxMsgSize int32, maxMsgsPerSubject int64, storage, discard, compression string,
		replicas int32, placement, mirror, sources string, sourceSeq int64, metadata string, flags uint16,
		features uint16, transform, republish string, firstSequence int64, deleteMarkerTTL, consumerInactive string,
		consumerMaxAckPending, maxConsumers int32, persistMode string,
	) {
		evs := &eventsv1.EventStream{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "tenant", UID: types.UID("uid-" + name)},
			Spec: eventsv1.EventStreamSpec{
				Name:            specName,
				Description:     description,
				Subjects:        fzSplit(subjects, ","),
				Retention:       eventsv1.RetentionPolicy(retention),
				MaxAge:          eventsv1.Duration(maxAge),
				DuplicateWindow: eventsv1.Duration(dupWindow),
				Storage:         eventsv1.StorageType(storage),
				Discard:         eventsv1.DiscardPolicy(discard),
				Compression:     eventsv1.Compression(compression),
				Replicas:        replicas,
				AllowDirect:     flags&fzsAllowDirect != 0,
				DenyDelete:      flags&fzsDenyDelete != 0,
				DenyPurge:       flags&fzsDenyPurge != 0,
				Metadata:        fzKeyValues(metadata),
			},
		}
		s := &evs.Spec
		if flags&fzsMaxBytes != 0 {
			if q, err := resource.ParseQuantity(maxBytes); err == nil {
				s.MaxBytes = &q
			}
		}
		if flags&fzsMaxMsgs != 0 {
			s.MaxMsgs = &maxMsgs
		}
		if flags&fzsMaxMsgSize != 0 {
			s.MaxMsgSize = &maxMsgSize
		}
		if flags&fzsMaxMsgsPerSubject != 0 {
			s.MaxMsgsPerSubject = &maxMsgsPerSubject
		}
		if flags&fzsPlacement != 0 {
			cluster, tags, _ := strings.Cut(placement, "|")
			s.Placement = &eventsv1.Placement{Cluster: cluster, Tags: fzSplit(tags, ",")}
		}
		if flags&fzsMirror != 0 {
			m := fzSource(mirror, sourceSeq)
			s.Mirror = &m
		}
		for _, src := range fzSplit(sources, ";") {
			s.Sources = append(s.Sources, fzSource(src, sourceSeq))
		}
		s.Sealed = features&fzfSealed != 0
		s.AllowRollup = features&fzfAllowRollup != 0
		s.DiscardNewPerSubject = features&fzfDiscardNewPerSubject != 0
		s.AllowMsgTTL = features&fzfAllowMsgTTL != 0
		s.NoAck = features&fzfNoAck != 0
		s.AllowMsgCounter = features&fzfAllowMsgCounter != 0
		s.AllowAtomicPublish = features&fzfAllowAtomicPublish != 0
		s.AllowMsgSchedules = features&fzfAllowMsgSchedules != 0
		s.AllowBatchPublish = features&fzfAllowBatchPublish != 0
		if features&fzfSubjectTransform != 0 {
			src, dst, _ := strings.Cut(transform, "|")
			s.SubjectTransform = &eventsv1.SubjectTransform{Source: src, Destination: dst}
		}
		if features&fzfRepublish != 0 {
			src, dst, _ := strings.Cut(republish, "|")
			s.Republish = &eventsv1.Republish{Source: src, Destination: dst, HeadersOnly: features&fzfRepublishHeadersOnly != 0}
		}
		if features&fzfConsumerLimits != 0 {
			s.ConsumerLimits = &eventsv1.StreamConsumerLimits{InactiveThreshold: eventsv1.Duration(consumerInactive), MaxAckPending: consumerMaxAckPending}
		}
		if features&fzfMaxConsumers != 0 {
			s.MaxConsumers = &maxConsumers
		}
		s.FirstSequence = firstSequence
		s.SubjectDeleteMarkerTTL = eventsv1.Duration(deleteMarkerTTL)
		s.PersistMode = eventsv1.PersistMode(persistMode)

		fzCheckStream(t, evs, false)
		// The same spec as the operator gets it from the API server (JSON:
		// valid UTF-8 only).
		fzCheckStream(t, fzAPIRoundTrip(t, evs), true)
	})
}

// fzCheckStream checks the translation of evs; fromAPI: evs went through
// JSON as objects from the API server do, so that the server's echo (JSON
// too) can be compared (JSON replaces invalid UTF-8, which the API server
// never hands out).
func fzCheckStream(t *testing.T, evs *eventsv1.EventStream, fromAPI bool) {
	t.Helper()
	before := evs.DeepCopy()
	cfg, err := streamConfig(evs)
	if !reflect.DeepEqual(before, evs) {
		t.Fatalf("streamConfig changed the EventStream")
	}
	if err != nil {
		fzCheckTypedError(t, err, fzStreamFields)
		return
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("streamConfig returned an invalid configuration: %v", err)
	}
	js := cfg.JetStream()
	if diff := admin.DiffStream(cfg, js); diff != nil {
		t.Fatalf("configuration differs from its own translation in %v\ncfg: %+v\njs:  %+v", diff, cfg, js)
	}
	if err := admin.CheckStreamUpdate(cfg, js); err != nil {
		t.Fatalf("configuration cannot be updated to itself: %v", err)
	}
	if diff := admin.DiffStream(cfg, fzEcho(t, js)); fromAPI && diff != nil {
		t.Fatalf("configuration differs from the server's echo in %v\njs: %+v", diff, js)
	}
	again, err := streamConfig(evs)
	if err != nil {
		t.Fatalf("second translation failed: %v", err)
	}
	if diff := admin.DiffStream(cfg, again.JetStream()); diff != nil || again.Name != cfg.Name {
		t.Fatalf("translation is not deterministic: %v", diff)
	}
	if cfg.Name != evs.JetStreamName() {
		t.Fatalf("stream name %q, want %q", cfg.Name, evs.JetStreamName())
	}
	if cfg.Metadata[eventsv1.OwnerMetadataKey] != evs.OwnerMarker() || cfg.Metadata[eventsv1.UIDMetadataKey] != string(evs.UID) {
		t.Fatalf("ownership markers missing: %v", cfg.Metadata)
	}
	if js.Replicas < 1 || js.Replicas > events.MaxReplicas {
		t.Fatalf("JetStream replicas %d", js.Replicas)
	}
}

// Bits of the consumer fuzzer's flags argument.
const (
	fzcOptStartSeq = 1 << iota
	fzcOptStartTime
	fzcMaxAckPending
	fzcMaxWaiting
	fzcMemoryStorage
	fzcDeadLetter
	fzcFlowControl
	fzcHeadersOnly
)

// Bits of the consumer fuzzer's more argument.
const (
	fzcPauseUntil = 1 << iota
)

func FuzzConsumerConfig(f *testing.F) {
	f.Add("analytics-auth", "", "", "auth.>", "All", int64(0), int64(0), "Explicit", "30s", int32(3),
		"5s,30s,2m", int32(0), int32(0), int32(0), "", "", uint8(0),
		"", "", "", int64(0), "", "", "", "", "", int32(0), "", int64(0), int64(0), uint8(0))
	// A push consumer with every push setting, and a paused pull consumer
	// with priority groups.
	f.Add("push", "", "", "", "All", int64(0), int64(0), "Explicit", "10s", int32(3),
		"", int32(0), int32(0), int32(0), "", "", uint8(fzcFlowControl|fzcHeadersOnly),
		"deliver.push", "workers", "5s", int64(8000), "50%", "Original", "", "", "", int32(0), "", int64(0), int64(0), uint8(0))
	f.Add("pull", "", "", "", "All", int64(0), int64(0), "Explicit", "10s", int32(3),
		"", int32(0), int32(0), int32(0), "", "", uint8(0),
		"", "", "", int64(0), "7", "", "Pinned", "jobs,batch", "30s", int32(10), "1m", int64(4096), int64(4102444800e9), uint8(fzcPauseUntil))

	f.Fuzz(func(t *testing.T, name, durableName, description, filterSubjects, deliverPolicy string,
		optStartSeq, optStartTime int64, ackPolicy, ackWait string, maxDeliver int32, backoff string,
		maxAckPending, maxWaiting, replicas int32, inactiveThreshold, metadata string, flags uint8,
		deliverSubject, deliverGroup, idleHeartbeat string, rateLimitBps int64, sampleFrequency, replayPolicy,
		priorityPolicy, priorityGroups, pinnedTTL string, maxRequestBatch int32, maxRequestExpires string,
		maxRequestMaxBytes, pauseUntil int64, more uint8,
	) {
		evc := &eventsv1.EventConsumer{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "tenant", UID: types.UID("uid-" + name)},
			Spec: eventsv1.EventConsumerSpec{
				StreamRef:         eventsv1.LocalObjectReference{Name: "stream"},
				DurableName:       durableName,
				Description:       description,
				FilterSubjects:    fzSplit(filterSubjects, ","),
				DeliverPolicy:     eventsv1.DeliverPolicy(deliverPolicy),
				AckPolicy:         eventsv1.AckPolicy(ackPolicy),
				AckWait:           eventsv1.Duration(ackWait),
				MaxDeliver:        maxDeliver,
				Replicas:          replicas,
				MemoryStorage:     flags&fzcMemoryStorage != 0,
				InactiveThreshold: eventsv1.Duration(inactiveThreshold),
				Metadata:          fzKeyValues(metadata),

				DeliverSubject:     deliverSubject,
				DeliverGroup:       deliverGroup,
				FlowControl:        flags&fzcFlowControl != 0,
				IdleHeartbeat:      eventsv1.Duration(idleHeartbeat),
				RateLimitBps:       rateLimitBps,
				HeadersOnly:        flags&fzcHeadersOnly != 0,
				SampleFrequency:    sampleFrequency,
				ReplayPolicy:       eventsv1.ReplayPolicy(replayPolicy),
				PriorityPolicy:     eventsv1.PriorityPolicy(priorityPolicy),
				PriorityGroups:     fzSplit(priorityGroups, ","),
				PinnedTTL:          eventsv1.Duration(pinnedTTL),
				MaxRequestBatch:    maxRequestBatch,
				MaxRequestExpires:  eventsv1.Duration(maxRequestExpires),
				MaxRequestMaxBytes: maxRequestMaxBytes,
			},
		}
		s := &evc.Spec
		if more&fzcPauseUntil != 0 {
			ts := metav1.NewTime(time.Unix(0, pauseUntil))
			s.PauseUntil = &ts
		}
		for _, b := range fzSplit(backoff, ",") {
			s.Backoff = append(s.Backoff, eventsv1.Duration(b))
		}
		if flags&fzcOptStartSeq != 0 {
			s.OptStartSeq = &optStartSeq
		}
		if flags&fzcOptStartTime != 0 {
			ts := metav1.NewTime(time.Unix(0, optStartTime))
			s.OptStartTime = &ts
		}
		if flags&fzcMaxAckPending != 0 {
			s.MaxAckPending = &maxAckPending
		}
		if flags&fzcMaxWaiting != 0 {
			s.MaxWaiting = &maxWaiting
		}
		if flags&fzcDeadLetter != 0 {
			s.DeadLetter = &eventsv1.DeadLetter{}
		}

		fzCheckConsumer(t, evc, false)
		fzCheckConsumer(t, fzAPIRoundTrip(t, evc), true)
	})
}

func fzCheckConsumer(t *testing.T, evc *eventsv1.EventConsumer, fromAPI bool) {
	t.Helper()
	before := evc.DeepCopy()
	cfg, err := consumerConfig(evc)
	if !reflect.DeepEqual(before, evc) {
		t.Fatalf("consumerConfig changed the EventConsumer")
	}
	if err != nil {
		fzCheckTypedError(t, err, fzConsumerFields)
		return
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("consumerConfig returned an invalid configuration: %v", err)
	}
	js := cfg.JetStream()
	if diff := admin.DiffConsumer(cfg, js); diff != nil {
		t.Fatalf("configuration differs from its own translation in %v\ncfg: %+v\njs:  %+v", diff, cfg, js)
	}
	if err := admin.CheckConsumerUpdate(cfg, js); err != nil {
		t.Fatalf("configuration cannot be updated to itself: %v", err)
	}
	if diff := admin.DiffConsumer(cfg, fzEcho(t, js)); fromAPI && diff != nil {
		t.Fatalf("configuration differs from the server's echo in %v\njs: %+v", diff, js)
	}
	again, err := consumerConfig(evc)
	if err != nil {
		t.Fatalf("second translation failed: %v", err)
	}
	if diff := admin.DiffConsumer(cfg, again.JetStream()); diff != nil || again.Durable != cfg.Durable {
		t.Fatalf("translation is not deterministic: %v", diff)
	}
	if cfg.Durable != evc.JetStreamName() || js.Durable != cfg.Durable {
		t.Fatalf("durable name %q, want %q", cfg.Durable, evc.JetStreamName())
	}
	if cfg.Metadata[eventsv1.OwnerMetadataKey] != evc.OwnerMarker() || cfg.Metadata[eventsv1.UIDMetadataKey] != string(evc.UID) {
		t.Fatalf("ownership markers missing: %v", cfg.Metadata)
	}
	if js.AckPolicy != jetstream.AckNonePolicy && len(js.BackOff) > 0 && js.MaxDeliver > 0 && len(js.BackOff) > js.MaxDeliver {
		t.Fatalf("more backoff entries (%d) than deliveries (%d): JetStream refuses this", len(js.BackOff), js.MaxDeliver)
	}
}
