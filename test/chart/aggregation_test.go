package chart_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// The tenants' ClusterRoles: config/rbac file, chart name suffix, and the
// aggregation labels each must carry (and no other).
var aggregatedRoles = []struct {
	config, suffix string
	aggregateTo    []string
	rules          []rbacv1.PolicyRule
}{
	{"config/rbac/eventstream_editor_role.yaml", "-eventstream-editor", []string{"admin", "edit"}, []rbacv1.PolicyRule{
		{APIGroups: []string{"events.giia.io"}, Resources: []string{"eventconsumers", "eventkeyvalues", "eventobjectstores", "eventreplays", "eventschemas", "eventstreams"},
			Verbs: []string{"create", "delete", "get", "list", "patch", "update", "watch"}},
		{APIGroups: []string{"events.giia.io"}, Resources: []string{"eventconsumers/status", "eventkeyvalues/status", "eventobjectstores/status", "eventreplays/status", "eventschemas/status", "eventstreams/status"}, Verbs: []string{"get"}},
	}},
	{"config/rbac/eventstream_viewer_role.yaml", "-eventstream-viewer", []string{"view"}, []rbacv1.PolicyRule{
		{APIGroups: []string{"events.giia.io"}, Resources: []string{"eventconsumers", "eventkeyvalues", "eventobjectstores", "eventreplays", "eventschemas", "eventstreams"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"events.giia.io"}, Resources: []string{"eventconsumers/status", "eventkeyvalues/status", "eventobjectstores/status", "eventreplays/status", "eventschemas/status", "eventstreams/status"}, Verbs: []string{"get"}},
	}},
}

const aggregateLabel = "rbac.authorization.k8s.io/aggregate-to-"

// aggregateTo lists the built-in roles a ClusterRole's labels aggregate it
// into (the "true" rbac.authorization.k8s.io/aggregate-to-* labels).
func aggregateTo(t *testing.T, role *rbacv1.ClusterRole) []string {
	t.Helper()
	var out []string
	for k, v := range role.Labels {
		if to, ok := strings.CutPrefix(k, aggregateLabel); ok {
			if v != "true" {
				t.Errorf("ClusterRole %s: label %s=%q, want \"true\"", role.Name, k, v)
			}
			out = append(out, to)
		}
	}
	slices.Sort(out)
	return out
}

func configClusterRole(t *testing.T, rel string) *rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return only[rbacv1.ClusterRole](t, decodeAll(t, string(data)), "ClusterRole")
}

// TestAggregatedRoles: config/rbac ships the eventstream-editor and
// eventstream-viewer ClusterRoles (in its kustomization), the chart renders the
// same rules with the same aggregation labels by default, binds neither, and
// rbac.aggregateToDefaultRoles=false or rbac.create=false leaves them out.
func TestAggregatedRoles(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root(t), "config/rbac/kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kust struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(data, &kust); err != nil {
		t.Fatalf("config/rbac/kustomization.yaml: %v", err)
	}

	for _, watch := range [][]string{nil, {"watchNamespaces={a,b}"}} {
		objs := render(t, watch...)
		roles := clusterRoles(t, objs)
		for _, want := range aggregatedRoles {
			if !slices.Contains(kust.Resources, filepath.Base(want.config)) {
				t.Errorf("config/rbac/kustomization.yaml resources %v lack %s", kust.Resources, filepath.Base(want.config))
			}
			cfg := configClusterRole(t, want.config)
			if !reflect.DeepEqual(cfg.Rules, want.rules) {
				t.Errorf("%s rules\n got: %+v\nwant: %+v", want.config, cfg.Rules, want.rules)
			}
			if got := aggregateTo(t, cfg); !slices.Equal(got, want.aggregateTo) {
				t.Errorf("%s aggregates into %v, want %v", want.config, got, want.aggregateTo)
			}
			chart := roles[fullname+want.suffix]
			if chart == nil {
				t.Errorf("%v: no ClusterRole %s%s among %v", watch, fullname, want.suffix, slices.Sorted(maps.Keys(roles)))
				continue
			}
			if !reflect.DeepEqual(chart.Rules, cfg.Rules) {
				t.Errorf("%v: ClusterRole %s rules differ from %s\n got: %+v\nwant: %+v", watch, chart.Name, want.config, chart.Rules, cfg.Rules)
			}
			if got := aggregateTo(t, chart); !slices.Equal(got, want.aggregateTo) {
				t.Errorf("%v: ClusterRole %s aggregates into %v, want %v", watch, chart.Name, got, want.aggregateTo)
			}
			if chart.Labels["app.kubernetes.io/instance"] != release {
				t.Errorf("ClusterRole %s lacks the chart's labels: %v", chart.Name, chart.Labels)
			}
			// The operator does not use them: nothing binds them.
			for _, o := range append(ofKind(objs, "ClusterRoleBinding"), ofKind(objs, "RoleBinding")...) {
				if ref, _, _ := unstructured.NestedString(o.Object, "roleRef", "name"); ref == chart.Name {
					t.Errorf("%s %s binds %s", o.GetKind(), o.GetName(), chart.Name)
				}
			}
		}
	}

	for _, set := range []string{"rbac.aggregateToDefaultRoles=false", "rbac.create=false"} {
		roles := clusterRoles(t, render(t, set))
		for _, want := range aggregatedRoles {
			if roles[fullname+want.suffix] != nil {
				t.Errorf("%s still renders ClusterRole %s%s", set, fullname, want.suffix)
			}
		}
	}
	if roles := clusterRoles(t, render(t, "rbac.aggregateToDefaultRoles=false")); roles[fullname+"-manager"] == nil {
		t.Errorf("rbac.aggregateToDefaultRoles=false dropped the manager's ClusterRole too: %v", slices.Sorted(maps.Keys(roles)))
	}
}

