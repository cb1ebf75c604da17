package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// Mode is a CloudEvents content mode of the NATS protocol binding.
type Mode int

const (
	// ModeBinary puts every attribute in a "ce-" header and Data, as JSON, in
	// the body. It is the default: consumers can route on headers without
	// parsing the body, and the body is the data as-is.
	ModeBinary Mode = iota
	// ModeStructured puts the whole event, attributes and data, in the body as
	// CloudEvents JSON with content type application/cloudevents+json.
	ModeStructured
)

func (m Mode) String() string {
	switch m {
	case ModeBinary:
		return "binary"
	case ModeStructured:
		return "structured"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Wire-format constants.
const (
	// SpecVersion is the CloudEvents version this package speaks.
	SpecVersion = "1.0"
	// ContentTypeJSON is the content type of Data.
	ContentTypeJSON = "application/json"
	// ContentTypeCloudEventsJSON marks a structured-mode message.
	ContentTypeCloudEventsJSON = "application/cloudevents+json"
	// HeaderContentType is the header naming a structured message's content type.
	HeaderContentType = "content-type"
	// HeaderPrefix starts every attribute header in binary mode.
	HeaderPrefix = "ce-"
	// HeaderMsgID is JetStream's deduplication header; it carries the event ID.
	HeaderMsgID = "Nats-Msg-Id"
)

// Attribute header names in binary mode (always written in lower case).
const (
	HeaderSpecVersion     = "ce-specversion"
	HeaderID              = "ce-id"
	HeaderType            = "ce-type"
	HeaderSource          = "ce-source"
	HeaderTime            = "ce-time"
	HeaderDataContentType = "ce-datacontenttype"
	HeaderSubject         = "ce-subject"
	HeaderDataSchema      = "ce-dataschema"
	HeaderOrganizationID  = "ce-organizationid"
	HeaderSchemaVersion   = "ce-schemaversion"
)

// Encode returns the NATS message (without a subject) that carries e in the
// given mode. It validates e first; the error is a *ValidationError. It does
// not check the size against a connection's maximum payload: the publisher
// does.
func Encode(e *Event, mode Mode) (*nats.Msg, error) {
	if err := e.validateAttributes(); err != nil {
		return nil, err
	}
	msg := &nats.Msg{}
	var enc encoder
	if err := enc.encode(msg, e, mode, ""); err != nil {
		return nil, err
	}
	// The encoder's buffers are not reused here: hand the message its own.
	return msg, nil
}

// encoder holds the buffers one encoding needs. The publisher keeps one per
// pooled message, so that in the steady state encoding an event allocates
// little beyond its time string: the header map, the header values and the
// body buffer are reused once the previous message is acknowledged.
type encoder struct {
	vals []string      // backing array of the single-value header slices
	buf  bytes.Buffer  // body
	json *json.Encoder // writes into buf
}

// encode fills msg.Header and msg.Data, reusing msg.Header when it is not
// nil (the caller has cleared it). A non-empty msgID is set as Nats-Msg-Id.
// e must have passed validateAttributes. msg.Data points into the encoder's
// buffer until the next encode.
func (c *encoder) encode(msg *nats.Msg, e *Event, mode Mode, msgID string) error {
	switch mode {
	case ModeBinary:
		return c.encodeBinary(msg, e, msgID)
	case ModeStructured:
		return c.encodeStructured(msg, e, msgID)
	}
	return &ValidationError{Field: "mode", Reason: "unknown content mode " + mode.String()}
}

// marshal writes v's JSON to the buffer (json.Marshal's output, without the
// copy Marshal makes) and returns it. Event data is written by appendJSON
// when it can, by encoding/json otherwise.
func (c *encoder) marshal(v any) ([]byte, error) {
	c.buf.Reset()
	if b, ok := appendJSON(c.buf.AvailableBuffer(), v); ok {
		// b is in the buffer's array, or in a larger one append made: make
		// it the buffer's content either way, so the next event reuses it.
		c.buf = *bytes.NewBuffer(b)
		return b, nil
	}
	if c.json == nil {
		c.json = json.NewEncoder(&c.buf)
	}
	if err := c.json.Encode(v); err != nil {
		c.buf.Reset()
		return nil, &ValidationError{Field: "data", Reason: "not serialisable as JSON: " + err.Error()}
	}
	b := c.buf.Bytes()
	return b[:len(b)-1], nil // Encode appends a newline
}

func (c *encoder) encodeBinary(msg *nats.Msg, e *Event, msgID string) error {
	var body []byte
	if e.Data != nil {
		var err error
		if body, err = c.marshal(e.Data); err != nil {
			return err
		}
	}
	n := 9 + len(e.Extensions)
	h := msg.Header
	if h == nil {
		h = make(nats.Header, n)
	}
	// One backing array for all the single-value slices: one allocation
	// (none once reused) instead of one per header.
	vals := c.vals[:0]
	if cap(vals) < n+2 {
		vals = make([]string, 0, n+2)
	}
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set(HeaderSpecVersion, SpecVersion)
	set(HeaderID, percentEncode(e.ID))
	set(HeaderType, percentEncode(e.Type))
	set(HeaderSource, percentEncode(e.Source))
	set(HeaderTime, formatTime(e.Timestamp))
	set(HeaderDataContentType, ContentTypeJSON)
	set(HeaderOrganizationID, percentEncode(e.OrganizationID))
	set(HeaderSchemaVersion, percentEncode(e.SchemaVersion))
	if e.Subject != "" {
		set(HeaderSubject, percentEncode(e.Subject))
	}
	if e.DataSchema != "" {
		set(HeaderDataSchema, percentEncode(e.DataSchema))
	}
	for k, v := range e.Extensions {
		set(HeaderPrefix+k, percentEncode(v))
	}
	if msgID != "" {
		set(HeaderMsgID, msgID)
	}
	c.vals = vals
	msg.Header = h
	msg.Data = body
	return nil
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

func (c *encoder) encodeStructured(msg *nats.Msg, e *Event, msgID string) error {
	doc := make(map[string]any, 11+len(e.Extensions))
	for k, v := range e.Extensions {
		doc[k] = v
	}
	doc["specversion"] = SpecVersion
	doc["id"] = e.ID
	doc["type"] = e.Type
	doc["source"] = e.Source
	doc["time"] = formatTime(e.Timestamp)
	doc["datacontenttype"] = ContentTypeJSON
	doc["organizationid"] = e.OrganizationID
	doc["schemaversion"] = e.SchemaVersion
	if e.Subject != "" {
		doc["subject"] = e.Subject
	}
	if e.DataSchema != "" {
		doc["dataschema"] = e.DataSchema
	}
	if e.Data != nil {
		doc["data"] = e.Data
	}
	body, err := c.marshal(doc)
	if err != nil {
		return err
	}
	if msg.Header == nil {
		msg.Header = make(nats.Header, 2)
	}
	msg.Header[HeaderContentType] = []string{ContentTypeCloudEventsJSON}
	if msgID != "" {
		msg.Header[HeaderMsgID] = []string{msgID}
	}
	msg.Data = body
	return nil
}

// Decode returns the event a message carries, in either content mode. Header
// names are matched case-insensitively. Anything malformed (a missing
// required attribute, a bad time, bad percent-encoding, data that is not a
// JSON object, another specversion) is a *ValidationError naming the
// attribute; Decode never panics. A missing schema version defaults to
// SchemaVersionDefault so that events from other CloudEvents producers decode.
func Decode(msg *nats.Msg) (*Event, error) {
	if msg == nil {
		return nil, &ValidationError{Field: "message", Reason: "is nil"}
	}
	return decode(msg.Header, msg.Data)
}

// DecodeParts is Decode for callers that hold the headers and body rather
// than a *nats.Msg (a jetstream.Msg, a stored message).
func DecodeParts(header nats.Header, body []byte) (*Event, error) {
	return decode(header, body)
}

func decode(h nats.Header, body []byte) (*Event, error) {
	if ct := headerValue(h, HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err == nil && strings.HasPrefix(mt, "application/cloudevents") {
			if mt != ContentTypeCloudEventsJSON {
				return nil, &ValidationError{Field: "content-type", Reason: fmt.Sprintf("unsupported structured content type %q", mt)}
			}
			return decodeStructured(body)
		}
	}
	return decodeBinary(h, body)
}

// headerValue looks a header up case-insensitively.
func headerValue(h nats.Header, name string) string {
	if v, ok := h[name]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, name) {
			return v[0]
		}
	}
	return ""
}

func decodeBinary(h nats.Header, body []byte) (*Event, error) {
	e := &Event{}
	var specVersion, timeStr, contentType string
	var seenSpec, seenTime, seenSchema bool
	for k, vs := range h {
		if len(k) < len(HeaderPrefix) || !strings.EqualFold(k[:len(HeaderPrefix)], HeaderPrefix) || len(vs) == 0 {
			continue
		}
		name := strings.ToLower(k[len(HeaderPrefix):])
		v, err := percentDecode(vs[0])
		if err != nil {
			return nil, &ValidationError{Field: name, Reason: err.Error()}
		}
		switch name {
		case "specversion":
			specVersion, seenSpec = v, true
		case "id":
			e.ID = v
		case "type":
			e.Type = v
		case "source":
			e.Source = v
		case "time":
			timeStr, seenTime = v, true
		case "datacontenttype":
			contentType = v
		case "subject":
			e.Subject = v
		case "dataschema":
			e.DataSchema = v
		case "organizationid":
			e.OrganizationID = v
		case "schemaversion":
			e.SchemaVersion, seenSchema = v, true
		default:
			if err := validateExtensionName(name); err != nil {
				return nil, err
			}
			if e.Extensions == nil {
				e.Extensions = make(map[string]string)
			}
			e.Extensions[name] = v
		}
	}
	if err := e.checkRequired(seenSpec, specVersion, seenTime, timeStr, seenSchema, contentType,
		"missing (no ce-specversion header and not a structured message)", "missing ce-time"); err != nil {
		return nil, err
	}
	if err := e.setData(body); err != nil {
		return nil, err
	}
	if err := e.validateAttributes(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Event) setTime(s string) error {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return &ValidationError{Field: "timestamp", Reason: fmt.Sprintf("%q is not an RFC 3339 time", s)}
	}
	e.Timestamp = t.UTC()
	return nil
}

// checkContentType accepts JSON content types (application/json, text/json,
// anything ending in +json), or none, which CloudEvents reads as JSON.
func checkContentType(ct string) error {
	if ct == "" || ct == ContentTypeJSON {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == ContentTypeJSON || mt == "text/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return &ValidationError{Field: "datacontenttype", Reason: fmt.Sprintf("%q is not a JSON content type", ct)}
}

// setData parses a JSON object (or nothing, or null) into e.Data.
func (e *Event) setData(body []byte) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return nil
	}
	if body[0] != '{' {
		return &ValidationError{Field: "data", Reason: "not a JSON object"}
	}
	data, err := unmarshalObject(body)
	if err != nil {
		return &ValidationError{Field: "data", Reason: "not valid JSON: " + err.Error()}
	}
	e.Data = data
	return nil
}

