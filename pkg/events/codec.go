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
	// ContentTypeJSON is the content type of Data unless
	// Event.DataContentType says otherwise.
	ContentTypeJSON = "application/json"
	// ContentTypeOctetStream is what Decode sets as DataContentType for
	// binary data of an event that declares no content type.
	ContentTypeOctetStream = "application/octet-stream"
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
	// HeaderTraceParent and HeaderTraceState carry the W3C trace context
	// (the CloudEvents distributed-tracing extension).
	HeaderTraceParent = "ce-traceparent"
	HeaderTraceState  = "ce-tracestate"
)

// Encode returns the NATS message (without a subject) that carries e in the
// given mode. It validates e first with Validate (the platform's rules); the
// error is a *ValidationError. It does not check the size against a
// connection's maximum payload: the publisher does.
func Encode(e *Event, mode Mode) (*nats.Msg, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return encodeEvent(e, mode)
}

// encodeEvent encodes e without the platform's rules (any event Decode
// returns can be encoded again).
func encodeEvent(e *Event, mode Mode) (*nats.Msg, error) {
	msg := &nats.Msg{}
	var enc encoder
	if err := enc.encode(msg, e, mode, "", e.DataSchema, nil); err != nil {
		return nil, err
	}
	// The encoder's buffers are not reused here: hand the message its own.
	return msg, nil
}

// encoder holds the buffers one encoding needs. The publisher keeps one per
// pooled message, so that in the steady state encoding an event allocates
// little beyond its time string: the header map and the header values are
// reused once the previous message is acknowledged. In binary mode the body
// is Event.Data itself, not a copy.
type encoder struct {
	vals []string      // backing array of the single-value header slices
	buf  bytes.Buffer  // structured-mode body
	json *json.Encoder // writes into buf
	// optional are the binary-mode headers the last encoding set that not
	// every event has: the next encoding into the same message removes
	// them first, instead of the publisher clearing the whole map.
	optional []string
	// size is what the last encoded message occupies against the server's
	// max payload (encodedSize's value, counted while writing).
	size int
}

// encode fills msg.Header and msg.Data, reusing msg.Header when it is not
// nil (as this encoder left it: every header is overwritten or removed). A non-empty msgID is set as Nats-Msg-Id.
// It does not validate e. msg.Data is e.Data (binary mode) or points into
// the encoder's buffer until the next encode (structured mode). dataSchema
// is sent as the dataschema attribute: e.DataSchema, or the URI of the
// schema the publisher validated the data against when e names none. A
// non-empty th.parent is sent as the traceparent and tracestate extensions
// (the CloudEvents distributed-tracing extension) in place of e's.
func (c *encoder) encode(msg *nats.Msg, e *Event, mode Mode, msgID, dataSchema string, th *traceHeaders) error {
	if th != nil && th.parent == "" {
		th = nil
	}
	switch mode {
	case ModeBinary:
		c.encodeBinary(msg, e, msgID, dataSchema, th)
		return nil
	case ModeStructured:
		return c.encodeStructured(msg, e, msgID, dataSchema, th)
	}
	return &ValidationError{Field: "mode", Reason: "unknown content mode " + mode.String()}
}

