package controller

import (
	"errors"
	"fmt"

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

// failureReason maps an error from the events library to a Ready reason, and
// says whether it is transient (retried with exponential backoff) or needs a
// change to the spec or to JetStream (retried at the resync interval).
func failureReason(err error) (reason string, transient bool) {
	var immutable *events.ImmutableFieldError
	var notAllowed *connectionNotAllowedError
	switch {
	case errors.As(err, &notAllowed):
		return eventsv1.ReasonConnectionNotAllowed, false
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
	}
	return eventsv1.ReasonJetStreamError, true
}

// failureMessage explains a failure for status and events.
func failureMessage(reason string, err error) string {
	switch reason {
	case eventsv1.ReasonNatsUnavailable:
		return fmt.Sprintf("NATS JetStream is unreachable, retrying with backoff: %v", err)
	case eventsv1.ReasonInsufficientResources:
		return fmt.Sprintf("JetStream has no room for this stream (lower maxBytes or raise the server's max_file_store/max_memory_store): %v", err)
	}
	return err.Error()
}
