package controller

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// Fixture builders in the style of cert-manager's test/unit/gen: a
// constructor with the defaults every test wants, and functional options
// for what a case changes. Objects are built in memory; tests that need them
// in the API server create them.

type streamOpt func(*eventsv1.EventStream)

// genStream is an EventStream in namespace "default" at generation 1, with
// subjects "<name>.>", 1 MiB maxBytes and a UID (for the owner markers).
func genStream(name string, opts ...streamOpt) *eventsv1.EventStream {
	evs := &eventsv1.EventStream{
		TypeMeta: metav1.TypeMeta{APIVersion: eventsv1.GroupVersion.String(), Kind: "EventStream"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Generation: 1,
			UID: types.UID("uid-" + name)},
		Spec: eventsv1.EventStreamSpec{Subjects: []string{name + ".>"}, MaxBytes: ptrQuantity("1Mi"),
			DeletionPolicy: eventsv1.DeletionPolicyDelete},
	}
	for _, o := range opts {
		o(evs)
	}
	return evs
}

func ptrQuantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

func streamNamespace(ns string) streamOpt { return func(s *eventsv1.EventStream) { s.Namespace = ns } }
func streamSubjects(subjects ...string) streamOpt {
	return func(s *eventsv1.EventStream) { s.Spec.Subjects = subjects }
}
func streamMaxAge(d string) streamOpt {
	return func(s *eventsv1.EventStream) { s.Spec.MaxAge = eventsv1.Duration(d) }
}
func streamMaxBytes(q string) streamOpt {
	return func(s *eventsv1.EventStream) { s.Spec.MaxBytes = ptrQuantity(q) }
}
func streamReplicas(n int32) streamOpt { return func(s *eventsv1.EventStream) { s.Spec.Replicas = n } }
func streamStorage(st eventsv1.StorageType) streamOpt {
	return func(s *eventsv1.EventStream) { s.Spec.Storage = st }
}
func streamAdopt() streamOpt {
	return func(s *eventsv1.EventStream) {
		s.Annotations = map[string]string{eventsv1.AdoptAnnotation: "true"}
	}
}
func streamConnection(secret string) streamOpt {
	return func(s *eventsv1.EventStream) {
		s.Spec.Connection = &eventsv1.ConnectionSpec{SecretRef: eventsv1.LocalObjectReference{Name: secret}}
	}
}

// streamDomain sets spec.domain.
func streamDomain(domain string) streamOpt {
	return func(s *eventsv1.EventStream) { s.Spec.Domain = domain }
}

// streamSeen marks the stream as seen to exist (status.streamName), as a
// reconcile that created it leaves it.
func streamSeen() streamOpt {
	return func(s *eventsv1.EventStream) { s.Status.StreamName = s.JetStreamName() }
}

// streamReady gives the EventStream the status of a Ready stream.
func streamReady() streamOpt {
	return func(s *eventsv1.EventStream) {
		s.Status.StreamName = s.JetStreamName()
		s.Status.ObservedGeneration = s.Generation
		s.Status.Conditions = []metav1.Condition{{Type: eventsv1.ConditionReady, Status: metav1.ConditionTrue,
			Reason: eventsv1.ReasonCreated, Message: "created", ObservedGeneration: s.Generation,
			LastTransitionTime: metav1.Now()}}
	}
}

// streamNotReady gives the EventStream the status of a stream that failed.
func streamNotReady(reason string) streamOpt {
	return func(s *eventsv1.EventStream) {
		s.Status.Conditions = []metav1.Condition{{Type: eventsv1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: reason, Message: "failed", ObservedGeneration: s.Generation, LastTransitionTime: metav1.Now()}}
	}
}

type consumerOpt func(*eventsv1.EventConsumer)

// genConsumer is an EventConsumer of the EventStream stream in namespace
// "default" at generation 1, with a UID.
func genConsumer(name, stream string, opts ...consumerOpt) *eventsv1.EventConsumer {
	evc := &eventsv1.EventConsumer{
		TypeMeta: metav1.TypeMeta{APIVersion: eventsv1.GroupVersion.String(), Kind: "EventConsumer"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Generation: 1,
			UID: types.UID("uid-" + name)},
		Spec: eventsv1.EventConsumerSpec{StreamRef: eventsv1.LocalObjectReference{Name: stream},
			DeletionPolicy: eventsv1.DeletionPolicyDelete},
	}
	for _, o := range opts {
		o(evc)
	}
	return evc
}

func consumerDeadLetter(subject string) consumerOpt {
	return func(c *eventsv1.EventConsumer) { c.Spec.DeadLetter = &eventsv1.DeadLetter{Subject: subject} }
}
func consumerFilter(subjects ...string) consumerOpt {
	return func(c *eventsv1.EventConsumer) { c.Spec.FilterSubjects = subjects }
}
func consumerMaxDeliver(n int32) consumerOpt {
	return func(c *eventsv1.EventConsumer) { c.Spec.MaxDeliver = n }
}

// consumerSeen marks the consumer as seen to exist on stream.
func consumerSeen(stream string) consumerOpt {
	return func(c *eventsv1.EventConsumer) {
		c.Status.StreamName, c.Status.ConsumerName = stream, c.JetStreamName()
	}
}
