package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/freeport"
)

// env is one run's world: envtest's etcd and kube-apiserver, a nats-server
// subprocess with JetStream, and (when started) the bin/manager subprocess.
type env struct {
	root, dir string // repository root; this run's temporary directory

	testEnv    *envtest.Environment
	cfg        *rest.Config // admin, QPS 500 / Burst 1000
	kubeconfig string       // admin kubeconfig file for the manager
	c          client.WithWatch
	cs         *kubernetes.Clientset

	natsCmd *exec.Cmd
	natsURL string
	nc      *nats.Conn
	js      jetstream.JetStream
	mon     *jsMonitor

	mgr         *exec.Cmd
	mgrLog      string
	metricsPort int
	probePort   int
	pprofPort   int
	mgrStarts   int
}

var scheme = runtime.NewScheme()

func init() {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := eventsv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
}

// startEnv starts envtest (CRDs from config/crd/bases) and nats-server.
func startEnv(ctx context.Context, root, assets, dir string) (*env, error) {
	e := &env{root: root, dir: dir}
	e.testEnv = &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	if _, err := e.testEnv.Start(); err != nil {
		_ = e.testEnv.Stop()
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	user, err := e.testEnv.AddUser(envtest.User{Name: "bench", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		e.stop()
		return nil, fmt.Errorf("adding the admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		e.stop()
		return nil, err
	}
	e.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(e.kubeconfig, kc, 0o600); err != nil {
		e.stop()
		return nil, err
	}
	e.cfg = rest.CopyConfig(user.Config())
	e.cfg.QPS, e.cfg.Burst = 500, 1000
	if e.c, err = client.NewWithWatch(e.cfg, client.Options{Scheme: scheme}); err != nil {
		e.stop()
		return nil, err
	}
	if e.cs, err = kubernetes.NewForConfig(e.cfg); err != nil {
		e.stop()
		return nil, err
	}
	if *admissionPolicy {
		if err := e.installAdmissionPolicy(ctx); err != nil {
			e.stop()
			return nil, err
		}
	}
	if err := e.startNATS(ctx); err != nil {
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

func (e *env) startNATS(ctx context.Context) error {
	port, err := freeport.Port()
	if err != nil {
		return err
	}
	store := filepath.Join(e.dir, "jetstream")
	conf := filepath.Join(e.dir, "nats.conf")
	// Every stream reserves its max bytes against max_file_store: 8 TiB.
	cfg := fmt.Sprintf("listen: \"127.0.0.1:%d\"\njetstream {\n  store_dir: %q\n  max_file_store: 8796093022208\n  max_memory_store: 1073741824\n}\n", port, store)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(e.dir, "nats-server.log"))
	if err != nil {
		return err
	}
	e.natsCmd = exec.Command(filepath.Join(e.root, "bin", "nats-server"), "-c", conf)
	e.natsCmd.Stdout, e.natsCmd.Stderr = logf, logf
	if err := e.natsCmd.Start(); err != nil {
		return fmt.Errorf("starting nats-server: %w", err)
	}
	e.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		e.nc, err = nats.Connect(e.natsURL, nats.Name("bench"), nats.MaxReconnects(-1))
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("connecting to nats-server: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		return err
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := e.js.AccountInfo(actx); err != nil {
		return fmt.Errorf("JetStream not enabled: %w", err)
	}
	e.mon, err = newJSMonitor(e.nc)
	return err
}

// startManager runs bin/manager against this env and waits until both
// controllers have started their workers.
func (e *env) startManager(ctx context.Context, resync time.Duration, workers int) error {
	ports, err := freeport.Ports(3)
	if err != nil {
		return err
	}
	e.metricsPort, e.probePort, e.pprofPort = ports[0], ports[1], ports[2]
	e.mgrStarts++
	e.mgrLog = filepath.Join(e.dir, fmt.Sprintf("manager-%d.log", e.mgrStarts))
	logf, err := os.Create(e.mgrLog)
	if err != nil {
		return err
	}
	e.mgr = exec.Command(filepath.Join(e.root, "bin", "manager"),
		"--nats-url", e.natsURL,
		// Plain HTTP on loopback: the benchmark scrapes without a token.
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", e.metricsPort), "--metrics-secure=false",
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", e.probePort),
		"--pprof-bind-address", fmt.Sprintf("127.0.0.1:%d", e.pprofPort),
		"--resync-interval", resync.String(),
		"--max-concurrent-reconciles", strconv.Itoa(workers))
	e.mgr.Env = append(os.Environ(), "KUBECONFIG="+e.kubeconfig)
	e.mgr.Stdout, e.mgr.Stderr = logf, logf
	if err := e.mgr.Start(); err != nil {
		return fmt.Errorf("starting bin/manager: %w", err)
	}
	exited := make(chan struct{})
	go func(cmd *exec.Cmd) { _ = cmd.Wait(); close(exited) }(e.mgr)
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("bin/manager exited at start; see %s", e.mgrLog)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		b, _ := os.ReadFile(e.mgrLog)
		if bytes.Count(b, []byte("Starting workers")) >= 2 && e.probe("/readyz") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bin/manager not started after 90s; see %s", e.mgrLog)
		}
	}
}

func (e *env) probe(path string) bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", e.probePort, path))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

func (e *env) stopManager() {
	if e.mgr == nil || e.mgr.Process == nil {
		return
	}
	stopProcess(e.mgr)
	e.mgr = nil
}

// stopProcess sends SIGTERM to the process we started, then SIGKILL after 15s.
func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return
		}
		if st, _ := procState(cmd.Process.Pid); st == "Z" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
}

func (e *env) stop() {
	e.stopManager()
	if e.mon != nil {
		e.mon.close()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.natsCmd != nil && e.natsCmd.Process != nil {
		stopProcess(e.natsCmd)
		_ = e.natsCmd.Wait()
	}
	if e.testEnv != nil {
		_ = e.testEnv.Stop()
	}
}

// ---- metrics (Prometheus text format) ----

// metrics maps a series ("name{labels}" exactly as exposed) to its value.
type metrics map[string]float64

func parseMetrics(r io.Reader) metrics {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m
}

func (e *env) managerMetrics() metrics {
	if e.mgr == nil {
		return metrics{}
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", e.metricsPort))
	if err != nil {
		return metrics{}
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body)
}

func (e *env) apiserverMetrics(ctx context.Context) metrics {
	b, err := e.cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return metrics{}
	}
	return parseMetrics(bytes.NewReader(b))
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

func procState(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || len(s) < i+3 {
		return "", errors.New("bad stat")
	}
	return s[i+2 : i+3], nil
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
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		comm := s[i+1 : j]
		f := strings.Fields(s[j+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if ppid != self {
			continue
		}
		for _, n := range names {
			if strings.HasPrefix(n, comm) { // comm is truncated to 15 bytes
				out[n] = pid
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
	if e.natsCmd != nil && e.natsCmd.Process != nil {
		s["nats-server"] = procCPU(e.natsCmd.Process.Pid)
	}
	if e.mgr != nil && e.mgr.Process != nil {
		s["manager"] = procCPU(e.mgr.Process.Pid)
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
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%s", e.pprofPort, secs))
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
