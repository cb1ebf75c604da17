//go:build chaos

// Package chaos holds fault-injection tests: real bin/nats-server and
// bin/manager subprocesses (and envtest's kube-apiserver and etcd) that are
// killed, stopped and restarted while work is in flight. Run with
// `make test-chaos`. The helpers here are copied and adapted from
// test/bench/operator/env.go.
package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/freeport"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
)

var scheme = runtime.NewScheme()

func init() {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := eventsv1.AddToScheme(scheme); err != nil {
		panic(err)
	}
}

// root is the repository root (holding go.mod and bin/).
var root string

// The control plane is started once, on first use, and shared by the tests
// that need it; each test runs its own manager restricted to its own
// namespace (--watch-namespaces), so tests never see each other's objects.
// (TestAPIServerDown stops its control plane, so it starts one of its own.)
var kube struct {
	once sync.Once
	err  error
	*kubePlane
}

// kubePlane is envtest's etcd and kube-apiserver with the CRDs installed, and
// a kubeconfig (for bin/manager) and a client of a system:masters user.
type kubePlane struct {
	env        *envtest.Environment
	kubeconfig string
	c          client.Client
	dir        string
}

func TestMain(m *testing.M) {
	// envtest logs through controller-runtime's logger; the managers' logs
	// are in their own files.
	ctrllog.SetLogger(logr.Discard())
	var err error
	if root, err = natsproc.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if natsBin, err = natsproc.Binary(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "manager")); err != nil {
		fmt.Fprintln(os.Stderr, "bin/manager is missing: run `make test-chaos` (it builds it)")
		os.Exit(1)
	}
	code := m.Run()
	if kube.kubePlane != nil {
		kube.stop()
	}
	os.Exit(code)
}

// controlPlane returns the shared control plane, started on first use.
func controlPlane(t *testing.T) client.Client {
	t.Helper()
	kube.once.Do(func() {
		dir, err := os.MkdirTemp("", "chaos-kube-")
		if err != nil {
			kube.err = err
			return
		}
		kube.kubePlane, kube.err = startKubePlane(dir, false)
		if kube.err != nil {
			_ = os.RemoveAll(dir)
		}
	})
	if kube.err != nil {
		t.Fatalf("envtest: %v", kube.err)
	}
	return kube.c
}

// startKubePlane starts envtest's etcd and kube-apiserver with the CRDs,
// keeping its kubeconfig in dir. restartable: etcd's data and the API
// server's certificates live in dir too, so that killServers and
// startServers bring the same cluster back on the same ports (envtest would
// otherwise delete its temporary directories on Stop).
func startKubePlane(dir string, restartable bool) (*kubePlane, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run `make test-chaos`")
	}
	start := time.Now()
	p := &kubePlane{dir: dir, env: &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}}
	if restartable {
		etcdDir, certDir := filepath.Join(dir, "etcd"), filepath.Join(dir, "apiserver")
		for _, d := range []string{etcdDir, certDir} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, err
			}
		}
		p.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: etcdDir}
		p.env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir}
	}
	if _, err := p.env.Start(); err != nil {
		_ = p.env.Stop()
		return nil, err
	}
	user, err := p.env.AddUser(envtest.User{Name: "chaos", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		p.stop()
		return nil, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		p.stop()
		return nil, err
	}
	p.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(p.kubeconfig, kc, 0o600); err != nil {
		p.stop()
		return nil, err
	}
	cfg := rest.CopyConfig(user.Config())
	cfg.QPS, cfg.Burst = 500, 1000
	if p.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		p.stop()
		return nil, err
	}
	fmt.Printf("envtest control plane started in %.1fs\n", time.Since(start).Seconds())
	return p, nil
}

// stop stops the control plane for good and removes its directory.
func (p *kubePlane) stop() {
	_ = p.env.Stop()
	_ = os.RemoveAll(p.dir)
}

// killServers SIGKILLs kube-apiserver and etcd, as a crash would, keeping
// etcd's data and the API server's certificates (restartable planes only).
// envtest's own Stop sends SIGTERM, which kube-apiserver took more than 30 s
// to honour with a manager connected.
func (p *kubePlane) killServers() error {
	for _, d := range []string{filepath.Join(p.dir, "apiserver"), filepath.Join(p.dir, "etcd")} {
		pids, err := childrenWithArg(d)
		if err != nil {
			return err
		}
		if len(pids) != 1 {
			return fmt.Errorf("%d processes of this test name %s, want 1", len(pids), d)
		}
		if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
			return err
		}
	}
	// envtest reaps them and sees them gone.
	return errors.Join(p.env.ControlPlane.APIServer.Stop(), p.env.ControlPlane.Etcd.Stop())
}

