// Package chart_test checks the Helm chart (charts/eventstream-operator)
// against what controller-gen generates under config/, renders it with the
// real helm binary (bin/helm, `make helm`), and checks that the Dockerfile
// builds the manager the way `make build` does.
package chart_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"golang.org/x/mod/modfile"

	"github.com/giia/eventstream-operator/internal/testutil/repo"
)

const (
	chartRel        = "charts/eventstream-operator"
	streamsChartRel = "charts/eventstream-streams"
	// The API server serves MutatingAdmissionPolicy (Kubernetes 1.36+):
	// helm template knows only what --api-versions tells it.
	mapAPIVersion = "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"
	release       = "t"
	relNS         = "ops"
	// What `helm template` calls the manager's resources for release "t".
	fullname = "t-eventstream-operator"
)

// root is the repository root (internal/testutil/repo finds it).
func root(t *testing.T) string {
	t.Helper()
	dir, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func helmBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(root(t), "bin", "helm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found: run make helm (%v)", p, err)
	}
	return p
}

// helm runs bin/helm in the repository root and returns its combined output.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Dir = root(t)
	// A clean helm home: no repositories or plugins of the machine's user.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// render runs `helm template` of the operator chart with the given --set
// flags and returns the objects, in order.
func render(t *testing.T, sets ...string) []*unstructured.Unstructured {
	t.Helper()
	return renderChart(t, chartRel, nil, sets...)
}

// renderChart runs `helm template` of chart with more helm arguments and
// --set flags.
func renderChart(t *testing.T, chart string, extra []string, sets ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", release, chart, "--namespace", relNS}, extra...)
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return decodeAll(t, out)
}

func decodeAll(t *testing.T, text string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decoding YAML: %v", err)
		}
		if m == nil { // a document of comments only
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// only returns the one object of kind, converted into T.
func only[T any](t *testing.T, objs []*unstructured.Unstructured, kind string) *T {
	t.Helper()
	found := ofKind(objs, kind)
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, got %d", kind, len(found))
	}
	return convert[T](t, found[0])
}

func convert[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
		t.Fatalf("converting %s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return out
}

func managerContainer(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatal("the Deployment has no container named manager")
	return corev1.Container{}
}

// roleYAMLRules are the rules of the ClusterRole in config/rbac/role.yaml.
func roleYAMLRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	return configClusterRoleRules(t, "config/rbac/role.yaml")
}

// configClusterRoleRules are the rules of the ClusterRole in a config/ file.
func configClusterRoleRules(t *testing.T, rel string) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	role := only[rbacv1.ClusterRole](t, decodeAll(t, string(data)), "ClusterRole")
	if len(role.Rules) == 0 {
		t.Fatalf("%s has no rules", rel)
	}
	return role.Rules
}

// clusterRoles maps the rendered ClusterRoles by name.
func clusterRoles(t *testing.T, objs []*unstructured.Unstructured) map[string]*rbacv1.ClusterRole {
	t.Helper()
	out := map[string]*rbacv1.ClusterRole{}
	for _, o := range ofKind(objs, "ClusterRole") {
		out[o.GetName()] = convert[rbacv1.ClusterRole](t, o)
	}
	return out
}

// TestCRDTemplatesMatchConfig: each templates/crds file is its
// config/crd/bases file, byte for byte, inside the template wrapper.
func TestCRDTemplatesMatchConfig(t *testing.T) {
	r := root(t)
	srcs, err := filepath.Glob(filepath.Join(r, "config/crd/bases/*.yaml"))
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	dsts, _ := filepath.Glob(filepath.Join(r, chartRel, "templates/crds/*.yaml"))
	base := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if !slices.Equal(base(srcs), base(dsts)) {
		t.Fatalf("chart CRDs %v, config/crd/bases %v: run make chart-crds", base(dsts), base(srcs))
	}
	for _, src := range srcs {
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		tmpl, err := os.ReadFile(filepath.Join(r, chartRel, "templates/crds", filepath.Base(src)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := stripCRDWrapper(string(tmpl))
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(src), err)
		}
		if got != string(want) {
			t.Errorf("templates/crds/%s differs from config/crd/bases/%[1]s: run make chart-crds", filepath.Base(src))
		}
	}
}

// stripCRDWrapper undoes hack/sync-chart-crds.sh: the install condition around
// the file, the keep-annotation block, and the escaping of "{{".
func stripCRDWrapper(s string) (string, error) {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) < 3 || lines[0] != "{{- if .Values.crds.install }}\n" || lines[len(lines)-1] != "{{- end }}\n" {
		return "", errors.New("not wrapped in {{- if .Values.crds.install }} ... {{- end }}")
	}
	var b strings.Builder
	inKeep, keepBlocks := false, 0
	for _, l := range lines[1 : len(lines)-1] {
		switch {
		case l == "{{- if .Values.crds.keep }}\n":
			inKeep = true
			keepBlocks++
		case inKeep && l == "{{- end }}\n":
			inKeep = false
		case inKeep:
			if l != "    helm.sh/resource-policy: keep\n" && l != "  annotations:\n" {
				return "", fmt.Errorf("unexpected line in the keep block: %q", l)
			}
		default:
			b.WriteString(strings.ReplaceAll(l, `{{"{{"}}`, "{{"))
		}
	}
	if keepBlocks != 1 {
		return "", fmt.Errorf("want one crds.keep block, found %d", keepBlocks)
	}
	return b.String(), nil
}

