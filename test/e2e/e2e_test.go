//go:build e2e

// Package e2e is the end-to-end test of the operator as it ships: the Helm
// chart installed by the real bin/helm into envtest's real kube-apiserver and
// etcd, the real bin/manager running with the chart's RBAC (impersonating the
// chart's ServiceAccount), the real bin/nats-server with JetStream, kubectl for
// everything a user does, and pkg/events for publishing and consuming. It also
// scrapes the manager's metrics as the chart serves them (HTTPS, 401 without a
// token, 403 without RBAC, 200 with the metrics-reader ClusterRole), takes the
// sample EventStreams into charts/eventstream-streams the way the README's
// upgrade steps say, puts and gets a value and an object in the sample
// EventKeyValue and EventObjectStore buckets (and sees a bucket deleted out
// of band recreated), upgrades both charts and checks that no EventStream is
// recreated and no message lost (deletionPolicy Retain and Delete), and
// uninstalls both charts with nothing left terminating.
//
//	make test-e2e
//
// It needs bin/manager, bin/nats-server, bin/helm (make build nats-server
// helm), dist/install.yaml (make build-installer), kubectl on PATH and
// KUBEBUILDER_ASSETS (hack/envtest/build.sh). The steps run in order and stop
// at the first failure; everything started is stopped even then. Set
// E2E_KEEP=1 to keep the work directory (logs, kubeconfigs) after a pass; it
// is always kept after a failure. E2E_CHART installs another chart directory
// (e.g. a copy with an RBAC rule removed, to see the test catch it).
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/giia/eventstream-operator/internal/testutil/controlplane"
	"github.com/giia/eventstream-operator/internal/testutil/managerproc"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
	"github.com/giia/eventstream-operator/internal/testutil/repo"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

const (
	release      = "eso"
	releaseNS    = "eventstream-system"
	samplesNS    = "default"
	ownerKey     = "events.giia.io/owner"
	uidKey       = "events.giia.io/uid"
	finalizer    = "events.giia.io/finalizer"
	overallLimit = 18 * time.Minute // below go test -timeout 20m, so cleanup always runs
)

// The seven EventStreams of config/samples: resource name, JetStream name,
// subject, description.
var sampleStreams = []struct{ name, stream, subject, description string }{
	{"auth-events", "AUTH_EVENTS", "auth.>", "Authentication and user events"},
	{"catalog-events", "CATALOG_EVENTS", "catalog.>", "Product catalog events"},
	{"ddmrp-events", "DDMRP_EVENTS", "ddmrp.>", "DDMRP buffer and planning events"},
	{"execution-events", "EXECUTION_EVENTS", "execution.>", "Order execution events"},
	{"analytics-events", "ANALYTICS_EVENTS", "analytics.>", "Analytics events"},
	{"ai-agent-events", "AI_AGENT_EVENTS", "ai_agent.>", "AI agent events"},
	{"dlq-events", "DLQ_EVENTS", "dlq.>", "Dead-lettered events from every stream"},
}

type suite struct {
	t     *testing.T // the running step
	start time.Time
	ctx   context.Context

	root, assets, work string
	chart              string // charts/eventstream-operator, or $E2E_CHART

	plane     *controlplane.Plane
	adminKC   string // admin (system:masters) kubeconfig
	saKC      string // the same, impersonating the chart's ServiceAccount
	kubeCache string

	nats    *natsproc.Server
	natsURL string
	nc      *nats.Conn
	js      jetstream.JetStream

	saName      string   // the chart's ServiceAccount
	chartArgs   []string // the chart's manager args
	mgr         *managerproc.Manager
	probePort   int
	metricsPort int
}

