//go:build chaos

// Package chaos holds fault-injection tests: real bin/nats-server and
// bin/manager subprocesses (and envtest's kube-apiserver and etcd) that are
// killed, stopped and restarted while work is in flight. Run with
// `make test-chaos`. The processes come from the shared harness,
// internal/testutil (proc, natsproc, controlplane, managerproc, fixtures).
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/controlplane"
	"github.com/giia/eventstream-operator/internal/testutil/fixtures"
	"github.com/giia/eventstream-operator/internal/testutil/managerproc"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
	"github.com/giia/eventstream-operator/internal/testutil/proc"
	"github.com/giia/eventstream-operator/internal/testutil/repo"
)

// root is the repository root (holding go.mod and bin/).
var root string

// The control plane is started once, on first use, and shared by the tests
// that need it; each test runs its own manager restricted to its own
// namespace (--watch-namespaces), so tests never see each other's objects.
// (TestAPIServerDown stops its control plane, so it starts one of its own.)
var kube struct {
	once sync.Once
	err  error
	*controlplane.Plane
}

func TestMain(m *testing.M) {
	// envtest logs through controller-runtime's logger; the managers' logs
	// are in their own files.
	ctrllog.SetLogger(logr.Discard())
	var err error
	if root, err = repo.Root(); err == nil {
		if _, err = repo.NATSServer(); err == nil {
			_, err = repo.Manager()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err, "(`make test-chaos` builds what it needs)")
		os.Exit(1)
	}
	code := m.Run()
	if kube.Plane != nil {
		_ = kube.Stop()
		_ = os.RemoveAll(kube.Dir)
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
		kube.Plane, kube.err = startKubePlane(dir, false)
		if kube.err != nil {
			_ = os.RemoveAll(dir)
		}
	})
	if kube.err != nil {
		t.Fatalf("envtest: %v", kube.err)
	}
	return kube.Client
}

// startKubePlane starts envtest's etcd and kube-apiserver with the CRDs,
// keeping its kubeconfig in dir (restartable: etcd's data and the
// certificates too, for KillServers and StartServers).
func startKubePlane(dir string, restartable bool) (*controlplane.Plane, error) {
	start := time.Now()
	p, err := controlplane.Start(controlplane.Options{Dir: dir, CRDs: true, Restartable: restartable, User: "chaos"})
	if err == nil {
		fmt.Printf("envtest control plane started in %.1fs\n", time.Since(start).Seconds())
	}
	return p, err
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

var (
	tail     = proc.Tail
	eventIDs = natsproc.EventIDs
	dupes    = natsproc.Dupes
)

// startNATS starts a server and fails the test if it does not come up.
func startNATS(t *testing.T, s *natsproc.Server) {
	t.Helper()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
}

// connect returns a connection that reconnects forever (quickly) and its
// JetStream context; closed at cleanup.
func connect(t *testing.T, url, name string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := natsproc.Connect(url, name, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

// ---- the manager ----

// newManager describes a manager of ns on the control plane of kubeconfig.
func newManager(dir, kubeconfig, natsURL, ns string) *managerproc.Manager {
	return &managerproc.Manager{Dir: dir, Kubeconfig: kubeconfig, NATSURL: natsURL, Args: []string{
		"--watch-namespaces", ns,
		"--resync-interval", "30s",
		"--max-concurrent-reconciles", "4"}}
}

// startMgr runs the manager and waits until it is ready (/readyz: caches
// synced, controllers started or standing by for the lease, NATS
// connected); it fails the test if it is not within 90 s.
func startMgr(t *testing.T, m *managerproc.Manager) {
	t.Helper()
	if err := m.Start(context.Background(), managerproc.Ready, 90*time.Second); err != nil {
		t.Fatalf("bin/manager: %v", err)
	}
}

// stopAtCleanup stops m when the test ends.
func stopAtCleanup(t *testing.T, m *managerproc.Manager) {
	t.Cleanup(func() { _, _ = m.Stop(15 * time.Second) })
}

// startManager starts a manager for ns on the shared control plane and stops
// it at cleanup (before the nats-server, which was registered earlier).
func startManager(t *testing.T, dir, natsURL, ns string) *managerproc.Manager {
	t.Helper()
	m := newManager(dir, kube.Kubeconfig, natsURL, ns)
	startMgr(t, m)
	stopAtCleanup(t, m)
	return m
}

// ---- Kubernetes helpers ----

var (
	readyCond   = fixtures.ReadyCondition
	isReadyNow  = fixtures.IsReadyNow
	condString  = fixtures.ReadyString
	smallStream = fixtures.Stream
)

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