// childrenWithArg returns the pids of this process's children that have an
// argument containing s.
func childrenWithArg(s string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		if f := strings.Fields(rest); len(f) < 2 || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// startServers starts etcd and kube-apiserver again, on the ports, data and
// certificates of the first start: clients and kubeconfigs keep working.
func (p *kubePlane) startServers() error {
	if err := p.env.ControlPlane.Etcd.Start(); err != nil {
		return fmt.Errorf("restarting etcd: %w", err)
	}
	if err := p.env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("restarting kube-apiserver: %w", err)
	}
	return nil
}

func createNamespace(t *testing.T, c client.Client, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatalf("creating namespace %s: %v", ns, err)
	}
}

// chaosRand is the random source a test draws its kill points from: seeded
// with CHAOS_SEED when it is set (to replay a failed run), else with the
// clock. The seed is logged either way, and each test prints it in its
// FIGURES line.
func chaosRand(t *testing.T) (*rand.Rand, uint64) {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an unsigned integer", v)
		}
		seed = n
	}
	t.Logf("%s: CHAOS_SEED=%d (set it to replay these kill points)", t.Name(), seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed
}

func freePort(t *testing.T) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports, err := freeport.Ports(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// ---- subprocesses ----

// process is a subprocess a test started (the manager, a consumer, a
// nats-server), its output in a log file.
type process = natsproc.Process

var (
	startProcess = natsproc.StartProcess
	tail         = natsproc.Tail
	eventIDs     = natsproc.EventIDs
	dupes        = natsproc.Dupes
)

// ---- nats-server ----

// natsBin is the nats-server binary (natsproc.Binary: $NATS_SERVER or
// bin/nats-server).
var natsBin string

// natsServer is one nats-server with JetStream on file storage
// (natsproc.Server). It can be killed and started again on the same port and
// store.
type natsServer struct{ *natsproc.Server }

func (s *natsServer) url() string { return s.URL() }

// newNATS writes the configuration of a server (routes: the cluster ports of
// every member including this one; nil for a standalone server).
func newNATS(t *testing.T, dir, name string, port, clusterPort int, routes []int) *natsServer {
	t.Helper()
	s, err := natsproc.NewServer(natsBin, dir, name, port, clusterPort, routes)
	if err != nil {
		t.Fatal(err)
	}
	return &natsServer{s}
}

// start runs the server and waits until its client port accepts connections.
func (s *natsServer) start(t *testing.T) {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
}

// tryStart is start for goroutines other than the test's.
func (s *natsServer) tryStart() error { return s.Start() }

func (s *natsServer) kill() { s.Kill() }

func (s *natsServer) stop() { s.Stop() }

// startStandalone starts one JetStream server in dir and registers its stop.
func startStandalone(t *testing.T, dir string) *natsServer {
	t.Helper()
	s := newNATS(t, dir, "standalone", freePort(t), 0, nil)
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

// connect returns a connection that reconnects forever (quickly) and its
// JetStream context; closed at cleanup.
func connect(t *testing.T, url, name string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	var nc *nats.Conn
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err = nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connecting to %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// waitJetStream waits until JetStream answers (a cluster needs a meta leader).
func waitJetStream(t *testing.T, js jetstream.JetStream, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream not available after %s: %v", within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ---- the manager ----

type manager struct {
	dir, natsURL, ns string
	name             string   // log file prefix
	kubeconfig       string   // the control plane it talks to
	args             []string // extra flags
	probePort        int
	starts           int
	proc             *process
}

// newManager describes a manager of ns on the control plane of kubeconfig.
func newManager(dir, kubeconfig, natsURL, ns string) *manager {
	return &manager{dir: dir, natsURL: natsURL, ns: ns, name: "manager", kubeconfig: kubeconfig}
}

func (m *manager) logPath() string {
	return filepath.Join(m.dir, fmt.Sprintf("%s-%d.log", m.name, m.starts))
}

// leaderElect reports whether the manager runs with --leader-elect.
func (m *manager) leaderElect() bool {
	for _, a := range m.args {
		if a == "--leader-elect" {
			return true
		}
	}
	return false
}

// leading reports whether its controllers run: both controllers (EventStream
// and EventConsumer) logged "Starting workers", which a leader-elected
// manager does only once it holds the lease.
func (m *manager) leading() bool {
	b, _ := os.ReadFile(m.logPath())
	return bytes.Count(b, []byte("Starting workers")) >= 2
}

// start runs bin/manager against its control plane, watching only m.ns, and
// waits until it is up: its controllers have started (or, with
// --leader-elect, where a follower starts none, /healthz answers) and
// (waitReady) /readyz is OK, i.e. it is connected to NATS.
func (m *manager) start(t *testing.T, waitReady bool) {
	t.Helper()
	m.starts++
	m.probePort = freePort(t)
	var err error
	m.proc, err = startProcess(m.name, m.logPath(), append(os.Environ(), "KUBECONFIG="+m.kubeconfig),
		filepath.Join(root, "bin", "manager"), append([]string{
			"--nats-url", m.natsURL,
			"--watch-namespaces", m.ns,
			"--metrics-bind-address", "0",
			"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", m.probePort),
			"--resync-interval", "30s",
			"--max-concurrent-reconciles", "4"}, m.args...)...)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		if m.proc.Exited() {
			t.Fatalf("bin/manager exited at start:\n%s", tail(m.logPath(), 40))
		}
		up := m.leading()
		if m.leaderElect() {
			up = m.probe("/healthz")
		}
		if up && (!waitReady || m.probe("/readyz")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bin/manager not started after 90s:\n%s", tail(m.logPath(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (m *manager) probe(path string) bool {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", m.probePort, path))
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

func (m *manager) kill() {
	if m.proc != nil {
		m.proc.Kill()
	}
}

func (m *manager) stop() {
	if m.proc != nil {
		m.proc.Stop(15 * time.Second)
	}
}

// startManager starts a manager for ns on the shared control plane and stops
// it at cleanup (before the nats-server, which was registered earlier).
func startManager(t *testing.T, dir, natsURL, ns string) *manager {
	t.Helper()
	m := newManager(dir, kube.kubeconfig, natsURL, ns)
	m.start(t, true)
	t.Cleanup(m.stop)
	return m
}

// ---- Kubernetes helpers ----

func readyCond(o client.Object) *metav1.Condition {
	switch x := o.(type) {
	case *eventsv1.EventStream:
		return meta.FindStatusCondition(x.Status.Conditions, eventsv1.ConditionReady)
	case *eventsv1.EventConsumer:
		return meta.FindStatusCondition(x.Status.Conditions, eventsv1.ConditionReady)
	}
	return nil
}

// isReadyNow: Ready=True for the current generation.
func isReadyNow(o client.Object) bool {
	c := readyCond(o)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == o.GetGeneration()
}

func condString(o client.Object) string {
	c := readyCond(o)
	if c == nil {
		return "no Ready condition"
	}
	return fmt.Sprintf("Ready=%s reason=%s gen=%d/%d: %s", c.Status, c.Reason, c.ObservedGeneration, o.GetGeneration(), c.Message)
}

// eventually polls fn every interval until it returns nil or within ends;
// it returns the last error.
func eventually(within, interval time.Duration, fn func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

func getStream(c client.Client, ns, name string) (*eventsv1.EventStream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var s eventsv1.EventStream
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)
	return &s, err
}

func getConsumer(c client.Client, ns, name string) (*eventsv1.EventConsumer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var x eventsv1.EventConsumer
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &x)
	return &x, err
}

// waitConsumerReady waits until the EventConsumer is Ready for its generation.
func waitConsumerReady(t *testing.T, c client.Client, ns, name string, within time.Duration) {
	t.Helper()
	if err := eventually(within, 200*time.Millisecond, func() error {
		x, err := getConsumer(c, ns, name)
		if err != nil {
			return err
		}
		if !isReadyNow(x) {
			return fmt.Errorf("%s/%s: %s", ns, name, condString(x))
		}
		return nil
	}); err != nil {
		t.Fatalf("EventConsumer not Ready within %s: %v", within, err)
	}
}

// waitStreamReady waits until the EventStream is Ready for its generation.
func waitStreamReady(t *testing.T, c client.Client, ns, name string, within time.Duration) *eventsv1.EventStream {
	t.Helper()
	var last *eventsv1.EventStream
	err := eventually(within, 200*time.Millisecond, func() error {
		s, err := getStream(c, ns, name)
		if err != nil {
			return err
		}
		last = s
		if !isReadyNow(s) {
			return fmt.Errorf("%s/%s: %s", ns, name, condString(s))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("EventStream not Ready within %s: %v", within, err)
	}
	return last
}

// streamInfo asks JetStream about a stream with a short timeout.
func streamInfo(js jetstream.JetStream, name string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.Info(ctx)
}

// eventIDsByGet is eventIDs by direct STREAM.MSG.GET of every sequence: it
// needs only the stream leader, no consumer (creating one waits for the
// meta leader and a placement, which a degraded cluster may not give).
func eventIDsByGet(t *testing.T, js jetstream.JetStream, stream string) (int, map[string]int) {
	t.Helper()
	info, err := streamInfo(js, stream)
	if err != nil {
		t.Fatalf("stream info %s: %v", stream, err)
	}
	ids := make(map[string]int, info.State.Msgs)
	n := 0
	if info.State.Msgs == 0 {
		return 0, ids
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		var m *jetstream.RawStreamMsg
		err := eventually(30*time.Second, 200*time.Millisecond, func() error {
			gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
			defer gcancel()
			var err error
			m, err = s.GetMsg(gctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return nil // deleted: not a message
			}
			return err
		})
		if err != nil {
			t.Fatalf("reading %s sequence %d: %v", stream, seq, err)
		}
		if m != nil {
			n++
			ids[m.Header.Get("ce-id")]++
		}
	}
	return n, ids
}
