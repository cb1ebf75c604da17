package controller

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/giia/eventstream-operator/pkg/events"
)

// jetStreamRequests measures every JetStream call the controllers make, by
// operation and outcome, next to controller-runtime's own metrics.
var jetStreamRequests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "eventstream_operator_jetstream_request_duration_seconds",
	Help:    "Latency of JetStream API calls made by the operator, by operation and outcome.",
	Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
}, []string{"operation", "outcome"})

func init() {
	metrics.Registry.MustRegister(jetStreamRequests)
}

// observe records how long a JetStream call took and how it ended.
func observe(op string, start time.Time, err error) {
	jetStreamRequests.WithLabelValues(op, outcome(err)).Observe(time.Since(start).Seconds())
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, events.ErrNotFound):
		return "not_found"
	case errors.Is(err, events.ErrConnection), errors.Is(err, events.ErrTimeout):
		return "unavailable"
	}
	return "error"
}