func TestCRDValues(t *testing.T) {
	crds := ofKind(render(t), "CustomResourceDefinition")
	if len(crds) == 0 {
		t.Fatal("no CRDs rendered by default")
	}
	for _, c := range crds {
		if got := c.GetAnnotations()["helm.sh/resource-policy"]; got != "keep" {
			t.Errorf("CRD %s: helm.sh/resource-policy = %q, want keep", c.GetName(), got)
		}
		if c.GetAnnotations()["controller-gen.kubebuilder.io/version"] == "" {
			t.Errorf("CRD %s lost its controller-gen annotation", c.GetName())
		}
	}
	for _, c := range ofKind(render(t, "crds.keep=false"), "CustomResourceDefinition") {
		if _, ok := c.GetAnnotations()["helm.sh/resource-policy"]; ok {
			t.Errorf("CRD %s: crds.keep=false still has helm.sh/resource-policy", c.GetName())
		}
	}
	if n := len(ofKind(render(t, "crds.install=false"), "CustomResourceDefinition")); n != 0 {
		t.Errorf("crds.install=false renders %d CRDs", n)
	}
}

func TestHelmLint(t *testing.T) {
	for _, c := range []struct {
		chart string
		sets  []string
	}{
		{chartRel, nil},
		{chartRel, []string{"watchNamespaces={a,b}", "metrics.serviceMonitor.enabled=true", "metrics.certSecret=metrics-cert",
			"metrics.serviceMonitor.caSecret.name=metrics-ca", "metrics.readerSubjects[0].kind=ServiceAccount",
			"metrics.readerSubjects[0].name=prometheus", "metrics.readerSubjects[0].namespace=monitoring",
			"networkPolicy.enabled=true", "nats.credentialsSecret.name=nats-creds", "nats.tls.secret=nats-tls"}},
		{chartRel, []string{"metrics.secure=false", "metrics.serviceMonitor.enabled=true", "replicaCount=1"}},
		{chartRel, []string{"grafanaDashboard.enabled=true", "prometheusRule.enabled=true", "metrics.serviceMonitor.enabled=true"}},
		{streamsChartRel, nil},
		{streamsChartRel, []string{"namespace=apps", "deletionPolicy=Delete", "spec.maxBytes=256Mi", "streams.dlq-events=false"}},
	} {
		args := []string{"lint", "--strict", c.chart}
		for _, s := range c.sets {
			args = append(args, "--set", s)
		}
		out, err := helm(t, args...)
		if err != nil {
			t.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
			t.Errorf("helm %s is not clean:\n%s", strings.Join(args, " "), out)
		}
	}
}

func TestValuesSchemaRejectsBadValues(t *testing.T) {
	for _, set := range []string{
		"resyncInterval=1d",
		"replicaCount=-1",
		"maxConcurrentReconciles=0",
		"nats.url=localhost:4222",
		"watchNamespaces={Not_A_Namespace}",
		"podDisruptionBudget.minAvailable=-1",
		"metrics.secure=yes",
		"metrics.readerSubjects[0].kind=Robot",
		"image.pullPolicy=Sometimes",
		"rbac.aggregateToDefaultRoles=maybe",
		"schemaBucket=EVENT.SCHEMAS",
		"unknownValue=1",
		"prometheusRule.for.notReady=ten minutes",
		"prometheusRule.dlqStreams=",
		"grafanaDashboard.enabled=yes",
	} {
		if out, err := helm(t, "template", release, chartRel, "--set", set); err == nil {
			t.Errorf("--set %s: rendered without error", set)
		} else if !strings.Contains(out, "values don't meet the specifications of the schema") && !strings.Contains(out, "schema") {
			t.Errorf("--set %s: failed, but not on the schema:\n%s", set, out)
		}
	}
	for _, set := range []string{"deletionPolicy=Keep", "namespace=Not_A_Namespace", "streams.unknown-events=true", "unknownValue=1",
		"defaultSchemas.enabled=yes", "defaultSchemas.unknown=true"} {
		if out, err := helm(t, "template", release, streamsChartRel, "--set", set); err == nil {
			t.Errorf("%s --set %s: rendered without error", streamsChartRel, set)
		} else if !strings.Contains(out, "schema") {
			t.Errorf("%s --set %s: failed, but not on the schema:\n%s", streamsChartRel, set, out)
		}
	}
}

