package events

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Sentinel errors. Every error this package returns for a condition a caller
// must branch on matches one of them with errors.Is; the concrete types below
// carry the details and are reached with errors.As.
var (
	// ErrValidation: the input (an event, its data, a stream configuration)
	// is invalid. It is never retried: retrying cannot fix invalid input, so
	// every error that matches ErrValidation matches ErrPermanent too (a
	// handler that returns DataAs's error has its event dead-lettered at
	// once). See ValidationError.
	ErrValidation error = &impliedError{msg: "events: validation failed", implies: ErrPermanent}
	// ErrConnection: NATS or JetStream could not be reached (no connection, no
	// responders, connection closed). Usually transient.
	ErrConnection = errors.New("events: connection failed")
	// ErrPublish: JetStream refused or failed to store a published message.
	ErrPublish = errors.New("events: publish failed")
	// ErrTimeout: an operation did not finish in time: a deadline passed or
	// its context ended.
	ErrTimeout = errors.New("events: timed out")
	// ErrNotFound: the stream or consumer does not exist.
	ErrNotFound = errors.New("events: not found")
	// ErrImmutableField: JetStream cannot apply a change in place. See
	// ImmutableFieldError.
	ErrImmutableField = errors.New("events: field cannot be changed")
	// ErrPermanent: an error that retrying cannot fix. Handlers return
	// Permanent(err), or any error matching ErrValidation, to dead-letter an
	// event at once.
	ErrPermanent = errors.New("events: permanent failure")
	// ErrInsufficientResources: JetStream has no room for the stream (for
	// example its max bytes exceed the server's or account's storage or
	// memory limit; JetStream API errors 10047, 10028 and 10023).
	ErrInsufficientResources = errors.New("events: insufficient JetStream resources")
	// ErrConflict: the request clashes with something that exists already
	// (another stream with the same subjects, a name in use with another
	// configuration).
	ErrConflict = errors.New("events: conflict")
	// ErrClosed: the publisher or subscription has been closed or stopped
	// and accepts no more work.
	ErrClosed = errors.New("events: closed")
	// ErrExists: a stream or consumer of that name exists already with
	// another configuration. It matches ErrConflict too.
	ErrExists = fmt.Errorf("%w: already exists", ErrConflict)
)

// impliedError is a sentinel that also matches another one.
type impliedError struct {
	msg     string
	implies error
}

func (e *impliedError) Error() string { return e.msg }

// Is reports the sentinel it implies.
func (e *impliedError) Is(target error) bool { return target == e.implies }

// ValidationError names the field that is invalid and why. It matches
// ErrValidation and, as every invalid input, ErrPermanent.
type ValidationError struct {
	Field  string
	Reason string
	// Pointer is, for data that fails its schema (Field "data"), the JSON
	// pointer (RFC 6901) of the offending value inside the data, as the
	// schema validator reports it: "/user_id", or "" for the data as a
	// whole (a missing required property is reported at the object that
	// lacks it).
	Pointer string
}

func (e *ValidationError) Error() string {
	if e.Pointer != "" {
		return fmt.Sprintf("events: invalid %s: at %s: %s", e.Field, e.Pointer, e.Reason)
	}
	return fmt.Sprintf("events: invalid %s: %s", e.Field, e.Reason)
}

// Is reports ErrValidation and ErrPermanent.
func (e *ValidationError) Is(target error) bool {
	return target == ErrValidation || target == ErrPermanent
}

// ImmutableFieldError says that a field of a stream (or consumer) cannot be
// changed in place; the object must be recreated to change it.
type ImmutableFieldError struct {
	// Kind is "stream" or "consumer".
	Kind string
	// Name of the stream or consumer.
	Name string
	// Field is the name of the field in this package's configuration types
	// (for example "storage"); empty when JetStream refused without saying.
	Field string
	// Reason is a human-readable explanation, JetStream's own when it gave one.
	Reason string
}

func (e *ImmutableFieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("events: %s %q cannot be updated in place: %s", e.Kind, e.Name, e.Reason)
	}
	return fmt.Sprintf("events: %s %q: field %s cannot be changed in place: %s", e.Kind, e.Name, e.Field, e.Reason)
}

