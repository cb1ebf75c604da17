package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

func streamStatus(evs *eventsv1.EventStream) statusRef {
	return statusRef{&evs.Status.Conditions, &evs.Status.ObservedGeneration}
}

func consumerStatus(evc *eventsv1.EventConsumer) statusRef {
	return statusRef{&evc.Status.Conditions, &evc.Status.ObservedGeneration}
}

// TestReconcileStreamStep calls reconcileStream for each case against one
// embedded JetStream: before (if any) is reconciled first, as an earlier
// generation or another resource left JetStream; pre prepares JetStream by
// hand.
func TestReconcileStreamStep(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	r := &EventStreamReconciler{reconciler: *stepReconciler(t, srv, nil)}
	js := jsOf(t, &r.reconciler)
	ctx := context.Background()

	cases := []struct {
		name   string
		pre    func(t *testing.T)
		before *eventsv1.EventStream
		evs    *eventsv1.EventStream
		want   string
		reason string
		check  func(t *testing.T, evs *eventsv1.EventStream)
	}{{
		name: "a new stream is created with the owner markers",
		evs:  genStream("created"),
		want: wantReady, reason: eventsv1.ReasonCreated,
		check: func(t *testing.T, evs *eventsv1.EventStream) {
			info, err := js.Stream(ctx, "CREATED")
			if err != nil {
				t.Fatal(err)
			}
			md := info.CachedInfo().Config.Metadata
			if md[eventsv1.OwnerMetadataKey] != "default/created" || md[eventsv1.UIDMetadataKey] != "uid-created" {
				t.Errorf("metadata %v", md)
			}
			if evs.Status.StreamName != "CREATED" || evs.Status.State == nil {
				t.Errorf("status %+v", evs.Status)
			}
		},
	}, {
		name:   "a stream that matches is left alone",
		before: genStream("insync"),
		evs:    genStream("insync", streamSeen()),
		want:   wantReady, reason: eventsv1.ReasonInSync,
	}, {
		name:   "a changed spec updates the stream",
		before: genStream("changed", streamMaxAge("1h")),
		evs:    genStream("changed", streamMaxAge("2h"), streamSeen()),
		want:   wantReady, reason: eventsv1.ReasonUpdated,
		check: func(t *testing.T, _ *eventsv1.EventStream) {
			if got := streamInfo(t, js, "CHANGED").Config.MaxAge; got != 2*time.Hour {
				t.Errorf("maxAge %v, want 2h", got)
			}
		},
	}, {
		name:   "a stream deleted out of band is created again",
		before: genStream("recreated"),
		pre: func(t *testing.T) {
			if err := js.DeleteStream(ctx, "RECREATED"); err != nil {
				t.Fatal(err)
			}
		},
		evs:  genStream("recreated", streamSeen()),
		want: wantReady, reason: eventsv1.ReasonCreated,
	}, {
		name: "an unmarked stream is not adopted without the annotation",
		pre:  func(t *testing.T) { eventstest.CreateStream(t, js, "HANDMADE", []string{"handmade.>"}) },
		evs:  genStream("handmade"),
		want: wantTerminal, reason: eventsv1.ReasonAdoptionNotAllowed,
		check: func(t *testing.T, _ *eventsv1.EventStream) {
			if md := streamInfo(t, js, "HANDMADE").Config.Metadata; md[eventsv1.OwnerMetadataKey] != "" {
				t.Errorf("the refused stream was changed: %v", md)
			}
		},
	}, {
		name: "an unmarked stream is adopted with the annotation in an allowed namespace",
		pre:  func(t *testing.T) { eventstest.CreateStream(t, js, "ADOPTED", []string{"adopted.>"}) },
		evs:  genStream("adopted", streamAdopt(), streamStorage(eventsv1.StorageMemory)),
		want: wantReady, reason: eventsv1.ReasonAdopted,
		check: func(t *testing.T, _ *eventsv1.EventStream) {
			if md := streamInfo(t, js, "ADOPTED").Config.Metadata; md[eventsv1.OwnerMetadataKey] != "default/adopted" {
				t.Errorf("the adopted stream is not marked: %v", md)
			}
		},
	}, {
		name: "an unmarked stream is not adopted in a namespace not allowed",
		pre:  func(t *testing.T) { eventstest.CreateStream(t, js, "ELSEWHERE", []string{"elsewhere.>"}) },
		evs:  genStream("elsewhere", streamAdopt(), streamNamespace("tenant")),
		want: wantTerminal, reason: eventsv1.ReasonAdoptionNotAllowed,
	}, {
		name:   "a stream owned by another resource is a conflict",
		before: genStream("taken", streamNamespace("other")),
		evs:    genStream("taken"),
		want:   wantTerminal, reason: eventsv1.ReasonConflict,
		check: func(t *testing.T, _ *eventsv1.EventStream) {
			if md := streamInfo(t, js, "TAKEN").Config.Metadata; md[eventsv1.OwnerMetadataKey] != "other/taken" {
				t.Errorf("the other resource's stream was changed: %v", md)
			}
		},
	}, {
		name:   "a change JetStream cannot make in place is refused",
		before: genStream("immutable"),
		evs:    genStream("immutable", streamStorage(eventsv1.StorageMemory), streamSeen()),
		want:   wantTerminal, reason: eventsv1.ReasonImmutableFieldChanged,
	}, {
		name: "three replicas on a single server is an invalid spec",
		evs:  genStream("replicated", streamReplicas(3)),
		want: wantTerminal, reason: eventsv1.ReasonInvalidSpec,
	}, {
		name: "more bytes than the server can store is insufficient resources",
		evs:  genStream("huge", streamMaxBytes("1Pi")),
		want: wantTerminal, reason: eventsv1.ReasonInsufficientResources,
	}, {
		name: "subjects overlapping another stream's are a conflict",
		pre:  func(t *testing.T) { eventstest.CreateStream(t, js, "FIRST", []string{"shared.>"}) },
		evs:  genStream("second", streamSubjects("shared.>")),
		want: wantTerminal, reason: eventsv1.ReasonConflict,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				if _, err := r.reconcileStream(ctx, js, tc.before); err != nil {
					t.Fatalf("before: %v", err)
				}
			}
			if tc.pre != nil {
				tc.pre(t)
			}
			evs := tc.evs
			if tc.before != nil && tc.before.Namespace == evs.Namespace {
				evs.Status.Conditions = tc.before.Status.Conditions
			}
			res, err := r.reconcileStream(ctx, js, evs)
			if got := kindOf(t, err); got != tc.want {
				t.Fatalf("outcome %s (%v), want %s", got, err, tc.want)
			}
			if err == nil && res.reason != tc.reason {
				t.Errorf("result reason %s, want %s", res.reason, tc.reason)
			}
			summarizeStep(t, streamStatus(evs), evs.Generation, res, err)
			checkOutcome(t, evs, streamStatus(evs), tc.want, tc.reason)
			if tc.check != nil {
				tc.check(t, evs)
			}
		})
	}
}

func streamInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	info, err := events.GetStreamInfo(context.Background(), js, name)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestReconcileConnectionStep resolves the connection of each case: the
// default one up or down, and spec.connection refused, missing or bad.
func TestReconcileConnectionStep(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	c := apiClient(t)
	ctx := context.Background()
	up := stepReconciler(t, srv, c)
	down := *up
	dead, err := natsconn.Connect(natsconn.Options{URL: "nats://127.0.0.1:1", Name: "step-test-down"}, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	down.NATS = dead
	leafAllowed, anyDomain := *up, *up
	leafAllowed.Domains, anyDomain.Domains = domainPolicy{"leaf"}, domainPolicy{"*"}
	pooled := *up
	allowed, err := natsconn.ParseHostPatterns(nil)
	if err != nil {
		t.Fatal(err)
	}
	pooled.Connections = natsconn.NewPool(logr.Discard(), nil, allowed)
	t.Cleanup(pooled.Connections.Close)
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "no-url"},
		Data: map[string][]byte{"token": []byte("s3cr3t-token")}}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		r        *reconciler
		evs      *eventsv1.EventStream
		want     string
		reason   string
		contains string
	}{
		{name: "the default connection, up", r: up, evs: genStream("conn-up"), want: wantReady},
		{name: "the default connection, down", r: &down, evs: genStream("conn-down"),
			want: wantTransient, reason: eventsv1.ReasonNatsUnavailable, contains: "unreachable"},
		{name: "spec.connection with per-resource connections disabled", r: up, evs: genStream("conn-off", streamConnection("any")),
			want: wantTerminal, reason: eventsv1.ReasonConnectionNotAllowed, contains: "--allow-resource-connections=false"},
		{name: "spec.connection naming a missing Secret", r: &pooled, evs: genStream("conn-missing", streamConnection("missing")),
			want: wantTerminal, reason: eventsv1.ReasonInvalidSpec, contains: `spec.connection.secretRef: Secret "missing" not found`},
		{name: "spec.connection naming a Secret without url", r: &pooled, evs: genStream("conn-bad", streamConnection("no-url")),
			want: wantTerminal, reason: eventsv1.ReasonInvalidSpec, contains: "url"},
		{name: "spec.domain on the default connection without --jetstream-domains", r: up, evs: genStream("domain-off", streamDomain("leaf")),
			want: wantTerminal, reason: eventsv1.ReasonConnectionNotAllowed, contains: `spec.domain "leaf" is not a JetStream domain this operator may use on its own NATS connection (--jetstream-domains: none)`},
		{name: "spec.domain that --jetstream-domains does not list", r: &leafAllowed, evs: genStream("domain-other", streamDomain("edge")),
			want: wantTerminal, reason: eventsv1.ReasonConnectionNotAllowed, contains: "(--jetstream-domains: leaf)"},
		{name: "spec.domain that --jetstream-domains lists", r: &leafAllowed, evs: genStream("domain-leaf", streamDomain("leaf")), want: wantReady},
		{name: "any spec.domain with --jetstream-domains=*", r: &anyDomain, evs: genStream("domain-any", streamDomain("edge")), want: wantReady},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs := tc.evs
			js, err := tc.r.reconcileConnection(ctx, evs.Namespace, evs.Spec.Connection, evs.Spec.Domain, userKey("EventStream", evs))
			if got := kindOf(t, err); got != tc.want {
				t.Fatalf("outcome %s (%v), want %s", got, err, tc.want)
			}
			if err == nil {
				if js == nil {
					t.Fatal("no JetStream context")
				}
				return
			}
			if !strings.Contains(err.Error(), tc.contains) || strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("message %q: want it to contain %q and no secret", err, tc.contains)
			}
			// The controller's own failures are its own error type, not
			// the library's.
			if tc.reason == eventsv1.ReasonInvalidSpec && strings.Contains(tc.contains, "not found") && errors.Is(err, events.ErrValidation) {
				t.Errorf("a missing Secret is reported as a library validation error: %v", err)
			}
			summarizeStep(t, streamStatus(evs), evs.Generation, stepResult{}, err)
			checkOutcome(t, evs, streamStatus(evs), tc.want, tc.reason)
			if (tc.want == wantTerminal) != connectionUnresolvable(err) {
				t.Errorf("connectionUnresolvable(%v) = %v", err, connectionUnresolvable(err))
			}
		})
	}
}

