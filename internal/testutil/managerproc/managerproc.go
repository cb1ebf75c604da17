// Package managerproc runs bin/manager as a child process for the
// end-to-end and chaos tests and the operator benchmark: on free loopback
// ports (metrics in plain HTTP, probes, optionally pprof), a log file per
// start, and a start that waits on the manager's own readiness signal
// (/readyz, internal/health) rather than on its logs.
package managerproc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/giia/eventstream-operator/internal/health"
	"github.com/giia/eventstream-operator/internal/testutil/freeport"
	"github.com/giia/eventstream-operator/internal/testutil/proc"
	"github.com/giia/eventstream-operator/internal/testutil/repo"
)

// Wait says what Start waits for.
type Wait int

const (
	// Ready: all of /readyz: caches synced, controllers started (or a
	// standby waiting for the lease), connected to NATS.
	Ready Wait = iota
	// Started: /readyz/informers and /readyz/controllers only; NATS may be
	// unreachable.
	Started
)

// Manager is one bin/manager, started and restarted by Start.
type Manager struct {
	Name       string   // log file prefix; default "manager"
	Dir        string   // where the logs go
	Kubeconfig string   // the control plane it talks to (KUBECONFIG)
	NATSURL    string   // --nats-url (none when empty)
	Args       []string // more flags, after the harness's (the last of a flag wins)
	// Env is the environment; nil: this process's plus KUBECONFIG.
	Env []string
	// Pprof serves /debug/pprof on PprofPort.
	Pprof bool
	// SecureMetrics keeps the manager's default HTTPS metrics with
	// authentication and authorization (then Metrics and Leading cannot
	// read them); false: plain HTTP on loopback.
	SecureMetrics bool
	// Bin is the binary; default bin/manager.
	Bin string

	MetricsPort, ProbePort, PprofPort int // chosen by each Start
	Starts                            int
	Proc                              *proc.Process
}

// LogPath is the log of the latest start: Dir/<Name>-<Starts>.log.
func (m *Manager) LogPath() string {
	name := m.Name
	if name == "" {
		name = "manager"
	}
	return filepath.Join(m.Dir, fmt.Sprintf("%s-%d.log", name, m.Starts))
}

// Start runs the manager on new free ports and waits (up to within, or ctx)
// until what w says holds. If it exits or does not get there, the error has
// the tail of its log (and the manager is left as it is: Stop it).
func (m *Manager) Start(ctx context.Context, w Wait, within time.Duration) error {
	bin := m.Bin
	if bin == "" {
		var err error
		if bin, err = repo.Manager(); err != nil {
			return err
		}
	}
	ports, err := freeport.Ports(3)
	if err != nil {
		return err
	}
	m.MetricsPort, m.ProbePort, m.PprofPort = ports[0], ports[1], ports[2]
	m.Starts++
	args := []string{
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", m.MetricsPort),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", m.ProbePort),
	}
	if !m.SecureMetrics {
		// Plain HTTP on loopback: the harness reads it without a token.
		args = append(args, "--metrics-secure=false")
	}
	if m.NATSURL != "" {
		args = append(args, "--nats-url", m.NATSURL)
	}
	if m.Pprof {
		args = append(args, "--pprof-bind-address", fmt.Sprintf("127.0.0.1:%d", m.PprofPort))
	}
	env := m.Env
	if env == nil {
		env = append(os.Environ(), "KUBECONFIG="+m.Kubeconfig)
	}
	if m.Proc, err = proc.Start(m.name(), m.LogPath(), env, bin, append(args, m.Args...)...); err != nil {
		return err
	}
	return m.WaitFor(ctx, w, within)
}

func (m *Manager) name() string {
	if m.Name == "" {
		return "manager"
	}
	return m.Name
}

// WaitFor waits until what w says holds, the manager exits, within passes
// or ctx ends.
func (m *Manager) WaitFor(ctx context.Context, w Wait, within time.Duration) error {
	paths := []string{"/readyz"}
	if w == Started {
		paths = []string{"/readyz/informers", "/readyz/controllers"}
	}
	return proc.Poll(ctx, within, 100*time.Millisecond, m.name()+" "+strings.Join(paths, ", "), func() error {
		if m.Proc.Exited() {
			return proc.Permanent(fmt.Errorf("exited (%v):\n%s", m.Proc.ExitErr(), proc.Tail(m.LogPath(), 40)))
		}
		for _, p := range paths {
			if code := m.Probe(ctx, p); code != http.StatusOK {
				return fmt.Errorf("GET %s: %d; log:\n%s", p, code, proc.Tail(m.LogPath(), 20))
			}
		}
		return nil
	})
}

// Probe GETs path on the probe port and returns the status code (0: no
// answer).
func (m *Manager) Probe(ctx context.Context, path string) int {
	return proc.HTTPStatus(ctx, fmt.Sprintf("http://127.0.0.1:%d%s", m.ProbePort, path))
}

// Ready reports whether /readyz answers 200.
func (m *Manager) Ready(ctx context.Context) bool { return m.Probe(ctx, "/readyz") == http.StatusOK }

// Leading reports whether this manager runs the controllers (the gauge
// eventstream_operator_controllers_running is 1).
func (m *Manager) Leading(ctx context.Context) bool {
	if m.Proc == nil || m.Proc.Exited() {
		return false
	}
	ms, err := m.Metrics(ctx)
	return err == nil && ms[health.ControllersRunningMetric] == 1
}

// Metrics scrapes the manager's /metrics.
func (m *Manager) Metrics(ctx context.Context) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", m.MetricsPort), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return ParseMetrics(resp.Body), nil
}

// Kill SIGKILLs the manager, as a crash would.
func (m *Manager) Kill() {
	if m.Proc != nil {
		m.Proc.Kill()
	}
}

// Stop sends SIGTERM, then SIGKILL after grace; it returns whether SIGKILL
// was needed and how the manager ended.
func (m *Manager) Stop(grace time.Duration) (killed bool, exit error) {
	if m.Proc == nil {
		return false, errors.New("not started")
	}
	return m.Proc.Stop(grace)
}