func TestE2E(t *testing.T) {
	s := &suite{t: t, start: time.Now()}
	var cancel context.CancelFunc
	s.ctx, cancel = context.WithTimeout(context.Background(), overallLimit)
	defer cancel()

	var err error
	if s.root, err = repo.Root(); err != nil {
		t.Fatal(err)
	}
	s.chart = "charts/eventstream-operator"
	if c := os.Getenv("E2E_CHART"); c != "" {
		s.chart = c
	}
	s.assets = os.Getenv("KUBEBUILDER_ASSETS")
	if s.assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run make test-e2e (it runs hack/envtest/build.sh)")
	}
	for _, f := range []string{"bin/manager", "bin/nats-server", "bin/helm", "dist/install.yaml"} {
		if _, err := os.Stat(filepath.Join(s.root, f)); err != nil {
			t.Fatalf("%s is missing (make build nats-server helm build-installer): %v", f, err)
		}
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Fatal("kubectl is not on PATH")
	}
	if s.work, err = os.MkdirTemp("", "eventstream-e2e-"); err != nil {
		t.Fatal(err)
	}
	s.kubeCache = filepath.Join(s.work, "kube-cache")
	logf(t, s.start, "work directory %s", s.work)

	// Registered first, so it runs last (cleanups run in reverse order).
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_KEEP") != "" {
			logf(t, s.start, "work directory kept: %s (manager-1.log, standalone/nats-server.log, kubeconfigs)", s.work)
			return
		}
		_ = os.RemoveAll(s.work)
	})
	t.Cleanup(s.teardown)

	steps := []struct {
		name string
		fn   func() error
	}{
		{"01_control_plane_and_nats", s.startWorld},
		{"02_helm_lint", s.helmLint},
		{"03_helm_install", s.helmInstall},
		{"04_manager_as_chart_serviceaccount", s.startManager},
		{"05_samples_ready", s.applySamples},
		{"06_jetstream_matches_samples", s.checkJetStream},
		{"07_event_reaches_consumer", s.publishAndConsume},
		{"07b_metrics_https_authn_authz", s.checkSecureMetrics},
		{"07c_schemas_validated_end_to_end", s.schemasEndToEnd},
		{"07d_dead_letters_redriven_by_eventreplay", s.redriveEndToEnd},
		{"07e_prometheus_evaluates_dashboard_and_alerts", s.prometheusEvaluatesDashboardAndAlerts},
		{"07f_keyvalue_and_objectstore_samples", s.bucketSamples},
		{"08a_delete_retain", s.deleteRetain},
		{"08b_delete_delete", s.deleteDelete},
		{"09_install_yaml_server_dry_run", s.dryRunInstaller},
		{"11a_streams_chart_adopts_hook_streams", s.adoptIntoStreamsChart},
		{"11b_helm_upgrades_keep_streams", s.helmUpgradesKeepStreams},
		{"11c_helm_uninstall_streams_chart", s.uninstallStreamsChart},
		{"12_manager_stops_on_sigterm", s.stopManager},
		{"13_helm_uninstall_operator_chart", s.uninstallOperatorChart},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			s.t = t
			begin := time.Now()
			logf(t, s.start, "==> %s", st.name)
			err := st.fn()
			if err == nil && s.mgr != nil {
				err = s.checkNoForbidden()
			}
			if err != nil {
				if s.mgr != nil {
					t.Logf("manager log (last 40 lines of %s):\n%s", s.mgr.LogPath(), indent(tail(s.mgr.LogPath(), 40)))
				}
				t.Fatalf("%s failed after %s: %v", st.name, time.Since(begin).Round(time.Millisecond), err)
			}
			logf(t, s.start, "<== %s done in %s", st.name, time.Since(begin).Round(time.Millisecond))
		})
		s.t = t
		if !ok {
			break
		}
	}
	logf(t, s.start, "end to end: %s", time.Since(s.start).Round(time.Millisecond))
}

// ---- 1: the world ----

func (s *suite) startWorld() error {
	begin := time.Now()
	var err error
	// No CRDs: the chart installs them.
	s.plane, err = controlplane.Start(controlplane.Options{Dir: s.work, Kubeconfig: filepath.Join(s.work, "admin.kubeconfig"), Assets: s.assets, User: "e2e-admin"})
	if err != nil {
		return err
	}
	s.adminKC = s.plane.Kubeconfig
	logf(s.t, s.start, "API server %s up in %s", s.plane.Host(), time.Since(begin).Round(time.Millisecond))
	out, err := s.kubectl(30*time.Second, "get", "crd", "-o", "name")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return fmt.Errorf("the fresh API server already has CRDs:\n%s", out)
	}
	return s.startNATS()
}

func (s *suite) startNATS() error {
	begin := time.Now()
	var err error
	s.nats, err = natsproc.Standalone(s.work)
	if err != nil {
		return err
	}
	s.natsURL = s.nats.URL()
	err = poll(s.ctx, 30*time.Second, 100*time.Millisecond, "connecting to nats-server", func() error {
		if s.nats.Proc.Exited() {
			return fmt.Errorf("nats-server exited: %v\n%s", s.nats.Proc.ExitErr(), tail(s.nats.Proc.Log, 20))
		}
		nc, err := events.Connect(s.natsURL, events.WithName("e2e"))
		if err != nil {
			return err
		}
		s.nc = nc
		return nil
	})
	if err != nil {
		return err
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	info, err := s.js.AccountInfo(ctx)
	if err != nil {
		return fmt.Errorf("JetStream not enabled: %w", err)
	}
	logf(s.t, s.start, "nats-server %s up in %s (JetStream file store limit %d GiB)", s.natsURL,
		time.Since(begin).Round(time.Millisecond), info.Limits.MaxStore>>30)
	return nil
}

// ---- 2, 3: the chart ----

func (s *suite) helmLint() error {
	out, err := s.helm(time.Minute, "lint", "--strict", s.chart)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "0 chart(s) failed") {
		return fmt.Errorf("helm lint did not report 0 failures:\n%s", out)
	}
	return nil
}

