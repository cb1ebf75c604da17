package managerproc

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/controlplane"
	"github.com/giia/eventstream-operator/internal/testutil/freeport"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
)

// The real manager, on a real control plane and nats-server: Start returns
// once /readyz passes, the manager runs its controllers (Leading), and its
// metrics are read; with NATS unreachable, it starts (Started) but is not
// Ready.
func TestManagerReadiness(t *testing.T) {
	dir := t.TempDir()
	bin, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	plane, err := controlplane.Start(controlplane.Options{Dir: filepath.Join(dir, "kube"), CRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plane.Stop() })
	var list eventsv1.EventStreamList
	if err := plane.Client.List(context.Background(), &list); err != nil {
		t.Fatalf("the CRDs are not served: %v", err)
	}
	srv := natsproc.StartStandalone(t, dir)
	ctx := context.Background()

	m := &Manager{Bin: bin, Dir: dir, Kubeconfig: plane.Kubeconfig, NATSURL: srv.URL()}
	t.Cleanup(func() { _, _ = m.Stop(10 * time.Second) })
	if err := m.Start(ctx, Ready, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if !m.Ready(ctx) || m.Probe(ctx, "/readyz/controllers") != http.StatusOK {
		t.Error("started, but /readyz or /readyz/controllers is not 200")
	}
	if !m.Leading(ctx) {
		t.Error("a manager without leader election does not report its controllers running")
	}
	if _, err := os.Stat(m.LogPath()); err != nil || m.LogPath() != filepath.Join(dir, "manager-1.log") {
		t.Errorf("log %s: %v", m.LogPath(), err)
	}
	m.Kill()
	if !m.Proc.Exited() || m.Leading(ctx) {
		t.Fatal("killed, but still running or leading")
	}

	// NATS unreachable: up, controllers started, not Ready.
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	m.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	if err := m.Start(ctx, Started, 90*time.Second); err != nil {
		t.Fatalf("without NATS: %v", err)
	}
	if m.Starts != 2 || m.LogPath() != filepath.Join(dir, "manager-2.log") {
		t.Errorf("second start: Starts %d, log %s", m.Starts, m.LogPath())
	}
	if err := m.WaitFor(ctx, Ready, 3*time.Second); err == nil {
		t.Error("Ready without a NATS server")
	}
	if killed, err := m.Stop(30 * time.Second); killed || err != nil {
		t.Errorf("Stop: killed %t, exit %v; want a clean exit on SIGTERM", killed, err)
	}
}
