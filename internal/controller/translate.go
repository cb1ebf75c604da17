package controller

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// streamConfig translates an EventStream into the library's StreamConfig,
// ownership marker included. Defaults come from the library (fields the API
// server has not defaulted, e.g. in objects created before a default existed).
func streamConfig(evs *eventsv1.EventStream) (events.StreamConfig, error) {
	s := evs.Spec
	cfg := events.NewStreamConfig(evs.JetStreamName(), s.Subjects...)
	// A bucket's stream belongs to its EventKeyValue or EventObjectStore:
	// an EventStream of the same namespace and name would carry the same
	// owner marker and fight it (admission refuses this too).
	for _, prefix := range []string{admin.KeyValueStreamPrefix, admin.ObjectStoreStreamPrefix} {
		if strings.HasPrefix(cfg.Name, prefix) {
			return cfg, &events.ValidationError{Field: "name", Reason: fmt.Sprintf(
				"%s: %s names the streams of KeyValue and ObjectStore buckets; declare an EventKeyValue or an EventObjectStore instead", cfg.Name, prefix)}
		}
	}
	cfg.Description = s.Description
	var err error
	if cfg.Retention, err = retention(s.Retention); err != nil {
		return cfg, err
	}
	if s.MaxAge != "" {
		if cfg.MaxAge, err = s.MaxAge.Get(); err != nil {
			return cfg, &events.ValidationError{Field: "maxAge", Reason: err.Error()}
		}
	}
	if s.DuplicateWindow != "" {
		if cfg.DuplicateWindow, err = s.DuplicateWindow.Get(); err != nil {
			return cfg, &events.ValidationError{Field: "duplicateWindow", Reason: err.Error()}
		}
	}
	if s.MaxBytes != nil {
		cfg.MaxBytes = s.MaxBytes.Value()
	}
	if s.MaxMsgs != nil {
		cfg.MaxMsgs = *s.MaxMsgs
	}
	if s.MaxMsgSize != nil {
		cfg.MaxMsgSize = *s.MaxMsgSize
	}
	if s.MaxMsgsPerSubject != nil {
		cfg.MaxMsgsPerSubject = *s.MaxMsgsPerSubject
	}
	switch s.Storage {
	case eventsv1.StorageFile, "":
		cfg.Storage = jetstream.FileStorage
	case eventsv1.StorageMemory:
		cfg.Storage = jetstream.MemoryStorage
	default:
		return cfg, &events.ValidationError{Field: "storage", Reason: fmt.Sprintf("unknown storage %q", s.Storage)}
	}
	switch s.Discard {
	case eventsv1.DiscardOld, "":
		cfg.Discard = jetstream.DiscardOld
	case eventsv1.DiscardNew:
		cfg.Discard = jetstream.DiscardNew
	default:
		return cfg, &events.ValidationError{Field: "discard", Reason: fmt.Sprintf("unknown discard policy %q", s.Discard)}
	}
	switch s.Compression {
	case eventsv1.CompressionNone, "":
		cfg.Compression = jetstream.NoCompression
	case eventsv1.CompressionS2:
		cfg.Compression = jetstream.S2Compression
	default:
		return cfg, &events.ValidationError{Field: "compression", Reason: fmt.Sprintf("unknown compression %q", s.Compression)}
	}
	if s.Replicas > 0 {
		cfg.Replicas = int(s.Replicas)
	}
	if s.Placement != nil {
		cfg.Placement = &jetstream.Placement{Cluster: s.Placement.Cluster, Tags: s.Placement.Tags}
	}
	cfg.AllowDirect, cfg.DenyDelete, cfg.DenyPurge = s.AllowDirect, s.DenyDelete, s.DenyPurge
	if s.Mirror != nil {
		m := streamSource(*s.Mirror)
		cfg.Mirror = &m
	}
	for _, src := range s.Sources {
		cfg.Sources = append(cfg.Sources, streamSource(src))
	}
	if err := streamFeatures(s, &cfg); err != nil {
		return cfg, err
	}
	cfg.Metadata = maps.Clone(s.Metadata)
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	cfg.Metadata[eventsv1.OwnerMetadataKey] = evs.OwnerMarker()
	cfg.Metadata[eventsv1.UIDMetadataKey] = string(evs.UID)
	return cfg, cfg.Validate()
}

