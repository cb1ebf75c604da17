package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

var testTime = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

func fullEvent(t testing.TB) *Event {
	t.Helper()
	e, err := NewEvent("user.created", "auth-service", "org-42", testTime, map[string]any{
		"user_id": "u-1",
		"email":   "ada@example.com",
		"age":     float64(36),
		"admin":   true,
		"roles":   []any{"a", "b"},
		"nested":  map[string]any{"k": "v", "n": nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Subject = "users/u 1 \"quoted\" 100% café"
	e.DataSchema = "https://schemas.example.com/user.created/1.0.json"
	e.Extensions = map[string]string{"traceparent": "00-abc-01", "tenantregion": "eu west", "n1": "ünïcode\n"}
	return e
}

func TestPercentEncoding(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"", ""},
		{"a b", "a%20b"},
		{`say "hi"`, "say%20%22hi%22"},
		{"100%", "100%25"},
		{"tab\there", "tab%09here"},
		{"café", "caf%C3%A9"},
		{"€", "%E2%82%AC"},
		{"del\x7f", "del%7F"},
		{"a+b/c?d=e&f:g", "a+b/c?d=e&f:g"},
	} {
		got := percentEncode(tc.in)
		if got != tc.want {
			t.Errorf("percentEncode(%q) = %q, want %q", tc.in, got, tc.want)
		}
		back, err := percentDecode(got)
		if err != nil || back != tc.in {
			t.Errorf("percentDecode(%q) = %q, %v; want %q", got, back, err, tc.in)
		}
	}
	if got, err := percentDecode("caf%c3%a9"); err != nil || got != "café" {
		t.Errorf("lower-case hex: %q, %v", got, err)
	}
	// Producers that do not percent-encode (the CloudEvents Go SDK) send a
	// '%' as it is: one not followed by two hex digits is kept literally;
	// "%41" from such a producer reads as "A".
	for in, want := range map[string]string{
		"%": "%", "%2": "%2", "%zz": "%zz", "abc%4": "abc%4", "100%": "100%", "50% off": "50% off",
		"%%41": "%A", "%41": "A", "a%2g%20b": "a%2g b", "%Z1%": "%Z1%",
	} {
		if got, err := percentDecode(in); err != nil || got != want {
			t.Errorf("percentDecode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"%C3", "%FF%FE", "a\xffb"} {
		if _, err := percentDecode(bad); err == nil {
			t.Errorf("percentDecode(%q): no error", bad)
		}
	}
}

func TestDecodeHeaderValueUnquotes(t *testing.T) {
	for in, want := range map[string]string{
		`"hello world"`:         "hello world",
		`"a \"b\" c"`:           `a "b" c`,
		`"back\\slash"`:         `back\slash`,
		`"\x"`:                  "x",
		`""`:                    "",
		`"caf%C3%A9"`:           "café", // unquoted first, then percent-decoded
		`"100%"`:                "100%",
		`"unterminated`:         `"unterminated`,
		`"inner " quote"`:       `"inner " quote"`,
		`"trailing backslash\"`: `"trailing backslash\"`,
		`"`:                     `"`,
		`plain`:                 "plain",
		`%22quoted%22`:          `"quoted"`,
	} {
		if got, err := decodeHeaderValue(in); err != nil || got != want {
			t.Errorf("decodeHeaderValue(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	valid := func() *Event {
		e, err := NewEvent("user.created", "auth-service", "org-1", testTime, map[string]any{"a": 1})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	for _, tc := range []struct {
		name  string
		field string
		mod   func(e *Event)
	}{
		{"empty id", "id", func(e *Event) { e.ID = "" }},
		{"non-uuid id", "id", func(e *Event) { e.ID = "not-a-uuid" }},
		{"braced uuid", "id", func(e *Event) { e.ID = "{" + e.ID + "}" }},
		{"empty type", "type", func(e *Event) { e.Type = "" }},
		{"empty source", "source", func(e *Event) { e.Source = "" }},
		{"empty organization", "organizationid", func(e *Event) { e.OrganizationID = "" }},
		{"zero timestamp", "timestamp", func(e *Event) { e.Timestamp = time.Time{} }},
		{"empty schema version", "schemaversion", func(e *Event) { e.SchemaVersion = "" }},
		{"schema version without minor", "schemaversion", func(e *Event) { e.SchemaVersion = "1" }},
		{"schema version with letters", "schemaversion", func(e *Event) { e.SchemaVersion = "v1.0" }},
		{"schema version three parts", "schemaversion", func(e *Event) { e.SchemaVersion = "1.0.0" }},
		{"data not JSON", "data", func(e *Event) { e.Data = json.RawMessage(`{"a":`) }},
		{"data not JSON for a +json type", "data", func(e *Event) {
			e.DataContentType = "application/vnd.x+json; charset=utf-8"
			e.Data = json.RawMessage("hello")
		}},
		{"content type not a media type", "datacontenttype", func(e *Event) { e.DataContentType = "not a type" }},
		{"extension upper case", "extensions[Trace]", func(e *Event) { e.Extensions = map[string]string{"Trace": "x"} }},
		{"extension dash", "extensions[trace-id]", func(e *Event) { e.Extensions = map[string]string{"trace-id": "x"} }},
		{"extension too long", "extensions[abcdefghijklmnopqrstu]", func(e *Event) { e.Extensions = map[string]string{"abcdefghijklmnopqrstu": "x"} }},
		{"extension reserved", "extensions[organizationid]", func(e *Event) { e.Extensions = map[string]string{"organizationid": "x"} }},
		{"extension reserved core", "extensions[time]", func(e *Event) { e.Extensions = map[string]string{"time": "x"} }},
		{"extension empty", "extensions", func(e *Event) { e.Extensions = map[string]string{"": "x"} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := valid()
			tc.mod(e)
			err := e.Validate()
			var verr *ValidationError
			if !errors.As(err, &verr) || !errors.Is(err, ErrValidation) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			if verr.Field != tc.field {
				t.Fatalf("field = %q, want %q (%v)", verr.Field, tc.field, err)
			}
		})
	}
	// A 20-character extension name is fine.
	e := valid()
	e.Extensions = map[string]string{"abcdefghijklmnopqrst": "x", "a1": ""}
	if err := e.Validate(); err != nil {
		t.Fatalf("20-char extension: %v", err)
	}
	// Non-JSON data under a non-JSON content type is fine, as is any JSON
	// value (not only objects) and no data.
	for ct, data := range map[string]string{"text/plain": "hello", "application/octet-stream": "\x00\xff", "": `[1,"a"]`, "text/json": `"s"`} {
		e := valid()
		e.DataContentType, e.Data = ct, json.RawMessage(data)
		if err := e.Validate(); err != nil {
			t.Errorf("%q data under %q: %v", data, ct, err)
		}
	}
	e = valid()
	e.Data = nil
	if err := e.Validate(); err != nil {
		t.Errorf("no data: %v", err)
	}
}

func TestNewEvent(t *testing.T) {
	local := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600))
	e, err := NewEvent("t", "s", "o", local, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Timestamp.Location() != time.UTC || !e.Timestamp.Equal(local) {
		t.Errorf("timestamp %v not the same instant in UTC", e.Timestamp)
	}
	if e.SchemaVersion != "1.0" || !isUUID(e.ID) {
		t.Errorf("defaults: %+v", e)
	}
	e2, _ := NewEvent("t", "s", "o", local, nil)
	if e.ID == e2.ID {
		t.Error("two events share an ID")
	}
	if _, err := NewEvent("", "s", "o", local, nil); !errors.Is(err, ErrValidation) {
		t.Errorf("empty type: %v", err)
	}
	if e.Data != nil || e.DataContentType != "" {
		t.Errorf("nil data: %q %q", e.Data, e.DataContentType)
	}
}

func TestNewEventData(t *testing.T) {
	type user struct {
		UserID int64  `json:"user_id"`
		Email  string `json:"email"`
	}
	for _, tc := range []struct {
		name string
		data any
		want string // "" = no data
	}{
		{"seed map", map[string]interface{}{"user_id": "u-1", "email": "a@example.com"}, `{"email":"a@example.com","user_id":"u-1"}`},
		{"struct", user{UserID: 1<<53 + 1, Email: "a@example.com"}, `{"user_id":9007199254740993,"email":"a@example.com"}`},
		{"pointer to struct", &user{UserID: 7}, `{"user_id":7,"email":""}`},
		{"raw message", json.RawMessage(`{ "a" : [1, 2] }`), `{"a":[1,2]}`},
		{"array", []int{1, 2}, `[1,2]`},
		{"string", "text", `"text"`},
		{"nil", nil, ""},
		{"nil map", map[string]any(nil), ""},
		{"nil pointer", (*user)(nil), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEvent("user.created", "auth-service", "org-1", testTime, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if string(e.Data) != tc.want || (tc.want == "") != (e.Data == nil) {
				t.Fatalf("Data = %q, want %q", e.Data, tc.want)
			}
			if err := e.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
	for name, bad := range map[string]any{
		"channel":     map[string]any{"ch": make(chan int)},
		"func":        func() {},
		"invalid raw": json.RawMessage(`{"a":`),
	} {
		_, err := NewEvent("user.created", "auth-service", "org-1", testTime, bad)
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Field != "data" {
			t.Errorf("%s: %v, want a ValidationError for data", name, err)
		}
	}
}

func TestSetData(t *testing.T) {
	e := fullEvent(t)
	e.DataContentType = "text/plain"
	if err := e.SetData(map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	if string(e.Data) != `{"x":1}` || e.DataContentType != "" {
		t.Fatalf("SetData: %q %q", e.Data, e.DataContentType)
	}
	before := string(e.Data)
	if err := e.SetData(make(chan int)); !errors.Is(err, ErrValidation) || string(e.Data) != before {
		t.Fatalf("SetData(chan) = %v, data %q", err, e.Data)
	}
	if err := e.SetData(nil); err != nil || e.Data != nil {
		t.Fatalf("SetData(nil) = %v, data %q", err, e.Data)
	}
}

func TestDataAsAndDataMap(t *testing.T) {
	type payload struct {
		ID    int64   `json:"id"`
		Name  string  `json:"name"`
		Score float64 `json:"score"`
	}
	const big = int64(1<<53 + 1) // 9007199254740993: not representable as a float64
	e, err := NewEvent("t", "s", "o", testTime, map[string]any{"id": big, "name": "n", "score": 1.5, "extra": true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := DataAs[payload](e)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != big || p.Name != "n" || p.Score != 1.5 {
		t.Fatalf("DataAs = %+v, want id %d", p, big)
	}
	m, err := e.DataMap()
	if err != nil {
		t.Fatal(err)
	}
	n, ok := m["id"].(json.Number)
	if !ok {
		t.Fatalf("DataMap id is %T, want json.Number", m["id"])
	}
	if v, err := n.Int64(); err != nil || v != big {
		t.Fatalf("DataMap id = %v, %v; want %d", n, err, big)
	}
	if m["name"] != "n" || m["extra"] != true {
		t.Fatalf("DataMap = %v", m)
	}
	// What does not fit is a ValidationError naming the field.
	field := func(err error) string {
		var verr *ValidationError
		if !errors.As(err, &verr) {
			return fmt.Sprintf("not a ValidationError: %v", err)
		}
		return verr.Field
	}
	if _, err := DataAs[struct {
		ID string `json:"id"`
	}](e); field(err) != "data" {
		t.Errorf("number into string: %v", err)
	}
	if _, err := DataAs[[]int](e); field(err) != "data" {
		t.Errorf("object into slice: %v", err)
	}
	arr := &Event{Data: json.RawMessage(`[1,2]`)}
	if got, err := DataAs[[]int](arr); err != nil || !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("array: %v, %v", got, err)
	}
	if _, err := arr.DataMap(); field(err) != "data" {
		t.Errorf("DataMap of an array: %v", err)
	}
	if _, err := (&Event{}).DataMap(); field(err) != "data" {
		t.Errorf("DataMap without data: %v", err)
	}
	if _, err := DataAs[payload](&Event{}); field(err) != "data" {
		t.Errorf("DataAs without data: %v", err)
	}
	text := &Event{DataContentType: "text/plain", Data: json.RawMessage("hello")}
	if _, err := DataAs[string](text); field(err) != "datacontenttype" {
		t.Errorf("DataAs of text/plain: %v", err)
	}
	if _, err := text.DataMap(); field(err) != "datacontenttype" {
		t.Errorf("DataMap of text/plain: %v", err)
	}
	custom := &Event{DataContentType: "application/vnd.giia.user+json", Data: json.RawMessage(`{"id":1}`)}
	if got, err := DataAs[payload](custom); err != nil || got.ID != 1 {
		t.Errorf("+json content type: %v, %v", got, err)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	for _, mode := range []Mode{ModeBinary, ModeStructured} {
		t.Run(mode.String(), func(t *testing.T) {
			e := fullEvent(t)
			msg, err := Encode(e, mode)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(msg)
			if err != nil {
				t.Fatal(err)
			}
			e.DataContentType = ContentTypeJSON // Decode reports what it read
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, e)
			}
		})
	}
	// Non-JSON data travels as bytes: the body in binary mode, data_base64
	// in structured mode.
	for _, mode := range []Mode{ModeBinary, ModeStructured} {
		e := fullEvent(t)
		e.DataContentType, e.Data = "application/octet-stream", json.RawMessage("\x00\x01binary\xff")
		msg, err := Encode(e, mode)
		if err != nil {
			t.Fatal(err)
		}
		if mode == ModeStructured && !strings.Contains(string(msg.Data), `"data_base64":"AAFiaW5hcnn/"`) {
			t.Errorf("structured body %s", msg.Data)
		}
		got, err := Decode(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("%s non-JSON round trip:\n got %#v\nwant %#v", mode, got, e)
		}
	}
}

func TestEncodeBinaryHeaders(t *testing.T) {
	e := fullEvent(t)
	msg, err := Encode(e, ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ce-specversion":     "1.0",
		"ce-id":              e.ID,
		"ce-type":            "user.created",
		"ce-source":          "auth-service",
		"ce-time":            "2026-03-14T15:09:26.535897932Z",
		"ce-datacontenttype": "application/json",
		"ce-organizationid":  "org-42",
		"ce-schemaversion":   "1.0",
		"ce-subject":         "users/u%201%20%22quoted%22%20100%25%20caf%C3%A9",
		"ce-dataschema":      "https://schemas.example.com/user.created/1.0.json",
		"ce-traceparent":     "00-abc-01",
		"ce-tenantregion":    "eu%20west",
		"ce-n1":              "%C3%BCn%C3%AFcode%0A",
	}
	for k, v := range want {
		if got := msg.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(msg.Header) != len(want) {
		t.Errorf("headers %v, want exactly %d", msg.Header, len(want))
	}
	for k := range msg.Header {
		if k != strings.ToLower(k) {
			t.Errorf("header %q not lower case", k)
		}
	}
	if !strings.HasPrefix(string(msg.Data), "{") {
		t.Errorf("body %q is not the JSON data", msg.Data)
	}
}

func TestEncodeStructured(t *testing.T) {
	e := fullEvent(t)
	msg, err := Encode(e, ModeStructured)
	if err != nil {
		t.Fatal(err)
	}
	if ct := msg.Header.Get("content-type"); ct != ContentTypeCloudEventsJSON {
		t.Fatalf("content-type %q", ct)
	}
	for _, s := range []string{`"specversion":"1.0"`, `"data":{`, `"traceparent":"00-abc-01"`, `"organizationid":"org-42"`} {
		if !strings.Contains(string(msg.Data), s) {
			t.Errorf("body lacks %s: %s", s, msg.Data)
		}
	}
}

func TestDecodeMixedCaseHeaders(t *testing.T) {
	e := fullEvent(t)
	msg, err := Encode(e, ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	mixed := nats.Header{}
	for k, v := range msg.Header {
		// ce-organizationid → Ce-OrganizationId style, alternating case.
		b := []byte(k)
		for i := range b {
			if i%2 == 0 {
				b[i] = strings.ToUpper(string(b[i]))[0]
			}
		}
		mixed[string(b)] = v
	}
	got, err := Decode(&nats.Msg{Header: mixed, Data: msg.Data})
	if err != nil {
		t.Fatal(err)
	}
	e.DataContentType = ContentTypeJSON
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("mixed case:\n got %#v\nwant %#v", got, e)
	}

	s, _ := Encode(e, ModeStructured)
	got, err = Decode(&nats.Msg{Header: nats.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}}, Data: s.Data})
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("structured with Content-Type: %v", err)
	}
}

// A minimal CloudEvent from another producer: any id, no time, no
// extensions, no data. Nothing is defaulted.
func TestDecodeMinimalForeignEvent(t *testing.T) {
	h := nats.Header{
		"ce-specversion": {"1.0"},
		"ce-id":          {"order-7"},
		"ce-type":        {"com.example.order.placed"},
		"ce-source":      {"/orders"},
	}
	e, err := Decode(&nats.Msg{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	want := &Event{ID: "order-7", Type: "com.example.order.placed", Source: "/orders"}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got %#v, want %#v", e, want)
	}
	// It is not valid for publishing on this platform.
	if err := e.Validate(); !errors.Is(err, ErrValidation) {
		t.Fatalf("Validate() = %v", err)
	}
	// The same event in structured mode, and with a time in another zone.
	body := `{"specversion":"1.0","id":"order-7","type":"com.example.order.placed","source":"/orders","time":"2026-03-14T16:09:26+01:00","schemaversion":2,"longextensionnamebeyond20":"x"}`
	e, err = Decode(&nats.Msg{Header: nats.Header{"content-type": {ContentTypeCloudEventsJSON}}, Data: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "order-7" || e.SchemaVersion != "2" || e.OrganizationID != "" || e.Data != nil ||
		!e.Timestamp.Equal(time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)) || e.Timestamp.Location() != time.UTC ||
		e.Extensions["longextensionnamebeyond20"] != "x" {
		t.Fatalf("%+v", e)
	}
}

// The CloudEvents Go SDK's structured mode sends no content-type: a body
// that is a JSON object with a specversion member, and no ce-specversion
// header, is a structured event.
func TestDecodeStructuredWithoutContentType(t *testing.T) {
	body := `{"specversion":"1.0","id":"1","type":"t","source":"s","datacontenttype":"application/json","data":{"n":9007199254740993}}`
	for name, h := range map[string]nats.Header{
		"no headers":         nil,
		"other headers only": {"Nats-Msg-Id": {"1"}, "traceparent": {"00-1-2-01"}},
	} {
		e, err := Decode(&nats.Msg{Header: h, Data: []byte(" \n" + body)})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e.ID != "1" || string(e.Data) != `{"n":9007199254740993}` || e.DataContentType != ContentTypeJSON {
			t.Fatalf("%s: %#v", name, e)
		}
	}
	// A JSON object without specversion is not sniffed as structured.
	_, err := Decode(&nats.Msg{Data: []byte(`{"id":"1"}`)})
	var verr *ValidationError
	if !errors.As(err, &verr) || verr.Field != "specversion" {
		t.Fatalf("object without specversion: %v", err)
	}
	// A ce-specversion header makes it binary, whatever the body.
	e, err := Decode(&nats.Msg{Header: nats.Header{"ce-specversion": {"1.0"}, "ce-id": {"b"}, "ce-type": {"t"}, "ce-source": {"s"}}, Data: []byte(body)})
	if err != nil || e.ID != "b" || string(e.Data) != body {
		t.Fatalf("binary with an event-like body: %+v, %v", e, err)
	}
}

// Header values as a producer that neither quotes nor percent-encodes
// (sdk-go), or that uses RFC 7230 quoted-strings, sends them.
func TestDecodeBinaryHeaderForms(t *testing.T) {
	h := nats.Header{
		"ce-specversion":                    {`"1.0"`},
		"ce-id":                             {`"id with \"quotes\""`},
		"ce-type":                           {"t"},
		"ce-source":                         {"https://example.com/a b?x=100%"},
		"ce-subject":                        {"caf\u00e9 %41"},
		"content-type":                      {"text/plain; charset=utf-8"},
		"ce-averyveryverylongextensionname": {"v"},
	}
	e, err := Decode(&nats.Msg{Header: h, Data: []byte("plain text")})
	if err != nil {
		t.Fatal(err)
	}
	want := &Event{
		ID: `id with "quotes"`, Type: "t", Source: "https://example.com/a b?x=100%", Subject: "café A",
		DataContentType: "text/plain; charset=utf-8", Data: json.RawMessage("plain text"),
		Extensions: map[string]string{"averyveryverylongextensionname": "v"},
	}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got %#v\nwant %#v", e, want)
	}
	if _, err := DataAs[string](e); !errors.Is(err, ErrValidation) {
		t.Fatalf("DataAs of text: %v", err)
	}
	// ce-datacontenttype wins over content-type.
	h["ce-datacontenttype"] = []string{"application/json"}
	e, err = Decode(&nats.Msg{Header: h, Data: []byte(`"json text"`)})
	if err != nil || e.DataContentType != "application/json" {
		t.Fatalf("%+v, %v", e, err)
	}
	// Binary data of an event that declares no content type.
	delete(h, "ce-datacontenttype")
	delete(h, "content-type")
	e, err = Decode(&nats.Msg{Header: h, Data: []byte("\x00raw")})
	if err != nil || e.DataContentType != ContentTypeOctetStream || string(e.Data) != "\x00raw" {
		t.Fatalf("%+v, %v", e, err)
	}
}

func TestDecodeStructuredData(t *testing.T) {
	base := `"specversion":"1.0","id":"1","type":"t","source":"s"`
	for _, tc := range []struct {
		name, members, ct, data string
	}{
		{"object", `"data":{"a":1}`, "", `{"a":1}`},
		{"array", `"data":[1,2]`, "", `[1,2]`},
		{"string", `"data":"text"`, "", `"text"`},
		{"number", `"data":9007199254740993`, "", `9007199254740993`},
		{"null", `"data":null`, "", ``},
		{"none", ``, "", ``},
		{"text", `"datacontenttype":"text/plain","data":"hello"`, "text/plain", `hello`},
		{"xml", `"datacontenttype":"application/xml","data":"<a/>"`, "application/xml", `<a/>`},
		{"base64", `"datacontenttype":"application/octet-stream","data_base64":"AAE="`, "application/octet-stream", "\x00\x01"},
		{"base64 json", `"datacontenttype":"application/json","data_base64":"eyJhIjoxfQ=="`, "application/json", `{"a":1}`},
		{"base64 no type", `"data_base64":"AAE="`, ContentTypeOctetStream, "\x00\x01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "{" + base
			if tc.members != "" {
				body += "," + tc.members
			}
			body += "}"
			e, err := Decode(&nats.Msg{Header: nats.Header{"content-type": {ContentTypeCloudEventsJSON}}, Data: []byte(body)})
			if err != nil {
				t.Fatal(err)
			}
			if e.DataContentType != tc.ct || string(e.Data) != tc.data || (tc.data == "") != (e.Data == nil) {
				t.Fatalf("ct %q data %q, want %q %q", e.DataContentType, e.Data, tc.ct, tc.data)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	good := func() nats.Header {
		return nats.Header{
			"ce-specversion":     {"1.0"},
			"ce-id":              {"0b7f7a8e-1f0c-4a8e-9b1a-2f8d6c0e5a11"},
			"ce-type":            {"user.created"},
			"ce-source":          {"auth"},
			"ce-time":            {"2026-03-14T15:09:26Z"},
			"ce-organizationid":  {"org"},
			"ce-datacontenttype": {"application/json"},
		}
	}
	if _, err := Decode(&nats.Msg{Header: good(), Data: []byte(`{"a":1}`)}); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	for _, tc := range []struct {
		name  string
		field string
		mod   func(h nats.Header) []byte
	}{
		{"no headers at all", "specversion", func(h nats.Header) []byte { clear(h); return []byte("{}") }},
		{"wrong specversion", "specversion", func(h nats.Header) []byte { h["ce-specversion"] = []string{"0.3"}; return nil }},
		{"missing id", "id", func(h nats.Header) []byte { delete(h, "ce-id"); return nil }},
		{"missing type", "type", func(h nats.Header) []byte { delete(h, "ce-type"); return nil }},
		{"missing source", "source", func(h nats.Header) []byte { delete(h, "ce-source"); return nil }},
		{"empty id", "id", func(h nats.Header) []byte { h["ce-id"] = []string{""}; return nil }},
		{"empty quoted id", "id", func(h nats.Header) []byte { h["ce-id"] = []string{`""`}; return nil }},
		{"bad time", "timestamp", func(h nats.Header) []byte { h["ce-time"] = []string{"yesterday"}; return nil }},
		{"time before year 0 in UTC", "timestamp", func(h nats.Header) []byte { h["ce-time"] = []string{"0000-01-01T00:00:00+01:00"}; return nil }},
		{"time after year 9999 in UTC", "timestamp", func(h nats.Header) []byte { h["ce-time"] = []string{"9999-12-31T23:30:00-01:00"}; return nil }},
		{"percent-encoding that is not UTF-8", "source", func(h nats.Header) []byte { h["ce-source"] = []string{"a%FF"}; return nil }},
		{"raw value not UTF-8", "type", func(h nats.Header) []byte { h["ce-type"] = []string{"a\xffb"}; return nil }},
		{"content-type standing for datacontenttype not UTF-8", "content-type", func(h nats.Header) []byte {
			delete(h, "ce-datacontenttype")
			h["Content-Type"] = []string{"\x99"}
			return []byte("0")
		}},
		{"bad extension name", "extensions[trace_id]", func(h nats.Header) []byte { h["ce-trace_id"] = []string{"x"}; return nil }},
		{"reserved extension name", "extensions[data]", func(h nats.Header) []byte { h["ce-data"] = []string{"x"}; return nil }},
		{"structured garbage", "body", func(h nats.Header) []byte {
			clear(h)
			h["content-type"] = []string{ContentTypeCloudEventsJSON}
			return []byte("{{")
		}},
		{"structured no spec", "specversion", func(h nats.Header) []byte {
			clear(h)
			h["content-type"] = []string{ContentTypeCloudEventsJSON}
			return []byte(`{"id":"0b7f7a8e-1f0c-4a8e-9b1a-2f8d6c0e5a11"}`)
		}},
		{"structured id not string", "id", func(h nats.Header) []byte {
			clear(h)
			h["content-type"] = []string{ContentTypeCloudEventsJSON}
			return []byte(`{"specversion":"1.0","id":7}`)
		}},
		{"structured no source", "source", func(h nats.Header) []byte {
			clear(h)
			h["content-type"] = []string{ContentTypeCloudEventsJSON}
			return []byte(`{"specversion":"1.0","id":"1","type":"t"}`)
		}},
		{"structured sniffed without type", "type", func(h nats.Header) []byte {
			clear(h)
			return []byte(`{"specversion":"1.0","id":"1","source":"s"}`)
		}},
		{"structured data and data_base64", "data", func(h nats.Header) []byte {
			clear(h)
			h["content-type"] = []string{ContentTypeCloudEventsJSON}
			return []byte(`{"specversion":"1.0","id":"1","type":"t","source":"s","data":{},"data_base64":"AA=="}`)
		}},
		{"structured bad base64", "data_base64", func(h nats.Header) []byte {
			clear(h)
			h["content-type"] = []string{ContentTypeCloudEventsJSON}
			return []byte(`{"specversion":"1.0","id":"1","type":"t","source":"s","data_base64":"!"}`)
		}},
		{"structured bad extension name", "extensions[Trace]", func(h nats.Header) []byte {
			clear(h)
			h["content-type"] = []string{ContentTypeCloudEventsJSON}
			return []byte(`{"specversion":"1.0","id":"1","type":"t","source":"s","Trace":"x"}`)
		}},
		{"structured object extension", "extensions[ext]", func(h nats.Header) []byte {
			clear(h)
			h["content-type"] = []string{ContentTypeCloudEventsJSON}
			return []byte(`{"specversion":"1.0","id":"1","type":"t","source":"s","ext":{}}`)
		}},
		{"structured batch", "content-type", func(h nats.Header) []byte {
			clear(h)
			h["content-type"] = []string{"application/cloudevents-batch+json"}
			return []byte(`[]`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := good()
			body := tc.mod(h)
			_, err := Decode(&nats.Msg{Header: h, Data: body})
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Decode() = %v, want *ValidationError", err)
			}
			if verr.Field != tc.field {
				t.Fatalf("field %q, want %q (%v)", verr.Field, tc.field, err)
			}
		})
	}
	if _, err := Decode(nil); !errors.Is(err, ErrValidation) {
		t.Errorf("nil msg: %v", err)
	}
}

// TestDecodeInvalidJSONData: Decode does not validate the data of an event
// that declares a JSON content type; whoever reads the data gets a
// *ValidationError for "data" that is permanent (a handler returning it has
// the event dead-lettered at once), and Validate refuses the event.
func TestDecodeInvalidJSONData(t *testing.T) {
	for _, tc := range []struct{ name, ct, data string }{
		{"non-json data", "application/json", "hello"},
		{"truncated json", "application/json", `{"a":`},
		{"two values", "application/json", `{} {}`},
		{"non-json data for +json", "application/cloudevents-thing+json", "hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := nats.Header{
				"ce-specversion":     {"1.0"},
				"ce-id":              {"0b7f7a8e-1f0c-4a8e-9b1a-2f8d6c0e5a11"},
				"ce-type":            {"user.created"},
				"ce-source":          {"auth"},
				"ce-time":            {"2026-03-14T15:09:26Z"},
				"ce-organizationid":  {"org"},
				"ce-schemaversion":   {"1.0"},
				"ce-datacontenttype": {tc.ct},
			}
			e, err := Decode(&nats.Msg{Header: h, Data: []byte(" " + tc.data + "\n")})
			if err != nil {
				t.Fatalf("Decode() = %v", err)
			}
			if e.DataContentType != tc.ct || string(e.Data) != tc.data {
				t.Fatalf("ct %q data %q, want %q %q", e.DataContentType, e.Data, tc.ct, tc.data)
			}
			_, derr := DataAs[map[string]any](e)
			_, merr := e.DataMap()
			for name, err := range map[string]error{"DataAs": derr, "DataMap": merr, "Validate": e.Validate()} {
				var verr *ValidationError
				if !errors.As(err, &verr) || verr.Field != "data" {
					t.Fatalf("%s = %v, want a *ValidationError for data", name, err)
				}
				if !errors.Is(err, ErrPermanent) || !errors.Is(err, ErrValidation) {
					t.Fatalf("%s = %v, want it to match ErrPermanent and ErrValidation", name, err)
				}
			}
			// Structured mode embeds the data as JSON: it cannot be written.
			if _, err := encodeEvent(e, ModeStructured); !errors.Is(err, ErrValidation) {
				t.Fatalf("structured encoding of invalid JSON data = %v, want ErrValidation", err)
			}
		})
	}
	// An event that declares no content type: data that is not JSON is
	// binary data, as before.
	e, err := Decode(&nats.Msg{Header: nats.Header{
		"ce-specversion": {"1.0"}, "ce-id": {"1"}, "ce-type": {"t"}, "ce-source": {"s"},
	}, Data: []byte(`{"a":`)})
	if err != nil || e.DataContentType != ContentTypeOctetStream || string(e.Data) != `{"a":` {
		t.Fatalf("no content type, non-JSON data: %+v, %v", e, err)
	}
}

func FuzzDecode(f *testing.F) {
	e := fullEvent(f)
	bin, _ := Encode(e, ModeBinary)
	str, _ := Encode(e, ModeStructured)
	f.Add(headerBlock(bin.Header), bin.Data)
	f.Add(headerBlock(str.Header), str.Data)
	f.Add("", []byte("garbage"))
	f.Fuzz(func(t *testing.T, headers string, body []byte) {
		h := nats.Header{}
		for _, line := range strings.Split(headers, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok {
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		got, err := Decode(&nats.Msg{Header: h, Data: body})
		if err != nil {
			if !errors.Is(err, ErrValidation) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Whatever decodes is a valid CloudEvent, and encodes and decodes
		// to the same event in both modes.
		if verr := got.validateCloudEvent(); verr != nil {
			t.Fatalf("decoded event invalid: %v", verr)
		}
		modes := []Mode{ModeBinary, ModeStructured}
		if isJSONContentType(got.DataContentType) && len(got.Data) > 0 && !json.Valid(got.Data) {
			// Decode leaves JSON data unchecked: whoever reads it gets a
			// permanent *ValidationError, and structured mode, which
			// embeds it, cannot write it. Binary mode carries it as it is.
			if _, err := DataAs[any](got); !errors.Is(err, ErrPermanent) || !errors.Is(err, ErrValidation) {
				t.Fatalf("DataAs of invalid JSON data = %v, want a permanent validation error", err)
			}
			if _, err := encodeEvent(got, ModeStructured); !errors.Is(err, ErrValidation) {
				t.Fatalf("structured encoding of invalid JSON data = %v, want ErrValidation", err)
			}
			modes = modes[:1]
		}
		for _, mode := range modes {
			msg, err := encodeEvent(got, mode)
			if err != nil {
				t.Fatalf("re-encode %s: %v", mode, err)
			}
			again, err := Decode(msg)
			if err != nil {
				t.Fatalf("re-decode %s: %v\n%#v\n%q %q", mode, err, got, msg.Header, msg.Data)
			}
			if again.ID != got.ID || again.Type != got.Type || again.Source != got.Source ||
				again.OrganizationID != got.OrganizationID || again.SchemaVersion != got.SchemaVersion ||
				again.Subject != got.Subject || again.DataSchema != got.DataSchema ||
				again.contentType() != got.contentType() || !sameData(again, got) ||
				!again.Timestamp.Equal(got.Timestamp) || !reflect.DeepEqual(again.Extensions, got.Extensions) {
				t.Fatalf("%s round trip changed the event:\n%#v\n%#v", mode, got, again)
			}
		}
		// Validate (the platform's rules) never panics on what decodes.
		_ = got.Validate()
	})
}

// sameData compares data bytes, JSON data by value (structured mode
// re-encodes it compactly).
func sameData(a, b *Event) bool {
	if !isJSONContentType(a.DataContentType) || len(a.Data) == 0 || len(b.Data) == 0 || !json.Valid(a.Data) {
		return string(a.Data) == string(b.Data)
	}
	var va, vb any
	da, db := json.NewDecoder(bytes.NewReader(a.Data)), json.NewDecoder(bytes.NewReader(b.Data))
	da.UseNumber()
	db.UseNumber()
	return da.Decode(&va) == nil && db.Decode(&vb) == nil && reflect.DeepEqual(va, vb)
}

// headerBlock renders headers one "key: value" a line, the fuzz input form.
func headerBlock(h nats.Header) string {
	var b strings.Builder
	for k, vs := range h {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	return b.String()
}

func TestIsPublishSubject(t *testing.T) {
	for s, want := range map[string]bool{
		"auth.user.created": true, "a": true, "a.b-c_d.e1": true, "auth.*.x": false, "auth.>": false,
		"": false, ".a": false, "a.": false, "a..b": false, "a b": false, "a\tb": false, ">": false, "*": false,
		"a.*b": true,
	} {
		if got := isPublishSubject(s); got != want {
			t.Errorf("isPublishSubject(%q) = %v, want %v", s, got, want)
		}
		if got := validateSubject(s, false) == nil; got != want {
			t.Errorf("validateSubject(%q) disagrees: %v", s, got)
		}
	}
}
