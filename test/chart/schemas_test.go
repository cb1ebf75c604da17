package chart_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestDefaultSchemas: the streams chart renders the seed's four EventSchemas
// by default, exactly config/samples' (files/schemas holds copies of them),
// in the streams' namespace; defaultSchemas.enabled=false leaves them out.
func TestDefaultSchemas(t *testing.T) {
	samples, err := filepath.Glob(filepath.Join(root(t), "config", "samples", "events_v1alpha1_eventschema_*.yaml"))
	if err != nil || len(samples) != 4 {
		t.Fatalf("config/samples: %d EventSchema samples (%v), want 4", len(samples), err)
	}
	want := map[string]map[string]any{}
	for _, f := range samples {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		copyPath := filepath.Join(root(t), streamsChartRel, "files", "schemas", strings.TrimPrefix(filepath.Base(f), "events_v1alpha1_eventschema_"))
		copied, err := os.ReadFile(copyPath)
		if err != nil || !bytes.Equal(copied, raw) {
			t.Errorf("%s is not a copy of %s (%v): copy the sample there", copyPath, f, err)
		}
		objs := decodeAll(t, string(raw))
		if len(objs) != 1 || objs[0].GetKind() != "EventSchema" {
			t.Fatalf("%s: want one EventSchema", f)
		}
		want[objs[0].GetName()] = objs[0].Object
	}

	for _, tc := range []struct {
		sets []string
		ns   string
	}{{nil, relNS}, {[]string{"namespace=apps"}, "apps"}} {
		got := ofKind(renderChart(t, streamsChartRel, nil, tc.sets...), "EventSchema")
		if len(got) != len(want) {
			t.Fatalf("%v: %d EventSchemas, want %d", tc.sets, len(got), len(want))
		}
		for _, es := range got {
			w, ok := want[es.GetName()]
			switch {
			case !ok:
				t.Errorf("unexpected EventSchema %s", es.GetName())
			case es.GetNamespace() != tc.ns:
				t.Errorf("%v: %s: namespace %q, want %q", tc.sets, es.GetName(), es.GetNamespace(), tc.ns)
			case es.GetAPIVersion() != w["apiVersion"] || !reflect.DeepEqual(es.Object["spec"], w["spec"]):
				t.Errorf("%s: rendered %v %v, want the sample's %v %v", es.GetName(), es.GetAPIVersion(), es.Object["spec"], w["apiVersion"], w["spec"])
			case es.GetLabels()["app.kubernetes.io/managed-by"] != "Helm":
				t.Errorf("%s: labels %v", es.GetName(), es.GetLabels())
			}
			for k := range es.GetAnnotations() {
				if strings.HasPrefix(k, "helm.sh/") {
					t.Errorf("%s: annotation %s: the schemas are ordinary release resources, not hooks", es.GetName(), k)
				}
			}
		}
	}
	if n := len(ofKind(renderChart(t, streamsChartRel, nil, "defaultSchemas.enabled=false"), "EventSchema")); n != 0 {
		t.Errorf("defaultSchemas.enabled=false: %d EventSchemas", n)
	}
}

// TestSchemaBucket: schemaBucket becomes --schema-bucket.
func TestSchemaBucket(t *testing.T) {
	c := managerContainer(t, only[appsv1.Deployment](t, render(t, "schemaBucket=TEAM_SCHEMAS"), "Deployment"))
	if !slices.Contains(c.Args, "--schema-bucket=TEAM_SCHEMAS") {
		t.Errorf("args %q lack --schema-bucket=TEAM_SCHEMAS", c.Args)
	}
}