// streamFeatures translates the settings beyond limits and placement.
func streamFeatures(s eventsv1.EventStreamSpec, cfg *events.StreamConfig) error {
	if t := s.SubjectTransform; t != nil {
		cfg.SubjectTransform = &jetstream.SubjectTransformConfig{Source: t.Source, Destination: t.Destination}
	}
	cfg.RePublish = republish(s.Republish)
	cfg.Sealed, cfg.AllowRollup, cfg.DiscardNewPerSubject = s.Sealed, s.AllowRollup, s.DiscardNewPerSubject
	cfg.FirstSequence = uint64(max(s.FirstSequence, 0))
	cfg.AllowMsgTTL = s.AllowMsgTTL
	var err error
	if cfg.SubjectDeleteMarkerTTL, err = s.SubjectDeleteMarkerTTL.Get(); err != nil {
		return &events.ValidationError{Field: "subjectDeleteMarkerTTL", Reason: err.Error()}
	}
	if l := s.ConsumerLimits; l != nil {
		if cfg.ConsumerLimits.InactiveThreshold, err = l.InactiveThreshold.Get(); err != nil {
			return &events.ValidationError{Field: "consumerLimits.inactiveThreshold", Reason: err.Error()}
		}
		cfg.ConsumerLimits.MaxAckPending = int(l.MaxAckPending)
	}
	cfg.NoAck = s.NoAck
	if s.MaxConsumers != nil {
		cfg.MaxConsumers = int(*s.MaxConsumers)
	}
	cfg.AllowMsgCounter, cfg.AllowAtomicPublish = s.AllowMsgCounter, s.AllowAtomicPublish
	cfg.AllowMsgSchedules, cfg.AllowBatchPublish = s.AllowMsgSchedules, s.AllowBatchPublish
	switch s.PersistMode {
	case eventsv1.PersistDefault, "":
		cfg.PersistMode = jetstream.DefaultPersistMode
	case eventsv1.PersistAsync:
		cfg.PersistMode = jetstream.AsyncPersistMode
	default:
		return &events.ValidationError{Field: "persistMode", Reason: fmt.Sprintf("unknown persist mode %q", s.PersistMode)}
	}
	return nil
}

func retention(r eventsv1.RetentionPolicy) (jetstream.RetentionPolicy, error) {
	switch r {
	case eventsv1.RetentionLimits, "":
		return jetstream.LimitsPolicy, nil
	case eventsv1.RetentionInterest:
		return jetstream.InterestPolicy, nil
	case eventsv1.RetentionWorkQueue:
		return jetstream.WorkQueuePolicy, nil
	}
	return 0, &events.ValidationError{Field: "retention", Reason: fmt.Sprintf("unknown retention policy %q", r)}
}

// streamSource translates a mirror or source (of a stream or a KeyValue
// bucket).
func streamSource(s eventsv1.StreamSource) events.StreamSource {
	out := events.StreamSource{Name: s.Name, FilterSubject: s.FilterSubject, OptStartSeq: uint64(max(s.OptStartSeq, 0)), Domain: s.Domain}
	if s.OptStartTime != nil {
		t := s.OptStartTime.UTC()
		out.OptStartTime = &t
	}
	for _, t := range s.SubjectTransforms {
		out.SubjectTransforms = append(out.SubjectTransforms, jetstream.SubjectTransformConfig{Source: t.Source, Destination: t.Destination})
	}
	if s.External != nil {
		out.External = &jetstream.ExternalStream{APIPrefix: s.External.APIPrefix, DeliverPrefix: s.External.DeliverPrefix}
	}
	return out
}

// republish translates a republish rule (of a stream or a KeyValue bucket).
func republish(r *eventsv1.Republish) *jetstream.RePublish {
	if r == nil {
		return nil
	}
	return &jetstream.RePublish{Source: r.Source, Destination: r.Destination, HeadersOnly: r.HeadersOnly}
}