func TestDefaultDeployment(t *testing.T) {
	objs := render(t)
	d := only[appsv1.Deployment](t, objs, "Deployment")
	if d.Namespace != relNS {
		t.Errorf("Deployment namespace %q, want %q", d.Namespace, relNS)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pod securityContext.runAsNonRoot is not true")
	}
	if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
		t.Error("pod securityContext.runAsUser is not 65532")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}

	c := managerContainer(t, d)
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("container readOnlyRootFilesystem is not true")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("container allowPrivilegeEscalation is not false")
	}
	if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Error("container capabilities do not drop ALL")
	}
	if c.Image != "ghcr.io/giia/eventstream-operator:0.1.0" {
		t.Errorf("image %q, want ghcr.io/giia/eventstream-operator:<appVersion 0.1.0>", c.Image)
	}
	for _, want := range []string{"--leader-elect", "--leader-election-namespace=" + relNS, "--adopt-namespaces=" + relNS,
		"--nats-url=nats://nats.nats.svc:4222", "--resync-interval=1m", "--max-concurrent-reconciles=8", "--schema-bucket=EVENT_SCHEMAS",
		"--allow-resource-connections=false",
		"--metrics-bind-address=:8443", "--metrics-secure=true", "--health-probe-bind-address=:8081"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %q", c.Args, want)
		}
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--watch-namespaces") || strings.HasPrefix(a, "--nats-creds") || strings.HasPrefix(a, "--nats-tls") ||
			strings.HasPrefix(a, "--resource-connection-urls") ||
			strings.HasPrefix(a, "--metrics-cert") {
			t.Errorf("unexpected default arg %q", a)
		}
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no %s HTTP probe", p.name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.IntValue() != 8081 {
			t.Errorf("%s probe %s on port %s, want %s on 8081", p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources not set: %+v", c.Resources)
	}

	sa := only[corev1.ServiceAccount](t, objs, "ServiceAccount")
	if pod.ServiceAccountName != sa.Name || sa.Namespace != relNS {
		t.Errorf("pod service account %q, chart's ServiceAccount %s/%s", pod.ServiceAccountName, sa.Namespace, sa.Name)
	}

	svc := only[corev1.Service](t, objs, "Service")
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8443 || svc.Spec.Ports[0].Name != "https" ||
		svc.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("metrics Service ports %+v, want https:8443 to the container port metrics", svc.Spec.Ports)
	}
	if p := c.Ports; len(p) == 0 || p[0].Name != "metrics" || p[0].ContainerPort != 8443 {
		t.Errorf("container ports %+v, want metrics:8443 first", p)
	}
	for k, v := range svc.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("metrics Service selector %v does not select the pods (labels %v)", svc.Spec.Selector, d.Spec.Template.Labels)
		}
	}
	for _, kind := range []string{"ServiceMonitor", "NetworkPolicy", "EventStream"} {
		if n := len(ofKind(objs, kind)); n != 0 {
			t.Errorf("%d %s rendered by default", n, kind)
		}
	}

	// Leader election: a Role for leases in the release namespace, bound to
	// the service account.
	var le *rbacv1.Role
	for _, o := range ofKind(objs, "Role") {
		r := convert[rbacv1.Role](t, o)
		if r.Namespace == relNS && strings.Contains(r.Name, "leader-election") {
			le = r
		}
	}
	if le == nil {
		t.Fatal("no leader-election Role in the release namespace")
	}
	leases := false
	for _, rule := range le.Rules {
		if slices.Contains(rule.APIGroups, "coordination.k8s.io") && slices.Contains(rule.Resources, "leases") &&
			slices.Contains(rule.Verbs, "update") && slices.Contains(rule.Verbs, "create") {
			leases = true
		}
	}
	if !leases {
		t.Errorf("leader-election Role cannot manage leases: %+v", le.Rules)
	}
	assertBound(t, objs, "RoleBinding", relNS, le.Name, sa.Name)

	// Two replicas: a PodDisruptionBudget keeps one through node drains.
	pdb := only[policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget")
	if pdb.Namespace != relNS || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PodDisruptionBudget %s/%s minAvailable %v maxUnavailable %v, want minAvailable 1 in %s",
			pdb.Namespace, pdb.Name, pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable, relNS)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) || !sel.Matches(labels.Set(d.Spec.Selector.MatchLabels)) {
		t.Errorf("PodDisruptionBudget selector %v does not select the manager pods %v (%v)", pdb.Spec.Selector, d.Spec.Template.Labels, err)
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	if n := len(ofKind(render(t, "replicaCount=1"), "PodDisruptionBudget")); n != 0 {
		t.Errorf("replicaCount=1 renders %d PodDisruptionBudgets: a single replica could never be drained", n)
	}
	if n := len(ofKind(render(t, "podDisruptionBudget.enabled=false"), "PodDisruptionBudget")); n != 0 {
		t.Errorf("podDisruptionBudget.enabled=false renders %d PodDisruptionBudgets", n)
	}
	pdb := only[policyv1.PodDisruptionBudget](t, render(t, "replicaCount=3", "podDisruptionBudget.minAvailable=2"), "PodDisruptionBudget")
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("minAvailable %v, want 2", pdb.Spec.MinAvailable)
	}
}

// assertBound checks that a binding of kind in ns binds roleName to the
// service account.
func assertBound(t *testing.T, objs []*unstructured.Unstructured, kind, ns, roleName, sa string) {
	t.Helper()
	for _, o := range ofKind(objs, kind) {
		if o.GetNamespace() != ns {
			continue
		}
		var rb struct {
			RoleRef  rbacv1.RoleRef   `json:"roleRef"`
			Subjects []rbacv1.Subject `json:"subjects"`
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &rb); err != nil {
			t.Fatal(err)
		}
		if rb.RoleRef.Name != roleName {
			continue
		}
		for _, s := range rb.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == relNS {
				return
			}
		}
	}
	t.Errorf("no %s in %q binds %s to service account %s/%s", kind, ns, roleName, relNS, sa)
}

func TestClusterRoleRulesMatchRoleYAML(t *testing.T) {
	objs := render(t)
	roles := clusterRoles(t, objs)
	names := slices.Sorted(maps.Keys(roles))
	if want := []string{fullname + "-eventstream-editor", fullname + "-eventstream-viewer", fullname + "-manager",
		fullname + "-metrics-auth", fullname + "-metrics-reader"}; !slices.Equal(names, want) {
		t.Fatalf("ClusterRoles %v, want %v", names, want)
	}
	manager := roles[fullname+"-manager"]
	if want := roleYAMLRules(t); !reflect.DeepEqual(manager.Rules, want) {
		t.Errorf("ClusterRole rules differ from config/rbac/role.yaml (run make chart-crds)\n got: %+v\nwant: %+v", manager.Rules, want)
	}
	assertBound(t, objs, "ClusterRoleBinding", "", manager.Name, fullname)
}

