package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// seriesOf returns the value of c's series whose labels include want, and
// whether there is one.
func seriesOf(t *testing.T, c prometheus.Collector, want map[string]string) (float64, bool) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
	metric:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metric
				}
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// The stream gauges are the INFO of the reconcile: messages and bytes as
// published, the ages at the reconcile's clock, and they go with the
// resource.
func TestStreamMetricsFollowTheReconciledInfo(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	r := &EventStreamReconciler{reconciler: *stepReconciler(t, srv, nil)}
	js := jsOf(t, &r.reconciler)
	ctx := context.Background()

	evs := genStream("metered")
	if _, err := r.reconcileStream(ctx, js, evs); err != nil {
		t.Fatal(err)
	}
	l := map[string]string{"namespace": "default", "name": "metered", "stream": "METERED"}
	if v, ok := seriesOf(t, streamMessages, l); !ok || v != 0 {
		t.Errorf("an empty stream: messages %v (present %v), want 0", v, ok)
	}
	if _, ok := seriesOf(t, streamFirstAge, l); ok {
		t.Error("an empty stream has a first-message age")
	}

	for range 3 {
		if _, err := js.Publish(ctx, "metered.a", []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	// The reconcile's clock is 10 s after the messages were stored.
	r.Clock = clocktesting.NewFakeClock(time.Now().Add(10 * time.Second))
	if _, err := r.reconcileStream(ctx, js, evs); err != nil {
		t.Fatal(err)
	}
	if v, _ := seriesOf(t, streamMessages, l); v != 3 {
		t.Errorf("messages %v, want 3", v)
	}
	if v, _ := seriesOf(t, streamBytes, l); v != float64(evs.Status.State.Bytes) || v == 0 {
		t.Errorf("bytes %v, want status's %d", v, evs.Status.State.Bytes)
	}
	if v, _ := seriesOf(t, streamConsumers, l); v != 0 {
		t.Errorf("consumers %v, want 0", v)
	}
	for name, g := range map[string]*prometheus.GaugeVec{"first": streamFirstAge, "last": streamLastAge} {
		if v, ok := seriesOf(t, g, l); !ok || v < 9 || v > 12 {
			t.Errorf("%s message age %v (present %v), want about 10 s", name, v, ok)
		}
	}

	forgetMetrics(evs)
	for _, g := range []*prometheus.GaugeVec{streamMessages, streamBytes, streamFirstAge, streamLastAge, streamConsumers} {
		if _, ok := seriesOf(t, g, map[string]string{"name": "metered"}); ok {
			t.Errorf("a series of the deleted resource is left in %v", g)
		}
	}
}

// The consumer gauges are its status; they go with the resource.
func TestConsumerMetricsAreItsState(t *testing.T) {
	evc := genConsumer("metered", "s", consumerSeen("S"))
	evc.Status.State = &eventsv1.EventConsumerState{NumPending: 7, NumAckPending: 2, NumRedelivered: 1, NumWaiting: 3, DeadLettered: 4}
	observeConsumer(evc)
	l := map[string]string{"namespace": "default", "name": "metered", "stream": "S", "consumer": evc.JetStreamName()}
	for g, want := range map[*prometheus.GaugeVec]float64{consumerPending: 7, consumerAckPending: 2, consumerRedelivered: 1, consumerWaiting: 3, consumerDeadLettered: 4} {
		if v, ok := seriesOf(t, g, l); !ok || v != want {
			t.Errorf("%v = %v (present %v), want %v", g, v, ok, want)
		}
	}
	forgetMetrics(evc)
	if n := testutil.CollectAndCount(consumerPending); n != 0 {
		t.Errorf("%d consumer series left after the resource went", n)
	}
}

// Drift repairs count JetStream objects changed or deleted outside the
// operator, not a spec change.
func TestDriftRepairsCountOnlyOutsideChanges(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	r := &EventStreamReconciler{reconciler: *stepReconciler(t, srv, nil)}
	js := jsOf(t, &r.reconciler)
	ctx := context.Background()
	drift := func() float64 { return testutil.ToFloat64(driftRepairs.WithLabelValues("EventStream")) }
	base := drift()

	evs := genStream("drifting")
	if _, err := r.reconcileStream(ctx, js, evs); err != nil {
		t.Fatal(err)
	}
	evs.Status.ObservedGeneration = evs.Generation
	if drift() != base {
		t.Fatal("creating a stream counted as a drift repair")
	}
	if err := js.DeleteStream(ctx, "DRIFTING"); err != nil {
		t.Fatal(err)
	}
	if res, err := r.reconcileStream(ctx, js, evs); err != nil || res.reason != eventsv1.ReasonCreated {
		t.Fatalf("recreate: %+v, %v", res, err)
	}
	if got := drift(); got != base+1 {
		t.Errorf("after a stream deleted by hand was recreated: %v repairs, want %v", got, base+1)
	}
	s, err := js.Stream(ctx, "DRIFTING")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxAge = time.Hour
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if res, err := r.reconcileStream(ctx, js, evs); err != nil || res.reason != eventsv1.ReasonUpdated {
		t.Fatalf("repair: %+v, %v", res, err)
	}
	if got := drift(); got != base+2 {
		t.Errorf("after a stream edited by hand was repaired: %v repairs, want %v", got, base+2)
	}
	// A spec change (generation 2, not observed yet) is not drift.
	evs.Spec.MaxAge = "2h"
	evs.Generation = 2
	if res, err := r.reconcileStream(ctx, js, evs); err != nil || res.reason != eventsv1.ReasonUpdated {
		t.Fatalf("spec change: %+v, %v", res, err)
	}
	if got := drift(); got != base+2 {
		t.Errorf("a spec change counted as drift: %v repairs, want %v", got, base+2)
	}
	forgetMetrics(evs)
}

// eventstream_operator_resources counts the tracked resources by kind and
// Ready condition, and forgets deleted ones.
func TestResourcesByKindAndReadyReason(t *testing.T) {
	c := newResourceCollector()
	ready := func(status metav1.ConditionStatus, reason string) []metav1.Condition {
		return []metav1.Condition{{Type: eventsv1.ConditionReady, Status: status, Reason: reason}}
	}
	a, b, x := genStream("a"), genStream("b"), genStream("x")
	a.Status.Conditions = ready(metav1.ConditionTrue, eventsv1.ReasonCreated)
	b.Status.Conditions = ready(metav1.ConditionTrue, eventsv1.ReasonCreated)
	x.Status.Conditions = ready(metav1.ConditionFalse, eventsv1.ReasonNatsUnavailable)
	evc := genConsumer("c", "a")
	c.track(a)
	c.track(b)
	c.track(x)
	c.track(evc)
	c.track(a) // again: still one resource
	want := `
# HELP eventstream_operator_resources Resources the operator reconciles, by kind and Ready condition (status True/False/Unknown, and reason) as last computed.
# TYPE eventstream_operator_resources gauge
eventstream_operator_resources{kind="EventConsumer",ready="Unknown",reason=""} 1
eventstream_operator_resources{kind="EventStream",ready="False",reason="NatsUnavailable"} 1
eventstream_operator_resources{kind="EventStream",ready="True",reason="Created"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	c.forget("EventStream", "default", "x")
	c.forget("EventConsumer", "default", "c")
	if n := testutil.CollectAndCount(c); n != 1 {
		t.Errorf("%d series after two resources went, want 1", n)
	}
}