// consumerConfig translates an EventConsumer into the library's
// ConsumerConfig, ownership marker included.
func consumerConfig(evc *eventsv1.EventConsumer) (admin.ConsumerConfig, error) {
	s := evc.Spec
	cfg := admin.NewConsumerConfig(evc.JetStreamName(), s.FilterSubjects...)
	cfg.Description = s.Description
	switch s.DeliverPolicy {
	case eventsv1.DeliverAll, "":
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	case eventsv1.DeliverLast:
		cfg.DeliverPolicy = jetstream.DeliverLastPolicy
	case eventsv1.DeliverNew:
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	case eventsv1.DeliverByStartSequence:
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
	case eventsv1.DeliverByStartTime:
		cfg.DeliverPolicy = jetstream.DeliverByStartTimePolicy
	case eventsv1.DeliverLastPerSubject:
		cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	default:
		return cfg, &events.ValidationError{Field: "deliverPolicy", Reason: fmt.Sprintf("unknown deliver policy %q", s.DeliverPolicy)}
	}
	if s.OptStartSeq != nil {
		cfg.OptStartSeq = uint64(max(*s.OptStartSeq, 0))
	}
	if s.OptStartTime != nil {
		t := s.OptStartTime.UTC()
		cfg.OptStartTime = &t
	}
	switch s.AckPolicy {
	case eventsv1.AckExplicit, "":
		cfg.AckPolicy = jetstream.AckExplicitPolicy
	case eventsv1.AckAll:
		cfg.AckPolicy = jetstream.AckAllPolicy
	case eventsv1.AckNone:
		cfg.AckPolicy = jetstream.AckNonePolicy
	default:
		return cfg, &events.ValidationError{Field: "ackPolicy", Reason: fmt.Sprintf("unknown ack policy %q", s.AckPolicy)}
	}
	var err error
	if s.AckWait != "" {
		if cfg.AckWait, err = s.AckWait.Get(); err != nil {
			return cfg, &events.ValidationError{Field: "ackWait", Reason: err.Error()}
		}
	}
	if s.MaxDeliver != 0 {
		cfg.MaxDeliver = int(s.MaxDeliver)
	}
	for i, b := range s.Backoff {
		d, err := b.Get()
		if err != nil {
			return cfg, &events.ValidationError{Field: fmt.Sprintf("backoff[%d]", i), Reason: err.Error()}
		}
		cfg.BackOff = append(cfg.BackOff, d)
	}
	if s.MaxAckPending != nil {
		cfg.MaxAckPending = int(*s.MaxAckPending)
	}
	if s.MaxWaiting != nil {
		cfg.MaxWaiting = int(*s.MaxWaiting)
	}
	cfg.Replicas = int(s.Replicas)
	cfg.MemoryStorage = s.MemoryStorage
	if s.InactiveThreshold != "" {
		if cfg.InactiveThreshold, err = s.InactiveThreshold.Get(); err != nil {
			return cfg, &events.ValidationError{Field: "inactiveThreshold", Reason: err.Error()}
		}
	}
	if err := consumerDelivery(s, &cfg); err != nil {
		return cfg, err
	}
	cfg.Metadata = maps.Clone(s.Metadata)
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	cfg.Metadata[eventsv1.OwnerMetadataKey] = evc.OwnerMarker()
	cfg.Metadata[eventsv1.UIDMetadataKey] = string(evc.UID)
	return cfg, cfg.Validate()
}

// consumerDelivery translates how the consumer delivers: replay, push and
// pull settings, priority groups and pause.
func consumerDelivery(s eventsv1.EventConsumerSpec, cfg *admin.ConsumerConfig) error {
	switch s.ReplayPolicy {
	case eventsv1.ReplayInstant, "":
		cfg.ReplayPolicy = jetstream.ReplayInstantPolicy
	case eventsv1.ReplayOriginal:
		cfg.ReplayPolicy = jetstream.ReplayOriginalPolicy
	default:
		return &events.ValidationError{Field: "replayPolicy", Reason: fmt.Sprintf("unknown replay policy %q", s.ReplayPolicy)}
	}
	switch s.PriorityPolicy {
	case eventsv1.PriorityNone, "":
		cfg.PriorityPolicy = jetstream.PriorityPolicyNone
	case eventsv1.PriorityOverflow:
		cfg.PriorityPolicy = jetstream.PriorityPolicyOverflow
	case eventsv1.PriorityPinned:
		cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
	case eventsv1.PriorityPrioritized:
		cfg.PriorityPolicy = jetstream.PriorityPolicyPrioritized
	default:
		return &events.ValidationError{Field: "priorityPolicy", Reason: fmt.Sprintf("unknown priority policy %q", s.PriorityPolicy)}
	}
	durations := []struct {
		field string
		in    eventsv1.Duration
		out   *time.Duration
	}{
		{"idleHeartbeat", s.IdleHeartbeat, &cfg.IdleHeartbeat},
		{"maxRequestExpires", s.MaxRequestExpires, &cfg.MaxRequestExpires},
		{"pinnedTTL", s.PinnedTTL, &cfg.PinnedTTL},
	}
	for _, d := range durations {
		v, err := d.in.Get()
		if err != nil {
			return &events.ValidationError{Field: d.field, Reason: err.Error()}
		}
		*d.out = v
	}
	if s.RateLimitBps < 0 {
		return &events.ValidationError{Field: "rateLimitBps", Reason: "must not be negative"}
	}
	if s.MaxRequestMaxBytes < 0 || s.MaxRequestMaxBytes > math.MaxInt32 {
		return &events.ValidationError{Field: "maxRequestMaxBytes", Reason: fmt.Sprintf("must be between 0 (unlimited) and %d", math.MaxInt32)}
	}
	cfg.HeadersOnly = s.HeadersOnly
	cfg.SampleFrequency = s.SampleFrequency
	cfg.DeliverSubject = s.DeliverSubject
	cfg.DeliverGroup = s.DeliverGroup
	cfg.FlowControl = s.FlowControl
	cfg.RateLimitBps = uint64(s.RateLimitBps)
	cfg.MaxRequestBatch = int(s.MaxRequestBatch)
	cfg.MaxRequestMaxBytes = int(s.MaxRequestMaxBytes)
	cfg.PriorityGroups = slices.Clone(s.PriorityGroups)
	if s.PauseUntil != nil {
		t := s.PauseUntil.UTC()
		cfg.PauseUntil = &t
	}
	return nil
}
