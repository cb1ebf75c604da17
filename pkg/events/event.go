package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// SchemaVersionDefault is the schema version NewEvent stamps on an event: the
// version of the event's data layout, which consumers can branch on when a
// producer changes what Data holds.
const SchemaVersionDefault = "1.0"

// MaxExtensionNameLength is the longest extension attribute name the
// CloudEvents specification allows.
const MaxExtensionNameLength = 20

// Event is one CloudEvents 1.0 event as the platform uses it. ID, Type,
// Source, OrganizationID, Timestamp and SchemaVersion are required; Data is
// the JSON object carried as the event's data.
type Event struct {
	// ID is a UUID; it is also the NATS message ID, so that a retried publish
	// is stored once.
	ID string
	// Type follows the subject convention without the service prefix where
	// useful, e.g. "user.created".
	Type string
	// Source names the producer, e.g. "auth-service".
	Source string
	// OrganizationID is the tenant the event belongs to.
	OrganizationID string
	// Timestamp is when the event happened, in UTC. It comes from the caller
	// (usually a Clock) so tests and replays control it.
	Timestamp time.Time
	// SchemaVersion is the version of Data's layout, "major.minor".
	SchemaVersion string
	// Data is the payload; it must be serialisable as JSON.
	Data map[string]any

	// Subject is the optional CloudEvents subject (what the event is about
	// inside the source, e.g. a user ID). It is unrelated to the NATS subject.
	Subject string
	// DataSchema is an optional URI of the schema Data follows.
	DataSchema string
	// Extensions are further CloudEvents attributes: names are lower-case
	// alphanumerics of at most 20 characters.
	Extensions map[string]string
}

// Clock tells the time. Services inject one so that the timestamps of the
// events they create are under test control; this package never reads the
// system clock for an event behind the caller's back.
type Clock interface {
	Now() time.Time
}

// SystemClock is the Clock services use in production.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// ClockFunc adapts a function to a Clock (handy for a fixed time in tests).
type ClockFunc func() time.Time

// Now calls f.
func (f ClockFunc) Now() time.Time { return f() }

// NewEvent returns a valid event with a new UUID v4 ID, schema version
// SchemaVersionDefault and timestamp converted to UTC. The time comes from the
// caller so that it can come from an injected Clock. The error is a
// *ValidationError naming the first invalid field.
func NewEvent(eventType, source, organizationID string, timestamp time.Time, data map[string]any) (*Event, error) {
	id, err := uuid.NewRandom()
	if err != nil {
		return nil, &ValidationError{Field: "id", Reason: "cannot generate a UUID: " + err.Error()}
	}
	e := &Event{
		ID:             id.String(),
		Type:           eventType,
		Source:         source,
		OrganizationID: organizationID,
		Timestamp:      timestamp.UTC(),
		SchemaVersion:  SchemaVersionDefault,
		Data:           data,
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// Validate checks every field and returns a *ValidationError naming the
// first invalid one (errors.Is(err, ErrValidation) holds). It also checks
// that Data can be encoded as JSON. The publisher checks, in addition, that
// the encoded event fits the connection's maximum payload.
func (e *Event) Validate() error {
	if err := e.validateAttributes(); err != nil {
		return err
	}
	if e.Data != nil {
		if _, err := json.Marshal(e.Data); err != nil {
			return &ValidationError{Field: "data", Reason: "not serialisable as JSON: " + err.Error()}
		}
	}
	return nil
}

// validateAttributes checks everything but Data's JSON encoding, which the
// codec does once while encoding, so the hot path marshals Data only once.
func (e *Event) validateAttributes() error {
	if e == nil {
		return &ValidationError{Field: "event", Reason: "is nil"}
	}
	invalid := func(field, reason string) error { return &ValidationError{Field: field, Reason: reason} }
	switch {
	case e.ID == "":
		return invalid("id", "must not be empty")
	case !isUUID(e.ID):
		return invalid("id", fmt.Sprintf("%q is not a UUID", e.ID))
	case e.Type == "":
		return invalid("type", "must not be empty")
	case e.Source == "":
		return invalid("source", "must not be empty")
	case e.OrganizationID == "":
		return invalid("organizationid", "must not be empty")
	case e.Timestamp.IsZero():
		return invalid("timestamp", "must be set")
	case e.SchemaVersion == "":
		return invalid("schemaversion", "must not be empty")
	case !isMajorMinor(e.SchemaVersion):
		return invalid("schemaversion", fmt.Sprintf("%q is not major.minor, e.g. \"1.0\"", e.SchemaVersion))
	}
	for name := range e.Extensions {
		if err := validateExtensionName(name); err != nil {
			return err
		}
	}
	return nil
}

func isUUID(s string) bool {
	if len(s) != 36 { // the canonical 8-4-4-4-12 form only
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// isMajorMinor reports whether s is "<digits>.<digits>".
func isMajorMinor(s string) bool {
	major, minor, ok := strings.Cut(s, ".")
	return ok && isDigits(major) && isDigits(minor)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// reservedAttributes are the context attribute names an extension cannot take:
// the CloudEvents core attributes and the platform's own.
var reservedAttributes = map[string]bool{
	"specversion": true, "id": true, "type": true, "source": true, "time": true,
	"datacontenttype": true, "dataschema": true, "subject": true, "data": true,
	"organizationid": true, "schemaversion": true,
}

func validateExtensionName(name string) error {
	field := "extensions[" + name + "]"
	if name == "" {
		return &ValidationError{Field: "extensions", Reason: "an extension name must not be empty"}
	}
	if len(name) > MaxExtensionNameLength {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("name is longer than %d characters", MaxExtensionNameLength)}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return &ValidationError{Field: field, Reason: "name must be lower-case letters and digits only"}
		}
	}
	if reservedAttributes[name] {
		return &ValidationError{Field: field, Reason: "name is a reserved attribute"}
	}
	return nil
}

// SubjectFor returns the NATS subject of an event type under the seed's
// {service}.{type} convention: the service, a dot, then the type as it is.
// Every event of a service matches "{service}.>", and every event of an
// entity "{service}.{entity}.>":
//
//	SubjectFor("auth", "user.created")         == "auth.user.created"
//	SubjectFor("auth", "user.login.succeeded") == "auth.user.login.succeeded"
func SubjectFor(service, eventType string) string {
	return service + "." + eventType
}
