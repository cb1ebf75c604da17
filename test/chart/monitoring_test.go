package chart_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The panels and alerts issue 16 asks for; the chart may add more.
var (
	wantPanels = []string{"Stream messages", "Stream bytes", "Consumer lag: pending", "Consumer lag: ack pending",
		"Redeliveries", "DLQ inflow", "Resources by Ready reason", "Reconcile errors", "JetStream request latency"}
	wantAlerts = []string{"EventStreamDeadLettersReceived", "EventConsumerLagGrowing", "EventResourcesNotReady",
		"EventStreamOperatorNATSUnreachable"}
)

// metricName finds the metric names in a PromQL expression: identifiers
// with the prefixes the dashboard and alerts may use.
var metricName = regexp.MustCompile(`\b(eventstream_operator|controller_runtime)_[a-z_]+\b`)

// promtoolBin is bin/promtool (`make prometheus`, a prerequisite of make
// test): checking the rendered rules is never skipped.
func promtoolBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(root(t), "bin", "promtool")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found: run make prometheus (%v)", p, err)
	}
	return p
}

func TestMonitoringIsOffByDefault(t *testing.T) {
	objs := render(t)
	if n := len(ofKind(objs, "PrometheusRule")); n != 0 {
		t.Errorf("%d PrometheusRules by default, want 0", n)
	}
	for _, cm := range ofKind(objs, "ConfigMap") {
		if cm.GetLabels()["grafana_dashboard"] != "" {
			t.Errorf("ConfigMap %s is a Grafana dashboard by default", cm.GetName())
		}
	}
}

// dashboardOf returns the dashboard JSON of the one ConfigMap labelled for
// the Grafana sidecar.
func dashboardOf(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, cm := range ofKind(objs, "ConfigMap") {
		if cm.GetLabels()["grafana_dashboard"] == "1" {
			found = append(found, cm)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d ConfigMaps labelled grafana_dashboard=1, want 1", len(found))
	}
	data, _, _ := unstructured.NestedStringMap(found[0].Object, "data")
	if len(data) != 1 {
		t.Fatalf("dashboard ConfigMap data has %d keys, want 1 JSON file", len(data))
	}
	var dash map[string]any
	for k, v := range data {
		if !strings.HasSuffix(k, ".json") {
			t.Errorf("dashboard key %q does not end in .json (the sidecar loads *.json)", k)
		}
		if err := json.Unmarshal([]byte(v), &dash); err != nil {
			t.Fatalf("dashboard %s is not JSON: %v", k, err)
		}
	}
	return dash
}

func TestGrafanaDashboard(t *testing.T) {
	objs := render(t, "grafanaDashboard.enabled=true", "grafanaDashboard.labels.team=events")
	dash := dashboardOf(t, objs)
	if uid, _ := dash["uid"].(string); uid == "" {
		t.Error("the dashboard has no uid (Grafana would make a new one at each load)")
	}
	panels, _ := dash["panels"].([]any)
	var titles []string
	for _, p := range panels {
		panel := p.(map[string]any)
		title, _ := panel["title"].(string)
		titles = append(titles, title)
		targets, _ := panel["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no queries", title)
		}
		for _, tg := range targets {
			expr, _ := tg.(map[string]any)["expr"].(string)
			if len(metricName.FindAllString(expr, -1)) == 0 {
				t.Errorf("panel %q query %q uses none of the operator's metrics", title, expr)
			}
			// The e2e evaluates each query as written against Prometheus:
			// no Grafana variables in queries.
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q query %q uses a Grafana variable", title, expr)
			}
		}
	}
	for _, w := range wantPanels {
		if !slices.Contains(titles, w) {
			t.Errorf("the dashboard has no panel %q (panels %q)", w, titles)
		}
	}
	// Extra labels are kept beside the sidecar's.
	for _, cm := range ofKind(objs, "ConfigMap") {
		if cm.GetLabels()["grafana_dashboard"] == "1" && cm.GetLabels()["team"] != "events" {
			t.Errorf("dashboard ConfigMap labels %v lack grafanaDashboard.labels", cm.GetLabels())
		}
	}
}

// TestPrometheusRule renders the rule, checks its alerts, and runs promtool
// check rules and promtool test rules (monitoring_rules_test.yaml: each
// alert fires on the series it is for, and only after its for:) on the
// rendered groups.
func TestPrometheusRule(t *testing.T) {
	objs := render(t, "prometheusRule.enabled=true", "prometheusRule.labels.release=prometheus")
	rules := ofKind(objs, "PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(rules))
	}
	if rules[0].GetLabels()["release"] != "prometheus" {
		t.Errorf("PrometheusRule labels %v lack prometheusRule.labels", rules[0].GetLabels())
	}
	groups, _, _ := unstructured.NestedSlice(rules[0].Object, "spec", "groups")
	var alerts []string
	for _, g := range groups {
		rs, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rs {
			rule := r.(map[string]any)
			name, _ := rule["alert"].(string)
			alerts = append(alerts, name)
			if _, ok := rule["annotations"].(map[string]any)["summary"]; !ok {
				t.Errorf("alert %s has no summary", name)
			}
		}
	}
	if !slices.Equal(alerts, wantAlerts) {
		t.Errorf("alerts %q, want %q", alerts, wantAlerts)
	}

	dir := t.TempDir()
	spec, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	rulesFile := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesFile, spec, 0o600); err != nil {
		t.Fatal(err)
	}
	promtool := promtoolBin(t)
	out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules on the rendered PrometheusRule: %v\n%s\n%s", err, out, spec)
	}
	if !strings.Contains(string(out), "SUCCESS: 4 rules found") {
		t.Errorf("promtool check rules: %s", out)
	}

	unit, err := os.ReadFile(filepath.Join(root(t), "test", "chart", "testdata", "monitoring_rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	unitFile := filepath.Join(dir, "rules_test.yaml")
	if err := os.WriteFile(unitFile, unit, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", unitFile)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