// TestReconcileStreamDependencyStep finds the consumer's EventStream in the
// API server in each state.
func TestReconcileStreamDependencyStep(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	c := apiClient(t)
	ctx := context.Background()
	r := &EventConsumerReconciler{reconciler: *stepReconciler(t, srv, c)}

	put := func(t *testing.T, evs *eventsv1.EventStream) {
		t.Helper()
		st := evs.Status
		evs.Generation = 0
		if err := c.Create(ctx, evs); err != nil {
			t.Fatal(err)
		}
		evs.Status = st
		if len(st.Conditions) > 0 {
			if err := c.Status().Update(ctx, evs); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		stream func(t *testing.T) string
		want   string
		msg    string
	}{
		{name: "the EventStream does not exist", stream: func(*testing.T) string { return "dep-missing" },
			want: wantWaiting, msg: `EventStream "dep-missing" does not exist`},
		{name: "the EventStream is not reconciled yet", stream: func(t *testing.T) string {
			put(t, genStream("dep-new"))
			return "dep-new"
		}, want: wantWaiting, msg: "not Ready (not reconciled yet)"},
		{name: "the EventStream failed", stream: func(t *testing.T) string {
			put(t, genStream("dep-failed", streamNotReady(eventsv1.ReasonInvalidSpec)))
			return "dep-failed"
		}, want: wantWaiting, msg: "not Ready (InvalidSpec: failed)"},
		{name: "the EventStream is being deleted", stream: func(t *testing.T) string {
			evs := genStream("dep-deleting", streamReady())
			evs.Finalizers = []string{eventsv1.Finalizer}
			put(t, evs)
			if err := c.Delete(ctx, evs); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				evs.Finalizers = nil
				_ = c.Update(ctx, evs)
			})
			return "dep-deleting"
		}, want: wantWaiting, msg: "is being deleted"},
		{name: "the EventStream is Ready", stream: func(t *testing.T) string {
			put(t, genStream("dep-ready", streamReady()))
			return "dep-ready"
		}, want: wantReady, msg: `EventStream "dep-ready" is Ready`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evc := genConsumer("c-"+tc.stream(t), "")
			evc.Spec.StreamRef.Name = strings.TrimPrefix(evc.Name, "c-")
			evs, err := r.reconcileStreamDependency(ctx, evc)
			if got := kindOf(t, err); got != tc.want {
				t.Fatalf("outcome %s (%v), want %s", got, err, tc.want)
			}
			cond := meta.FindStatusCondition(evc.Status.Conditions, eventsv1.ConditionStreamReady)
			if cond == nil || !strings.Contains(cond.Message, tc.msg) {
				t.Fatalf("StreamReady %+v, want a message containing %q", cond, tc.msg)
			}
			if (cond.Status == metav1.ConditionTrue) != (tc.want == wantReady) {
				t.Errorf("StreamReady=%s for outcome %s", cond.Status, tc.want)
			}
			if tc.want == wantReady {
				if evs == nil || evc.Status.StreamName != evs.JetStreamName() {
					t.Errorf("status.streamName %q", evc.Status.StreamName)
				}
				return
			}
			summarizeStep(t, consumerStatus(evc), evc.Generation, stepResult{}, err)
			checkOutcome(t, evc, consumerStatus(evc), tc.want, eventsv1.ReasonStreamNotReady)
		})
	}
}

