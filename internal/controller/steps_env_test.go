package controller

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/onsi/ginkgo/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// The step tests call each step of the reconcilers directly, as NATS's NACK
// tests call Reconcile: no manager, no workqueue, no Eventually. JetStream is
// a real embedded nats-server; the Kubernetes reads some steps make go to a
// real API server (envtest), started at the first test that needs it and
// shared by them (TestMain stops it).

var stepAPI struct {
	once sync.Once
	env  *envtest.Environment
	c    client.Client
	err  error
}

func TestMain(m *testing.M) {
	// controller-runtime takes its logger once: set before any test runs.
	// Set later (in BeforeSuite), it was ignored whenever the step tests,
	// which run first, took over 30 s — controller-runtime then settles
	// for a logger that discards — and the specs that check the manager's
	// logs (secrets_leak_test.go) read nothing.
	logf.SetLogger(zap.New(zap.WriteTo(ginkgo.GinkgoWriter), zap.UseDevMode(true)))
	code := m.Run()
	if stepAPI.env != nil {
		_ = stepAPI.env.Stop()
	}
	os.Exit(code)
}

// apiClient returns a client of the shared envtest API server.
func apiClient(t *testing.T) client.Client {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds envtest's kube-apiserver and etcd")
	}
	stepAPI.once.Do(func() {
		sch := runtime.NewScheme()
		if stepAPI.err = clientgoscheme.AddToScheme(sch); stepAPI.err != nil {
			return
		}
		if stepAPI.err = eventsv1.AddToScheme(sch); stepAPI.err != nil {
			return
		}
		stepAPI.env = &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
			Scheme:                sch,
		}
		cfg, err := stepAPI.env.Start()
		if err != nil {
			stepAPI.err = err
			return
		}
		stepAPI.c, stepAPI.err = client.New(cfg, client.Options{Scheme: sch})
	})
	if stepAPI.err != nil {
		t.Fatalf("envtest: %v", stepAPI.err)
	}
	return stepAPI.c
}

// stepClock is the injected clock: every condition a step or summarize sets
// carries its time.
var stepNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newFakeClock() *clocktesting.FakeClock { return clocktesting.NewFakeClock(stepNow) }

// stepReconciler is a reconciler on srv as the operator's default
// connection, adopting in namespace "default", with a fake clock. c may be
// nil for steps that read nothing from Kubernetes.
func stepReconciler(t *testing.T, srv *eventstest.Server, c client.Client) *reconciler {
	t.Helper()
	conn, err := natsconn.Connect(natsconn.Options{URL: srv.URL(), Name: "step-test"}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	deadline := time.Now().Add(5 * time.Second)
	for !conn.NATS().IsConnected() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return &reconciler{Client: c, APIReader: c, NATS: conn, Adopt: adoptPolicy{"default"}, Clock: newFakeClock()}
}

// jsOf returns the reconciler's JetStream context, failing the test if NATS
// is not up.
func jsOf(t *testing.T, r *reconciler) jetstream.JetStream {
	t.Helper()
	js, err := r.NATS.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// outcome kinds a case expects.
const (
	wantReady     = "ready"
	wantTransient = "transient"
	wantWaiting   = "waiting"
	wantTerminal  = "terminal"
)

// kindOf says which of the outcomes err is.
func kindOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return wantReady
	}
	se, ok := err.(*stepError)
	if !ok {
		t.Fatalf("a step returned %T (%v), not a *stepError", err, err)
	}
	return map[failureKind]string{transient: wantTransient, waiting: wantWaiting, terminal: wantTerminal}[se.kind]
}

// summarizeStep records a step's outcome as the deferred summarise does.
func summarizeStep(t *testing.T, st statusRef, generation int64, res stepResult, err error) {
	t.Helper()
	var se *stepError
	if err != nil {
		se = err.(*stepError)
	}
	summarize(st, generation, stepNow, res, se)
}