func decodeStructured(body []byte) (*Event, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, &ValidationError{Field: "body", Reason: "structured event is not a JSON object: " + err.Error()}
	}
	str := func(name string) (string, bool, error) {
		raw, ok := doc[name]
		if !ok || string(raw) == "null" {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", true, &ValidationError{Field: name, Reason: "must be a JSON string"}
		}
		return s, true, nil
	}
	e := &Event{}
	var specVersion, timeStr, contentType, dataB64 string
	var seenSpec, seenTime, seenSchema, seenB64 bool
	for _, a := range []struct {
		name string
		dst  *string
		seen *bool
	}{
		{"specversion", &specVersion, &seenSpec},
		{"id", &e.ID, nil},
		{"type", &e.Type, nil},
		{"source", &e.Source, nil},
		{"time", &timeStr, &seenTime},
		{"datacontenttype", &contentType, nil},
		{"subject", &e.Subject, nil},
		{"dataschema", &e.DataSchema, nil},
		{"organizationid", &e.OrganizationID, nil},
		{"schemaversion", &e.SchemaVersion, &seenSchema},
		{"data_base64", &dataB64, &seenB64},
	} {
		v, ok, err := str(a.name)
		if err != nil {
			return nil, err
		}
		*a.dst = v
		if a.seen != nil {
			*a.seen = ok
		}
	}
	if err := e.checkRequired(seenSpec, specVersion, seenTime, timeStr, seenSchema, contentType,
		"missing", "missing time"); err != nil {
		return nil, err
	}
	raw, hasData := doc["data"]
	switch {
	case hasData && seenB64:
		return nil, &ValidationError{Field: "data", Reason: "both data and data_base64 are set"}
	case hasData:
		if err := e.setData(raw); err != nil {
			return nil, err
		}
	case seenB64:
		b, err := base64.StdEncoding.DecodeString(dataB64)
		if err != nil {
			return nil, &ValidationError{Field: "data_base64", Reason: "not valid base64"}
		}
		if err := e.setData(b); err != nil {
			return nil, err
		}
	}
	for name, raw := range doc {
		if reservedAttributes[name] || name == "data_base64" {
			continue
		}
		v, ok, err := extensionValue(raw)
		if err != nil {
			return nil, &ValidationError{Field: "extensions[" + name + "]", Reason: err.Error()}
		}
		if !ok {
			continue
		}
		if err := validateExtensionName(name); err != nil {
			return nil, err
		}
		if e.Extensions == nil {
			e.Extensions = make(map[string]string)
		}
		e.Extensions[name] = v
	}
	if err := e.validateAttributes(); err != nil {
		return nil, err
	}
	return e, nil
}