func (s *suite) helmInstall() error {
	if _, err := s.helm(2*time.Minute, "install", release, s.chart,
		"-n", releaseNS, "--create-namespace", "--kubeconfig", s.adminKC,
		"--set", "nats.url="+s.natsURL); err != nil {
		return err
	}
	if _, err := s.kubectl(90*time.Second, "wait", "--for", "condition=established", "--timeout=60s",
		"crd/eventstreams.events.giia.io", "crd/eventconsumers.events.giia.io"); err != nil {
		return err
	}
	// What the release installed: the manager's ServiceAccount and args.
	manifest, err := s.helm(time.Minute, "get", "manifest", release, "-n", releaseNS, "--kubeconfig", s.adminKC)
	if err != nil {
		return err
	}
	dep, err := deploymentIn(manifest)
	if err != nil {
		return err
	}
	s.saName = dep.Spec.Template.Spec.ServiceAccountName
	if s.saName == "" {
		return errors.New("the chart's Deployment names no ServiceAccount")
	}
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			s.chartArgs = slices.Clone(c.Args)
		}
	}
	if s.chartArgs == nil {
		return errors.New("the chart's Deployment has no container named manager")
	}
	logf(s.t, s.start, "chart ServiceAccount %s/%s, manager args %q", releaseNS, s.saName, s.chartArgs)
	if !slices.Contains(s.chartArgs, "--nats-url="+s.natsURL) {
		return fmt.Errorf("the chart's manager args %q lack --nats-url=%s", s.chartArgs, s.natsURL)
	}
	if _, err := s.kubectl(30*time.Second, "get", "serviceaccount", "-n", releaseNS, s.saName); err != nil {
		return err
	}
	return s.waitFinalizerPolicy()
}

