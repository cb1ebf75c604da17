package health

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	corev1 "k8s.io/api/core/v1"

	"github.com/giia/eventstream-operator/internal/testutil/controlplane"
	"github.com/giia/eventstream-operator/internal/testutil/freeport"
)

// cfg is the admin config of the control plane the tests share (envtest's
// etcd and kube-apiserver, through the harness: a 2-minute start timeout,
// for loaded machines).
var cfg *rest.Config

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "health-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plane, err := controlplane.Start(controlplane.Options{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	cfg = plane.Config
	code := m.Run()
	_ = plane.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

type replica struct {
	t      *testing.T
	signal *Signal
	probe  string // http://127.0.0.1:port
	stop   context.CancelFunc
	done   chan error
}

// newReplica builds a manager with the health checks (and one informer, on
// ConfigMaps, as a controller would have) serving probes on a free port.
func newReplica(t *testing.T, leaderElect bool, nats healthz.Checker) (*replica, manager.Manager) {
	t.Helper()
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	lease, renew, retry := 4*time.Second, 3*time.Second, 500*time.Millisecond
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        fmt.Sprintf("127.0.0.1:%d", port),
		LeaderElection:                leaderElect,
		LeaderElectionID:              "health-test",
		LeaderElectionNamespace:       "default",
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &lease, RenewDeadline: &renew, RetryPeriod: &retry,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.GetCache().GetInformer(context.Background(), &corev1.ConfigMap{}); err != nil {
		t.Fatal(err)
	}
	s, err := Setup(mgr, leaderElect, map[string]healthz.Checker{"nats": nats})
	if err != nil {
		t.Fatal(err)
	}
	return &replica{t: t, signal: s, probe: fmt.Sprintf("http://127.0.0.1:%d", port)}, mgr
}

func (r *replica) start(t *testing.T, mgr manager.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan error, 1)
	go func() { r.done <- mgr.Start(ctx) }()
	t.Cleanup(r.shutdown)
}

func (r *replica) shutdown() {
	if r.stop != nil {
		r.stop()
		if err := <-r.done; err != nil {
			r.t.Errorf("the manager stopped with %v", err)
		}
		r.stop = nil
	}
}

// readyz GETs /readyz?verbose and returns the status code and body.
func (r *replica) readyz() (int, string) {
	resp, err := http.Get(r.probe + "/readyz?verbose")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, within, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReadinessWithoutLeaderElection(t *testing.T) {
	natsOK := func(*http.Request) error { return nil }
	r, mgr := newReplica(t, false, natsOK)

	if err := r.signal.ControllersStarted(nil); err == nil {
		t.Error("controllers check passes before the manager started")
	}
	if r.signal.Running() {
		t.Error("Running before the manager started")
	}
	r.start(t, mgr)
	eventually(t, time.Minute, "/readyz 200", func() (bool, string) {
		code, body := r.readyz()
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	_, body := r.readyz()
	for _, check := range []string{"[+]informers ok", "[+]controllers ok", "[+]nats ok"} {
		if !strings.Contains(body, check) {
			t.Errorf("/readyz?verbose lacks %q:\n%s", check, body)
		}
	}
	if !r.signal.Running() {
		t.Error("ready but not Running")
	}
	if v := promtestutil.ToFloat64(controllersRunning); v != 1 {
		t.Errorf("%s = %v while the controllers run, want 1", ControllersRunningMetric, v)
	}
	r.shutdown()
	if r.signal.Running() {
		t.Error("Running after the manager stopped")
	}
	if v := promtestutil.ToFloat64(controllersRunning); v != 0 {
		t.Errorf("%s = %v after the manager stopped, want 0", ControllersRunningMetric, v)
	}
}

func TestReadinessFailsWithItsChecks(t *testing.T) {
	natsDown := func(*http.Request) error { return fmt.Errorf("not connected to NATS") }
	r, mgr := newReplica(t, false, natsDown)
	r.start(t, mgr)
	eventually(t, time.Minute, "controllers started", func() (bool, string) { return r.signal.Running(), "not running" })
	code, body := r.readyz()
	if code != http.StatusInternalServerError || !strings.Contains(body, "[-]nats failed") || !strings.Contains(body, "[+]controllers ok") {
		t.Errorf("/readyz with NATS down: %d\n%s\nwant 500, nats failed, controllers ok", code, body)
	}
}

// A standby is ready (it must not hold a rollout back) but does not run the
// controllers; when the leader goes, it takes over and runs them.
func TestReadinessOfAStandby(t *testing.T) {
	natsOK := func(*http.Request) error { return nil }
	leader, lmgr := newReplica(t, true, natsOK)
	leader.start(t, lmgr)
	eventually(t, time.Minute, "the first replica leads", func() (bool, string) { return leader.signal.Running(), "not running" })

	standby, smgr := newReplica(t, true, natsOK)
	standby.start(t, smgr)
	eventually(t, time.Minute, "the standby's /readyz 200", func() (bool, string) {
		code, body := standby.readyz()
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	if standby.signal.Running() {
		t.Fatal("both replicas run the controllers")
	}

	leader.shutdown() // releases the lease
	eventually(t, 30*time.Second, "the standby takes over", func() (bool, string) { return standby.signal.Running(), "not running" })
	if code, body := standby.readyz(); code != http.StatusOK {
		t.Errorf("/readyz of the new leader: %d\n%s", code, body)
	}
}