// TestMetricsRBAC: with metrics.secure the manager may create TokenReviews
// and SubjectAccessReviews (the rules of config/rbac/metrics_auth_role.yaml),
// and a metrics-reader ClusterRole (config/rbac/metrics_reader_role.yaml) is
// there to bind scrapers to, which metrics.readerSubjects does.
func TestMetricsRBAC(t *testing.T) {
	objs := render(t, "metrics.readerSubjects[0].kind=ServiceAccount", "metrics.readerSubjects[0].name=prometheus",
		"metrics.readerSubjects[0].namespace=monitoring")
	roles := clusterRoles(t, objs)
	auth, reader := roles[fullname+"-metrics-auth"], roles[fullname+"-metrics-reader"]
	if auth == nil || reader == nil {
		t.Fatalf("ClusterRoles %v lack %[2]s-metrics-auth or %[2]s-metrics-reader", slices.Sorted(maps.Keys(roles)), fullname)
	}
	if want := configClusterRoleRules(t, "config/rbac/metrics_auth_role.yaml"); !reflect.DeepEqual(auth.Rules, want) {
		t.Errorf("metrics-auth rules differ from config/rbac/metrics_auth_role.yaml\n got: %+v\nwant: %+v", auth.Rules, want)
	}
	wantAuth := []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
	}
	if !reflect.DeepEqual(auth.Rules, wantAuth) {
		t.Errorf("metrics-auth rules %+v, want %+v", auth.Rules, wantAuth)
	}
	assertBound(t, objs, "ClusterRoleBinding", "", auth.Name, fullname)
	wantReader := []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}
	if !reflect.DeepEqual(reader.Rules, wantReader) ||
		!reflect.DeepEqual(configClusterRoleRules(t, "config/rbac/metrics_reader_role.yaml"), wantReader) {
		t.Errorf("metrics-reader rules %+v (and config/rbac/metrics_reader_role.yaml), want %+v", reader.Rules, wantReader)
	}
	bound := false
	for _, o := range ofKind(objs, "ClusterRoleBinding") {
		b := convert[rbacv1.ClusterRoleBinding](t, o)
		if b.RoleRef.Name == reader.Name && slices.Contains(b.Subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: "prometheus", Namespace: "monitoring"}) {
			bound = true
		}
	}
	if !bound {
		t.Errorf("metrics.readerSubjects: no ClusterRoleBinding of %s to monitoring/prometheus", reader.Name)
	}

	// Plain HTTP: no authentication, so no RBAC for it.
	objs = render(t, "metrics.secure=false")
	if names, want := slices.Sorted(maps.Keys(clusterRoles(t, objs))),
		[]string{fullname + "-eventstream-editor", fullname + "-eventstream-viewer", fullname + "-manager"}; !slices.Equal(names, want) {
		t.Errorf("metrics.secure=false: ClusterRoles %v, want %v (no metrics roles)", names, want)
	}
	c := managerContainer(t, only[appsv1.Deployment](t, objs, "Deployment"))
	if !slices.Contains(c.Args, "--metrics-secure=false") {
		t.Errorf("metrics.secure=false: args %q lack --metrics-secure=false", c.Args)
	}
	if svc := only[corev1.Service](t, objs, "Service"); svc.Spec.Ports[0].Name != "http" {
		t.Errorf("metrics.secure=false: Service port named %q, want http", svc.Spec.Ports[0].Name)
	}
}

// TestMetricsCertificate: metrics.certSecret is mounted and served
// (--metrics-cert-path), and refused without HTTPS.
func TestMetricsCertificate(t *testing.T) {
	d := only[appsv1.Deployment](t, render(t, "metrics.certSecret=metrics-cert"), "Deployment")
	c := managerContainer(t, d)
	var dir string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--metrics-cert-path="); ok {
			dir = v
		}
	}
	if dir == "" {
		t.Fatalf("args %q lack --metrics-cert-path", c.Args)
	}
	for _, key := range []string{"tls.crt", "tls.key"} {
		if got, ok := secretFileAt(d, c, dir+"/"+key); !ok || got.secret != "metrics-cert" || got.key != key {
			t.Errorf("%s/%s is %+v (found %v), want Secret metrics-cert key %s", dir, key, got, ok, key)
		}
	}
	out, err := helm(t, "template", release, chartRel, "--set", "metrics.certSecret=metrics-cert", "--set", "metrics.secure=false")
	if err == nil || !strings.Contains(out, "metrics.certSecret needs metrics.secure=true") {
		t.Errorf("certSecret without metrics.secure: want an error naming both values, got %v:\n%s", err, out)
	}
}

func TestWatchNamespaces(t *testing.T) {
	objs := render(t, "watchNamespaces={a,b}")
	// Only the metrics authentication roles are cluster-wide (TokenReviews and
	// SubjectAccessReviews are cluster-scoped), and the tenants' aggregated
	// ClusterRoles, which nothing in the chart binds (TestAggregatedRoles).
	for _, o := range append(ofKind(objs, "ClusterRole"), ofKind(objs, "ClusterRoleBinding")...) {
		aggregated := o.GetKind() == "ClusterRole" &&
			(o.GetName() == fullname+"-eventstream-editor" || o.GetName() == fullname+"-eventstream-viewer")
		if !strings.HasPrefix(o.GetName(), fullname+"-metrics-") && !aggregated {
			t.Errorf("watchNamespaces set, yet %s %s rendered", o.GetKind(), o.GetName())
		}
	}
	want := roleYAMLRules(t)
	for _, ns := range []string{"a", "b"} {
		var found *rbacv1.Role
		for _, o := range ofKind(objs, "Role") {
			if r := convert[rbacv1.Role](t, o); r.Namespace == ns {
				if found != nil {
					t.Errorf("more than one Role in %q", ns)
				}
				found = r
			}
		}
		if found == nil {
			t.Errorf("no Role in namespace %q", ns)
			continue
		}
		if !reflect.DeepEqual(found.Rules, want) {
			t.Errorf("Role in %q: rules differ from config/rbac/role.yaml\n got: %+v\nwant: %+v", ns, found.Rules, want)
		}
		assertBound(t, objs, "RoleBinding", ns, found.Name, fullname)
	}
	c := managerContainer(t, only[appsv1.Deployment](t, objs, "Deployment"))
	if !slices.Contains(c.Args, "--watch-namespaces=a,b") {
		t.Errorf("args %q lack --watch-namespaces=a,b", c.Args)
	}
}

// Adoption of unmarked JetStream objects is allowed in the release namespace
// by default (where eventstream-streams installs the default streams), and in
// the namespaces listed otherwise.
func TestAdoptNamespaces(t *testing.T) {
	c := managerContainer(t, only[appsv1.Deployment](t, render(t, "adoptNamespaces={platform,team-a}"), "Deployment"))
	if !slices.Contains(c.Args, "--adopt-namespaces=platform,team-a") {
		t.Errorf("args %q lack --adopt-namespaces=platform,team-a", c.Args)
	}
	c = managerContainer(t, only[appsv1.Deployment](t, render(t, "adoptNamespaces={*}"), "Deployment"))
	if !slices.Contains(c.Args, "--adopt-namespaces=*") {
		t.Errorf("args %q lack --adopt-namespaces=*", c.Args)
	}
	if out, err := helm(t, "template", release, chartRel, "--set", "adoptNamespaces={Not_A_Namespace}"); err == nil {
		t.Errorf("an invalid namespace in adoptNamespaces was accepted:\n%s", out)
	}
}

