package events

import (
	"encoding/json"
	"errors"
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
		"userId": "u-1",
		"email":  "ada@example.com",
		"age":    float64(36),
		"admin":  true,
		"roles":  []any{"a", "b"},
		"nested": map[string]any{"k": "v", "n": nil},
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
	for _, bad := range []string{"%", "%2", "%zz", "abc%4", "%C3", "%FF%FE"} {
		if _, err := percentDecode(bad); err == nil {
			t.Errorf("percentDecode(%q): no error", bad)
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
		{"data not JSON", "data", func(e *Event) { e.Data = map[string]any{"ch": make(chan int)} }},
		{"data NaN", "data", func(e *Event) { e.Data = map[string]any{"f": func() {}} }},
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
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, e)
			}
		})
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
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("mixed case:\n got %#v\nwant %#v", got, e)
	}

	s, _ := Encode(e, ModeStructured)
	got, err = Decode(&nats.Msg{Header: nats.Header{"Content-Type": {"application/cloudevents+json; charset=utf-8"}}, Data: s.Data})
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("structured with Content-Type: %v", err)
	}
}

// A binary message as a CloudEvents SDK without the platform's schemaversion
// would send it.
func TestDecodeForeignDefaults(t *testing.T) {
	h := nats.Header{
		"ce-specversion":    {"1.0"},
		"ce-id":             {"0b7f7a8e-1f0c-4a8e-9b1a-2f8d6c0e5a11"},
		"ce-type":           {"user.created"},
		"ce-source":         {"/auth"},
		"ce-time":           {"2026-03-14T16:09:26+01:00"},
		"ce-organizationid": {"org"},
	}
	e, err := Decode(&nats.Msg{Header: h})
	if err != nil {
		t.Fatal(err)
	}
	if e.SchemaVersion != "1.0" || e.Data != nil || !e.Timestamp.Equal(time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)) || e.Timestamp.Location() != time.UTC {
		t.Fatalf("%+v", e)
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
		{"missing organization", "organizationid", func(h nats.Header) []byte { delete(h, "ce-organizationid"); return nil }},
		{"missing time", "timestamp", func(h nats.Header) []byte { delete(h, "ce-time"); return nil }},
		{"bad time", "timestamp", func(h nats.Header) []byte { h["ce-time"] = []string{"yesterday"}; return nil }},
		{"bad percent", "source", func(h nats.Header) []byte { h["ce-source"] = []string{"a%2"}; return nil }},
		{"bad percent hex", "type", func(h nats.Header) []byte { h["ce-type"] = []string{"a%zzb"}; return nil }},
		{"non-json data", "data", func(h nats.Header) []byte { return []byte("hello") }},
		{"truncated json", "data", func(h nats.Header) []byte { return []byte(`{"a":`) }},
		{"json array", "data", func(h nats.Header) []byte { return []byte(`[1,2]`) }},
		{"non-json content type", "datacontenttype", func(h nats.Header) []byte { h["ce-datacontenttype"] = []string{"text/plain"}; return []byte("{}") }},
		{"bad extension name", "extensions[trace_id]", func(h nats.Header) []byte { h["ce-trace_id"] = []string{"x"}; return nil }},
		{"bad schema version", "schemaversion", func(h nats.Header) []byte { h["ce-schemaversion"] = []string{"one"}; return nil }},
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
		{"structured data not object", "data", func(h nats.Header) []byte {
			clear(h)
			h["content-type"] = []string{ContentTypeCloudEventsJSON}
			return []byte(`{"specversion":"1.0","id":"0b7f7a8e-1f0c-4a8e-9b1a-2f8d6c0e5a11","type":"t","source":"s","organizationid":"o","time":"2026-03-14T15:09:26Z","data":"text"}`)
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
		// Whatever decodes must encode and decode to the same event.
		if verr := got.Validate(); verr != nil {
			t.Fatalf("decoded event invalid: %v", verr)
		}
		for _, mode := range []Mode{ModeBinary, ModeStructured} {
			msg, err := Encode(got, mode)
			if err != nil {
				t.Fatalf("re-encode %s: %v", mode, err)
			}
			again, err := Decode(msg)
			if err != nil {
				t.Fatalf("re-decode %s: %v", mode, err)
			}
			if again.ID != got.ID || again.Type != got.Type || again.Source != got.Source ||
				!again.Timestamp.Equal(got.Timestamp) || !reflect.DeepEqual(again.Extensions, got.Extensions) {
				t.Fatalf("%s round trip changed the event:\n%#v\n%#v", mode, got, again)
			}
		}
	})
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

func FuzzFastJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, ` {"a" : [1, -2.5e3, true, false, null, "x", {"b": []}]} `,
		`{"a":"caf\u00e9"}`, `{"a":"é"}`, `{"a":1,"a":2}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`,
		`{"a":1e400}`, `{"a":[1,]}`, `{"a":}`, `{,}`, `{"a":1}x`, `[1]`, `{"a":"\n"}`, "{\"a\":\"\x01\"}",
		`{"a":{"b":{"c":{"d":[[[[1]]]]}}}}`, `{"a":0.5E-3}`, `{"a":tru}`, `{"a" 1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := unmarshalObject(data)
		var want map[string]any
		wantErr := json.Unmarshal(data, &want)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: fast err %v, encoding/json err %v", data, gotErr, wantErr)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\nfast %#v\njson %#v", data, got, want)
		}
	})
}
