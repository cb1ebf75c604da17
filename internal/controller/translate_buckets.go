package controller

import (
	"fmt"
	"maps"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// keyValueConfig translates an EventKeyValue into the library's
// KeyValueConfig, ownership marker included. Defaults come from the library
// (fields the API server has not defaulted).
func keyValueConfig(kv *eventsv1.EventKeyValue) (admin.KeyValueConfig, error) {
	s := kv.Spec
	cfg := admin.NewKeyValueConfig(kv.BucketName())
	cfg.Description = s.Description
	if s.History != 0 {
		if s.History < 1 || s.History > admin.KeyValueMaxHistory {
			return cfg, &events.ValidationError{Field: "history", Reason: fmt.Sprintf("must be between 1 and %d, got %d", admin.KeyValueMaxHistory, s.History)}
		}
		cfg.History = uint8(s.History)
	}
	var err error
	if cfg.TTL, err = s.TTL.Get(); err != nil {
		return cfg, &events.ValidationError{Field: "ttl", Reason: err.Error()}
	}
	if cfg.LimitMarkerTTL, err = s.LimitMarkerTTL.Get(); err != nil {
		return cfg, &events.ValidationError{Field: "limitMarkerTTL", Reason: err.Error()}
	}
	if s.MaxValueSize != nil {
		cfg.MaxValueSize = *s.MaxValueSize
	}
	if s.MaxBytes != nil {
		cfg.MaxBytes = s.MaxBytes.Value()
	}
	if cfg.Storage, err = bucketStorage(s.Storage); err != nil {
		return cfg, err
	}
	if cfg.Compression, err = bucketCompression(s.Compression); err != nil {
		return cfg, err
	}
	if s.Replicas > 0 {
		cfg.Replicas = int(s.Replicas)
	}
	cfg.Placement = placement(s.Placement)
	cfg.RePublish = republish(s.Republish)
	if s.Mirror != nil {
		m := streamSource(*s.Mirror)
		cfg.Mirror = &m
	}
	for _, src := range s.Sources {
		cfg.Sources = append(cfg.Sources, streamSource(src))
	}
	cfg.Metadata = ownedMetadata(s.Metadata, kv.OwnerMarker(), string(kv.UID))
	return cfg, cfg.Validate()
}

// objectStoreConfig translates an EventObjectStore into the library's
// ObjectStoreConfig, ownership marker included.
func objectStoreConfig(o *eventsv1.EventObjectStore) (admin.ObjectStoreConfig, error) {
	s := o.Spec
	cfg := admin.NewObjectStoreConfig(o.BucketName())
	cfg.Description = s.Description
	var err error
	if cfg.TTL, err = s.TTL.Get(); err != nil {
		return cfg, &events.ValidationError{Field: "ttl", Reason: err.Error()}
	}
	if s.MaxBytes != nil {
		cfg.MaxBytes = s.MaxBytes.Value()
	}
	if cfg.Storage, err = bucketStorage(s.Storage); err != nil {
		return cfg, err
	}
	if cfg.Compression, err = bucketCompression(s.Compression); err != nil {
		return cfg, err
	}
	if s.Replicas > 0 {
		cfg.Replicas = int(s.Replicas)
	}
	cfg.Placement = placement(s.Placement)
	cfg.Metadata = ownedMetadata(s.Metadata, o.OwnerMarker(), string(o.UID))
	return cfg, cfg.Validate()
}

func bucketStorage(s eventsv1.StorageType) (jetstream.StorageType, error) {
	switch s {
	case eventsv1.StorageFile, "":
		return jetstream.FileStorage, nil
	case eventsv1.StorageMemory:
		return jetstream.MemoryStorage, nil
	}
	return 0, &events.ValidationError{Field: "storage", Reason: fmt.Sprintf("unknown storage %q", s)}
}

func bucketCompression(c eventsv1.Compression) (bool, error) {
	switch c {
	case eventsv1.CompressionNone, "":
		return false, nil
	case eventsv1.CompressionS2:
		return true, nil
	}
	return false, &events.ValidationError{Field: "compression", Reason: fmt.Sprintf("unknown compression %q", c)}
}

func placement(p *eventsv1.Placement) *jetstream.Placement {
	if p == nil {
		return nil
	}
	return &jetstream.Placement{Cluster: p.Cluster, Tags: p.Tags}
}

// ownedMetadata is the declared metadata with the owner marker and UID.
func ownedMetadata(md map[string]string, marker, uid string) map[string]string {
	out := maps.Clone(md)
	if out == nil {
		out = map[string]string{}
	}
	out[eventsv1.OwnerMetadataKey] = marker
	out[eventsv1.UIDMetadataKey] = uid
	return out
}
