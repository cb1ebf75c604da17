package events

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"mime"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// SchemaVersionDefault is the schema version NewEvent stamps on an event: the
// version of the event's data layout, which consumers can branch on when a
// producer changes what Data holds.
const SchemaVersionDefault = "1.0"

// MaxExtensionNameLength is the longest extension attribute name the
// publisher accepts (the CloudEvents specification says names SHOULD NOT be
// longer; Decode accepts longer ones).
const MaxExtensionNameLength = 20

// Event is one CloudEvents 1.0 event as the platform uses it. When
// publishing, ID (a UUID), Type, Source, OrganizationID, Timestamp and
// SchemaVersion are required (Validate); an event received from another
// CloudEvents producer needs only ID, Type and Source (see Decode).
type Event struct {
	// ID is a UUID for the events this platform publishes (any non-empty
	// string in a received event); it is also the NATS message ID, so that
	// a retried publish is stored once.
	ID string
	// Type is the event type, e.g. "user.created".
	Type string
	// Source names the producer, e.g. "auth-service".
	Source string
	// OrganizationID is the tenant the event belongs to (the
	// "organizationid" extension attribute; "" when a received event has
	// none).
	OrganizationID string
	// Timestamp is when the event happened, in UTC. It comes from the caller
	// (usually a Clock) so tests and replays control it. It is the zero
	// time when a received event carried no time (optional in CloudEvents).
	Timestamp time.Time
	// SchemaVersion is the version of Data's layout, "major.minor" ("" when
	// a received event carried none; Decode does not default it).
	SchemaVersion string
	// DataContentType is the media type of Data; "" means application/json.
	// Decode sets it from the event's datacontenttype.
	DataContentType string
	// Data is the encoded data: JSON for a JSON content type (what NewEvent
	// and SetData write), the raw bytes otherwise; nil means no data. Read it
	// with DataAs, DataMap or a Typed handler. The publisher sends it as it
	// is, so do not modify its bytes while a publish of the event is pending.
	Data json.RawMessage

	// Subject is the optional CloudEvents subject (what the event is about
	// inside the source, e.g. a user ID). It is unrelated to the NATS subject.
	Subject string
	// DataSchema is an optional URI of the schema Data follows.
	DataSchema string
	// Extensions are further CloudEvents attributes: names are lower-case
	// alphanumerics (at most 20 characters when publishing).
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
// SchemaVersionDefault, timestamp converted to UTC, and data encoded once with
// encoding/json: any JSON-serialisable value works (a map[string]interface{},
// a struct, a json.RawMessage); nil (or a value that encodes as JSON null)
// means no data. The time comes from the caller so that it can come from an
// injected Clock. The error is a *ValidationError naming the first invalid
// field ("data" when data cannot be encoded).
func NewEvent(eventType, source, organizationID string, timestamp time.Time, data any) (*Event, error) {
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
	}
	if err := e.SetData(data); err != nil {
		return nil, err
	}
	if err := e.validateAttributes(); err != nil {
		return nil, err
	}
	return e, nil
}

// SetData replaces Data with v encoded by encoding/json (nil, or a value
// that encodes as JSON null: no data) and sets DataContentType to "" (JSON).
// On error (a *ValidationError for field "data") e is unchanged.
func (e *Event) SetData(v any) error {
	b, err := marshalData(v)
	if err != nil {
		return err
	}
	e.Data, e.DataContentType = b, ""
	return nil
}

func marshalData(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	d := dataEncoders.Get().(*dataEncoder)
	defer d.release()
	// Encode writes what json.Marshal returns, and a newline.
	if err := d.enc.Encode(v); err != nil {
		return nil, &ValidationError{Field: "data", Reason: "not serialisable as JSON: " + err.Error()}
	}
	b := d.buf.Bytes()
	b = b[:len(b)-1]
	if string(b) == "null" {
		return nil, nil
	}
	return seal(b), nil
}

// dataEncoder is a reusable encoding/json encoder for marshalData.
type dataEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var dataEncoders = sync.Pool{New: func() any {
	d := &dataEncoder{}
	d.enc = json.NewEncoder(&d.buf)
	return d
}}

func (d *dataEncoder) release() {
	if d.buf.Cap() > maxPooledBody {
		return
	}
	d.buf.Reset()
	dataEncoders.Put(d)
}

// Data that marshalData produced is valid JSON by construction, and
// Validate (every publish) need not scan it again with json.Valid, which
// costs about as much as the publisher's whole encoding. marshalData
// returns a copy whose capacity holds, right after its last byte, a seal: a
// 64-bit hash of its bytes keyed with a random per-process seed. The seal is
// not part of the event: no field, nothing reflect.DeepEqual, json.Marshal
// or a copy of the Event sees (a slice's capacity is not compared). Data
// whose bytes, length or backing array changed since — anything but the
// exact bytes marshalData wrote — no longer matches its seal (but for a 2^-64
// chance) and is validated as before.
const sealLen = 8

var sealSeed = maphash.MakeSeed()

// seal returns a copy of b, sealed.
func seal(b []byte) json.RawMessage {
	out := make([]byte, len(b), len(b)+sealLen)
	copy(out, b)
	binary.LittleEndian.PutUint64(out[len(b):len(b)+sealLen], maphash.Bytes(sealSeed, b))
	return out
}

