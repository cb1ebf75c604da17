package dlq

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The forwarder's Prometheus metrics, per process (every Forwarder of the
// process counts into them); the operator registers Collectors.
var (
	forwardedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eventstream_operator_dead_letters_forwarded_total",
		Help: "Dead letters the operator's forwarder stored (from MAX_DELIVERIES and MSG_TERMINATED advisories).",
	})
	notStoredTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eventstream_operator_dead_letters_not_stored_total",
		Help: "Dead-letter publishes of the forwarder that failed (each attempt; the advisory is retried).",
	})
	malformedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eventstream_operator_dead_letters_malformed_total",
		Help: "Dead-letter advisories the forwarder could not parse and dropped.",
	})
	advisoryLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eventstream_operator_advisory_lag_seconds",
		Help:    "Time from a dead-letter advisory's timestamp (set by nats-server) to the forwarder having handled it, each handling.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	})
)

// Collectors are the forwarder's metrics, for a registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{forwardedTotal, notStoredTotal, malformedTotal, advisoryLag}
}

// observeLag records the lag of an advisory stamped ts (RFC 3339), handled
// at now; an advisory without a valid timestamp is not observed.
func observeLag(ts string, now time.Time) {
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return
	}
	advisoryLag.Observe(max(now.Sub(t).Seconds(), 0))
}
