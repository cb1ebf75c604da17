package controller

import (
	"fmt"
	"maps"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
)

// streamConfig translates an EventStream into the library's StreamConfig,
// ownership marker included. Defaults come from the library (fields the API
// server has not defaulted, e.g. in objects created before a default existed).
func streamConfig(evs *eventsv1.EventStream) (events.StreamConfig, error) {
	s := evs.Spec
	cfg := events.NewStreamConfig(evs.JetStreamName(), s.Subjects...)
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
	cfg.Metadata = maps.Clone(s.Metadata)
	if cfg.Metadata == nil {
		cfg.Metadata = map[string]string{}
	}
	cfg.Metadata[eventsv1.OwnerMetadataKey] = evs.OwnerMarker()
	cfg.Metadata[eventsv1.UIDMetadataKey] = string(evs.UID)
	return cfg, cfg.Validate()
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

func streamSource(s eventsv1.StreamSource) events.StreamSource {
	return events.StreamSource{Name: s.Name, FilterSubject: s.FilterSubject, OptStartSeq: uint64(max(s.OptStartSeq, 0))}
}