// No JetStream domain is allowed by default; the listed ones become
// --jetstream-domains, and a value that is no domain name is refused.
func TestJetStreamDomains(t *testing.T) {
	c := managerContainer(t, only[appsv1.Deployment](t, render(t), "Deployment"))
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--jetstream-domains") {
			t.Errorf("by default no domain is allowed, but the args hold %q", a)
		}
	}
	c = managerContainer(t, only[appsv1.Deployment](t, render(t, "jetStreamDomains={leaf,edge-1}"), "Deployment"))
	if !slices.Contains(c.Args, "--jetstream-domains=leaf,edge-1") {
		t.Errorf("args %q lack --jetstream-domains=leaf,edge-1", c.Args)
	}
	if out, err := helm(t, "template", release, chartRel, "--set", "jetStreamDomains={a.b}"); err == nil {
		t.Errorf("an invalid domain in jetStreamDomains was accepted:\n%s", out)
	}
}

// Per-resource connections are off by default; on, the allowed host
// patterns become --resource-connection-urls.
func TestResourceConnections(t *testing.T) {
	c := managerContainer(t, only[appsv1.Deployment](t, render(t,
		"resourceConnections.enabled=true", "resourceConnections.allowedURLs={nats.team-a.svc,*.nats.example.com:4443,[fd00::7]}"), "Deployment"))
	for _, want := range []string{"--allow-resource-connections=true", "--resource-connection-urls=nats.team-a.svc,*.nats.example.com:4443,[fd00::7]"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %q lack %q", c.Args, want)
		}
	}
	c = managerContainer(t, only[appsv1.Deployment](t, render(t, "resourceConnections.enabled=true"), "Deployment"))
	if !slices.Contains(c.Args, "--allow-resource-connections=true") {
		t.Errorf("args %q lack --allow-resource-connections=true", c.Args)
	}
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--resource-connection-urls") {
			t.Errorf("no allowedURLs, but %q", a)
		}
	}
	for _, set := range []string{
		"resourceConnections.allowedURLs={nats://nats.example.com}",
		"resourceConnections.allowedURLs={nats.example.com/x}",
		"resourceConnections.allowedURLs={a.*.example.com}",
		"resourceConnections.enabled=yes",
		"allowResourceConnections=true", // the value this one replaced
	} {
		if out, err := helm(t, "template", release, chartRel, "--set", set); err == nil {
			t.Errorf("--set %s: rendered without error", set)
		} else if !strings.Contains(out, "schema") {
			t.Errorf("--set %s: failed, but not on the schema:\n%s", set, out)
		}
	}
}

func TestNATSCredentialsAndTLS(t *testing.T) {
	objs := render(t, "nats.url=tls://nats.example:4222", "nats.credentialsSecret.name=nats-creds",
		"nats.credentialsSecret.key=operator.creds", "nats.tls.secret=nats-tls")
	d := only[appsv1.Deployment](t, objs, "Deployment")
	c := managerContainer(t, d)

	// flag -> the Secret (name, key) whose content must be at that path.
	type file struct{ secret, key string }
	flags := map[string]file{
		"--nats-creds":    {"nats-creds", "operator.creds"},
		"--nats-tls-ca":   {"nats-tls", "ca.crt"},
		"--nats-tls-cert": {"nats-tls", "tls.crt"},
		"--nats-tls-key":  {"nats-tls", "tls.key"},
	}
	if !slices.Contains(c.Args, "--nats-url=tls://nats.example:4222") {
		t.Errorf("args %q lack the NATS URL", c.Args)
	}
	for flag, f := range flags {
		var path string
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, flag+"="); ok {
				path = v
			}
		}
		if path == "" {
			t.Errorf("args %q lack %s", c.Args, flag)
			continue
		}
		if got, ok := secretFileAt(d, c, path); !ok || got != f {
			t.Errorf("%s=%s: the file there is %+v (found %v), want Secret %s key %s", flag, path, got, ok, f.secret, f.key)
		}
	}
	for _, m := range c.VolumeMounts {
		if m.Name != "tmp" && !m.ReadOnly {
			t.Errorf("volume mount %s is not read-only", m.Name)
		}
	}

	// One-way TLS: only the CA.
	c = managerContainer(t, only[appsv1.Deployment](t, render(t, "nats.tls.secret=nats-tls", "nats.tls.clientCert=false"), "Deployment"))
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--nats-tls-cert") || strings.HasPrefix(a, "--nats-tls-key") {
			t.Errorf("tls.clientCert=false still passes %s", a)
		}
	}
	if !slices.Contains(c.Args, "--nats-tls-ca=/etc/eventstream-operator/nats-tls/ca.crt") {
		t.Errorf("args %q lack --nats-tls-ca", c.Args)
	}
}

// secretFileAt resolves path through the container's mounts to the Secret and
// key the file comes from.
func secretFileAt(d *appsv1.Deployment, c corev1.Container, path string) (struct{ secret, key string }, bool) {
	var none struct{ secret, key string }
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				return struct{ secret, key string }{v.Secret.SecretName, rel}, true
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return struct{ secret, key string }{v.Secret.SecretName, it.Key}, true
				}
			}
		}
	}
	return none, false
}