// ordersFixture is an embedded JetStream with stream ORDERS (orders.>), a
// consumer reconciler on it, and the Ready EventStream "orders".
func ordersFixture(t *testing.T) (*eventstest.Server, *EventConsumerReconciler, jetstream.JetStream, *eventsv1.EventStream) {
	t.Helper()
	srv := eventstest.RunJetStream(t)
	r := &EventConsumerReconciler{reconciler: *stepReconciler(t, srv, nil)}
	js := jsOf(t, &r.reconciler)
	eventstest.CreateStream(t, js, "ORDERS", []string{"orders.>"})
	return srv, r, js, genStream("orders", streamReady())
}

// TestReconcileConsumerStep calls reconcileConsumer for each case on a
// stream of an embedded JetStream.
func TestReconcileConsumerStep(t *testing.T) {
	_, r, js, evs := ordersFixture(t)
	ctx := context.Background()

	cases := []struct {
		name   string
		before *eventsv1.EventConsumer
		pre    func(t *testing.T)
		evs    *eventsv1.EventStream
		evc    *eventsv1.EventConsumer
		want   string
		reason string
	}{
		{name: "a new consumer is created", evs: evs, evc: genConsumer("billing", "orders"),
			want: wantReady, reason: eventsv1.ReasonCreated},
		{name: "a consumer that matches is left alone", evs: evs, before: genConsumer("audit", "orders"),
			evc: genConsumer("audit", "orders", consumerSeen("ORDERS")), want: wantReady, reason: eventsv1.ReasonInSync},
		{name: "a changed spec updates the consumer", evs: evs, before: genConsumer("retry", "orders", consumerMaxDeliver(3)),
			evc: genConsumer("retry", "orders", consumerMaxDeliver(5), consumerSeen("ORDERS")), want: wantReady, reason: eventsv1.ReasonUpdated},
		{name: "an unmarked consumer is not adopted without the annotation", evs: evs, pre: func(t *testing.T) {
			if _, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "handmade"}); err != nil {
				t.Fatal(err)
			}
		}, evc: genConsumer("handmade", "orders"), want: wantTerminal, reason: eventsv1.ReasonAdoptionNotAllowed},
		{name: "a consumer whose stream is missing in JetStream waits for it", evs: genStream("gone", streamReady()),
			evc: genConsumer("orphan", "gone"), want: wantWaiting, reason: eventsv1.ReasonStreamNotReady},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				if _, err := r.reconcileConsumer(ctx, js, tc.before, tc.evs); err != nil {
					t.Fatalf("before: %v", err)
				}
				tc.evc.Status.Conditions = tc.before.Status.Conditions
			}
			if tc.pre != nil {
				tc.pre(t)
			}
			evc := tc.evc
			res, err := r.reconcileConsumer(ctx, js, evc, tc.evs)
			if got := kindOf(t, err); got != tc.want {
				t.Fatalf("outcome %s (%v), want %s", got, err, tc.want)
			}
			if err == nil {
				if res.reason != tc.reason || evc.Status.ConsumerName != evc.JetStreamName() || evc.Status.State == nil {
					t.Errorf("result %+v, status %+v", res, evc.Status)
				}
				info, err := admin.GetConsumerInfo(ctx, js, "ORDERS", evc.JetStreamName())
				if err != nil {
					t.Fatal(err)
				}
				if info.Config.Metadata[eventsv1.OwnerMetadataKey] != evc.OwnerMarker() {
					t.Errorf("consumer metadata %v", info.Config.Metadata)
				}
			}
			if tc.want == wantWaiting && !meta.IsStatusConditionFalse(evc.Status.Conditions, eventsv1.ConditionStreamReady) {
				t.Errorf("waiting for the stream without StreamReady=False: %v", evc.Status.Conditions)
			}
			summarizeStep(t, consumerStatus(evc), evc.Generation, res, err)
			checkOutcome(t, evc, consumerStatus(evc), tc.want, tc.reason)
		})
	}
}

