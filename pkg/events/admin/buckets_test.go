package admin_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// keyValueCases are bucket configurations covering every KeyValueConfig
// field with a value other than the default.
func keyValueCases() map[string]admin.KeyValueConfig {
	all := admin.NewKeyValueConfig("ALL")
	all.Description = "every field"
	all.History = 5
	all.TTL = time.Hour
	all.MaxValueSize = 4096
	all.MaxBytes = 8 << 20
	all.Storage = jetstream.MemoryStorage
	all.Replicas = 1
	all.Placement = &jetstream.Placement{Cluster: ""}
	all.Compression = true
	all.RePublish = &jetstream.RePublish{Source: "$KV.ALL.>", Destination: "watch.all.>", HeadersOnly: true}
	all.LimitMarkerTTL = 5 * time.Second
	all.Metadata = map[string]string{"team": "flags"}

	shortTTL := admin.NewKeyValueConfig("SHORT")
	shortTTL.TTL = 30 * time.Second // shorter than the 2m duplicate window
	shortTTL.Compression = true

	unlimited := admin.NewKeyValueConfig("UNLIMITED")
	unlimited.MaxBytes = 0
	unlimited.MaxValueSize = 0
	unlimited.History = 0
	unlimited.Replicas = 0

	mirror := admin.NewKeyValueConfig("MIRROR")
	mirror.Mirror = &events.StreamSource{Name: "SRC", FilterSubject: "$KV.SRC.a.>"}

	sources := admin.NewKeyValueConfig("SOURCED")
	sources.Sources = []events.StreamSource{
		{Name: "SRC"},
		{Name: "KV_SRC2", OptStartSeq: 3},
		{Name: "LEAFKV", Domain: "leaf"},
		{Name: "SOURCED", External: &jetstream.ExternalStream{APIPrefix: "$JS.hub.API", DeliverPrefix: "hub.deliver"}},
		{Name: "ORDERS", SubjectTransforms: []jetstream.SubjectTransformConfig{{Source: "orders.>", Destination: "$KV.SOURCED.orders.>"}}},
	}
	return map[string]admin.KeyValueConfig{
		"defaults": admin.NewKeyValueConfig("DEFAULTS"), "all": all, "shortTTL": shortTTL,
		"unlimited": unlimited, "mirror": mirror, "sources": sources,
	}
}