// TestAggregatedRolesInAPIServer applies the chart's editor and viewer
// ClusterRoles to envtest's real kube-apiserver (with the CRDs).
//
// The aggregation itself (filling admin/edit/view with the rules of the
// ClusterRoles their aggregationRule selects) is done by the
// clusterrole-aggregation controller of kube-controller-manager, which
// envtest does not run: there the built-in roles keep no rules at all. So this
// test checks the two halves separately, both against the real API server:
// the aggregationRule selectors of its bootstrap admin, edit and view
// ClusterRoles select our roles (and view does not select the editor), and
// our roles' rules, bound in a namespace, let the RBAC authorizer give an
// editor create and a viewer list but not create, there and only there.
func TestAggregatedRolesInAPIServer(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds envtest's kube-apiserver and etcd")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root(t), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping envtest: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := kubernetes.NewForConfigOrDie(cfg)

	rendered := clusterRoles(t, render(t))
	editor, viewer := rendered[fullname+"-eventstream-editor"], rendered[fullname+"-eventstream-viewer"]
	if editor == nil || viewer == nil {
		t.Fatalf("the chart renders no editor or viewer ClusterRole: %v", slices.Sorted(maps.Keys(rendered)))
	}
	for _, r := range []*rbacv1.ClusterRole{editor, viewer} {
		if _, err := cs.RbacV1().ClusterRoles().Create(ctx, r, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating ClusterRole %s: %v", r.Name, err)
		}
	}

	// The bootstrap roles' selectors (the API server creates admin, edit and
	// view at start-up, with an aggregationRule and no rules).
	builtin := map[string]*rbacv1.ClusterRole{}
	if err := poll(ctx, func() error {
		for _, name := range []string{"admin", "edit", "view"} {
			r, err := cs.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			builtin[name] = r
		}
		return nil
	}); err != nil {
		t.Fatalf("the built-in ClusterRoles: %v", err)
	}
	selects := func(agg, role *rbacv1.ClusterRole) bool {
		if agg.AggregationRule == nil {
			t.Fatalf("built-in ClusterRole %s has no aggregationRule", agg.Name)
		}
		for _, s := range agg.AggregationRule.ClusterRoleSelectors {
			sel, err := metav1.LabelSelectorAsSelector(&s)
			if err != nil {
				t.Fatalf("%s: selector %v: %v", agg.Name, s, err)
			}
			if sel.Matches(labels.Set(role.Labels)) {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		agg  string
		role *rbacv1.ClusterRole
		want bool
	}{
		{"admin", editor, true}, {"edit", editor, true}, {"view", editor, false},
		{"view", viewer, true},
		// view's own rules reach edit and admin through the same chain.
		{"edit", builtin["view"], true}, {"admin", builtin["edit"], true},
	} {
		if got := selects(builtin[c.agg], c.role); got != c.want {
			t.Errorf("the built-in %s ClusterRole selects %s: %v, want %v (its selectors %+v, labels %v)",
				c.agg, c.role.Name, got, c.want, builtin[c.agg].AggregationRule.ClusterRoleSelectors, c.role.Labels)
		}
	}

	// Our rules through the real RBAC authorizer: alice edits and bob views in
	// team-a.
	for _, ns := range []string{"team-a", "team-b"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for user, role := range map[string]string{"alice": editor.Name, "bob": viewer.Name} {
		_, err := cs.RbacV1().RoleBindings("team-a").Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	allowed := func(user, ns, verb, resource, sub string) bool {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: "events.giia.io", Resource: resource, Subresource: sub}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		return sar.Status.Allowed
	}
	// RBAC caches are filled from informers: wait until the bindings count.
	if err := poll(ctx, func() error {
		if !allowed("alice", "team-a", "create", "eventstreams", "") || !allowed("bob", "team-a", "list", "eventstreams", "") {
			return apierrors.NewForbidden(schema.GroupResource{Group: "events.giia.io", Resource: "eventstreams"}, "", nil)
		}
		return nil
	}); err != nil {
		t.Fatalf("the RoleBindings never took effect: %v", err)
	}
	for _, res := range []string{"eventstreams", "eventconsumers", "eventschemas", "eventreplays", "eventkeyvalues", "eventobjectstores"} {
		for _, verb := range []string{"create", "delete", "get", "list", "patch", "update", "watch"} {
			if !allowed("alice", "team-a", verb, res, "") {
				t.Errorf("editor: %s %s in team-a denied", verb, res)
			}
			if allowed("alice", "team-b", verb, res, "") {
				t.Errorf("editor bound in team-a: %s %s allowed in team-b", verb, res)
			}
			viewerMay := verb == "get" || verb == "list" || verb == "watch"
			if got := allowed("bob", "team-a", verb, res, ""); got != viewerMay {
				t.Errorf("viewer: %s %s in team-a allowed=%v, want %v", verb, res, got, viewerMay)
			}
		}
		for _, user := range []string{"alice", "bob"} {
			if !allowed(user, "team-a", "get", res, "status") {
				t.Errorf("%s: get %s/status denied", user, res)
			}
			for _, verb := range []string{"update", "patch"} {
				if allowed(user, "team-a", verb, res, "status") {
					t.Errorf("%s: %s %s/status allowed: the status is the operator's", user, verb, res)
				}
			}
		}
	}

	// And a real write as each user (impersonation).
	gvr := schema.GroupVersionResource{Group: "events.giia.io", Version: "v1alpha1", Resource: "eventstreams"}
	as := func(user string) dynamic.NamespaceableResourceInterface {
		c := rest.CopyConfig(cfg)
		c.Impersonate = rest.ImpersonationConfig{UserName: user}
		return dynamic.NewForConfigOrDie(c).Resource(gvr)
	}
	stream := func(name string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "events.giia.io/v1alpha1", "kind": "EventStream",
			"metadata": map[string]any{"name": name},
			"spec":     map[string]any{"subjects": []any{name + ".>"}},
		}}
	}
	if _, err := as("alice").Namespace("team-a").Create(ctx, stream("orders"), metav1.CreateOptions{}); err != nil {
		t.Errorf("editor creating an EventStream in team-a: %v", err)
	}
	if _, err := as("alice").Namespace("team-b").Create(ctx, stream("orders"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("editor creating an EventStream in team-b: %v, want Forbidden", err)
	}
	if _, err := as("bob").Namespace("team-a").Create(ctx, stream("payments"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("viewer creating an EventStream in team-a: %v, want Forbidden", err)
	}
	list, err := as("bob").Namespace("team-a").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("viewer listing EventStreams in team-a: %v", err)
	}
	if len(list.Items) != 1 || list.Items[0].GetName() != "orders" {
		t.Errorf("viewer lists %d EventStreams in team-a, want orders alone", len(list.Items))
	}
	if err := as("bob").Namespace("team-a").Delete(ctx, "orders", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("viewer deleting an EventStream: %v, want Forbidden", err)
	}
}

// poll calls check every 100ms until it returns nil or ctx ends.
func poll(ctx context.Context, check func() error) error {
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}