// TestReconcileDeadLetterStorageStep checks where dead letters go.
func TestReconcileDeadLetterStorageStep(t *testing.T) {
	srv, r, js, evs := ordersFixture(t)
	ctx := context.Background()
	eventstest.CreateStream(t, js, "DLQ_EVENTS", []string{"dlq.>"})
	closed := srv.Conn(t)
	closedJS, err := jetstream.New(closed)
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()

	cases := []struct {
		name       string
		js         jetstream.JetStream
		evc        *eventsv1.EventConsumer
		want       string
		reason     string // of DeadLetterStored, and of Ready when not ready
		conditionT metav1.ConditionStatus
	}{
		{name: "no deadLetter: nothing to store", js: js, evc: genConsumer("plain", "orders"),
			want: wantReady, reason: eventsv1.ReasonNoDeadLetter, conditionT: metav1.ConditionTrue},
		{name: "the default dlq.<subject> is captured by DLQ_EVENTS", js: js, evc: genConsumer("dlq-default", "orders", consumerDeadLetter("")),
			want: wantReady, reason: eventsv1.ReasonDeadLetterStored, conditionT: metav1.ConditionTrue},
		{name: "a subject no stream captures", js: js, evc: genConsumer("dlq-lost", "orders", consumerDeadLetter("lost.letters")),
			want: wantTerminal, reason: eventsv1.ReasonDeadLetterNotStored, conditionT: metav1.ConditionFalse},
		{name: "the dead letters of a filter subject are captured", js: js,
			evc:  genConsumer("dlq-filtered", "orders", consumerDeadLetter(""), consumerFilter("orders.a")),
			want: wantReady, reason: eventsv1.ReasonDeadLetterStored, conditionT: metav1.ConditionTrue},
		{name: "NATS unreachable during the check", js: closedJS, evc: genConsumer("dlq-down", "orders", consumerDeadLetter("x.y")),
			want: wantTransient, reason: eventsv1.ReasonNatsUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evc := tc.evc
			err := r.reconcileDeadLetterStorage(ctx, tc.js, evc, evs)
			if got := kindOf(t, err); got != tc.want {
				t.Fatalf("outcome %s (%v), want %s", got, err, tc.want)
			}
			cond := meta.FindStatusCondition(evc.Status.Conditions, eventsv1.ConditionDeadLetterStored)
			if tc.want == wantTransient {
				if cond != nil {
					t.Errorf("DeadLetterStored set although the check failed: %+v", cond)
				}
			} else if cond == nil || cond.Status != tc.conditionT || cond.Reason != tc.reason {
				t.Errorf("DeadLetterStored %+v, want %s %s", cond, tc.conditionT, tc.reason)
			}
			readyReason := eventsv1.ReasonInSync
			if err != nil {
				readyReason = tc.reason
			}
			summarizeStep(t, consumerStatus(evc), evc.Generation, stepResult{reason: eventsv1.ReasonInSync, message: "in sync"}, err)
			checkOutcome(t, evc, consumerStatus(evc), tc.want, readyReason)
		})
	}
}