func (c *encoder) encodeBinary(msg *nats.Msg, e *Event, msgID, dataSchema string, th *traceHeaders) {
	n := 11 + len(e.Extensions)
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
	for _, k := range c.optional {
		delete(h, k)
	}
	optional := c.optional[:0]
	size := len("NATS/1.0\r\n\r\n") + len(e.Data)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		size += len(k) + len(v) + len(": \r\n")
	}
	setOpt := func(k, v string) {
		set(k, v)
		optional = append(optional, k)
	}
	setIf := func(k, v string) {
		if v != "" {
			setOpt(k, percentEncode(v))
		}
	}
	set(HeaderSpecVersion, SpecVersion)
	set(HeaderID, percentEncode(e.ID))
	set(HeaderType, percentEncode(e.Type))
	set(HeaderSource, percentEncode(e.Source))
	if !e.Timestamp.IsZero() {
		setOpt(HeaderTime, formatTime(e.Timestamp))
	}
	set(HeaderDataContentType, percentEncode(e.contentType()))
	setIf(HeaderOrganizationID, e.OrganizationID)
	setIf(HeaderSchemaVersion, e.SchemaVersion)
	setIf(HeaderSubject, e.Subject)
	setIf(HeaderDataSchema, dataSchema)
	for k, v := range e.Extensions {
		if th != nil && (k == ExtTraceParent || k == ExtTraceState) {
			continue
		}
		setOpt(HeaderPrefix+k, percentEncode(v))
	}
	if th != nil {
		setOpt(HeaderTraceParent, th.parent)
		if th.state != "" {
			setOpt(HeaderTraceState, percentEncode(th.state))
		}
	}
	if msgID != "" {
		setOpt(HeaderMsgID, msgID)
	}
	c.vals, c.optional, c.size = vals, optional, size
	msg.Header = h
	msg.Data = e.Data
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// encodeStructured writes the event as CloudEvents JSON with encoding/json:
// JSON data embedded as it is, other data as data_base64.
func (c *encoder) encodeStructured(msg *nats.Msg, e *Event, msgID, dataSchema string, th *traceHeaders) error {
	doc := make(map[string]any, 13+len(e.Extensions))
	for k, v := range e.Extensions {
		doc[k] = v
	}
	if th != nil {
		delete(doc, ExtTraceState)
		doc[ExtTraceParent] = th.parent
		if th.state != "" {
			doc[ExtTraceState] = th.state
		}
	}
	doc["specversion"] = SpecVersion
	doc["id"] = e.ID
	doc["type"] = e.Type
	doc["source"] = e.Source
	doc["datacontenttype"] = e.contentType()
	if !e.Timestamp.IsZero() {
		doc["time"] = formatTime(e.Timestamp)
	}
	for k, v := range map[string]string{
		"organizationid": e.OrganizationID, "schemaversion": e.SchemaVersion,
		"subject": e.Subject, "dataschema": dataSchema,
	} {
		if v != "" {
			doc[k] = v
		}
	}
	if len(e.Data) > 0 {
		if isJSONContentType(e.DataContentType) {
			doc["data"] = e.Data
		} else {
			doc["data_base64"] = base64.StdEncoding.EncodeToString(e.Data)
		}
	}
	c.buf.Reset()
	if c.json == nil {
		c.json = json.NewEncoder(&c.buf)
	}
	if err := c.json.Encode(doc); err != nil {
		c.buf.Reset()
		return &ValidationError{Field: "data", Reason: "not valid JSON: " + err.Error()}
	}
	body := c.buf.Bytes()
	body = body[:len(body)-1] // Encode appends a newline
	if msg.Header == nil {
		msg.Header = make(nats.Header, 2)
	}
	msg.Header[HeaderContentType] = []string{ContentTypeCloudEventsJSON}
	if msgID != "" {
		msg.Header[HeaderMsgID] = []string{msgID}
	} else {
		delete(msg.Header, HeaderMsgID)
	}
	msg.Data = body
	c.size = encodedSize(msg)
	return nil
}

// Decode returns the event a message carries, in either content mode. It
// accepts any event valid under CloudEvents 1.0: specversion 1.0, non-empty
// id, source and type; time, organizationid and schemaversion are optional
// (zero or empty when absent; nothing is defaulted); extension names are
// lower-case alphanumerics of any length; any datacontenttype (non-JSON data
// is kept as bytes). The platform's stricter rules are Validate's.
//
// A message is structured when its content-type is
// application/cloudevents+json, or when it has neither a content-type nor a
// ce-specversion header and its body is a JSON object with a "specversion"
// member (the CloudEvents Go SDK sends structured events without a
// content-type). Otherwise it is binary: header names are matched
// case-insensitively, a value in RFC 7230 quoted-string form ("...", with \
// escapes) is unquoted, then percent-decoded; a '%' not followed by two hex
// digits is kept as it is. In binary mode a content-type header stands for
// ce-datacontenttype when that is absent.
//
// Data is the body as it is (JSON data trimmed of white space; JSON null
// means no data). Decode does not check that the data of an event declaring
// a JSON content type is valid JSON: DataAs, DataMap, a Typed handler and
// Validate do, and their *ValidationError is permanent (errors.Is(err,
// ErrPermanent)), so a handler that returns it has the event dead-lettered
// at once. When the event declares no content type, data that is valid JSON
// is JSON and any other data is binary (DataContentType is set to
// application/octet-stream). Data may share memory with the body. Any
// malformed attribute is a *ValidationError naming it; Decode never panics.
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