// Is reports ErrImmutableField.
func (e *ImmutableFieldError) Is(target error) bool { return target == ErrImmutableField }

// OpError is returned by operations that talk to NATS: it names the operation
// and the object, and matches both the sentinel that classifies the failure
// (ErrConnection, ErrNotFound, ...) and the underlying error, so that
// errors.As(err, new(*jetstream.APIError)) still works.
type OpError struct {
	Op   string // "create stream", "publish", ...
	Name string // stream, consumer or subject
	Kind error  // one of the sentinels above
	Err  error  // the underlying error
}

func (e *OpError) Error() string {
	if e.Name == "" {
		return fmt.Sprintf("events: %s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("events: %s %q: %v", e.Op, e.Name, e.Err)
}

// Unwrap returns the classifying sentinel and the underlying error.
func (e *OpError) Unwrap() []error { return []error{e.Kind, e.Err} }

// JetStream API error codes this package interprets.
const (
	codeInsufficientResources = 10023 // JSInsufficientResourcesErr (status 503, not a connection problem)
	codeMemoryExceeded        = 10028 // JSMemoryResourcesExceededErr
	codeStorageExceeded       = 10047 // JSStorageResourcesExceededErr
	codeStreamInvalidConfig   = 10052 // JSStreamInvalidConfigF
	codeStreamStoreFailed     = 10049 // JSStreamCreateErrF with "error creating store for stream"
	codeStreamNameInUse       = 10058 // JSStreamNameExistErr
	codeStreamSubjectOverlap  = 10065 // JSStreamSubjectOverlapErr
	codeStreamNotFound        = 10059 // JSStreamNotFoundErr
	codeStreamUpdate          = 10069 // JSStreamUpdateErrF
	codeConsumerNotFound      = 10014 // JSConsumerNotFoundErr
)

// classify maps an error from nats.go to the sentinel that describes it.
func classify(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrValidation), errors.Is(err, ErrImmutableField):
		return nil // already typed
	case errors.Is(err, jetstream.ErrInvalidStreamName), errors.Is(err, jetstream.ErrInvalidSubject),
		errors.Is(err, jetstream.ErrInvalidConsumerName):
		return ErrValidation
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrConsumerNotFound):
		return ErrNotFound
	case errors.Is(err, jetstream.ErrStreamNameAlreadyInUse), errors.Is(err, jetstream.ErrConsumerExists):
		return ErrExists
	case errors.As(err, &apiErr):
		switch apiErr.ErrorCode {
		case codeStreamNotFound, codeConsumerNotFound:
			return ErrNotFound
		case codeInsufficientResources, codeMemoryExceeded, codeStorageExceeded:
			return ErrInsufficientResources
		case codeStreamNameInUse:
			return ErrExists
		case codeStreamSubjectOverlap:
			return ErrConflict
		case codeStreamInvalidConfig:
			return ErrValidation
		}
		if apiErr.Code == 503 {
			return ErrConnection
		}
		return ErrPermanent
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, os.ErrDeadlineExceeded),
		// An async publish whose ack did not come within the ack timeout:
		// the server may be stalled, or may have stored the message and
		// the ack is late. Either way the outcome is unknown and a retry
		// with the same Nats-Msg-Id is safe (stored once).
		errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		return ErrTimeout
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrConnectionReconnecting),
		// The reconnect buffer is full: the connection is down and nothing
		// more can be queued until it is back.
		errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrNoServers), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, jetstream.ErrConnectionClosed), errors.Is(err, jetstream.ErrServerShutdown):
		return ErrConnection
	case errors.Is(err, context.Canceled):
		return ErrTimeout
	}
	return ErrPermanent
}

// wrap returns err as an *OpError classified by classify, or err itself when
// it is nil or already typed by this package.
func wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	kind := classify(err)
	if kind == nil {
		return err
	}
	return &OpError{Op: op, Name: name, Kind: kind, Err: err}
}

// IsTransient reports whether retrying the operation that returned err may
// succeed: connection problems and timeouts are transient; validation,
// immutable-field, not-found, conflict and permanent errors are not.
func IsTransient(err error) bool {
	return errors.Is(err, ErrConnection) || errors.Is(err, ErrTimeout)
}