// checkConditionInvariants fails the test when the conditions contradict
// each other: Ready is always there; Ready=True has neither Reconciling nor
// Stalled True; Ready=False has exactly one of them True; Reconciling and
// Stalled are only ever present when True; every transition time is the
// injected clock's.
func checkConditionInvariants(t *testing.T, conds []metav1.Condition) {
	t.Helper()
	ready := meta.FindStatusCondition(conds, eventsv1.ConditionReady)
	if ready == nil {
		t.Fatalf("no Ready condition: %v", conds)
	}
	reconciling := meta.IsStatusConditionTrue(conds, eventsv1.ConditionReconciling)
	stalled := meta.IsStatusConditionTrue(conds, eventsv1.ConditionStalled)
	for _, typ := range []string{eventsv1.ConditionReconciling, eventsv1.ConditionStalled} {
		if c := meta.FindStatusCondition(conds, typ); c != nil && c.Status != metav1.ConditionTrue {
			t.Errorf("%s present with status %s: abnormal-true conditions are removed when False", typ, c.Status)
		}
	}
	switch {
	case ready.Status == metav1.ConditionTrue && (reconciling || stalled):
		t.Errorf("Ready=True contradicts Reconciling=%v Stalled=%v", reconciling, stalled)
	case ready.Status == metav1.ConditionFalse && reconciling == stalled:
		t.Errorf("Ready=False wants exactly one of Reconciling, Stalled True; got Reconciling=%v Stalled=%v", reconciling, stalled)
	}
	for _, c := range conds {
		if c.Status != metav1.ConditionTrue && c.Status != metav1.ConditionFalse {
			t.Errorf("condition %s has status %q", c.Type, c.Status)
		}
		if c.Reason == "" || c.Message == "" {
			t.Errorf("condition %s without reason or message: %+v", c.Type, c)
		}
		if !c.LastTransitionTime.Time.Equal(stepNow) {
			t.Errorf("condition %s transition time %v, not the injected clock's %v", c.Type, c.LastTransitionTime, stepNow)
		}
	}
}

// kstatusOf computes the status Flux, kpt and cli-utils read from obj.
func kstatusOf(t *testing.T, obj runtime.Object) status.Status {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// wantKstatus is the kstatus of each outcome.
var wantKstatus = map[string]status.Status{
	wantReady:     status.CurrentStatus,
	wantTransient: status.InProgressStatus,
	wantWaiting:   status.InProgressStatus,
	wantTerminal:  status.FailedStatus,
}

// checkOutcome checks the summarised status of obj (generation 1 unless
// changed) after a step that ended as want with reason.
func checkOutcome(t *testing.T, obj client.Object, st statusRef, want, reason string) {
	t.Helper()
	conds := *st.conditions
	checkConditionInvariants(t, conds)
	ready := meta.FindStatusCondition(conds, eventsv1.ConditionReady)
	if ready.Reason != reason {
		t.Errorf("Ready reason %s (%s), want %s", ready.Reason, ready.Message, reason)
	}
	if ready.ObservedGeneration != obj.GetGeneration() {
		t.Errorf("Ready observedGeneration %d, want %d", ready.ObservedGeneration, obj.GetGeneration())
	}
	switch want {
	case wantReady:
		if ready.Status != metav1.ConditionTrue {
			t.Errorf("Ready=%s, want True", ready.Status)
		}
	case wantTerminal:
		if c := meta.FindStatusCondition(conds, eventsv1.ConditionStalled); c == nil || c.Reason != reason {
			t.Errorf("Stalled %+v, want True with reason %s", c, reason)
		}
	default:
		if c := meta.FindStatusCondition(conds, eventsv1.ConditionReconciling); c == nil || c.Reason != reason {
			t.Errorf("Reconciling %+v, want True with reason %s", c, reason)
		}
	}
	// status.observedGeneration says the status describes this generation:
	// set when the outcome is known (ready or failed for good), not while
	// work is under way.
	known := want == wantReady || want == wantTerminal
	if got := *st.observedGeneration == obj.GetGeneration(); got != known {
		t.Errorf("status.observedGeneration %d for generation %d after a %s outcome", *st.observedGeneration, obj.GetGeneration(), want)
	}
	if got := kstatusOf(t, obj); got != wantKstatus[want] {
		t.Errorf("kstatus %s, want %s", got, wantKstatus[want])
	}
}