// sealed reports whether data is what marshalData wrote, unchanged.
func sealed(data []byte) bool {
	if cap(data)-len(data) < sealLen || len(data) == 0 {
		return false
	}
	tag := data[len(data) : len(data)+sealLen]
	return binary.LittleEndian.Uint64(tag) == maphash.Bytes(sealSeed, data)
}

// DataAs decodes e's data into a T with encoding/json: a struct (whose int64
// fields keep every digit), a map, a slice... Fields of Data that T does not
// have are ignored, so producers can add fields. The error is a
// *ValidationError, which is permanent (a handler returning it dead-letters
// the event at once): field "data" when there is no data, it is not valid
// JSON (Decode does not check) or it does not decode into T, field
// "datacontenttype" when the content type is not JSON.
func DataAs[T any](e *Event) (T, error) {
	var v T
	if err := e.decodeData(&v, false); err != nil {
		return v, err
	}
	return v, nil
}

// DataMap decodes e's data as a JSON object, for consumers without a type for
// it. Numbers are json.Number, so that no integer is rounded through float64
// (n.Int64(), n.Float64() or n.String() read them). Errors as DataAs; a
// JSON value that is not an object is an error for field "data".
func (e *Event) DataMap() (map[string]any, error) {
	var m map[string]any
	if err := e.decodeData(&m, true); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, &ValidationError{Field: "data", Reason: "is JSON null, not an object"}
	}
	return m, nil
}

func (e *Event) decodeData(dst any, useNumber bool) error {
	if e == nil {
		return &ValidationError{Field: "event", Reason: "is nil"}
	}
	if !isJSONContentType(e.DataContentType) {
		return &ValidationError{Field: "datacontenttype", Reason: fmt.Sprintf("%q is not a JSON content type; read Data as bytes", e.DataContentType)}
	}
	if len(e.Data) == 0 {
		return &ValidationError{Field: "data", Reason: "the event has no data"}
	}
	if !useNumber {
		// json.Unmarshal reads Data in place (a Decoder copies it into its
		// buffer first) and refuses trailing data itself: DataAs is every
		// typed consumer's hot path.
		if err := json.Unmarshal(e.Data, dst); err != nil {
			return &ValidationError{Field: "data", Reason: fmt.Sprintf("does not decode into %T: %v", dst, err)}
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(e.Data))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return &ValidationError{Field: "data", Reason: fmt.Sprintf("does not decode into %T: %v", dst, err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &ValidationError{Field: "data", Reason: "has data after the JSON value"}
	}
	return nil
}

// Validate checks the platform's rules for an event it publishes and returns
// a *ValidationError naming the first invalid field (errors.Is(err,
// ErrValidation) holds): a UUID id, type, source, organizationid, a
// timestamp, a "major.minor" schemaversion, a valid datacontenttype, Data
// that is valid JSON for a JSON content type, and extension names. The
// publisher checks, in addition, that the encoded event fits the
// connection's maximum payload. Decode applies only the CloudEvents rules;
// a subscriber applies Validate to what it receives only with
// SubscriberConfig.StrictValidation.
func (e *Event) Validate() error {
	if err := e.validateAttributes(); err != nil {
		return err
	}
	return e.validateData()
}

// validateData checks the content type and that JSON data is valid JSON.
func (e *Event) validateData() error {
	if e.DataContentType != "" {
		if _, _, err := mime.ParseMediaType(e.DataContentType); err != nil {
			return &ValidationError{Field: "datacontenttype", Reason: fmt.Sprintf("%q is not a media type", e.DataContentType)}
		}
	}
	if len(e.Data) > 0 && isJSONContentType(e.DataContentType) && !sealed(e.Data) && !json.Valid(e.Data) {
		return &ValidationError{Field: "data", Reason: "not valid JSON (the content type is " + e.contentType() + ")"}
	}
	return nil
}

// contentType is DataContentType with its default.
func (e *Event) contentType() string {
	if e.DataContentType == "" {
		return ContentTypeJSON
	}
	return e.DataContentType
}

// isJSONContentType: application/json, text/json, anything ending in +json,
// with any parameters; "" (CloudEvents' default) is JSON too.
func isJSONContentType(ct string) bool {
	if ct == "" || ct == ContentTypeJSON {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == ContentTypeJSON || mt == "text/json" || strings.HasSuffix(mt, "+json"))
}

// validateAttributes checks the platform's rules for everything but the data.
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
		if err := validateExtensionName(name, MaxExtensionNameLength); err != nil {
			return err
		}
	}
	return nil
}

// validateCloudEvent checks what CloudEvents 1.0 itself requires of a
// received event: non-empty id, source and type, and well-formed extension
// names of any length (the spec only says SHOULD about 20 characters).
func (e *Event) validateCloudEvent() error {
	switch {
	case e.ID == "":
		return &ValidationError{Field: "id", Reason: "missing or empty"}
	case e.Source == "":
		return &ValidationError{Field: "source", Reason: "missing or empty"}
	case e.Type == "":
		return &ValidationError{Field: "type", Reason: "missing or empty"}
	}
	for name := range e.Extensions {
		if err := validateExtensionName(name, 0); err != nil {
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

// validateExtensionName checks an extension attribute name; maxLen > 0
// also bounds its length.
func validateExtensionName(name string, maxLen int) error {
	field := "extensions[" + name + "]"
	if name == "" {
		return &ValidationError{Field: "extensions", Reason: "an extension name must not be empty"}
	}
	if maxLen > 0 && len(name) > maxLen {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("name is longer than %d characters", maxLen)}
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
