//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
)

// apiOutage is how long kube-apiserver and etcd stay down.
const apiOutage = 30 * time.Second

// TestAPIServerDown: the API server (kube-apiserver and etcd) is SIGKILLed and
// stays down for
// 30 s right after EventStreams were created, changed and deleted (their
// reconciles in flight), and JetStream drifts while it is down (streams
// deleted and changed out of band). The manager, running without leader
// election, must survive; once the API server is back everything converges:
// every EventStream Ready with its stream as specified (drift repaired,
// changes applied), the deleted resources and their streams gone (no lost
// delete), exactly one stream per resource (no duplicate create), no orphan.
//
// It has a control plane of its own (the shared one must not go down under
// the other tests), restarted on the same ports, data and certificates.
func TestAPIServerDown(t *testing.T) {
	dir := t.TempDir()
	kp, err := startKubePlane(filepath.Join(dir, "kube"), true)
	if err != nil {
		t.Fatalf("envtest: %v", err)
	}
	t.Cleanup(func() { _ = kp.Stop() })
	c := kp.Client
	srv := natsproc.StartStandalone(t, dir)
	_, js := connect(t, srv.URL(), "chaos-admin")
	const ns = "chaos-apiserver"
	createNamespace(t, c, ns)
	mgr := newManager(dir, kp.Kubeconfig, srv.URL(), ns)
	startMgr(t, mgr)
	stopAtCleanup(t, mgr)
	ctx := context.Background()

	// Before: streams that will drift, streams that will be changed and
	// streams that will be deleted (deletionPolicy Delete), all Ready.
	names := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s-%d", prefix, i))
		}
		return out
	}
	drifted, changed, deleted, created := names("drift", 6), names("chg", 10), names("del", 20), names("new", 40)
	for _, n := range append(append(append([]string{}, drifted...), changed...), deleted...) {
		s := smallStream(ns, n, "api."+n+".>")
		s.Spec.DeletionPolicy = eventsv1.DeletionPolicyDelete
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := waitAllReady(c, ns, len(drifted)+len(changed)+len(deleted), 2*time.Minute); err != nil {
		t.Fatalf("before the outage: %v\n%s", err, tail(mgr.LogPath(), 30))
	}

	// Just before the stop, with no pause: creates, changes and deletes, 16
	// at a time, whose reconciles are in flight when the API server dies.
	var ops []func() error
	for _, n := range created {
		ops = append(ops, func() error {
			s := smallStream(ns, n, "api."+n+".>")
			s.Spec.Description = "created just before the API server stopped"
			return c.Create(ctx, s)
		})
	}
	for _, n := range changed {
		ops = append(ops, func() error {
			return retry.RetryOnConflict(retry.DefaultRetry, func() error {
				s, err := getStream(c, ns, n)
				if err != nil {
					return err
				}
				s.Spec.Description = "changed just before the API server stopped"
				s.Spec.MaxMsgs = int64p(5000)
				return c.Update(ctx, s)
			})
		})
	}
	for _, n := range deleted {
		ops = append(ops, func() error {
			return c.Delete(ctx, &eventsv1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}})
		})
	}
	rnd, _ := chaosRand(t)
	rnd.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	if err := parallel(16, ops); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := kp.KillServers(); err != nil {
		t.Fatalf("stopping the API server: %v", err)
	}
	downAt := time.Now()
	stopTook := downAt.Sub(t0)
	inFlight := jsCensus(js, created, deleted)

	// While it is down, JetStream drifts: half the drift streams are deleted
	// out of band, the other half changed.
	for i, n := range drifted {
		name := jsName(n)
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if i < len(drifted)/2 {
			err = js.DeleteStream(dctx, name)
		} else {
			var info *jetstream.StreamInfo
			if info, err = streamInfo(js, name); err == nil {
				cfg := info.Config
				cfg.MaxMsgs, cfg.Description = 7, "drifted while the API server was down"
				_, err = js.UpdateStream(dctx, cfg)
			}
		}
		cancel()
		if err != nil {
			t.Fatalf("drifting %s: %v", name, err)
		}
	}
	// The manager must stay up: sample it every second.
	exitedDuring := false
	for time.Since(downAt) < apiOutage {
		if mgr.Proc.Exited() {
			exitedDuring = true
			break
		}
		time.Sleep(time.Second)
	}
	if exitedDuring {
		t.Fatalf("bin/manager exited while the API server was down:\n%s", tail(mgr.LogPath(), 40))
	}
	repairedDuring := 0
	for _, n := range drifted {
		if jsMatches(js, n, -1, "") == nil {
			repairedDuring++
		}
	}
	restartAt := time.Now()
	if err := kp.StartServers(); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	down, restart := restartAt.Sub(downAt), upAt.Sub(restartAt)

	// Everything converges.
	want := len(drifted) + len(changed) + len(created)
	var items []eventsv1.EventStream
	err = eventually(3*time.Minute, 500*time.Millisecond, func() error {
		var err error
		if items, err = waitAllReady(c, ns, want, 0); err != nil {
			return err
		}
		for _, n := range deleted {
			if _, err := getStream(c, ns, n); !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleted EventStream %s: still there (%v)", n, err)
			}
			if _, err := streamInfo(js, jsName(n)); !errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("deleted EventStream %s: JetStream stream %s not deleted (%v)", n, jsName(n), err)
			}
		}
		for _, n := range drifted {
			if err := jsMatches(js, n, -1, ""); err != nil {
				return fmt.Errorf("drift not repaired: %w", err)
			}
		}
		for _, n := range changed {
			if err := jsMatches(js, n, 5000, "changed just before the API server stopped"); err != nil {
				return fmt.Errorf("change not applied: %w", err)
			}
		}
		for _, n := range created {
			if err := jsMatches(js, n, -1, "created just before the API server stopped"); err != nil {
				return err
			}
		}
		return nil
	})
	converged := time.Since(upAt)
	if err != nil {
		t.Fatalf("%s after the API server returned: %v\n%s", converged.Round(time.Second), err, tail(mgr.LogPath(), 30))
	}
	o := checkOwnership(t, js, ns, items)
	alive := !mgr.Proc.Exited()
	fmt.Printf("FIGURES apiserver-down: kube-apiserver and etcd SIGKILLed (gone in %.1fs) right after %d creates, %d changes and %d deletes, down %.0fs (then %.1fs to restart); "+
		"at the stop JetStream held %d of the %d new streams and %d of the %d deleted ones; meanwhile %d streams deleted and %d changed out of band "+
		"(%d of %d repaired before the API server returned); manager alive throughout (%d start): %v; "+
		"after the API server returned: everything converged in %.1fs, %d EventStreams Ready, %d owned streams, %d duplicates, %d orphans, %d missing\n",
		stopTook.Seconds(), len(created), len(changed), len(deleted), down.Seconds(), restart.Seconds(),
		inFlight.created, len(created), inFlight.deleted, len(deleted), len(drifted)/2, len(drifted)-len(drifted)/2,
		repairedDuring, len(drifted), mgr.Starts, alive, converged.Seconds(), countReady(items), o.ours, o.dups, o.orphans, o.missing)
	if !alive {
		t.Errorf("bin/manager exited after the API server returned:\n%s", tail(mgr.LogPath(), 40))
	}
}

