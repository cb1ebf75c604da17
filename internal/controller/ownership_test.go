package controller

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
)

func TestClaim(t *testing.T) {
	owned := func(by string) map[string]string { return map[string]string{eventsv1.OwnerMetadataKey: by} }
	released := func(by string) map[string]string { return map[string]string{eventsv1.ReleasedByMetadataKey: by} }
	adopt := map[string]string{eventsv1.AdoptAnnotation: "true"}
	policy := adoptPolicy{"platform"}
	tests := []struct {
		name        string
		policy      adoptPolicy
		namespace   string
		annotations map[string]string
		md          map[string]string
		adopting    bool
		reason      string // "" when claimed
		mentions    string // the message names this
	}{
		{name: "its own object is managed", namespace: "team-a", md: owned("team-a/orders")},
		{name: "an object owned by the same name in another namespace is a conflict",
			namespace: "team-b", md: owned("team-a/orders"), reason: eventsv1.ReasonConflict, mentions: "owned by team-a/orders"},
		{name: "an object owned by another resource is a conflict even when adoption is asked and allowed",
			policy: adoptPolicy{"*"}, namespace: "team-a", annotations: adopt, md: owned("team-a/other"), reason: eventsv1.ReasonConflict, mentions: "team-a/other"},
		{name: "an object it released itself is taken back without the annotation",
			namespace: "team-a", md: released("team-a/orders"), adopting: true},
		{name: "an object released from another namespace is never taken over",
			policy: adoptPolicy{"*"}, namespace: "team-b", annotations: adopt, md: released("team-a/orders"), reason: eventsv1.ReasonConflict, mentions: "released by team-a/orders"},
		{name: "an object released by another resource of the same namespace is not taken over either",
			policy: adoptPolicy{"*"}, namespace: "team-a", annotations: adopt, md: released("team-a/old-orders"), reason: eventsv1.ReasonConflict, mentions: eventsv1.ReleasedByMetadataKey},
		{name: "an unmarked object without the annotation is not adopted",
			policy: policy, namespace: "platform", md: map[string]string{"team": "x"}, reason: eventsv1.ReasonAdoptionNotAllowed, mentions: eventsv1.AdoptAnnotation},
		{name: "an unmarked object with the annotation in a namespace not allowed is not adopted",
			policy: policy, namespace: "team-a", annotations: adopt, md: nil, reason: eventsv1.ReasonAdoptionNotAllowed, mentions: "--adopt-namespaces: platform"},
		{name: "an unmarked object with the annotation in an allowed namespace is adopted",
			policy: policy, namespace: "platform", annotations: adopt, md: nil, adopting: true},
		{name: "the annotation must say true",
			policy: policy, namespace: "platform", annotations: map[string]string{eventsv1.AdoptAnnotation: "yes"}, reason: eventsv1.ReasonAdoptionNotAllowed},
		{name: "* allows every namespace",
			policy: adoptPolicy{"*"}, namespace: "anything", annotations: adopt, adopting: true},
		{name: "no policy allows no namespace",
			namespace: "platform", annotations: adopt, reason: eventsv1.ReasonAdoptionNotAllowed, mentions: "--adopt-namespaces: none"},
		{name: "the operator's own capture stream is a conflict",
			policy: adoptPolicy{"*"}, namespace: "team-a", annotations: adopt, md: owned("eventstream-operator"), reason: eventsv1.ReasonConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClaimant("EventStream", tt.namespace, "orders", tt.annotations)
			adopting, err := tt.policy.claim(c, "stream ORDERS", tt.md)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("claim: %v", err)
				}
				if adopting != tt.adopting {
					t.Fatalf("adopting = %v, want %v", adopting, tt.adopting)
				}
				return
			}
			if err == nil {
				t.Fatalf("claim succeeded (adopting=%v), want %s", adopting, tt.reason)
			}
			reason, transient := failureReason(err)
			if reason != tt.reason || transient {
				t.Fatalf("failureReason = %s (transient %v), want %s (terminal)", reason, transient, tt.reason)
			}
			if !strings.Contains(err.Error(), "stream ORDERS") || !strings.Contains(err.Error(), tt.mentions) {
				t.Fatalf("message %q should name the object and %q", err.Error(), tt.mentions)
			}
		})
	}
}

func TestFailureReason(t *testing.T) {
	api := func(code jetstream.ErrorCode, status int) error {
		// As the library returns it: an OpError wrapping nats.go's APIError.
		return fmt.Errorf("create stream: %w", &jetstream.APIError{Code: status, ErrorCode: code, Description: "from the server"})
	}
	tests := []struct {
		name      string
		err       error
		reason    string
		transient bool
	}{
		{"10023 insufficient resources (status 503) is not an outage", api(10023, 503), eventsv1.ReasonInsufficientResources, false},
		{"10047 storage exceeded", api(10047, 500), eventsv1.ReasonInsufficientResources, false},
		{"10028 memory exceeded", api(10028, 500), eventsv1.ReasonInsufficientResources, false},
		{"10002 account resources exceeded", api(10002, 400), eventsv1.ReasonAccountLimitExceeded, false},
		{"10026 max consumers", api(10026, 400), eventsv1.ReasonAccountLimitExceeded, false},
		{"10027 max streams", api(10027, 400), eventsv1.ReasonAccountLimitExceeded, false},
		{"10120 no tiered limit", api(10120, 400), eventsv1.ReasonAccountLimitExceeded, false},
		{"10122 max stream bytes", api(10122, 400), eventsv1.ReasonAccountLimitExceeded, false},
		{"10074 replicas without clustering", api(10074, 500), eventsv1.ReasonInvalidSpec, false},
		{"10052 invalid config", api(10052, 500), eventsv1.ReasonInvalidSpec, false},
		{"another 400 refusal of the request", api(10084, 400), eventsv1.ReasonInvalidSpec, false},
		{"another server error is retried", api(10049, 500), eventsv1.ReasonJetStreamError, true},
		{"no connection", &events.OpError{Op: "connect", Kind: events.ErrConnection, Err: errors.New("not connected")}, eventsv1.ReasonNatsUnavailable, true},
		{"a timeout", &events.OpError{Op: "stream info", Kind: events.ErrTimeout, Err: errors.New("deadline")}, eventsv1.ReasonNatsUnavailable, true},
		{"an immutable field", &events.ImmutableFieldError{Kind: "stream", Name: "X", Field: "storage"}, eventsv1.ReasonImmutableFieldChanged, false},
		{"subjects overlapping another stream", &events.OpError{Op: "create stream", Kind: events.ErrConflict, Err: errors.New("overlap")}, eventsv1.ReasonConflict, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, transient := failureReason(tt.err)
			if reason != tt.reason || transient != tt.transient {
				t.Fatalf("failureReason = %s, transient %v; want %s, %v", reason, transient, tt.reason, tt.transient)
			}
		})
	}
}
