package controller

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// Fuzz targets for the translation of EventKeyValue / EventObjectStore specs
// (translate_buckets.go), with the same promises as the stream and consumer
// ones (translate_fuzz_test.go): no panic; an error is a ValidationError
// naming a field of the spec; a configuration returned validates, equals
// its own JetStream form (the bucket's stream: DiffKeyValue /
// DiffObjectStore report nothing, no immutable change), also after the
// server's JSON echo, is deterministic, and carries the ownership markers.
//
// Run with: go test -run='^$' -fuzz=FuzzKeyValueConfig -fuzztime=30s ./internal/controller/
// (and -fuzz=FuzzObjectStoreConfig).

// Bits of the bucket fuzzers' flags argument.
const (
	fzbMaxBytes = 1 << iota
	fzbMaxValueSize
	fzbPlacement
	fzbMirror
	fzbRepublish
	fzbHeadersOnly
)

var fzKeyValueFields = map[string]bool{
	"bucket": true, "description": true, "history": true, "ttl": true, "maxValueSize": true,
	"maxBytes": true, "storage": true, "replicas": true, "placement": true, "compression": true,
	"republish": true, "mirror": true, "sources": true, "limitMarkerTTL": true, "metadata": true,
}

var fzObjectStoreFields = map[string]bool{
	"bucket": true, "description": true, "ttl": true, "maxBytes": true, "storage": true,
	"replicas": true, "placement": true, "compression": true, "metadata": true,
}

func FuzzKeyValueConfig(f *testing.F) {
	f.Add("feature-flags", "", "Feature flags", int32(5), "", "1Gi", int32(-1), "File", "None", int32(1),
		"", "", "", "flags.>", "", int64(0), "team=web", uint16(fzbMaxBytes))
	f.Add("mirror", "MIRROR", "", int32(1), "1h", "10Mi", int32(1024), "Memory", "S2", int32(1),
		"east|ssd", "ORIGIN|$KV.ORIGIN.a.>", "", "", "5s", int64(3), "", uint16(fzbMirror|fzbPlacement|fzbMaxValueSize))
	f.Add("sourced", "", "", int32(64), "30s", "-1", int32(0), "", "", int32(0),
		"", "", "A;B|$KV.B.x.>;KV_C", "$KV.sourced.>|w.>", "1s", int64(0), "", uint16(fzbRepublish|fzbHeadersOnly))
	f.Add("bad", "a.b", "", int32(65), "7d", "-2", int32(-5), "Disk", "Zip", int32(9),
		"", "", "", "", "1ms", int64(-1), "_nats.x=y", uint16(0xffff))

	f.Fuzz(func(t *testing.T, name, bucket, description string, history int32, ttl, maxBytes string,
		maxValueSize int32, storage, compression string, replicas int32, placement, mirror, sources,
		republish, limitMarkerTTL string, sourceSeq int64, metadata string, flags uint16,
	) {
		kv := &eventsv1.EventKeyValue{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "tenant", UID: types.UID("uid-" + name)},
			Spec: eventsv1.EventKeyValueSpec{
				Bucket: bucket, Description: description, History: history, TTL: eventsv1.Duration(ttl),
				Storage: eventsv1.StorageType(storage), Compression: eventsv1.Compression(compression),
				Replicas: replicas, LimitMarkerTTL: eventsv1.Duration(limitMarkerTTL), Metadata: fzKeyValues(metadata),
			},
		}
		s := &kv.Spec
		if flags&fzbMaxBytes != 0 {
			if q, err := resource.ParseQuantity(maxBytes); err == nil {
				s.MaxBytes = &q
			}
		}
		if flags&fzbMaxValueSize != 0 {
			s.MaxValueSize = &maxValueSize
		}
		if flags&fzbPlacement != 0 {
			cluster, tags, _ := strings.Cut(placement, "|")
			s.Placement = &eventsv1.Placement{Cluster: cluster, Tags: fzSplit(tags, ",")}
		}
		if flags&fzbMirror != 0 {
			m := fzSource(mirror, sourceSeq)
			s.Mirror = &m
		}
		for _, src := range fzSplit(sources, ";") {
			s.Sources = append(s.Sources, fzSource(src, sourceSeq))
		}
		if flags&fzbRepublish != 0 {
			src, dst, _ := strings.Cut(republish, "|")
			s.Republish = &eventsv1.Republish{Source: src, Destination: dst, HeadersOnly: flags&fzbHeadersOnly != 0}
		}
		fzCheckKeyValue(t, kv, false)
		fzCheckKeyValue(t, fzAPIRoundTrip(t, kv), true)
	})
}