// TestDefaultStreamsAreTheirOwnChart: the operator chart no longer renders
// the default streams (they were hooks, deleted and recreated by every
// upgrade) and says where they went; charts/eventstream-streams renders them
// as ordinary resources, with the adopt annotation.
func TestDefaultStreamsAreTheirOwnChart(t *testing.T) {
	out, err := helm(t, "template", release, chartRel, "--set", "defaultStreams.enabled=true")
	if err == nil || !strings.Contains(out, "charts/eventstream-streams") || !strings.Contains(out, "defaultStreams.enabled") {
		t.Errorf("defaultStreams.enabled=true: want an error naming the value and charts/eventstream-streams, got %v:\n%s", err, out)
	}
	// An old values file (namespace, deletionPolicy, spec) still passes the schema.
	if n := len(ofKind(render(t, "defaultStreams.namespace=apps", "defaultStreams.deletionPolicy=Retain"), "EventStream")); n != 0 {
		t.Errorf("the operator chart renders %d EventStreams", n)
	}

	for _, tc := range []struct {
		sets       []string
		ns, policy string
	}{
		{[]string{"spec.maxBytes=256Mi"}, relNS, "Retain"},
		{[]string{"spec.maxBytes=256Mi", "namespace=apps", "deletionPolicy=Delete"}, "apps", "Delete"},
	} {
		objs := renderChart(t, streamsChartRel, nil, tc.sets...)
		streams := ofKind(objs, "EventStream")
		want := map[string][2]string{
			"auth-events":      {"auth.>", "Authentication and user events"},
			"catalog-events":   {"catalog.>", "Product catalog events"},
			"ddmrp-events":     {"ddmrp.>", "DDMRP buffer and planning events"},
			"execution-events": {"execution.>", "Order execution events"},
			"analytics-events": {"analytics.>", "Analytics events"},
			"ai-agent-events":  {"ai_agent.>", "AI agent events"},
			"dlq-events":       {"dlq.>", "Dead-lettered events from every stream"},
		}
		// Besides the streams, only the default EventSchemas (schemas_test.go).
		if others := len(objs) - len(ofKind(objs, "EventSchema")); len(streams) != len(want) || others != len(streams) {
			t.Fatalf("%v: %d objects besides EventSchemas, %d EventStreams, want only the %d EventStreams", tc.sets, others, len(streams), len(want))
		}
		for _, s := range streams {
			name := s.GetName()
			subjects, _, _ := unstructured.NestedStringSlice(s.Object, "spec", "subjects")
			desc, _, _ := unstructured.NestedString(s.Object, "spec", "description")
			policy, _, _ := unstructured.NestedString(s.Object, "spec", "deletionPolicy")
			maxBytes, _, _ := unstructured.NestedString(s.Object, "spec", "maxBytes")
			w, ok := want[name]
			switch {
			case !ok:
				t.Errorf("unexpected EventStream %s", name)
			case s.GetAPIVersion() != "events.giia.io/v1alpha1":
				t.Errorf("%s: apiVersion %s", name, s.GetAPIVersion())
			case !slices.Equal(subjects, []string{w[0]}) || desc != w[1]:
				t.Errorf("%s: subjects %v description %q, want [%s] %q", name, subjects, desc, w[0], w[1])
			case policy != tc.policy:
				t.Errorf("%v: %s: deletionPolicy %q, want %s", tc.sets, name, policy, tc.policy)
			case s.GetNamespace() != tc.ns:
				t.Errorf("%v: %s: namespace %q, want %q", tc.sets, name, s.GetNamespace(), tc.ns)
			case maxBytes != "256Mi":
				t.Errorf("%s: spec not applied (maxBytes %q)", name, maxBytes)
			case s.GetAnnotations()["events.giia.io/adopt"] != "true":
				t.Errorf("%s: annotations %v lack events.giia.io/adopt: \"true\"", name, s.GetAnnotations())
			}
			for k := range s.GetAnnotations() {
				if strings.HasPrefix(k, "helm.sh/") {
					t.Errorf("%s: annotation %s: the streams must be ordinary release resources, not hooks", name, k)
				}
			}
			delete(want, name)
		}
	}

	if n := len(ofKind(renderChart(t, streamsChartRel, nil, "streams.dlq-events=false"), "EventStream")); n != 6 {
		t.Errorf("streams.dlq-events=false: %d EventStreams, want 6", n)
	}
	for _, k := range []string{"name", "subjects", "deletionPolicy"} {
		out, err := helm(t, "template", release, streamsChartRel, "--set", "spec."+k+"=x")
		if err == nil || !strings.Contains(out, "spec."+k+" cannot be set") {
			t.Errorf("spec.%s=x: want an error naming the field, got %v:\n%s", k, err, out)
		}
	}
}

