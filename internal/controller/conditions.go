package controller

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
)

// setReady sets the Ready condition. lastTransitionTime moves only when the
// status changes (meta.SetStatusCondition), so an unchanged outcome leaves the
// conditions, and therefore the status, byte-for-byte the same.
func setReady(conds *[]metav1.Condition, generation int64, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               eventsv1.ConditionReady,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
	})
}

// setReadyTrue marks the object ready. A reconcile that changed nothing
// (reason InSync) keeps the reason of the change that made it ready (Created,
// Updated, Adopted) so that a steady state writes no status.
func setReadyTrue(conds *[]metav1.Condition, generation int64, reason, message string) {
	if reason == eventsv1.ReasonInSync {
		if c := meta.FindStatusCondition(*conds, eventsv1.ConditionReady); c != nil &&
			c.Status == metav1.ConditionTrue && c.ObservedGeneration == generation {
			return
		}
	}
	setReady(conds, generation, metav1.ConditionTrue, reason, message)
}

// JetStream API error codes (nats-server's errors.json) whose true cause a
// Ready reason names.
var (
	// No room: storage (10047) or memory (10028) reservations beyond the
	// server's or account's limit; no servers with the resources (10023).
	insufficientResourcesCodes = map[jetstream.ErrorCode]bool{10023: true, 10028: true, 10047: true}
	// The account's JetStream limits: resources (10002), max consumers
	// (10026), max streams (10027), no limit for the replica tier (10120),
	// max stream bytes (10122).
	accountLimitCodes = map[jetstream.ErrorCode]bool{10002: true, 10026: true, 10027: true, 10120: true, 10122: true}
	// Refusals of the configuration that JetStream answers with a server
	// error status: replicas > 1 without clustering (10074), invalid config
	// (10052). Every other refusal with status 400 is one too.
	invalidConfigCodes = map[jetstream.ErrorCode]bool{10052: true, 10074: true}
)

// failureReason maps an error to a Ready reason, and says whether it is
// transient (retried with exponential backoff) or needs a change to the spec,
// to JetStream or to the operator's configuration (terminal: a Warning Event,
// and retried only at the resync interval).
func failureReason(err error) (reason string, transient bool) {
	var (
		immutable  *events.ImmutableFieldError
		owner      *ownershipError
		notAllowed *connectionNotAllowedError
		apiErr     *jetstream.APIError
	)
	isAPI := errors.As(err, &apiErr)
	switch {
	case errors.As(err, &owner):
		return owner.reason, false
	case errors.As(err, &notAllowed):
		return eventsv1.ReasonConnectionNotAllowed, false
	case isAPI && insufficientResourcesCodes[apiErr.ErrorCode]:
		return eventsv1.ReasonInsufficientResources, false
	case isAPI && accountLimitCodes[apiErr.ErrorCode]:
		return eventsv1.ReasonAccountLimitExceeded, false
	case isAPI && invalidConfigCodes[apiErr.ErrorCode]:
		return eventsv1.ReasonInvalidSpec, false
	case errors.Is(err, events.ErrConnection), errors.Is(err, events.ErrTimeout):
		return eventsv1.ReasonNatsUnavailable, true
	case errors.As(err, &immutable):
		return eventsv1.ReasonImmutableFieldChanged, false
	case errors.Is(err, events.ErrValidation):
		return eventsv1.ReasonInvalidSpec, false
	case errors.Is(err, events.ErrConflict):
		return eventsv1.ReasonConflict, false
	case errors.Is(err, events.ErrInsufficientResources):
		return eventsv1.ReasonInsufficientResources, false
	case isAPI && apiErr.Code == 400:
		return eventsv1.ReasonInvalidSpec, false
	}
	return eventsv1.ReasonJetStreamError, true
}

// failureMessage explains a failure for status and events.
func failureMessage(reason string, err error) string {
	switch reason {
	case eventsv1.ReasonNatsUnavailable:
		return fmt.Sprintf("NATS JetStream is unreachable, retrying with backoff: %v", err)
	case eventsv1.ReasonInsufficientResources:
		return fmt.Sprintf("JetStream has no room for this stream (lower maxBytes or raise the server's max_file_store/max_memory_store or the account's storage limit): %v", err)
	case eventsv1.ReasonAccountLimitExceeded:
		return fmt.Sprintf("the NATS account's JetStream limits refuse this (max streams, max consumers, max bytes or storage): raise the account's limits or remove objects it no longer needs: %v", err)
	}
	return err.Error()
}
