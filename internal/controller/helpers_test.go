package controller_test

import (
	"encoding/json"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// unstructuredStream is an EventStream manifest as a user would write it,
// with fields Go's omitempty would drop (replicas: 0).
func unstructuredStream(name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": eventsv1.GroupVersion.String(),
		"kind":       "EventStream",
		"metadata":   map[string]any{"name": name, "namespace": "default"},
		"spec":       spec,
	}}
	return u
}

func restClient() rest.Interface {
	cfg := rest.CopyConfig(restCfg)
	cfg.GroupVersion = &eventsv1.GroupVersion
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	c, err := rest.RESTClientFor(cfg)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return c
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