func TestOptionalMonitoringAndNetworkPolicy(t *testing.T) {
	objs := render(t, "metrics.serviceMonitor.enabled=true", "networkPolicy.enabled=true")
	sm := ofKind(objs, "ServiceMonitor")
	if len(sm) != 1 {
		t.Fatalf("%d ServiceMonitors, want 1", len(sm))
	}
	svc := only[corev1.Service](t, objs, "Service")
	sel, _, _ := unstructured.NestedStringMap(sm[0].Object, "spec", "selector", "matchLabels")
	for k, v := range sel {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selector %v does not select the metrics Service (labels %v)", sel, svc.Labels)
		}
	}
	// HTTPS with the scraper's own token; the self-signed certificate is not
	// verified.
	ep, _, _ := unstructured.NestedSlice(sm[0].Object, "spec", "endpoints")
	if len(ep) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v", ep)
	}
	endpoint := ep[0].(map[string]any)
	skip, _, _ := unstructured.NestedBool(endpoint, "tlsConfig", "insecureSkipVerify")
	if endpoint["scheme"] != "https" || endpoint["port"] != svc.Spec.Ports[0].Name ||
		endpoint["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" || !skip {
		t.Errorf("ServiceMonitor endpoint %v: want https on Service port %s, the bearer token file, insecureSkipVerify", endpoint, svc.Spec.Ports[0].Name)
	}
	sm = ofKind(render(t, "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.caSecret.name=metrics-ca"), "ServiceMonitor")
	ep, _, _ = unstructured.NestedSlice(sm[0].Object, "spec", "endpoints")
	tlsCfg, _, _ := unstructured.NestedMap(ep[0].(map[string]any), "tlsConfig")
	ca, _, _ := unstructured.NestedString(tlsCfg, "ca", "secret", "name")
	if ca != "metrics-ca" || tlsCfg["insecureSkipVerify"] != nil || tlsCfg["serverName"] != fullname+"-metrics."+relNS+".svc" {
		t.Errorf("caSecret set: tlsConfig %v, want the CA Secret metrics-ca, serverName %s-metrics.%s.svc and verification", tlsCfg, fullname, relNS)
	}
	sm = ofKind(render(t, "metrics.serviceMonitor.enabled=true", "metrics.secure=false"), "ServiceMonitor")
	ep, _, _ = unstructured.NestedSlice(sm[0].Object, "spec", "endpoints")
	if e := ep[0].(map[string]any); e["scheme"] != "http" || e["port"] != "http" || e["bearerTokenFile"] != nil || e["tlsConfig"] != nil {
		t.Errorf("metrics.secure=false: ServiceMonitor endpoint %v, want plain http", e)
	}

	np := ofKind(objs, "NetworkPolicy")
	if len(np) != 1 {
		t.Fatalf("%d NetworkPolicies, want 1", len(np))
	}
	ingress, _, _ := unstructured.NestedSlice(np[0].Object, "spec", "ingress")
	var ports []string
	for _, r := range ingress {
		ps, _, _ := unstructured.NestedSlice(r.(map[string]any), "ports")
		for _, p := range ps {
			ports = append(ports, fmt.Sprint(p.(map[string]any)["port"]))
		}
	}
	if !slices.Equal(ports, []string{"8443", "8081"}) {
		t.Errorf("NetworkPolicy ingress ports %v, want [8443 8081] (metrics, probes)", ports)
	}
	types, _, _ := unstructured.NestedStringSlice(np[0].Object, "spec", "policyTypes")
	sort.Strings(types)
	if !slices.Equal(types, []string{"Egress", "Ingress"}) {
		t.Errorf("NetworkPolicy policyTypes %v", types)
	}
}

// dockerBuild is the manager's `go build` in the Dockerfile: the environment
// assignments before `go build` and the arguments after it.
type dockerBuild struct {
	env  []string
	args []string
}

func parseDockerfileBuild(t *testing.T) dockerBuild {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines, then find the RUN instruction with go build.
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	var run string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			if run != "" {
				t.Fatal("more than one RUN with go build in the Dockerfile")
			}
			run = strings.TrimPrefix(l, "RUN ")
		}
	}
	if run == "" {
		t.Fatal("no RUN ... go build in the Dockerfile")
	}
	words := shellWords(t, run)
	i := slices.Index(words, "go")
	if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
		t.Fatalf("cannot parse %q", run)
	}
	return dockerBuild{env: words[:i], args: words[i+2:]}
}

// shellWords splits a command line the way sh does for simple quoting.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '&' || r == ';' || r == '|':
			t.Fatalf("the go build RUN line must be a single command: %q", s)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// withoutOutput drops "-o FILE" from go build arguments.