// TestDeadLetterCheckIsCachedUntilStreamsChange: a resync asks JetStream
// nothing while neither the spec nor the set of streams changed.
func TestDeadLetterCheckIsCachedUntilStreamsChange(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	var epoch uint64
	r := &EventConsumerReconciler{reconciler: *stepReconciler(t, srv, nil), StreamsEpoch: func() uint64 { return epoch }}
	js := jsOf(t, &r.reconciler)
	ctx := context.Background()
	evs := genStream("orders", streamReady())
	evc := genConsumer("cached", "orders", consumerDeadLetter("late.letters"))

	if err := r.reconcileDeadLetterStorage(ctx, js, evc, evs); kindOf(t, err) != wantTerminal {
		t.Fatalf("first check: %v", err)
	}
	eventstest.CreateStream(t, js, "LATE", []string{"late.>"})
	if err := r.reconcileDeadLetterStorage(ctx, js, evc, evs); kindOf(t, err) != wantTerminal {
		t.Fatalf("the cached answer was not used: %v", err)
	}
	epoch++ // the advisory of LATE's creation
	if err := r.reconcileDeadLetterStorage(ctx, js, evc, evs); err != nil {
		t.Fatalf("after the streams changed: %v", err)
	}
	if !meta.IsStatusConditionTrue(evc.Status.Conditions, eventsv1.ConditionDeadLetterStored) {
		t.Errorf("DeadLetterStored not True: %v", evc.Status.Conditions)
	}
}
