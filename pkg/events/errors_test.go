package events

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestClassifyNamesTheTrueCause(t *testing.T) {
	tests := []struct {
		name      string
		code      jetstream.ErrorCode
		status    int
		want      error
		transient bool
	}{
		// 10023 comes with status 503, like an outage; it is not one.
		{"10023 insufficient resources", 10023, 503, ErrInsufficientResources, false},
		{"10028 memory exceeded", 10028, 500, ErrInsufficientResources, false},
		{"10047 storage exceeded", 10047, 500, ErrInsufficientResources, false},
		{"another 503 is a connection problem", 10008, 503, ErrConnection, true},
		{"10052 invalid config", 10052, 500, ErrValidation, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wrap("create stream", "S", &jetstream.APIError{Code: tt.status, ErrorCode: tt.code, Description: "x"})
			if !errors.Is(err, tt.want) {
				t.Fatalf("%v does not match %v", err, tt.want)
			}
			if IsTransient(err) != tt.transient {
				t.Fatalf("IsTransient(%v) = %v, want %v", err, IsTransient(err), tt.transient)
			}
		})
	}
}

// An async publish whose ack did not come in time may have been stored or
// not: it is a timeout, worth retrying with the same message ID.
func TestAsyncAckTimeoutIsTransient(t *testing.T) {
	for _, err := range []error{
		wrap("publish", "auth.x", jetstream.ErrAsyncPublishTimeout),
		publishError("auth.x", jetstream.ErrAsyncPublishTimeout),
	} {
		if !errors.Is(err, ErrTimeout) || !IsTransient(err) || !errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			t.Fatalf("%v: want a transient ErrTimeout wrapping jetstream.ErrAsyncPublishTimeout", err)
		}
	}
}

// Invalid input is permanent: every error matching ErrValidation matches
// ErrPermanent (retrying cannot fix it), never a transient sentinel, and
// Permanent leaves it as it is.
func TestValidationErrorsArePermanent(t *testing.T) {
	verr := &ValidationError{Field: "data", Reason: "x"}
	for _, err := range []error{
		verr,
		wrap("create stream", "S", &jetstream.APIError{Code: 500, ErrorCode: codeStreamInvalidConfig}),
		wrap("create stream", "S", jetstream.ErrInvalidStreamName),
		ErrValidation,
	} {
		if !errors.Is(err, ErrValidation) || !errors.Is(err, ErrPermanent) || IsTransient(err) {
			t.Errorf("%v: want ErrValidation and ErrPermanent, not transient", err)
		}
	}
	if got := Permanent(verr); got != error(verr) {
		t.Errorf("Permanent(%v) = %v, want it unchanged", verr, got)
	}
	if ErrValidation.Error() != "events: validation failed" {
		t.Errorf("ErrValidation reads %q", ErrValidation.Error())
	}
	// The other sentinels are not validation errors.
	for _, err := range []error{ErrPermanent, ErrConnection, ErrTimeout, ErrNotFound, ErrConflict} {
		if errors.Is(err, ErrValidation) {
			t.Errorf("%v matches ErrValidation", err)
		}
	}
}

// A full reconnect buffer means the connection is down: retry later, as for
// any other outage (the publisher and Replay both rely on this).
func TestReconnectBufferFullIsAConnectionProblem(t *testing.T) {
	err := wrap("publish", "S", nats.ErrReconnectBufExceeded)
	if !errors.Is(err, ErrConnection) || !IsTransient(err) || !errors.Is(err, nats.ErrReconnectBufExceeded) {
		t.Fatalf("%v: want ErrConnection, transient, wrapping nats.ErrReconnectBufExceeded", err)
	}
}
