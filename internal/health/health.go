// Package health is the manager's own liveness and readiness signal, served
// on --health-probe-bind-address:
//
//   - /healthz: the process answers (ping).
//   - /readyz: every check below passes.
//     "informers": the informer caches have synced;
//     "controllers": this replica's controllers have started (elected, caches
//     synced), or, with leader election, the replica is a standby waiting for
//     the lease: a standby is ready to take over, so it must not hold a
//     rollout back;
//     plus the checks the caller adds (the NATS connection).
//
// Which replica runs the controllers is the gauge
// eventstream_operator_controllers_running (1 on the replica whose
// controllers run, 0 on a standby), on the metrics endpoint.
package health

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// ControllersRunningMetric is the name of the gauge telling whether this
// replica runs the controllers.
const ControllersRunningMetric = "eventstream_operator_controllers_running"

// cacheSyncWait bounds how long one /readyz request waits for the caches.
const cacheSyncWait = time.Second

var controllersRunning = prometheus.NewGauge(prometheus.GaugeOpts{
	Name: ControllersRunningMetric,
	Help: "1 when this replica runs the controllers (it holds the leader election lease, or leader election is off, and its caches have synced); 0 on a standby.",
})

func init() {
	metrics.Registry.MustRegister(controllersRunning)
}

// Signal tracks whether the manager's controllers run. Build it with Setup.
type Signal struct {
	mgr         manager.Manager
	leaderElect bool
	elected     atomic.Bool
	running     atomic.Bool
}

// Setup adds /healthz and the "informers" and "controllers" /readyz checks
// to mgr, and the runnable that marks the controllers started. leaderElect
// is the manager's leader election setting; extra readyz checks (name →
// checker) are added after.
func Setup(mgr manager.Manager, leaderElect bool, extra map[string]healthz.Checker) (*Signal, error) {
	s := &Signal{mgr: mgr, leaderElect: leaderElect}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("informers", s.InformersSynced); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("controllers", s.ControllersStarted); err != nil {
		return nil, err
	}
	for name, check := range extra {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			return nil, err
		}
	}
	// A runnable without NeedLeaderElection runs only on the elected
	// replica (or at once without leader election), with the controllers.
	if err := mgr.Add(manager.RunnableFunc(s.run)); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Signal) run(ctx context.Context) error {
	s.elected.Store(true)
	if !s.mgr.GetCache().WaitForCacheSync(ctx) {
		return nil // stopped before the caches synced
	}
	s.running.Store(true)
	controllersRunning.Set(1)
	<-ctx.Done()
	s.running.Store(false)
	controllersRunning.Set(0)
	return nil
}

// InformersSynced passes once the manager's informer caches have synced.
func (s *Signal) InformersSynced(req *http.Request) error {
	ctx := context.Background()
	if req != nil {
		ctx = req.Context()
	}
	ctx, cancel := context.WithTimeout(ctx, cacheSyncWait)
	defer cancel()
	if !s.mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("informer caches not synced yet")
	}
	return nil
}

// ControllersStarted passes when this replica's controllers run, or when it
// is a standby (leader election on, lease not held).
func (s *Signal) ControllersStarted(*http.Request) error {
	switch {
	case s.running.Load():
		return nil
	case s.leaderElect && !s.elected.Load():
		return nil // standby: ready to take over
	default:
		return errors.New("controllers not started yet")
	}
}

// Running reports whether this replica's controllers run.
func (s *Signal) Running() bool { return s.running.Load() }