// The bucket's stream the library builds is the one nats.go's
// CreateKeyValue builds: a bucket nats.go created diffs empty, and a bucket
// the library created works as a KeyValue bucket for nats.go.
func TestKeyValueStreamIsNatsGoBucket(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	for _, name := range []string{"SRC", "SRC2"} {
		src := admin.NewKeyValueConfig(name)
		src.MaxBytes = 1 << 20
		if _, err := admin.CreateKeyValue(ctx, js, src); err != nil {
			t.Fatal(err)
		}
	}
	for name, cfg := range keyValueCases() {
		t.Run(name, func(t *testing.T) {
			// nats.go's own bucket.
			if _, err := js.CreateKeyValue(ctx, cfg.JetStream()); err != nil {
				t.Fatalf("nats.go CreateKeyValue: %v", err)
			}
			info, err := admin.GetKeyValueInfo(ctx, js, cfg.Bucket)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffKeyValue(cfg, info.Config); diff != nil {
				t.Fatalf("nats.go's bucket differs from the library's in %v\nnats.go: %+v\nlibrary: %+v", diff, info.Config, cfg.Stream())
			}
			if err := admin.DeleteKeyValue(ctx, js, cfg.Bucket); err != nil {
				t.Fatal(err)
			}

			// The library's bucket: in sync with itself, and a bucket to nats.go.
			info, err = admin.CreateKeyValue(ctx, js, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffKeyValue(cfg, info.Config); diff != nil {
				t.Fatalf("a bucket just created differs in %v", diff)
			}
			if _, err := admin.CreateKeyValue(ctx, js, cfg); err != nil {
				t.Fatalf("creating the same bucket again (no change) = %v, want no error", err)
			}
			t.Cleanup(func() { _ = admin.DeleteKeyValue(ctx, js, cfg.Bucket) })
			kv, err := js.KeyValue(ctx, cfg.Bucket)
			if err != nil {
				t.Fatalf("nats.go cannot open the bucket: %v", err)
			}
			if cfg.Mirror == nil {
				if _, err := kv.Put(ctx, "a.key", []byte("v1")); err != nil {
					t.Fatal(err)
				}
				e, err := kv.Get(ctx, "a.key")
				if err != nil || string(e.Value()) != "v1" {
					t.Fatalf("Get = %v, %v", e, err)
				}
			}
		})
	}
}

func TestKeyValueDiffNamesEachFieldAndUpdateRepairsIt(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	other := admin.NewKeyValueConfig("OTHER")
	other.MaxBytes = 1 << 20
	if _, err := admin.CreateKeyValue(ctx, js, other); err != nil {
		t.Fatal(err)
	}
	base := admin.NewKeyValueConfig("UPD")
	for _, tc := range []struct {
		field string
		mod   func(*admin.KeyValueConfig)
	}{
		{"description", func(c *admin.KeyValueConfig) { c.Description = "changed" }},
		{"history", func(c *admin.KeyValueConfig) { c.History = 10 }},
		{"ttl", func(c *admin.KeyValueConfig) { c.TTL = 24 * time.Hour }},
		{"maxValueSize", func(c *admin.KeyValueConfig) { c.MaxValueSize = 1024 }},
		{"maxBytes", func(c *admin.KeyValueConfig) { c.MaxBytes = 2 << 30 }},
		{"compression", func(c *admin.KeyValueConfig) { c.Compression = true }},
		{"republish", func(c *admin.KeyValueConfig) {
			c.RePublish = &jetstream.RePublish{Destination: "changes.>"}
		}},
		{"sources", func(c *admin.KeyValueConfig) { c.Sources = []events.StreamSource{{Name: "OTHER"}} }},
		{"limitMarkerTTL", func(c *admin.KeyValueConfig) { c.LimitMarkerTTL = 2 * time.Second }},
		{"metadata", func(c *admin.KeyValueConfig) { c.Metadata = map[string]string{"owner": "b"} }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			_ = admin.DeleteKeyValue(ctx, js, base.Bucket)
			info, err := admin.CreateKeyValue(ctx, js, base)
			if err != nil {
				t.Fatal(err)
			}
			c := base
			tc.mod(&c)
			diff := admin.DiffKeyValue(c, info.Config)
			if len(diff) == 0 || diff[0] != tc.field {
				t.Fatalf("DiffKeyValue = %v, want %s first", diff, tc.field)
			}
			if err := admin.CheckKeyValueUpdate(c, info.Config); err != nil {
				t.Fatalf("CheckKeyValueUpdate = %v, want an allowed change", err)
			}
			info, err = admin.UpdateKeyValue(ctx, js, c)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffKeyValue(c, info.Config); diff != nil {
				t.Fatalf("after the update the bucket still differs in %v", diff)
			}
			info, err = admin.GetKeyValueInfo(ctx, js, c.Bucket)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffKeyValue(c, info.Config); diff != nil {
				t.Fatalf("read back, the bucket still differs in %v", diff)
			}
		})
	}

	// A layout field changed outside (delete allowed) is a difference.
	info, err := admin.GetKeyValueInfo(ctx, js, base.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	edited := info.Config
	edited.DenyDelete = false
	if got := admin.DiffKeyValue(base, edited); !slices.Contains(got, "denyDelete") {
		t.Fatalf("DiffKeyValue with denyDelete off = %v, want denyDelete", got)
	}
}

func TestKeyValueImmutableChanges(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	cfg := admin.NewKeyValueConfig("IMM")
	cfg.LimitMarkerTTL = time.Second
	info, err := admin.CreateKeyValue(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field  string
		mod    func(*admin.KeyValueConfig)
		server bool // the server refuses it too
	}{
		{"storage", func(c *admin.KeyValueConfig) { c.Storage = jetstream.MemoryStorage }, true},
		{"mirror", func(c *admin.KeyValueConfig) { c.Mirror = &events.StreamSource{Name: "OTHER"} }, true},
		{"limitMarkerTTL", func(c *admin.KeyValueConfig) { c.LimitMarkerTTL = 0 }, true},
	} {
		t.Run(tc.field, func(t *testing.T) {
			c := cfg
			tc.mod(&c)
			err := admin.CheckKeyValueUpdate(c, info.Config)
			var imm *events.ImmutableFieldError
			if !errors.As(err, &imm) || imm.Field != tc.field || imm.Kind != "KeyValue bucket" {
				t.Fatalf("CheckKeyValueUpdate = %v, want an ImmutableFieldError for %s", err, tc.field)
			}
			if _, err := admin.UpdateKeyValue(ctx, js, c); err == nil {
				t.Fatalf("the server accepted the %s change", tc.field)
			}
		})
	}
}

func TestBucketErrorsAreClassified(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	if _, err := admin.GetKeyValueInfo(ctx, js, "MISSING"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("GetKeyValueInfo of a missing bucket = %v, want ErrNotFound", err)
	}
	if _, err := admin.GetObjectStoreInfo(ctx, js, "MISSING"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("GetObjectStoreInfo of a missing bucket = %v, want ErrNotFound", err)
	}
	if err := admin.DeleteKeyValue(ctx, js, "MISSING"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("DeleteKeyValue of a missing bucket = %v, want ErrNotFound", err)
	}
	if err := admin.DeleteObjectStore(ctx, js, "MISSING"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("DeleteObjectStore of a missing bucket = %v, want ErrNotFound", err)
	}
	if _, err := admin.UpdateKeyValue(ctx, js, admin.NewKeyValueConfig("MISSING")); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("UpdateKeyValue of a missing bucket = %v, want ErrNotFound", err)
	}
	cfg := admin.NewKeyValueConfig("TAKEN")
	if _, err := admin.CreateKeyValue(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.History = 3
	if _, err := admin.CreateKeyValue(ctx, js, cfg); !errors.Is(err, events.ErrExists) {
		t.Fatalf("CreateKeyValue over another configuration = %v, want ErrExists", err)
	} else if !strings.Contains(err.Error(), "KeyValue bucket") {
		t.Fatalf("error %q does not say KeyValue bucket", err)
	}
	os := admin.NewObjectStoreConfig("TAKEN")
	if _, err := admin.CreateObjectStore(ctx, js, os); err != nil {
		t.Fatal(err)
	}
	os.TTL = time.Hour
	if _, err := admin.CreateObjectStore(ctx, js, os); !errors.Is(err, events.ErrExists) {
		t.Fatalf("CreateObjectStore over another configuration = %v, want ErrExists", err)
	}
}

func TestBucketValidateNamesTheField(t *testing.T) {
	kv := func(mod func(*admin.KeyValueConfig)) error {
		c := admin.NewKeyValueConfig("B")
		mod(&c)
		return c.Validate()
	}
	obj := func(mod func(*admin.ObjectStoreConfig)) error {
		c := admin.NewObjectStoreConfig("B")
		mod(&c)
		return c.Validate()
	}
	for _, tc := range []struct {
		field string
		err   error
	}{
		{"bucket", kv(func(c *admin.KeyValueConfig) { c.Bucket = "a.b" })},
		{"bucket", kv(func(c *admin.KeyValueConfig) { c.Bucket = "" })},
		{"history", kv(func(c *admin.KeyValueConfig) { c.History = 65 })},
		{"ttl", kv(func(c *admin.KeyValueConfig) { c.TTL = -time.Second })},
		{"maxValueSize", kv(func(c *admin.KeyValueConfig) { c.MaxValueSize = -2 })},
		{"maxBytes", kv(func(c *admin.KeyValueConfig) { c.MaxBytes = -2 })},
		{"storage", kv(func(c *admin.KeyValueConfig) { c.Storage = 7 })},
		{"replicas", kv(func(c *admin.KeyValueConfig) { c.Replicas = 6 })},
		{"limitMarkerTTL", kv(func(c *admin.KeyValueConfig) { c.LimitMarkerTTL = time.Millisecond })},
		{"republish.destination", kv(func(c *admin.KeyValueConfig) { c.RePublish = &jetstream.RePublish{Destination: "a..b"} })},
		{"sources", kv(func(c *admin.KeyValueConfig) {
			c.Mirror = &events.StreamSource{Name: "X"}
			c.Sources = []events.StreamSource{{Name: "Y"}}
		})},
		{"mirror.name", kv(func(c *admin.KeyValueConfig) { c.Mirror = &events.StreamSource{Name: "a.b"} })},
		{"sources[0].name", kv(func(c *admin.KeyValueConfig) { c.Sources = []events.StreamSource{{Name: "a b"}} })},
		{"bucket", obj(func(c *admin.ObjectStoreConfig) { c.Bucket = "a*" })},
		{"ttl", obj(func(c *admin.ObjectStoreConfig) { c.TTL = -1 })},
		{"maxBytes", obj(func(c *admin.ObjectStoreConfig) { c.MaxBytes = -5 })},
		{"replicas", obj(func(c *admin.ObjectStoreConfig) { c.Replicas = -1 })},
	} {
		var ve *events.ValidationError
		if !errors.As(tc.err, &ve) || ve.Field != tc.field {
			t.Errorf("want a ValidationError for %s, got %v", tc.field, tc.err)
		}
	}
	if err := admin.NewKeyValueConfig("ok_Name-1").Validate(); err != nil {
		t.Errorf("valid bucket: %v", err)
	}
}

func objectStoreCases() map[string]admin.ObjectStoreConfig {
	all := admin.NewObjectStoreConfig("ALLOBJ")
	all.Description = "attachments"
	all.TTL = 72 * time.Hour
	all.MaxBytes = 16 << 20
	all.Storage = jetstream.MemoryStorage
	all.Placement = &jetstream.Placement{}
	all.Compression = true
	all.Metadata = map[string]string{"team": "docs"}
	unlimited := admin.NewObjectStoreConfig("UNLIMITEDOBJ")
	unlimited.MaxBytes = -1
	unlimited.Replicas = 0
	return map[string]admin.ObjectStoreConfig{"defaults": admin.NewObjectStoreConfig("DEFOBJ"), "all": all, "unlimited": unlimited}
}

func TestObjectStoreStreamIsNatsGoBucket(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	for name, cfg := range objectStoreCases() {
		t.Run(name, func(t *testing.T) {
			if _, err := js.CreateObjectStore(ctx, cfg.JetStream()); err != nil {
				t.Fatalf("nats.go CreateObjectStore: %v", err)
			}
			info, err := admin.GetObjectStoreInfo(ctx, js, cfg.Bucket)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffObjectStore(cfg, info.Config); diff != nil {
				t.Fatalf("nats.go's bucket differs from the library's in %v\nnats.go: %+v\nlibrary: %+v", diff, info.Config, cfg.Stream())
			}
			if err := admin.DeleteObjectStore(ctx, js, cfg.Bucket); err != nil {
				t.Fatal(err)
			}
			info, err = admin.CreateObjectStore(ctx, js, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffObjectStore(cfg, info.Config); diff != nil {
				t.Fatalf("a bucket just created differs in %v", diff)
			}
			t.Cleanup(func() { _ = admin.DeleteObjectStore(ctx, js, cfg.Bucket) })
			obs, err := js.ObjectStore(ctx, cfg.Bucket)
			if err != nil {
				t.Fatalf("nats.go cannot open the bucket: %v", err)
			}
			if _, err := obs.PutBytes(ctx, "a", []byte("data")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestObjectStoreDiffNamesEachFieldAndUpdateRepairsIt(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	base := admin.NewObjectStoreConfig("UPDOBJ")
	for _, tc := range []struct {
		field string
		mod   func(*admin.ObjectStoreConfig)
	}{
		{"description", func(c *admin.ObjectStoreConfig) { c.Description = "changed" }},
		{"ttl", func(c *admin.ObjectStoreConfig) { c.TTL = time.Hour }},
		{"maxBytes", func(c *admin.ObjectStoreConfig) { c.MaxBytes = 2 << 30 }},
		{"compression", func(c *admin.ObjectStoreConfig) { c.Compression = true }},
		{"metadata", func(c *admin.ObjectStoreConfig) { c.Metadata = map[string]string{"k": "v"} }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			_ = admin.DeleteObjectStore(ctx, js, base.Bucket)
			info, err := admin.CreateObjectStore(ctx, js, base)
			if err != nil {
				t.Fatal(err)
			}
			c := base
			tc.mod(&c)
			if diff := admin.DiffObjectStore(c, info.Config); len(diff) != 1 || diff[0] != tc.field {
				t.Fatalf("DiffObjectStore = %v, want [%s]", diff, tc.field)
			}
			if err := admin.CheckObjectStoreUpdate(c, info.Config); err != nil {
				t.Fatal(err)
			}
			info, err = admin.UpdateObjectStore(ctx, js, c)
			if err != nil {
				t.Fatal(err)
			}
			if diff := admin.DiffObjectStore(c, info.Config); diff != nil {
				t.Fatalf("after the update the bucket still differs in %v", diff)
			}
		})
	}
	info, err := admin.GetObjectStoreInfo(ctx, js, base.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	c := base
	c.Storage = jetstream.MemoryStorage
	var imm *events.ImmutableFieldError
	if err := admin.CheckObjectStoreUpdate(c, info.Config); !errors.As(err, &imm) || imm.Field != "storage" {
		t.Fatalf("CheckObjectStoreUpdate(storage) = %v", err)
	}
	if _, err := admin.UpdateObjectStore(ctx, js, c); err == nil {
		t.Fatal("the server accepted a storage change")
	}
}

func TestCountObjectsCountsLiveObjects(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	ctx := context.Background()
	cfg := admin.NewObjectStoreConfig("COUNT")
	if _, err := admin.CreateObjectStore(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if n, err := admin.CountObjects(ctx, js, "COUNT"); err != nil || n != 0 {
		t.Fatalf("CountObjects of an empty bucket = %d, %v", n, err)
	}
	obs, err := js.ObjectStore(ctx, "COUNT")
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 300<<10) // three chunks
	for _, name := range []string{"a", "b", "c"} {
		if _, err := obs.PutBytes(ctx, name, big); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := obs.PutBytes(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, "a", []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	info, err := obs.GetInfo(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.AddLink(ctx, "link-to-b", info); err != nil {
		t.Fatal(err)
	}
	if err := obs.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	// a, b, empty, link-to-b; c is deleted.
	if n, err := admin.CountObjects(ctx, js, "COUNT"); err != nil || n != 4 {
		t.Fatalf("CountObjects = %d, %v, want 4", n, err)
	}
	if _, err := admin.CountObjects(ctx, js, "MISSING"); err == nil {
		t.Fatal("CountObjects of a missing bucket succeeded")
	}
}