func fzCheckKeyValue(t *testing.T, kv *eventsv1.EventKeyValue, fromAPI bool) {
	t.Helper()
	before := kv.DeepCopy()
	cfg, err := keyValueConfig(kv)
	if !reflect.DeepEqual(before, kv) {
		t.Fatalf("keyValueConfig changed the EventKeyValue")
	}
	if err != nil {
		fzCheckTypedError(t, err, fzKeyValueFields)
		return
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("keyValueConfig returned an invalid configuration: %v", err)
	}
	stream := cfg.Stream()
	if diff := admin.DiffKeyValue(cfg, stream); diff != nil {
		t.Fatalf("configuration differs from its own stream in %v\ncfg: %+v\nstream: %+v", diff, cfg, stream)
	}
	if err := admin.CheckKeyValueUpdate(cfg, stream); err != nil {
		t.Fatalf("configuration cannot be updated to itself: %v", err)
	}
	if diff := admin.DiffKeyValue(cfg, fzEcho(t, stream)); fromAPI && diff != nil {
		t.Fatalf("configuration differs from the server's echo in %v\nstream: %+v", diff, stream)
	}
	again, err := keyValueConfig(kv)
	if err != nil {
		t.Fatalf("second translation failed: %v", err)
	}
	if diff := admin.DiffKeyValue(cfg, again.Stream()); diff != nil || again.Bucket != cfg.Bucket {
		t.Fatalf("translation is not deterministic: %v", diff)
	}
	if cfg.Bucket != kv.BucketName() || stream.Name != kv.StreamName() {
		t.Fatalf("bucket %q (stream %q), want %q (%q)", cfg.Bucket, stream.Name, kv.BucketName(), kv.StreamName())
	}
	if cfg.Metadata[eventsv1.OwnerMetadataKey] != kv.OwnerMarker() || cfg.Metadata[eventsv1.UIDMetadataKey] != string(kv.UID) {
		t.Fatalf("ownership markers missing: %v", cfg.Metadata)
	}
	if stream.Replicas < 1 || stream.Replicas > events.MaxReplicas || stream.MaxMsgsPerSubject < 1 || stream.MaxMsgsPerSubject > admin.KeyValueMaxHistory {
		t.Fatalf("stream replicas %d, history %d", stream.Replicas, stream.MaxMsgsPerSubject)
	}
}

func FuzzObjectStoreConfig(f *testing.F) {
	f.Add("attachments", "", "Attachments", "72h", "10Gi", "File", "S2", int32(1), "", "team=docs", uint16(fzbMaxBytes))
	f.Add("bad", "a b", "", "-1h", "-3", "Tape", "Lz4", int32(0), "|", "events.giia.io/owner=x", uint16(0xffff))

	f.Fuzz(func(t *testing.T, name, bucket, description, ttl, maxBytes, storage, compression string,
		replicas int32, placement, metadata string, flags uint16,
	) {
		o := &eventsv1.EventObjectStore{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "tenant", UID: types.UID("uid-" + name)},
			Spec: eventsv1.EventObjectStoreSpec{
				Bucket: bucket, Description: description, TTL: eventsv1.Duration(ttl),
				Storage: eventsv1.StorageType(storage), Compression: eventsv1.Compression(compression),
				Replicas: replicas, Metadata: fzKeyValues(metadata),
			},
		}
		if flags&fzbMaxBytes != 0 {
			if q, err := resource.ParseQuantity(maxBytes); err == nil {
				o.Spec.MaxBytes = &q
			}
		}
		if flags&fzbPlacement != 0 {
			cluster, tags, _ := strings.Cut(placement, "|")
			o.Spec.Placement = &eventsv1.Placement{Cluster: cluster, Tags: fzSplit(tags, ",")}
		}
		fzCheckObjectStore(t, o, false)
		fzCheckObjectStore(t, fzAPIRoundTrip(t, o), true)
	})
}

func fzCheckObjectStore(t *testing.T, o *eventsv1.EventObjectStore, fromAPI bool) {
	t.Helper()
	before := o.DeepCopy()
	cfg, err := objectStoreConfig(o)
	if !reflect.DeepEqual(before, o) {
		t.Fatalf("objectStoreConfig changed the EventObjectStore")
	}
	if err != nil {
		fzCheckTypedError(t, err, fzObjectStoreFields)
		return
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("objectStoreConfig returned an invalid configuration: %v", err)
	}
	stream := cfg.Stream()
	if diff := admin.DiffObjectStore(cfg, stream); diff != nil {
		t.Fatalf("configuration differs from its own stream in %v", diff)
	}
	if err := admin.CheckObjectStoreUpdate(cfg, stream); err != nil {
		t.Fatalf("configuration cannot be updated to itself: %v", err)
	}
	if diff := admin.DiffObjectStore(cfg, fzEcho(t, stream)); fromAPI && diff != nil {
		t.Fatalf("configuration differs from the server's echo in %v", diff)
	}
	again, err := objectStoreConfig(o)
	if err != nil {
		t.Fatalf("second translation failed: %v", err)
	}
	if diff := admin.DiffObjectStore(cfg, again.Stream()); diff != nil {
		t.Fatalf("translation is not deterministic: %v", diff)
	}
	if cfg.Bucket != o.BucketName() || stream.Name != o.StreamName() {
		t.Fatalf("bucket %q (stream %q), want %q (%q)", cfg.Bucket, stream.Name, o.BucketName(), o.StreamName())
	}
	if cfg.Metadata[eventsv1.OwnerMetadataKey] != o.OwnerMarker() || cfg.Metadata[eventsv1.UIDMetadataKey] != string(o.UID) {
		t.Fatalf("ownership markers missing: %v", cfg.Metadata)
	}
}
