package controller

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// The bucket samples of config/samples are not only accepted by the API
// server (samples_test.go): JetStream takes them too, and nats.go opens
// them as buckets.
func TestBucketSamplesReconcile(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	ctx := context.Background()
	kvs, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "events_v1alpha1_eventkeyvalue_*.yaml"))
	objs, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "events_v1alpha1_eventobjectstore_*.yaml"))
	if len(kvs) == 0 || len(objs) == 0 {
		t.Fatalf("bucket samples: %d KeyValue, %d ObjectStore; want some of each", len(kvs), len(objs))
	}
	read := func(f string, into any) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(raw, into); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	kr := &EventKeyValueReconciler{reconciler: *stepReconciler(t, srv, nil)}
	js := jsOf(t, &kr.reconciler)
	for _, f := range kvs {
		kv := &eventsv1.EventKeyValue{}
		read(f, kv)
		kv.Namespace = "default"
		if _, err := kr.reconcileBucket(ctx, js, kv); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := js.KeyValue(ctx, kv.BucketName()); err != nil {
			t.Fatalf("%s: nats.go cannot open the bucket: %v", f, err)
		}
	}
	or := &EventObjectStoreReconciler{reconciler: *stepReconciler(t, srv, nil)}
	for _, f := range objs {
		o := &eventsv1.EventObjectStore{}
		read(f, o)
		o.Namespace = "default"
		if _, err := or.reconcileBucket(ctx, js, o); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := js.ObjectStore(ctx, o.BucketName()); err != nil {
			t.Fatalf("%s: nats.go cannot open the bucket: %v", f, err)
		}
	}
}
