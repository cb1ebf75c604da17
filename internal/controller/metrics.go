package controller

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/dlq"
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

// The resource metrics below are refreshed by the reconciles from what they
// already read (the INFO of ensure, the status they compute): no metric
// costs a JetStream request. Their labels are the resource (namespace, name)
// and its JetStream names, never a subject or a message, and a resource's
// series go when it does (forgetMetrics).
var (
	streamLabels   = []string{"namespace", "name", "stream"}
	consumerLabels = []string{"namespace", "name", "stream", "consumer"}

	streamMessages = newGaugeVec("stream_messages", "Messages in the EventStream's JetStream stream at its last reconcile.", streamLabels)
	streamBytes    = newGaugeVec("stream_bytes", "Bytes in the EventStream's JetStream stream at its last reconcile.", streamLabels)
	streamFirstAge = newGaugeVec("stream_first_message_age_seconds",
		"Age of the stream's first (oldest) message at its last reconcile; absent while the stream holds no message.", streamLabels)
	streamLastAge = newGaugeVec("stream_last_message_age_seconds",
		"Age of the stream's last (newest) message at its last reconcile; absent while the stream holds no message.", streamLabels)
	streamConsumers = newGaugeVec("stream_consumers", "Consumers of the EventStream's JetStream stream at its last reconcile.", streamLabels)

	consumerPending      = newGaugeVec("consumer_pending", "Messages of the stream the EventConsumer's consumer has not delivered yet (num_pending) at its last reconcile.", consumerLabels)
	consumerAckPending   = newGaugeVec("consumer_ack_pending", "Messages delivered and not acknowledged yet (num_ack_pending) at the consumer's last reconcile.", consumerLabels)
	consumerRedelivered  = newGaugeVec("consumer_redelivered", "Messages redelivered and not acknowledged yet (num_redelivered) at the consumer's last reconcile.", consumerLabels)
	consumerWaiting      = newGaugeVec("consumer_waiting", "Pull requests waiting (num_waiting) at the consumer's last reconcile.", consumerLabels)
	consumerDeadLettered = newGaugeVec("consumer_dead_lettered",
		"Messages of the EventConsumer dead-lettered since it was created (status.state.deadLettered, the operator's ledger).", consumerLabels)

	reconcileOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventstream_operator_reconcile_outcomes_total",
		Help: "Reconciles by kind and outcome: the Ready reason they ended with (Created, Updated, Adopted, InSync, or a failure's reason; Error: the API server failed).",
	}, []string{"kind", "reason"})
	driftRepairs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eventstream_operator_drift_repairs_total",
		Help: "JetStream objects the operator recreated or updated although their resource had not changed (deleted or edited outside the operator), by kind.",
	}, []string{"kind"})

	resources = newResourceCollector()
)

func newGaugeVec(name, help string, labels []string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eventstream_operator_" + name, Help: help}, labels)
}

func init() {
	metrics.Registry.MustRegister(streamMessages, streamBytes, streamFirstAge, streamLastAge, streamConsumers,
		consumerPending, consumerAckPending, consumerRedelivered, consumerWaiting, consumerDeadLettered,
		reconcileOutcomes, driftRepairs, resources)
	metrics.Registry.MustRegister(dlq.Collectors()...)
}

// observeStream records the state of an EventStream's stream, as the INFO
// of this reconcile reports it, at now.
func observeStream(evs *eventsv1.EventStream, stream string, s jetstream.StreamState, now time.Time) {
	l := prometheus.Labels{"namespace": evs.Namespace, "name": evs.Name, "stream": stream}
	streamMessages.With(l).Set(float64(s.Msgs))
	streamBytes.With(l).Set(float64(s.Bytes))
	streamConsumers.With(l).Set(float64(s.Consumers))
	if s.Msgs == 0 || s.FirstTime.IsZero() {
		streamFirstAge.Delete(l)
		streamLastAge.Delete(l)
		return
	}
	streamFirstAge.With(l).Set(max(now.Sub(s.FirstTime).Seconds(), 0))
	streamLastAge.With(l).Set(max(now.Sub(s.LastTime).Seconds(), 0))
}

// observeConsumer records an EventConsumer's state as its status holds it
// (set from the consumer's INFO by this reconcile, and the ledger's count).
func observeConsumer(evc *eventsv1.EventConsumer) {
	st := evc.Status.State
	if st == nil || evc.Status.StreamName == "" || evc.Status.ConsumerName == "" {
		return
	}
	l := prometheus.Labels{"namespace": evc.Namespace, "name": evc.Name, "stream": evc.Status.StreamName, "consumer": evc.Status.ConsumerName}
	consumerPending.With(l).Set(float64(st.NumPending))
	consumerAckPending.With(l).Set(float64(st.NumAckPending))
	consumerRedelivered.With(l).Set(float64(st.NumRedelivered))
	consumerWaiting.With(l).Set(float64(st.NumWaiting))
	consumerDeadLettered.With(l).Set(float64(st.DeadLettered))
}