func withoutOutput(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "-o" {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// TestDockerfileBuildMatchesMakefile: the image's binary is built exactly as
// `make build` builds bin/manager.
func TestDockerfileBuildMatchesMakefile(t *testing.T) {
	db := parseDockerfileBuild(t)
	if !slices.Contains(db.env, "CGO_ENABLED=0") {
		t.Errorf("the Dockerfile builds without CGO_ENABLED=0: %v", db.env)
	}
	data, err := os.ReadFile(filepath.Join(root(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^build:.*\n\t(.*)$`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatal("no build target in the Makefile")
	}
	words := shellWords(t, m[1])
	i := slices.Index(words, "go")
	if i < 0 || words[i+1] != "build" {
		t.Fatalf("cannot parse the Makefile's build recipe %q", m[1])
	}
	if !slices.Contains(words[:i], "CGO_ENABLED=0") {
		t.Errorf("make build runs without CGO_ENABLED=0")
	}
	if got, want := withoutOutput(db.args), withoutOutput(words[i+2:]); !slices.Equal(got, want) {
		t.Errorf("Dockerfile go build %q, Makefile go build %q", got, want)
	}
}

// TestDockerfileBuildRuns builds ./cmd with the Dockerfile's flags and runs
// the binary's --help.
func TestDockerfileBuildRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the manager; skipped with -short")
	}
	db := parseDockerfileBuild(t)
	bin := filepath.Join(t.TempDir(), "manager")
	env := os.Environ()
	for _, e := range db.env {
		k, v, _ := strings.Cut(e, "=")
		v = expandDefault(v)
		if v != "" { // ${TARGETARCH} is empty outside BuildKit: the host's
			env = append(env, k+"="+v)
		}
	}
	args := []string{"build"}
	for i := 0; i < len(db.args); i++ {
		if db.args[i] == "-o" {
			args = append(args, "-o", bin)
			i++
			continue
		}
		args = append(args, db.args[i])
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root(t)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("manager --help: %v\n%s", err, out)
	}
	for _, flag := range []string{"-nats-url", "-leader-elect", "-health-probe-bind-address", "-metrics-bind-address", "-metrics-secure",
		"-metrics-cert-path", "-watch-namespaces"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("manager --help does not mention %s:\n%s", flag, out)
		}
	}
}

// expandDefault evaluates ${VAR:-default} and ${VAR} (build args, unset here).
func expandDefault(v string) string {
	return regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(:-([^}]*))?\}`).ReplaceAllString(v, "$2")
}

// finalizerPolicy returns the policy and binding in objs (nil when absent).
func finalizerPolicy(t *testing.T, objs []*unstructured.Unstructured) (*admissionv1.MutatingAdmissionPolicy, *admissionv1.MutatingAdmissionPolicyBinding) {
	t.Helper()
	ps, bs := ofKind(objs, "MutatingAdmissionPolicy"), ofKind(objs, "MutatingAdmissionPolicyBinding")
	if len(ps) != len(bs) || len(ps) > 1 {
		t.Fatalf("want at most one MutatingAdmissionPolicy and its binding, got %d and %d", len(ps), len(bs))
	}
	if len(ps) == 0 {
		return nil, nil
	}
	return convert[admissionv1.MutatingAdmissionPolicy](t, ps[0]), convert[admissionv1.MutatingAdmissionPolicyBinding](t, bs[0])
}

func TestFinalizerAdmissionPolicy(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root(t), "config", "admission", "finalizer_policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	wantPolicy, _ := finalizerPolicy(t, decodeAll(t, string(data)))
	if wantPolicy == nil {
		t.Fatal("config/admission/finalizer_policy.yaml has no MutatingAdmissionPolicy")
	}

	served := []string{"--api-versions", mapAPIVersion}
	policy, binding := finalizerPolicy(t, renderChart(t, chartRel, served))
	if policy == nil {
		t.Fatalf("the chart renders no finalizer MutatingAdmissionPolicy where the API server serves %s", mapAPIVersion)
	}
	if !reflect.DeepEqual(policy.Spec, wantPolicy.Spec) {
		t.Errorf("the chart's policy spec differs from config/admission/finalizer_policy.yaml\n got: %+v\nwant: %+v", policy.Spec, wantPolicy.Spec)
	}
	if binding.Spec.PolicyName != policy.Name {
		t.Errorf("binding %s names policy %q, want %q", binding.Name, binding.Spec.PolicyName, policy.Name)
	}
	if binding.Spec.MatchResources != nil {
		t.Errorf("all namespaces watched, yet the binding narrows its match: %+v", binding.Spec.MatchResources)
	}

	// Namespaced mode: the finalizer only where this operator removes it.
	_, binding = finalizerPolicy(t, renderChart(t, chartRel, served, "watchNamespaces={a,b}"))
	want := &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}}}
	if binding == nil || !reflect.DeepEqual(binding.Spec.MatchResources, want) {
		t.Errorf("watchNamespaces={a,b}: binding match %+v, want %+v", binding, want)
	}

	if p, _ := finalizerPolicy(t, renderChart(t, chartRel, served, "admissionPolicy.enabled=false")); p != nil {
		t.Errorf("admissionPolicy.enabled=false, yet %s rendered", p.Name)
	}

	// Where the API server does not serve it (Kubernetes 1.33, most clusters
	// in use), the policy is not rendered: installing it would fail. A
	// beta-only API server (v1beta1) does not count: the template is v1.
	for _, extra := range [][]string{
		{"--kube-version", "1.33.0"},
		nil,
		{"--kube-version", "1.35.0", "--api-versions", "admissionregistration.k8s.io/v1beta1/MutatingAdmissionPolicy"},
	} {
		if p, _ := finalizerPolicy(t, renderChart(t, chartRel, extra)); p != nil {
			t.Errorf("helm template %v renders %s, though the API server does not serve %s", extra, p.Name, mapAPIVersion)
		}
	}
}

// localReplaces returns the directories the root go.mod replaces modules with
// (the client library's own module, ./pkg/events), relative to the root.
func localReplaces(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, r := range f.Replace {
		if modfile.IsDirectoryPath(r.New.Path) {
			dirs = append(dirs, filepath.ToSlash(filepath.Clean(r.New.Path)))
		}
	}
	if !slices.Contains(dirs, "pkg/events") {
		t.Fatalf("go.mod does not replace the client library with ./pkg/events (replaces: %v)", dirs)
	}
	return dirs
}

// TestDockerfileCopiesReplacedModules: `go mod download` in the image needs
// the go.mod and go.sum of every module the root go.mod replaces with a
// directory, so the Dockerfile copies them before it runs.
func TestDockerfileCopiesReplacedModules(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	download := regexp.MustCompile(`(?m)^RUN\s+go mod download`).FindStringIndex(text)
	if download == nil {
		t.Fatal("no RUN go mod download in the Dockerfile")
	}
	copied := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^COPY\s+(.+)$`).FindAllStringSubmatch(text[:download[0]], -1) {
		words := strings.Fields(m[1])
		if len(words) < 2 {
			continue
		}
		dest := strings.TrimSuffix(strings.TrimPrefix(words[len(words)-1], "./"), "/")
		for _, src := range words[:len(words)-1] {
			if path.Dir(src) == dest || (dest == "" || dest == ".") && path.Dir(src) == "." {
				copied[src] = true
			}
		}
	}
	for _, dir := range append([]string{"."}, localReplaces(t)...) {
		for _, f := range []string{"go.mod", "go.sum"} {
			if p := path.Join(dir, f); !copied[p] {
				t.Errorf("the Dockerfile does not COPY %s to %s/ before go mod download", p, dir)
			}
		}
	}
}

// TestMakefileCoversEveryModule: `go test ./...` at the root does not enter a
// nested module, so the Makefile's GO_MODULES (fmt, vet, lint, test,
// check-generated) must list the root and every module go.mod replaces with a
// directory.
func TestMakefileCoversEveryModule(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^GO_MODULES \?= (.*)$`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatal("no GO_MODULES in the Makefile")
	}
	listed := strings.Fields(m[1])
	for _, dir := range append([]string{"."}, localReplaces(t)...) {
		if !slices.Contains(listed, dir) {
			t.Errorf("the Makefile's GO_MODULES %v does not list the module in %s", listed, dir)
		}
	}
	for _, target := range []string{"fmt", "vet", "lint", "test", "check-generated"} {
		recipe := regexp.MustCompile(`(?ms)^` + regexp.QuoteMeta(target) + `:[^\n]*\n((?:\t[^\n]*\n)+)`).FindStringSubmatch(string(data))
		if recipe == nil || !strings.Contains(recipe[1], "in-modules") {
			t.Errorf("make %s does not run in every module (no $(call in-modules,...) in its recipe)", target)
		}
	}
}
