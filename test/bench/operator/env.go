package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/controlplane"
	"github.com/giia/eventstream-operator/internal/testutil/managerproc"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
	"github.com/giia/eventstream-operator/internal/testutil/proc"
)

// env is one run's world: envtest's etcd and kube-apiserver, a nats-server
// subprocess with JetStream, and (when started) the bin/manager subprocess,
// all from the shared harness (internal/testutil).
type env struct {
	root, dir string // repository root; this run's temporary directory

	plane *controlplane.Plane
	c     client.WithWatch // admin, QPS 500 / Burst 1000
	cs    *kubernetes.Clientset

	nats *natsproc.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	mon  *jsMonitor

	mgr    *managerproc.Manager // nil when not running
	mgrLog string
	starts int
}

// startEnv starts envtest (CRDs from config/crd/bases) and nats-server.
func startEnv(ctx context.Context, root, assets, dir string) (*env, error) {
	e := &env{root: root, dir: dir}
	var err error
	if e.plane, err = controlplane.Start(controlplane.Options{Dir: dir, Assets: assets, CRDs: true, User: "bench"}); err != nil {
		return nil, err
	}
	e.c = e.plane.Client
	if e.cs, err = kubernetes.NewForConfig(e.plane.Config); err != nil {
		e.stop()
		return nil, err
	}
	if *admissionPolicy {
		if err := e.installAdmissionPolicy(ctx); err != nil {
			e.stop()
			return nil, err
		}
	}
	if err := e.startNATS(); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

// installAdmissionPolicy applies config/admission (the finalizer
// MutatingAdmissionPolicy that config/default and the chart install) and
// waits until the API server enforces it, probing with dry-run creates.
func (e *env) installAdmissionPolicy(ctx context.Context) error {
	data, err := os.ReadFile(filepath.Join(e.root, "config", "admission", "finalizer_policy.yaml"))
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("config/admission: %w", err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := e.c.Create(ctx, u); err != nil {
			return fmt.Errorf("installing %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		probe := &eventsv1.EventStream{
			ObjectMeta: metav1.ObjectMeta{Name: "admission-probe", Namespace: "default"},
			Spec:       eventsv1.EventStreamSpec{Subjects: []string{"admission.probe.>"}},
		}
		// Until the CRD is served and the policy loaded, the probe errs or
		// comes back without the finalizer.
		err := e.c.Create(ctx, probe, client.DryRunAll)
		if err == nil && controllerutil.ContainsFinalizer(probe, eventsv1.Finalizer) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the finalizer MutatingAdmissionPolicy was not enforced within 30s (last probe error: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *env) startNATS() error {
	var err error
	e.nats, err = natsproc.Standalone(e.dir)
	if err != nil {
		return err
	}
	if e.nc, e.js, err = natsproc.Connect(e.nats.URL(), "bench", 20*time.Second); err != nil {
		return err
	}
	if err := natsproc.WaitJetStream(e.js, 10*time.Second); err != nil {
		return err
	}
	e.mon, err = newJSMonitor(e.nc)
	return err
}

// startManager runs bin/manager against this env and waits until it is
// ready (/readyz: caches synced, controllers started, NATS connected).
func (e *env) startManager(ctx context.Context, resync time.Duration, workers int) error {
	e.starts++
	m := &managerproc.Manager{
		Name: fmt.Sprintf("manager-%d", e.starts), Dir: e.dir, Kubeconfig: e.plane.Kubeconfig, NATSURL: e.nats.URL(), Pprof: true,
		Args: []string{"--resync-interval", resync.String(), "--max-concurrent-reconciles", strconv.Itoa(workers)},
	}
	e.mgr = m
	e.mgrLog = m.LogPath()
	if err := m.Start(ctx, managerproc.Ready, 90*time.Second); err != nil {
		return fmt.Errorf("bin/manager: %w; see %s", err, e.mgrLog)
	}
	return nil
}

func (e *env) stopManager() {
	if e.mgr == nil {
		return
	}
	_, _ = e.mgr.Stop(15 * time.Second)
	e.mgr = nil
}

func (e *env) stop() {
	e.stopManager()
	if e.mon != nil {
		e.mon.close()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.nats != nil {
		e.nats.Stop()
	}
	if e.plane != nil {
		_ = e.plane.Stop()
	}
}

// ---- metrics (Prometheus text format) ----

// metrics maps a series ("name{labels}" exactly as exposed) to its value.
type metrics managerproc.Metrics

func (e *env) managerMetrics() metrics {
	if e.mgr == nil {
		return metrics{}
	}
	m, err := e.mgr.Metrics(context.Background())
	if err != nil {
		return metrics{}
	}
	return metrics(m)
}

func (e *env) apiserverMetrics(ctx context.Context) metrics {
	b, err := e.cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return metrics{}
	}
	return metrics(managerproc.ParseMetrics(bytes.NewReader(b)))
}

// label returns the value of label l in series s ("" if absent).
func label(s, l string) string {
	i := strings.Index(s, "{"+l+"=\"")
	if i < 0 {
		i = strings.Index(s, ","+l+"=\"")
	}
	if i < 0 {
		return ""
	}
	rest := s[i+len(l)+3:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}

func metricName(s string) string {
	if i := strings.IndexByte(s, '{'); i >= 0 {
		return s[:i]
	}
	return s
}

// delta returns after-before for every series in after.
func delta(before, after metrics) metrics {
	d := metrics{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

// sum adds the series named name whose labels satisfy keep (nil: all).
func (m metrics) sum(name string, keep func(series string) bool) float64 {
	var t float64
	for k, v := range m {
		if metricName(k) == name && (keep == nil || keep(k)) {
			t += v
		}
	}
	return t
}

func withLabel(l, v string) func(string) bool {
	return func(s string) bool { return label(s, l) == v }
}

// ---- /proc ----

const clkTck = 100 // USER_HZ on Linux

// procCPU returns user+system CPU seconds of pid.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clkTck
}

// procStatusKB returns a "Vm..." field of /proc/<pid>/status in KiB.
func procStatusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return 0
}

// children finds the processes this program started with the given command
// names (envtest's etcd and kube-apiserver).
func children(names ...string) map[string]int {
	out := map[string]int{}
	for _, c := range proc.Children() {
		for _, n := range names {
			if strings.HasPrefix(n, c.Comm) { // comm is truncated to 15 bytes
				out[n] = c.Pid
			}
		}
	}
	return out
}

// cpuSnapshot is CPU seconds per component.
type cpuSnapshot map[string]float64

func (e *env) cpu() cpuSnapshot {
	s := cpuSnapshot{"bench": procCPU(os.Getpid())}
	for n, pid := range children("kube-apiserver", "etcd") {
		s[n] = procCPU(pid)
	}
	if e.nats != nil && e.nats.Proc != nil {
		s["nats-server"] = procCPU(e.nats.Proc.Pid())
	}
	if e.mgr != nil && e.mgr.Proc != nil {
		s["manager"] = procCPU(e.mgr.Proc.Pid())
	}
	return s
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// profile captures CPU profiles of the manager and of kube-apiserver for d,
// both at once, into dir/<name>-manager.pprof and dir/<name>-apiserver.pprof;
// wait blocks until both are written (errors are printed, not fatal).
func (e *env) profile(ctx context.Context, dir, name string, d time.Duration) (wait func()) {
	secs := strconv.Itoa(max(int(d.Seconds()), 1))
	fetch := func(what string, get func() ([]byte, error)) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			data, err := get()
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, name+"-"+what+".pprof"), data, 0o644)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "profiling %s: %v\n", what, err)
			}
		}()
		return done
	}
	mgr := fetch("manager", func() ([]byte, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%s", e.mgr.PprofPort, secs))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s", resp.Status)
		}
		return io.ReadAll(resp.Body)
	})
	api := fetch("apiserver", func() ([]byte, error) {
		return e.cs.RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", secs).DoRaw(ctx)
	})
	return func() { <-mgr; <-api }
}
