package controller

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// The CRD markers must spell the house defaults as literals; this keeps them
// equal to the library's constants, the one place the defaults are defined.
func TestCRDDefaultsAreTheLibraryDefaults(t *testing.T) {
	streamSpec := crdSpec(t, "events.giia.io_eventstreams.yaml")
	durations := map[string]time.Duration{
		"maxAge":          events.DefaultMaxAge,
		"duplicateWindow": events.DefaultDuplicateWindow,
	}
	for field, want := range durations {
		got, err := time.ParseDuration(stringDefault(t, streamSpec, field))
		if err != nil || got != want {
			t.Errorf("EventStream spec.%s defaults to %v (%v), the library to %v", field, got, err, want)
		}
	}
	if q := resource.MustParse(stringDefault(t, streamSpec, "maxBytes")); q.Value() != events.DefaultMaxBytes {
		t.Errorf("EventStream spec.maxBytes defaults to %s, the library to %d", q.String(), events.DefaultMaxBytes)
	}
	if got := stringDefault(t, streamSpec, "replicas"); got != "1" || events.DefaultReplicas != 1 {
		t.Errorf("EventStream spec.replicas defaults to %s, the library to %d", got, events.DefaultReplicas)
	}
	for field, want := range map[string]string{"storage": "File", "retention": "Limits", "discard": "Old"} {
		if got := stringDefault(t, streamSpec, field); got != want {
			t.Errorf("EventStream spec.%s defaults to %s, want %s (the library's %v)", field, got, want, field)
		}
	}
	// The enum defaults above translate to the library's defaults.
	cfg := events.NewStreamConfig("X", "x")
	if cfg.Storage != events.DefaultStorage || cfg.Retention != events.DefaultRetention || cfg.Discard != events.DefaultDiscard {
		t.Fatalf("NewStreamConfig does not use the house defaults: %+v", cfg)
	}

	consumerSpec := crdSpec(t, "events.giia.io_eventconsumers.yaml")
	if got, err := time.ParseDuration(stringDefault(t, consumerSpec, "ackWait")); err != nil || got != events.DefaultAckWait {
		t.Errorf("EventConsumer spec.ackWait defaults to %v (%v), the library to %v", got, err, events.DefaultAckWait)
	}
	if got := stringDefault(t, consumerSpec, "maxDeliver"); got != "3" || events.DefaultMaxDeliver != 3 {
		t.Errorf("EventConsumer spec.maxDeliver defaults to %s, the library to %d", got, events.DefaultMaxDeliver)
	}
	if got, lib := stringDefault(t, consumerSpec, "replayPolicy"), admin.NewConsumerConfig("x").ReplayPolicy; got != "Instant" || lib != jetstream.ReplayInstantPolicy {
		t.Errorf("EventConsumer spec.replayPolicy defaults to %s, the library to %v", got, lib)
	}
}

func crdSpec(t *testing.T, file string) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", file))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(raw, crd); err != nil {
		t.Fatal(err)
	}
	return crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
}

func stringDefault(t *testing.T, spec apiextensionsv1.JSONSchemaProps, field string) string {
	t.Helper()
	p, ok := spec.Properties[field]
	if !ok || p.Default == nil {
		t.Fatalf("spec.%s has no default in the CRD", field)
	}
	var v any
	if err := yaml.Unmarshal(p.Default.Raw, &v); err != nil {
		t.Fatal(err)
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return resource.NewQuantity(int64(x), resource.DecimalSI).String()
	}
	t.Fatalf("spec.%s default %s is neither a string nor a number", field, p.Default.Raw)
	return ""
}