// parallel runs ops, n at a time, and returns the first error.
func parallel(n int, ops []func() error) error {
	errs := make(chan error, len(ops))
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := op(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// jsName is the JetStream name of an EventStream without spec.name.
func jsName(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// jsMatches checks the JetStream stream of EventStream name against its
// expected maxMsgs, description, maxBytes (1Mi) and subject.
func jsMatches(js jetstream.JetStream, name string, maxMsgs int64, description string) error {
	info, err := streamInfo(js, jsName(name))
	if err != nil {
		return fmt.Errorf("%s: %w", jsName(name), err)
	}
	cfg := info.Config
	if cfg.MaxMsgs != maxMsgs || cfg.Description != description || cfg.MaxBytes != 1<<20 ||
		len(cfg.Subjects) != 1 || cfg.Subjects[0] != "api."+name+".>" {
		return fmt.Errorf("%s: maxMsgs %d, description %q, maxBytes %d, subjects %v", jsName(name), cfg.MaxMsgs, cfg.Description, cfg.MaxBytes, cfg.Subjects)
	}
	return nil
}

// jsCensus counts the streams of created that exist and of deleted that
// still exist.
func jsCensus(js jetstream.JetStream, created, deleted []string) (n struct{ created, deleted int }) {
	for _, s := range created {
		if _, err := streamInfo(js, jsName(s)); err == nil {
			n.created++
		}
	}
	for _, s := range deleted {
		if _, err := streamInfo(js, jsName(s)); err == nil {
			n.deleted++
		}
	}
	return n
}