const missingSpecBinary = "missing (no ce-specversion header and not a structured message)"

// The context attributes a binary-mode message carries in ce- headers, as
// indexes into binaryHeaders.vals.
const (
	attrSpecVersion = iota
	attrID
	attrType
	attrSource
	attrTime
	attrDataContentType
	attrSubject
	attrDataSchema
	attrOrganizationID
	attrSchemaVersion
	numAttrs
)

// attrNames are the attribute names (the ce- headers without the prefix).
var attrNames = [numAttrs]string{
	"specversion", "id", "type", "source", "time", "datacontenttype",
	"subject", "dataschema", "organizationid", "schemaversion",
}

func attrIndex(name string) int {
	for i, n := range attrNames {
		if n == name {
			return i
		}
	}
	return -1
}

// binaryHeaders are the headers decode reads, raw (not yet unquoted or
// percent-decoded), gathered in one pass over the header map.
type binaryHeaders struct {
	vals    [numAttrs]string
	seen    [numAttrs]bool
	ext     []extHeader // lower-case name without the prefix, raw value
	ct      string      // content-type
	hasCT   bool
	exactCT bool // ct came from the lower-case "content-type" key
}

type extHeader struct{ name, val string }

// attrHeaders are the attributes' binary-mode header names, lower case.
var attrHeaders = [numAttrs]string{
	HeaderSpecVersion, HeaderID, HeaderType, HeaderSource, HeaderTime, HeaderDataContentType,
	HeaderSubject, HeaderDataSchema, HeaderOrganizationID, HeaderSchemaVersion,
}

// gather reads the headers decode needs from h. The lower-case names the
// library and the CloudEvents SDK write are looked up directly; only when h
// has other keys (extensions, other spellings, other headers) is it
// walked, matching names case-insensitively.
func (b *binaryHeaders) gather(h nats.Header) {
	found := 0
	for i, name := range attrHeaders {
		if vs, ok := h[name]; ok {
			found++
			if len(vs) > 0 {
				b.vals[i], b.seen[i] = vs[0], true
			}
		}
	}
	if vs, ok := h[HeaderContentType]; ok {
		found++
		if len(vs) > 0 {
			b.ct, b.hasCT, b.exactCT = vs[0], true, true
		}
	}
	if _, ok := h[HeaderMsgID]; ok {
		found++
	}
	if found == len(h) {
		return
	}
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		var i int
		switch k {
		case HeaderSpecVersion:
			i = attrSpecVersion
		case HeaderID:
			i = attrID
		case HeaderType:
			i = attrType
		case HeaderSource:
			i = attrSource
		case HeaderTime:
			i = attrTime
		case HeaderDataContentType:
			i = attrDataContentType
		case HeaderSubject:
			i = attrSubject
		case HeaderDataSchema:
			i = attrDataSchema
		case HeaderOrganizationID:
			i = attrOrganizationID
		case HeaderSchemaVersion:
			i = attrSchemaVersion
		case HeaderContentType:
			b.ct, b.hasCT, b.exactCT = vs[0], true, true
			continue
		case HeaderMsgID:
			continue
		default:
			if len(k) == len(HeaderContentType) && strings.EqualFold(k, HeaderContentType) {
				if !b.exactCT {
					b.ct, b.hasCT = vs[0], true
				}
				continue
			}
			if len(k) < len(HeaderPrefix) || !strings.EqualFold(k[:len(HeaderPrefix)], HeaderPrefix) {
				continue
			}
			name := strings.ToLower(k[len(HeaderPrefix):])
			if i = attrIndex(name); i < 0 {
				b.ext = append(b.ext, extHeader{name, vs[0]})
				continue
			}
		}
		b.vals[i], b.seen[i] = vs[0], true
	}
}

