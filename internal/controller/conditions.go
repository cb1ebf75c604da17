package controller

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/pkg/events"
)

// statusRef points at the status fields every kind shares, so that one
// summarise serves them all.
type statusRef struct {
	conditions         *[]metav1.Condition
	observedGeneration *int64
}

// failureKind says what a step's failure means for the reconcile.
type failureKind int

const (
	// transient: retried with exponential backoff (Reconciling=True).
	transient failureKind = iota
	// waiting: waiting for something else (a dependency); not a failure,
	// the watch of that something brings the object back (Reconciling=True).
	waiting
	// terminal: only a change to the spec, to JetStream or to the operator's
	// configuration can resolve it (Stalled=True, a Warning Event, checked
	// again at the resync).
	terminal
)

// stepError is how a step fails: the Ready reason (api/v1alpha1), the
// message for status and events, and what kind of failure it is. It wraps
// the error that caused it, if any.
type stepError struct {
	reason  string
	message string
	kind    failureKind
	err     error
}

func (e *stepError) Error() string { return e.message }
func (e *stepError) Unwrap() error { return e.err }

// newStepError makes a failure the controller itself detected.
func newStepError(kind failureKind, reason, message string) *stepError {
	return &stepError{reason: reason, message: message, kind: kind}
}

// classify turns an error of the library, of JetStream or of the
// controller into a stepError (one already is returned as it is).
func classify(err error) *stepError {
	var se *stepError
	if errors.As(err, &se) {
		return se
	}
	reason, retry := failureReason(err)
	kind := terminal
	if retry {
		kind = transient
	}
	return &stepError{reason: reason, message: failureMessage(reason, err), kind: kind, err: err}
}

// stepResult is what a step that made the object match reports: the reason
// and message of Ready=True (Created, Updated, Adopted, InSync). Steps that
// only check something return the zero stepResult.
type stepResult struct {
	reason, message string
	// requeueAfter, when positive and sooner than the resync, is when the
	// object's state is known to change by itself (a consumer's pause
	// ends), so that status follows it then rather than at the resync.
	requeueAfter time.Duration
}

// setCondition sets one condition. lastTransitionTime moves (to now) only
// when the status changes (meta.SetStatusCondition), so an unchanged
// outcome leaves the conditions, and therefore the status, byte-for-byte
// the same.
func setCondition(conds *[]metav1.Condition, typ string, status metav1.ConditionStatus, generation int64, now time.Time, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
		LastTransitionTime: metav1.NewTime(now),
	})
}

// summarize writes the outcome of a reconcile's steps into Ready,
// Reconciling and Stalled, and sets status.observedGeneration when the
// outcome for this generation is known (ready, or failed terminally):
//
//   - success: Ready=True with the step's reason; Reconciling and Stalled removed;
//   - transient failure or waiting: Ready=False and Reconciling=True with the
//     reason; Stalled removed; observedGeneration left as it was;
//   - terminal failure: Ready=False and Stalled=True with the reason;
//     Reconciling removed.
//
// A reconcile that changed nothing (InSync) keeps the reason of the change
// that made the object ready (Created, Updated, Adopted), so that a steady
// state writes no status. err must be nil or a *stepError.
func summarize(st statusRef, generation int64, now time.Time, res stepResult, err *stepError) {
	conds := st.conditions
	defer func() { sortConditions(*conds) }()
	if err == nil {
		meta.RemoveStatusCondition(conds, eventsv1.ConditionReconciling)
		meta.RemoveStatusCondition(conds, eventsv1.ConditionStalled)
		*st.observedGeneration = generation
		if res.reason == eventsv1.ReasonInSync {
			if c := meta.FindStatusCondition(*conds, eventsv1.ConditionReady); c != nil &&
				c.Status == metav1.ConditionTrue && c.ObservedGeneration == generation {
				return
			}
		}
		setCondition(conds, eventsv1.ConditionReady, metav1.ConditionTrue, generation, now, res.reason, res.message)
		return
	}
	setCondition(conds, eventsv1.ConditionReady, metav1.ConditionFalse, generation, now, err.reason, err.message)
	if err.kind == terminal {
		meta.RemoveStatusCondition(conds, eventsv1.ConditionReconciling)
		setCondition(conds, eventsv1.ConditionStalled, metav1.ConditionTrue, generation, now, err.reason, err.message)
		*st.observedGeneration = generation
		return
	}
	meta.RemoveStatusCondition(conds, eventsv1.ConditionStalled)
	setCondition(conds, eventsv1.ConditionReconciling, metav1.ConditionTrue, generation, now, err.reason, err.message)
}

// sortConditions puts Ready first, then Reconciling or Stalled, then the
// kind's own conditions in the order they were first set: a stable order,
// so that an unchanged outcome writes nothing, and the summary first for
// whoever reads conditions[0].
func sortConditions(conds []metav1.Condition) {
	rank := func(c metav1.Condition) int {
		switch c.Type {
		case eventsv1.ConditionReady:
			return 0
		case eventsv1.ConditionReconciling, eventsv1.ConditionStalled:
			return 1
		}
		return 2
	}
	slices.SortStableFunc(conds, func(a, b metav1.Condition) int { return rank(a) - rank(b) })
}

// readyMessage is the Ready=True message for what a reconcile did to the
// object id.
func readyMessage(reason string, id jsID) string {
	switch reason {
	case eventsv1.ReasonCreated:
		return id.String() + " created"
	case eventsv1.ReasonUpdated:
		return id.String() + " updated to match the spec"
	case eventsv1.ReasonAdopted:
		return "existing " + id.String() + " adopted"
	}
	return id.String() + " matches the spec"
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
func failureReason(err error) (reason string, retry bool) {
	var (
		step       *stepError
		immutable  *events.ImmutableFieldError
		owner      *ownershipError
		notAllowed *connectionNotAllowedError
		apiErr     *jetstream.APIError
	)
	isAPI := errors.As(err, &apiErr)
	switch {
	case errors.As(err, &step):
		return step.reason, step.kind == transient
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