// forgetMetrics deletes every series of a resource that is gone.
func forgetMetrics(obj client.Object) {
	k := resourceKind(obj)
	resources.forget(k, obj.GetNamespace(), obj.GetName())
	l := prometheus.Labels{"namespace": obj.GetNamespace(), "name": obj.GetName()}
	switch k {
	case "EventStream":
		for _, g := range []*prometheus.GaugeVec{streamMessages, streamBytes, streamFirstAge, streamLastAge, streamConsumers} {
			g.DeletePartialMatch(l)
		}
	case "EventConsumer":
		for _, g := range []*prometheus.GaugeVec{consumerPending, consumerAckPending, consumerRedelivered, consumerWaiting, consumerDeadLettered} {
			g.DeletePartialMatch(l)
		}
	}
}

// resourceKind names the kind of one of the operator's resources (typed objects
// read from the cache carry no TypeMeta).
func resourceKind(obj client.Object) string {
	switch obj.(type) {
	case *eventsv1.EventStream:
		return "EventStream"
	case *eventsv1.EventConsumer:
		return "EventConsumer"
	case *eventsv1.EventSchema:
		return "EventSchema"
	case *eventsv1.EventReplay:
		return "EventReplay"
	case *eventsv1.EventKeyValue:
		return "EventKeyValue"
	case *eventsv1.EventObjectStore:
		return "EventObjectStore"
	}
	return fmt.Sprintf("%T", obj)
}

// conditionsOf returns the conditions of one of the operator's resources.
func conditionsOf(obj client.Object) []metav1.Condition {
	switch o := obj.(type) {
	case *eventsv1.EventStream:
		return o.Status.Conditions
	case *eventsv1.EventConsumer:
		return o.Status.Conditions
	case *eventsv1.EventSchema:
		return o.Status.Conditions
	case *eventsv1.EventReplay:
		return o.Status.Conditions
	case *eventsv1.EventKeyValue:
		return o.Status.Conditions
	case *eventsv1.EventObjectStore:
		return o.Status.Conditions
	}
	return nil
}

// resourceCollector exports eventstream_operator_resources{kind,ready,reason}:
// the resources this operator reconciles, counted by their Ready condition
// as it last computed it. It is fed by the reconciles (track, forget), so
// only the leader, which reconciles, reports resources.
type resourceCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	last map[resourceKey]readyState
}

type resourceKey struct{ kind, namespace, name string }
type readyState struct{ ready, reason string }

func newResourceCollector() *resourceCollector {
	return &resourceCollector{
		desc: prometheus.NewDesc("eventstream_operator_resources",
			"Resources the operator reconciles, by kind and Ready condition (status True/False/Unknown, and reason) as last computed.",
			[]string{"kind", "ready", "reason"}, nil),
		last: map[resourceKey]readyState{},
	}
}

// track records obj's Ready condition (Unknown with no reason before the
// first one is set).
func (c *resourceCollector) track(obj client.Object) {
	st := readyState{ready: string(metav1.ConditionUnknown)}
	if cond := meta.FindStatusCondition(conditionsOf(obj), eventsv1.ConditionReady); cond != nil {
		st = readyState{ready: string(cond.Status), reason: cond.Reason}
	}
	c.mu.Lock()
	c.last[resourceKey{resourceKind(obj), obj.GetNamespace(), obj.GetName()}] = st
	c.mu.Unlock()
}

func (c *resourceCollector) forget(kind, namespace, name string) {
	c.mu.Lock()
	delete(c.last, resourceKey{kind, namespace, name})
	c.mu.Unlock()
}

func (c *resourceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *resourceCollector) Collect(ch chan<- prometheus.Metric) {
	type series struct{ kind, ready, reason string }
	counts := map[series]int{}
	c.mu.Lock()
	for k, st := range c.last {
		counts[series{k.kind, st.ready, st.reason}]++
	}
	c.mu.Unlock()
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), s.kind, s.ready, s.reason)
	}
}

// countOutcome counts one reconcile of obj that ended with reason.
func countOutcome(obj client.Object, reason string) {
	reconcileOutcomes.WithLabelValues(resourceKind(obj), reason).Inc()
}
