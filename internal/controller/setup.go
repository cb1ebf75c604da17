package controller

import (
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/giia/eventstream-operator/internal/natsconn"
)

// Options configure the controllers.
type Options struct {
	ResyncInterval          time.Duration
	MaxConcurrentReconciles int
}

// Setup adds every controller of the operator, the JetStream advisory watcher
// that feeds them and the dead-letter forwarder to mgr. The manager binary and the test suites
// both call it, so tests run exactly what ships.
func Setup(mgr ctrl.Manager, nc *natsconn.Conn, o Options) error {
	triggers := NewTriggers(nc.NATS(), mgr.GetLogger().WithName("advisories"))
	nc.OnReconnect(triggers.ResyncAll)
	if err := mgr.Add(triggers); err != nil {
		return err
	}
	base := reconciler{
		Client:                  mgr.GetClient(),
		Recorder:                mgr.GetEventRecorder("eventstream-operator"),
		NATS:                    nc,
		ResyncInterval:          o.ResyncInterval,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		OwnWrites:               triggers,
	}
	if err := (&EventStreamReconciler{reconciler: base, Triggers: triggers.Streams()}).SetupWithManager(mgr); err != nil {
		return err
	}
	counts := newDeadLetterCounts()
	if err := (&EventConsumerReconciler{reconciler: base, Triggers: triggers.Consumers(), DeadLetters: counts}).SetupWithManager(mgr); err != nil {
		return err
	}
	// After the controllers: the forwarder's resolver uses their indexes.
	return mgr.Add(newDeadLetterForwarder(nc.NATS(), mgr.GetClient(), counts, triggers, mgr.GetLogger().WithName("dead-letters")))
}