// waitFinalizerPolicy waits until the chart's MutatingAdmissionPolicy adds
// the finalizer to a new EventStream (server-side dry-run creates): from
// then on the operator needs no write of its own before the first status.
func (s *suite) waitFinalizerPolicy() error {
	probe := filepath.Join(s.work, "policy-probe.yaml")
	doc := "apiVersion: events.giia.io/v1alpha1\nkind: EventStream\nmetadata:\n  name: policy-probe\n  namespace: " +
		samplesNS + "\nspec:\n  subjects: [\"probe.>\"]\n"
	if err := os.WriteFile(probe, []byte(doc), 0o600); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := s.kubectlQuiet(30*time.Second, "create", "--dry-run=server", "-f", probe, "-o", "jsonpath={.metadata.finalizers}")
		if err == nil && strings.Contains(out, finalizer) {
			logf(s.t, s.start, "the finalizer policy is in force: a new EventStream gets %s", out)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("a new EventStream did not get the finalizer %s from the chart's MutatingAdmissionPolicy within 30s (finalizers %q, error %v)", finalizer, out, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkOperatorWroteNoMetadata checks, from managedFields, that the operator
// wrote only the status of the samples: the admission policy had already
// put the finalizer in place when they were created.
func (s *suite) checkOperatorWroteNoMetadata() error {
	out, err := s.kubectlQuiet(30*time.Second, "get", "evs,evc", "-n", samplesNS, "-o", "json", "--show-managed-fields")
	if err != nil {
		return err
	}
	list := &unstructured.UnstructuredList{}
	if err := list.UnmarshalJSON([]byte(out)); err != nil {
		return fmt.Errorf("decoding the samples: %w", err)
	}
	if len(list.Items) == 0 {
		return errors.New("no samples found")
	}
	for _, o := range list.Items {
		if !slices.Contains(o.GetFinalizers(), finalizer) {
			return fmt.Errorf("%s/%s has no finalizer %s: %v", o.GetKind(), o.GetName(), finalizer, o.GetFinalizers())
		}
		statusWrites := 0
		for _, mf := range o.GetManagedFields() {
			if mf.Subresource == "status" {
				statusWrites++
			}
			if mf.Subresource == "" && !strings.HasPrefix(mf.Manager, "kubectl") {
				return fmt.Errorf("%s/%s: %q wrote its metadata or spec (managedFields %s); with the admission policy the operator writes only status",
					o.GetKind(), o.GetName(), mf.Manager, mf.FieldsV1.String())
			}
		}
		if statusWrites == 0 {
			return fmt.Errorf("%s/%s: managedFields show no status write, so they cannot tell who wrote what", o.GetKind(), o.GetName())
		}
	}
	return nil
}

// deploymentIn returns the one Deployment in a multi-document manifest.
func deploymentIn(manifest string) (*appsv1.Deployment, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var found []*appsv1.Deployment
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("decoding the release manifest: %w", err)
		}
		u := &unstructured.Unstructured{Object: m}
		if m == nil || u.GetKind() != "Deployment" {
			continue
		}
		d := &appsv1.Deployment{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, d); err != nil {
			return nil, err
		}
		found = append(found, d)
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("want one Deployment in the release, got %d", len(found))
	}
	return found[0], nil
}

// ---- 4: the manager, with the chart's RBAC ----

func (s *suite) startManager() error {
	// A kubeconfig that impersonates the chart's ServiceAccount: the API
	// server authorizes every request of the manager with the chart's RBAC.
	sa := fmt.Sprintf("system:serviceaccount:%s:%s", releaseNS, s.saName)
	cfg, err := clientcmd.LoadFromFile(s.adminKC)
	if err != nil {
		return err
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = sa
	}
	s.saKC = filepath.Join(s.work, "manager.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, s.saKC); err != nil {
		return err
	}
	// The impersonation is in effect (and so is RBAC): the ServiceAccount is
	// who the API server sees, and it may not do what the chart did not grant.
	out, err := s.kubectlAs(s.saKC, 30*time.Second, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != sa {
		return fmt.Errorf("the manager's kubeconfig authenticates as %q, want %q", out, sa)
	}
	// kubectl auth can-i exits 1 for "no".
	if out, err := s.command(false, 30*time.Second, "kubectl", "--kubeconfig", s.saKC, "--cache-dir", s.kubeCache,
		"auth", "can-i", "create", "pods", "-n", samplesNS); err == nil || strings.TrimSpace(out) != "no" {
		return fmt.Errorf("kubectl auth can-i create pods, as the ServiceAccount: %q (%v); want no: RBAC or impersonation is not in effect", strings.TrimSpace(out), err)
	}
	logf(s.t, s.start, "as %s: can-i create pods: no (RBAC in effect)", sa)

	// The chart's args, with the listeners moved to free loopback ports
	// (managerproc picks them; the metrics stay HTTPS behind authn/authz).
	var args []string
	for _, a := range s.chartArgs {
		switch {
		case strings.HasPrefix(a, "--metrics-bind-address"), strings.HasPrefix(a, "--health-probe-bind-address"):
			continue
		}
		args = append(args, a)
	}
	if !slices.Contains(args, "--leader-elect") || !slices.Contains(args, "--leader-election-namespace="+releaseNS) {
		return fmt.Errorf("the chart's args %q do not enable leader election in %s", args, releaseNS)
	}
	env := []string{"KUBECONFIG=" + s.saKC, "HOME=" + s.work, "PATH=" + os.Getenv("PATH")}
	begin := time.Now()
	s.mgr = &managerproc.Manager{Dir: s.work, Env: env, Args: args, SecureMetrics: true}
	err = s.mgr.Start(s.ctx, managerproc.Ready, 90*time.Second)
	s.probePort, s.metricsPort = s.mgr.ProbePort, s.mgr.MetricsPort
	logf(s.t, s.start, "bin/manager %s (log %s)", strings.Join(args, " "), s.mgr.LogPath())
	if err != nil {
		return err
	}
	logf(s.t, s.start, "/readyz 200 after %s", time.Since(begin).Round(time.Millisecond))
	// Leader election works with the chart's Role: the manager holds the Lease.
	err = poll(s.ctx, 60*time.Second, 200*time.Millisecond, "the leader election lease", func() error {
		if s.mgr.Proc.Exited() {
			return fmt.Errorf("bin/manager exited: %v", s.mgr.Proc.ExitErr())
		}
		lines, err := grepLines(s.mgr.LogPath(), "successfully acquired lease")
		if err != nil {
			return err
		}
		if len(lines) == 0 {
			return errors.New(`no "successfully acquired lease" in the manager's log yet`)
		}
		return nil
	})
	if err != nil {
		return err
	}
	out, err = s.kubectl(30*time.Second, "get", "lease", "-n", releaseNS, "-o", "jsonpath={range .items[*]}{.metadata.name} held by {.spec.holderIdentity}{\"\\n\"}{end}")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "eventstream-operator.events.giia.io held by") {
		return fmt.Errorf("no leader election Lease in %s:\n%s", releaseNS, out)
	}
	logf(s.t, s.start, "leader after %s", time.Since(begin).Round(time.Millisecond))
	return nil
}

// checkNoForbidden fails when the manager logged a "forbidden" error: the
// chart's RBAC lacks something the manager does.
func (s *suite) checkNoForbidden() error {
	lines, err := grepLines(s.mgr.LogPath(), "forbidden")
	if err != nil {
		return err
	}
	if len(lines) > 0 {
		if len(lines) > 10 {
			lines = lines[:10]
		}
		return fmt.Errorf("the manager, with the chart's RBAC, was refused requests (%s):\n%s", s.mgr.LogPath(), indent(strings.Join(lines, "\n")))
	}
	return nil
}

// ---- 5, 6: the samples ----

func (s *suite) applySamples() error {
	if _, err := s.kubectl(time.Minute, "apply", "-k", "config/samples", "-n", samplesNS); err != nil {
		return err
	}
	out, err := s.kubectl(30*time.Second, "get", "evs", "-n", samplesNS, "-o", "name")
	if err != nil {
		return err
	}
	if n := len(strings.Fields(out)); n != len(sampleStreams) {
		return fmt.Errorf("config/samples created %d EventStreams, want %d", n, len(sampleStreams))
	}
	if out, err = s.kubectl(30*time.Second, "get", "evsc", "-n", samplesNS, "-o", "name"); err != nil {
		return err
	}
	if n := len(strings.Fields(out)); n != len(sampleSchemas) {
		return fmt.Errorf("config/samples created %d EventSchemas, want %d", n, len(sampleSchemas))
	}
	for _, kind := range []string{"evs", "evc", "evsc"} {
		begin := time.Now()
		if _, err := s.kubectl(150*time.Second, "wait", "--for=condition=Ready", kind, "--all", "-n", samplesNS, "--timeout=2m"); err != nil {
			_, _ = s.kubectl(30*time.Second, "get", "evs,evc,evsc", "-n", samplesNS, "-o",
				`jsonpath={range .items[*]}{.kind}/{.metadata.name}: {range .status.conditions[?(@.type=="Ready")]}{.status} {.reason}: {.message}{end}{"\n"}{end}`)
			return err
		}
		logf(s.t, s.start, "all %s Ready after %s", kind, time.Since(begin).Round(time.Millisecond))
	}
	_, _ = s.kubectl(30*time.Second, "get", "evs,evc,evsc", "-n", samplesNS, "-o", "wide")
	return s.checkOperatorWroteNoMetadata()
}

// uids returns resource name -> UID for a kind in the samples namespace.
func (s *suite) uids(kind string) (map[string]string, error) {
	out, err := s.kubectlQuiet(30*time.Second, "get", kind, "-n", samplesNS, "-o",
		`jsonpath={range .items[*]}{.metadata.name}={.metadata.uid}{"\n"}{end}`)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Fields(out) {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

func (s *suite) checkJetStream() error {
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	uids, err := s.uids("evs")
	if err != nil {
		return err
	}
	var problems []string
	for _, want := range sampleStreams {
		str, err := s.js.Stream(ctx, want.stream)
		if err != nil {
			problems = append(problems, fmt.Sprintf("stream %s: %v", want.stream, err))
			continue
		}
		c := str.CachedInfo().Config
		bad := func(field string, got, want any) {
			problems = append(problems, fmt.Sprintf("stream %s: %s is %v, want %v", c.Name, field, got, want))
		}
		if !slices.Equal(c.Subjects, []string{want.subject}) {
			bad("subjects", c.Subjects, []string{want.subject})
		}
		if c.Description != want.description {
			bad("description", c.Description, want.description)
		}
		if c.Storage != jetstream.FileStorage {
			bad("storage", c.Storage, jetstream.FileStorage)
		}
		if c.Retention != jetstream.LimitsPolicy {
			bad("retention", c.Retention, jetstream.LimitsPolicy)
		}
		if c.Discard != jetstream.DiscardOld {
			bad("discard", c.Discard, jetstream.DiscardOld)
		}
		if c.MaxAge != 168*time.Hour {
			bad("max age", c.MaxAge, 168*time.Hour)
		}
		if c.MaxBytes != 1<<30 {
			bad("max bytes", c.MaxBytes, 1<<30)
		}
		if c.Duplicates != 2*time.Minute {
			bad("duplicate window", c.Duplicates, 2*time.Minute)
		}
		if c.Replicas != 1 {
			bad("replicas", c.Replicas, 1)
		}
		if got, want := c.Metadata[ownerKey], samplesNS+"/"+want.name; got != want {
			bad("metadata "+ownerKey, got, want)
		}
		if got, want := c.Metadata[uidKey], uids[want.name]; got != want || want == "" {
			bad("metadata "+uidKey, got, want+" (the EventStream's UID)")
		}
	}
	logf(s.t, s.start, "checked %d streams", len(sampleStreams))

	// The four sample consumers (three pull, one push), as declared.
	consumers := []struct {
		stream, name string
		check        func(c jetstream.ConsumerConfig) []string
	}{
		{"AUTH_EVENTS", "analytics-auth", func(c jetstream.ConsumerConfig) []string {
			return diffs(
				"filter subjects", filters(c), []string{"auth.>"},
				"max deliver", c.MaxDeliver, 3,
				"backoff", c.BackOff, []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute},
				"max ack pending", c.MaxAckPending, 1000,
				"ack policy", c.AckPolicy, jetstream.AckExplicitPolicy,
				"deliver policy", c.DeliverPolicy, jetstream.DeliverAllPolicy)
		}},
		{"CATALOG_EVENTS", "execution-catalog", func(c jetstream.ConsumerConfig) []string {
			return diffs(
				"filter subjects", filters(c), []string{"catalog.product.*"},
				"max deliver", c.MaxDeliver, 5,
				"ack policy", c.AckPolicy, jetstream.AckExplicitPolicy,
				"deliver policy", c.DeliverPolicy, jetstream.DeliverNewPolicy)
		}},
		{"DLQ_EVENTS", "dlq-audit", func(c jetstream.ConsumerConfig) []string {
			return diffs(
				"max deliver", c.MaxDeliver, -1,
				"ack wait", c.AckWait, time.Minute,
				"ack policy", c.AckPolicy, jetstream.AckExplicitPolicy)
		}},
		{"DDMRP_EVENTS", "planning-push", func(c jetstream.ConsumerConfig) []string {
			return diffs(
				"filter subjects", filters(c), []string{"ddmrp.buffer.>"},
				"deliver subject", c.DeliverSubject, "push.planning.ddmrp",
				"deliver group", c.DeliverGroup, "planners",
				"flow control", c.FlowControl, true,
				"idle heartbeat", c.IdleHeartbeat, 5*time.Second,
				"max deliver", c.MaxDeliver, 5)
		}},
	}
	cuids, err := s.uids("evc")
	if err != nil {
		return err
	}
	for _, want := range consumers {
		info, err := admin.GetConsumerInfo(ctx, s.js, want.stream, want.name) // pull or push
		if err != nil {
			problems = append(problems, fmt.Sprintf("consumer %s/%s: %v", want.stream, want.name, err))
			continue
		}
		c := info.Config
		d := want.check(c)
		if c.Durable != want.name {
			d = append(d, fmt.Sprintf("durable name is %q", c.Durable))
		}
		if got := c.Metadata[ownerKey]; got != samplesNS+"/"+want.name {
			d = append(d, fmt.Sprintf("metadata %s is %q, want %q", ownerKey, got, samplesNS+"/"+want.name))
		}
		if got := c.Metadata[uidKey]; got == "" || got != cuids[want.name] {
			d = append(d, fmt.Sprintf("metadata %s is %q, want %q", uidKey, got, cuids[want.name]))
		}
		for _, p := range d {
			problems = append(problems, fmt.Sprintf("consumer %s/%s: %s", want.stream, want.name, p))
		}
	}
	logf(s.t, s.start, "checked %d consumers", len(consumers))
	if len(problems) > 0 {
		return errors.New("JetStream does not match config/samples:\n" + indent(strings.Join(problems, "\n")))
	}
	return nil
}

// filters returns a consumer's filter subjects: JetStream keeps a single one
// in FilterSubject.
func filters(c jetstream.ConsumerConfig) []string {
	if c.FilterSubject != "" {
		return append([]string{c.FilterSubject}, c.FilterSubjects...)
	}
	return c.FilterSubjects
}

// diffs takes (name, got, want) triples and describes those that differ.
func diffs(triples ...any) []string {
	var out []string
	for i := 0; i+2 < len(triples); i += 3 {
		if got, want := fmt.Sprint(triples[i+1]), fmt.Sprint(triples[i+2]); got != want {
			out = append(out, fmt.Sprintf("%s is %s, want %s", triples[i], got, want))
		}
	}
	return out
}

// ---- 7: an event, published and consumed with pkg/events ----

func (s *suite) publishAndConsume() error {
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	got := make(chan *events.Event, 16)
	sub, err := events.SubscribeDurable(ctx, s.js, "AUTH_EVENTS", "analytics-auth", func(_ context.Context, e *events.Event) error {
		got <- e
		return nil
	}, events.SubscriberConfig{})
	if err != nil {
		return fmt.Errorf("subscribing to AUTH_EVENTS/analytics-auth: %w", err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = sub.Stop(sctx)
	}()

	pub, err := events.NewPublisher(s.nc)
	if err != nil {
		return err
	}
	defer func() { _ = pub.Close() }() // waits for async publishes, bounded by the retry budget
	e, err := events.NewEvent("user.created", "e2e-test", "org-e2e", time.Now(), map[string]any{"user_id": "u-1", "email": "e2e@example.com"})
	if err != nil {
		return err
	}
	subject := events.SubjectFor("auth", e.Type)
	if subject != "auth.user.created" {
		return fmt.Errorf("SubjectFor gave %q, want auth.user.created", subject)
	}
	begin := time.Now()
	if err := pub.Publish(ctx, subject, e); err != nil {
		return fmt.Errorf("publishing to %s: %w", subject, err)
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case r := <-got:
			if r.ID != e.ID {
				logf(s.t, s.start, "received another event %s (%s), waiting for %s", r.ID, r.Type, e.ID)
				continue
			}
			data, derr := r.DataMap()
			if derr != nil || r.Type != e.Type || r.Source != e.Source || r.OrganizationID != e.OrganizationID || data["user_id"] != "u-1" {
				return fmt.Errorf("received event differs: got %+v, sent %+v", r, e)
			}
			logf(s.t, s.start, "event %s published to %s and received by AUTH_EVENTS/analytics-auth in %s",
				e.ID, subject, time.Since(begin).Round(time.Millisecond))
			return nil
		case <-timeout:
			return fmt.Errorf("event %s not received on AUTH_EVENTS/analytics-auth within 30s", e.ID)
		}
	}
}

// ---- 8: deletion policies ----

// deleteRetain deletes a sample EventStream (deletionPolicy Retain): the
// resource goes, the JetStream stream and its messages stay, without the
// ownership marker; re-applied, the resource adopts the stream again.
func (s *suite) deleteRetain() error {
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	before, err := s.streamInfo(ctx, "AUTH_EVENTS")
	if err != nil {
		return err
	}
	if _, err := s.kubectl(90*time.Second, "delete", "evs", "auth-events", "-n", samplesNS, "--timeout=60s"); err != nil {
		return err
	}
	out, err := s.kubectlQuiet(30*time.Second, "get", "evs", "auth-events", "-n", samplesNS, "--ignore-not-found", "-o", "name")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return fmt.Errorf("EventStream auth-events still exists after kubectl delete: %s", out)
	}
	after, err := s.streamInfo(ctx, "AUTH_EVENTS")
	if err != nil {
		return fmt.Errorf("AUTH_EVENTS after deleting auth-events (Retain): %w", err)
	}
	if _, ok := after.Config.Metadata[ownerKey]; ok {
		return fmt.Errorf("AUTH_EVENTS still carries %s=%q after its EventStream was deleted", ownerKey, after.Config.Metadata[ownerKey])
	}
	if _, ok := after.Config.Metadata[uidKey]; ok {
		return fmt.Errorf("AUTH_EVENTS still carries %s after its EventStream was deleted", uidKey)
	}
	if after.State.Msgs != before.State.Msgs || after.State.Msgs == 0 {
		return fmt.Errorf("AUTH_EVENTS has %d messages after the Retain deletion, %d before", after.State.Msgs, before.State.Msgs)
	}
	logf(s.t, s.start, "AUTH_EVENTS retained with its %d message(s), owner marker removed", after.State.Msgs)

	// Its consumer's resource says that the stream is gone.
	err = poll(ctx, 60*time.Second, time.Second, "EventConsumer analytics-auth to report StreamNotReady", func() error {
		out, err := s.kubectlQuiet(30*time.Second, "get", "evc", "analytics-auth", "-n", samplesNS, "-o",
			`jsonpath={range .status.conditions[?(@.type=="Ready")]}{.status}/{.reason}{end}`)
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "False/StreamNotReady" {
			return fmt.Errorf("Ready is %q", out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	logf(s.t, s.start, "EventConsumer analytics-auth reports Ready=False/StreamNotReady")

	// Re-applied, the resource adopts the retained stream.
	if _, err := s.kubectl(time.Minute, "apply", "-n", samplesNS, "-f", "config/samples/events_v1alpha1_eventstream_auth_events.yaml"); err != nil {
		return err
	}
	if _, err := s.kubectl(90*time.Second, "wait", "--for=condition=Ready", "evs/auth-events", "evc/analytics-auth", "-n", samplesNS, "--timeout=60s"); err != nil {
		return err
	}
	reason, err := s.kubectlQuiet(30*time.Second, "get", "evs", "auth-events", "-n", samplesNS, "-o",
		`jsonpath={.status.conditions[?(@.type=="Ready")].reason}`)
	if err != nil {
		return err
	}
	if strings.TrimSpace(reason) != "Adopted" {
		return fmt.Errorf("re-created auth-events is Ready with reason %q, want Adopted", reason)
	}
	readopted, err := s.streamInfo(ctx, "AUTH_EVENTS")
	if err != nil {
		return err
	}
	if got := readopted.Config.Metadata[ownerKey]; got != samplesNS+"/auth-events" {
		return fmt.Errorf("re-adopted AUTH_EVENTS has owner %q", got)
	}
	if readopted.State.Msgs != before.State.Msgs {
		return fmt.Errorf("re-adopted AUTH_EVENTS has %d messages, want %d", readopted.State.Msgs, before.State.Msgs)
	}
	logf(s.t, s.start, "re-applied auth-events adopted AUTH_EVENTS (messages kept: %d)", readopted.State.Msgs)
	return nil
}

const deletePolicyStream = `apiVersion: events.giia.io/v1alpha1
kind: EventStream
metadata:
  name: e2e-delete
spec:
  description: e2e stream deleted with its resource
  subjects: ["e2e.delete.>"]
  maxBytes: 16Mi
  deletionPolicy: Delete
`

func (s *suite) deleteDelete() error {
	ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
	defer cancel()
	path := filepath.Join(s.work, "e2e-delete.yaml")
	if err := os.WriteFile(path, []byte(deletePolicyStream), 0o600); err != nil {
		return err
	}
	if _, err := s.kubectl(time.Minute, "apply", "-n", samplesNS, "-f", path); err != nil {
		return err
	}
	if _, err := s.kubectl(90*time.Second, "wait", "--for=condition=Ready", "evs/e2e-delete", "-n", samplesNS, "--timeout=60s"); err != nil {
		return err
	}
	info, err := s.streamInfo(ctx, "E2E_DELETE")
	if err != nil {
		return err
	}
	if got := info.Config.Metadata[ownerKey]; got != samplesNS+"/e2e-delete" {
		return fmt.Errorf("E2E_DELETE has owner %q", got)
	}
	if info.Config.MaxBytes != 16<<20 {
		return fmt.Errorf("E2E_DELETE has max bytes %d, want 16Mi", info.Config.MaxBytes)
	}
	if _, err := s.kubectl(90*time.Second, "delete", "evs", "e2e-delete", "-n", samplesNS, "--timeout=60s"); err != nil {
		return err
	}
	// kubectl delete waited for the finalizer, which deletes the stream first.
	_, err = s.streamInfo(ctx, "E2E_DELETE")
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("E2E_DELETE after kubectl delete (deletionPolicy Delete): want stream not found, got %v", err)
	}
	logf(s.t, s.start, "E2E_DELETE deleted with its EventStream")
	// The other streams are untouched.
	for _, want := range sampleStreams {
		if _, err := s.streamInfo(ctx, want.stream); err != nil {
			return fmt.Errorf("%s after deleting e2e-delete: %w", want.stream, err)
		}
	}
	return nil
}

func (s *suite) streamInfo(ctx context.Context, name string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	str, err := s.js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return str.Info(ctx)
}

// ---- 9: the kustomize installer ----

// dryRunInstaller applies dist/install.yaml (make build-installer) with a
// server-side dry run. It runs on the cluster the chart was installed into:
// the namespace eventstream-system exists there (a server-side dry run does
// not create the Namespace the file declares, so on an empty cluster every
// namespaced object of the file is refused with "namespaces not found"), and
// so do the CRDs (same definitions, so the dry run validates them as an update).
func (s *suite) dryRunInstaller() error {
	out, err := s.kubectl(2*time.Minute, "apply", "--dry-run=server", "-f", "dist/install.yaml")
	if err != nil {
		return err
	}
	for _, kind := range []string{"namespace/", "customresourcedefinition.apiextensions.k8s.io/", "serviceaccount/",
		"role.rbac.authorization.k8s.io/", "clusterrole.rbac.authorization.k8s.io/", "rolebinding.rbac.authorization.k8s.io/",
		"clusterrolebinding.rbac.authorization.k8s.io/", "deployment.apps/"} {
		if !strings.Contains(out, kind) {
			return fmt.Errorf("dry run output mentions no %s object:\n%s", strings.TrimSuffix(kind, "/"), out)
		}
	}
	if strings.Count(out, "(server dry run)") < 8 {
		return fmt.Errorf("expected every object to be applied as a server dry run:\n%s", out)
	}
	return nil
}

// ---- 10: shutdown ----

func (s *suite) stopManager() error {
	begin := time.Now()
	killed, err := s.mgr.Stop(30 * time.Second)
	if killed {
		return fmt.Errorf("bin/manager did not exit within 30s of SIGTERM (killed)")
	}
	if err != nil {
		return fmt.Errorf("bin/manager exited with %v after SIGTERM", err)
	}
	logf(s.t, s.start, "bin/manager exited 0 on SIGTERM in %s", time.Since(begin).Round(time.Millisecond))
	return nil
}

// teardown stops everything that was started, in reverse order.
func (s *suite) teardown() {
	t := s.t
	begin := time.Now()
	if s.mgr != nil && !s.mgr.Proc.Exited() {
		killed, err := s.mgr.Stop(20 * time.Second)
		logf(t, s.start, "teardown: manager stopped (%v, killed=%t)", err, killed)
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.nats != nil && s.nats.Proc != nil {
		killed, err := s.nats.Proc.Stop(10 * time.Second)
		logf(t, s.start, "teardown: nats-server stopped (%v, killed=%t)", err, killed)
	}
	if s.plane != nil {
		err := s.plane.Stop()
		logf(t, s.start, "teardown: envtest stopped (%v)", err)
	}
	logf(t, s.start, "teardown took %s", time.Since(begin).Round(time.Millisecond))
}

// ---- commands ----

// kubectl runs kubectl as the admin and logs the command and its output.
func (s *suite) kubectl(timeout time.Duration, args ...string) (string, error) {
	return s.command(true, timeout, "kubectl", append([]string{"--kubeconfig", s.adminKC, "--cache-dir", s.kubeCache}, args...)...)
}

// kubectlQuiet is kubectl without logging the output (for polling).
func (s *suite) kubectlQuiet(timeout time.Duration, args ...string) (string, error) {
	return s.command(false, timeout, "kubectl", append([]string{"--kubeconfig", s.adminKC, "--cache-dir", s.kubeCache}, args...)...)
}

func (s *suite) kubectlAs(kubeconfig string, timeout time.Duration, args ...string) (string, error) {
	return s.command(true, timeout, "kubectl", append([]string{"--kubeconfig", kubeconfig, "--cache-dir", s.kubeCache}, args...)...)
}

// helm runs bin/helm with a clean helm home.
func (s *suite) helm(timeout time.Duration, args ...string) (string, error) {
	return s.command(true, timeout, filepath.Join(s.root, "bin", "helm"), args...)
}

func (s *suite) command(verbose bool, timeout time.Duration, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = s.root
	home := filepath.Join(s.work, "helm")
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	if s.adminKC != "" {
		cmd.Env = append(cmd.Env, "KUBECONFIG="+s.adminKC)
	}
	cmd.WaitDelay = 5 * time.Second
	begin := time.Now()
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	took := time.Since(begin).Round(time.Millisecond)
	short := filepath.Base(bin) + " " + strings.Join(redactArgs(args), " ")
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	if err != nil {
		if verbose {
			s.t.Logf("$ %s (%s) FAILED: %v\n%s", short, took, err, indent(out))
		}
		return out, fmt.Errorf("%s: %w\n%s", short, err, out)
	}
	if verbose {
		s.t.Logf("$ %s (%s)\n%s", short, took, indent(out))
	}
	return out, nil
}

// redactArgs drops the kubeconfig and cache flags from a logged command line.
func redactArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if (args[i] == "--kubeconfig" || args[i] == "--cache-dir") && i+1 < len(args) {
			if args[i] == "--kubeconfig" && strings.HasSuffix(args[i+1], "manager.kubeconfig") {
				out = append(out, "--kubeconfig", "<as the chart's ServiceAccount>")
			}
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}