// extensionValue renders a JSON scalar as the string form CloudEvents gives
// it; null means absent; objects and arrays are not allowed.
func extensionValue(raw json.RawMessage) (string, bool, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		return "", false, nil
	}
	switch t[0] {
	case '"':
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return "", false, fmt.Errorf("bad JSON string")
		}
		return s, true, nil
	case '{', '[':
		return "", false, fmt.Errorf("must be a string, number or boolean")
	}
	return string(t), true, nil
}

const upperHex = "0123456789ABCDEF"

// needsEscape: the CloudEvents HTTP and NATS bindings require percent-
// encoding of space, '"', '%' and anything outside printable ASCII.
func needsEscape(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '"' || c == '%'
}

// percentEncode encodes a header value as the binding requires; values that
// need nothing (the usual case) are returned without allocating.
func percentEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// percentDecode reverses percentEncode; a malformed escape or a result that
// is not UTF-8 is an error.
func percentDecode(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("value is not valid UTF-8")
		}
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated percent-encoding in %q", s)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad percent-encoding in %q", s)
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("percent-decoded value is not valid UTF-8")
	}
	return string(b), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// encodedSize is what the message occupies against the server's max
// payload: the body plus the header block as nats.go writes it.
func encodedSize(msg *nats.Msg) int {
	n := len(msg.Data)
	if len(msg.Header) > 0 {
		n += len("NATS/1.0\r\n\r\n")
		for k, vs := range msg.Header {
			for _, v := range vs {
				n += len(k) + len(v) + len(": \r\n")
			}
		}
	}
	return n
}

// checkRequired finishes decoding the attributes both modes share: the spec
// version and time are required, the schema version defaults, and the content
// type must be JSON. missingSpec and missingTime say, in the mode's terms,
// what was absent.
func (e *Event) checkRequired(seenSpec bool, specVersion string, seenTime bool, timeStr string,
	seenSchema bool, contentType, missingSpec, missingTime string) error {
	if !seenSpec {
		return &ValidationError{Field: "specversion", Reason: missingSpec}
	}
	if specVersion != SpecVersion {
		return &ValidationError{Field: "specversion", Reason: fmt.Sprintf("unsupported CloudEvents version %q", specVersion)}
	}
	if !seenTime {
		return &ValidationError{Field: "timestamp", Reason: missingTime}
	}
	if err := e.setTime(timeStr); err != nil {
		return err
	}
	if !seenSchema {
		e.SchemaVersion = SchemaVersionDefault
	}
	return checkContentType(contentType)
}