func decode(h nats.Header, body []byte) (*Event, error) {
	var b binaryHeaders
	b.gather(h)
	if b.hasCT {
		mt, _, err := mime.ParseMediaType(b.ct)
		if err == nil && strings.HasPrefix(mt, "application/cloudevents") {
			if mt != ContentTypeCloudEventsJSON {
				return nil, &ValidationError{Field: "content-type", Reason: fmt.Sprintf("unsupported structured content type %q", mt)}
			}
			return decodeStructured(body, false)
		}
	} else if !b.seen[attrSpecVersion] && looksLikeObject(body) {
		return decodeStructured(body, true)
	}
	return b.decodeBinary(body)
}

// looksLikeObject reports whether body starts, after white space, with '{'.
func looksLikeObject(body []byte) bool {
	t := bytes.TrimLeft(body, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

func (b *binaryHeaders) decodeBinary(body []byte) (*Event, error) {
	e := &Event{}
	var vals [numAttrs]string
	for i := range vals {
		if !b.seen[i] {
			continue
		}
		v, err := decodeHeaderValue(b.vals[i])
		if err != nil {
			return nil, &ValidationError{Field: attrNames[i], Reason: err.Error()}
		}
		vals[i] = v
	}
	e.ID, e.Type, e.Source = vals[attrID], vals[attrType], vals[attrSource]
	e.Subject, e.DataSchema = vals[attrSubject], vals[attrDataSchema]
	e.OrganizationID, e.SchemaVersion = vals[attrOrganizationID], vals[attrSchemaVersion]
	for _, x := range b.ext {
		v, err := decodeHeaderValue(x.val)
		if err != nil {
			return nil, &ValidationError{Field: x.name, Reason: err.Error()}
		}
		if e.Extensions == nil {
			e.Extensions = make(map[string]string, len(b.ext))
		}
		e.Extensions[x.name] = v
	}
	contentType := vals[attrDataContentType]
	if !b.seen[attrDataContentType] {
		// The content-type header stands for ce-datacontenttype: it must be
		// text that ce-datacontenttype can carry again.
		if !utf8.ValidString(b.ct) {
			return nil, &ValidationError{Field: "content-type", Reason: "value is not valid UTF-8"}
		}
		contentType = b.ct
	}
	if err := e.finish(b.seen[attrSpecVersion], vals[attrSpecVersion], b.seen[attrTime], vals[attrTime], missingSpecBinary); err != nil {
		return nil, err
	}
	if err := e.setData(contentType, body); err != nil {
		return nil, err
	}
	return e, nil
}

// finish checks the spec version and the required attributes, and parses
// the time. missingSpec says, in the mode's terms, what was absent.
func (e *Event) finish(seenSpec bool, specVersion string, seenTime bool, timeStr, missingSpec string) error {
	if !seenSpec {
		return &ValidationError{Field: "specversion", Reason: missingSpec}
	}
	if specVersion != SpecVersion {
		return &ValidationError{Field: "specversion", Reason: fmt.Sprintf("unsupported CloudEvents version %q", specVersion)}
	}
	if seenTime {
		t, err := time.Parse(time.RFC3339Nano, timeStr)
		if err != nil {
			return &ValidationError{Field: "timestamp", Reason: fmt.Sprintf("%q is not an RFC 3339 time", timeStr)}
		}
		// In UTC the year must still have four digits, or the time could
		// not be written again.
		if t = t.UTC(); t.Year() < 0 || t.Year() > 9999 {
			return &ValidationError{Field: "timestamp", Reason: fmt.Sprintf("%q is out of range in UTC", timeStr)}
		}
		e.Timestamp = t
	}
	return e.validateCloudEvent()
}

// setData sets DataContentType and Data from what was received. JSON data
// is trimmed of white space, and JSON null is no data. Data of an event that
// declares no content type is JSON when it is valid JSON, binary data
// (application/octet-stream) otherwise. Data of an event that declares a
// JSON content type is not validated here: whoever reads it (DataAs,
// DataMap, a Typed handler, Validate) finds out, with a *ValidationError,
// which is permanent. Every consumer reads the data anyway, and most read
// it once: checking it here too cost a third of Decode.
func (e *Event) setData(contentType string, data []byte) error {
	e.DataContentType = contentType
	if !isJSONContentType(contentType) {
		if len(data) > 0 {
			e.Data = data
		}
		return nil
	}
	t := bytes.TrimSpace(data)
	if len(t) == 0 || string(t) == "null" {
		return nil
	}
	if contentType == "" && !json.Valid(t) {
		e.DataContentType, e.Data = ContentTypeOctetStream, data
		return nil
	}
	e.Data = t
	return nil
}

func decodeStructured(body []byte, sniffed bool) (*Event, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		if sniffed {
			return nil, &ValidationError{Field: "specversion", Reason: missingSpecBinary}
		}
		return nil, &ValidationError{Field: "body", Reason: "structured event is not a JSON object: " + err.Error()}
	}
	if _, ok := doc["specversion"]; sniffed && !ok {
		return nil, &ValidationError{Field: "specversion", Reason: missingSpecBinary}
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
	var seenSpec, seenTime, seenB64 bool
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
	// The platform's attributes are extensions to other producers: any
	// scalar is accepted, as for other extensions.
	for name, dst := range map[string]*string{"organizationid": &e.OrganizationID, "schemaversion": &e.SchemaVersion} {
		v, _, err := extensionValue(doc[name])
		if err != nil {
			return nil, &ValidationError{Field: name, Reason: err.Error()}
		}
		*dst = v
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
		if e.Extensions == nil {
			e.Extensions = make(map[string]string)
		}
		e.Extensions[name] = v
	}
	if err := e.finish(seenSpec, specVersion, seenTime, timeStr, "missing"); err != nil {
		return nil, err
	}
	raw, hasData := doc["data"]
	if hasData && string(bytes.TrimSpace(raw)) == "null" {
		hasData = false
	}
	switch {
	case hasData && seenB64:
		return nil, &ValidationError{Field: "data", Reason: "both data and data_base64 are set"}
	case hasData:
		if !isJSONContentType(contentType) {
			// Text data of a non-JSON type is a JSON string.
			var s string
			if json.Unmarshal(raw, &s) == nil {
				raw = []byte(s)
			}
		}
		if err := e.setData(contentType, raw); err != nil {
			return nil, err
		}
	case seenB64:
		b, err := base64.StdEncoding.DecodeString(dataB64)
		if err != nil {
			return nil, &ValidationError{Field: "data_base64", Reason: "not valid base64"}
		}
		if err := e.setData(contentType, b); err != nil {
			return nil, err
		}
	default:
		e.DataContentType = contentType
	}
	return e, nil
}

// extensionValue renders a JSON scalar as the string form CloudEvents gives
// it; null (or nothing) means absent; objects and arrays are not allowed.
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

// decodeHeaderValue reads a binary-mode attribute value: an RFC 7230
// quoted-string is unquoted first (the NATS binding says so), then the value
// is percent-decoded.
func decodeHeaderValue(s string) (string, error) {
	return percentDecode(unquote(s))
}

// unquote returns the content of an RFC 7230 quoted-string ("..." in which
// \ escapes the next character), or s itself when it is not one (a '"' or
// a lone '\' inside, no closing quote).
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	in := s[1 : len(s)-1]
	if strings.IndexByte(in, '\\') < 0 {
		if strings.IndexByte(in, '"') >= 0 {
			return s
		}
		return in
	}
	b := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		switch c := in[i]; c {
		case '"':
			return s
		case '\\':
			if i+1 == len(in) {
				return s
			}
			i++
			b = append(b, in[i])
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// percentDecode reverses percentEncode. A '%' not followed by two hex digits
// is kept as it is (producers that do not percent-encode, such as the
// CloudEvents Go SDK, send "100%" as it is); a result that is not UTF-8 is
// an error.
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
		if c == '%' && i+2 < len(s) {
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, c)
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
