package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// stdJSON is what marshal wrote before appendJSON: json.Encoder's output
// (HTML escaping on) without the newline.
func stdJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// checkAppendJSON fails unless appendJSON writes what encoding/json writes
// for v, or declines v where encoding/json fails. fast says whether v is
// made only of types the fast path handles, which it must then not decline.
func checkAppendJSON(t *testing.T, v any, fast bool) {
	t.Helper()
	want, wantErr := stdJSON(v)
	prefix := []byte("prefix")
	got, ok := appendJSON(prefix, v)
	switch {
	case wantErr != nil && ok:
		t.Fatalf("%#v: encoding/json fails (%v), fast path wrote %s", v, wantErr, got)
	case wantErr == nil && ok && !bytes.Equal(got[len(prefix):], want):
		t.Fatalf("%#v:\nfast %s\njson %s", v, got[len(prefix):], want)
	case wantErr == nil && !ok && fast:
		t.Fatalf("%#v: fast path declined a value it handles", v)
	}
	// marshal agrees either way, including on the error.
	var enc encoder
	enc.buf.WriteString("stale")
	body, err := enc.marshal(v)
	if wantErr != nil {
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "data" || !strings.HasSuffix(ve.Reason, wantErr.Error()) {
			t.Fatalf("%#v: marshal error %v, want a data ValidationError ending in %q", v, err, wantErr)
		}
		return
	}
	if err != nil || !bytes.Equal(body, want) {
		t.Fatalf("%#v: marshal = %s, %v; want %s", v, body, err, want)
	}
}

type textKey int

func (k textKey) MarshalText() ([]byte, error) { return []byte("k" + string(rune('0'+k))), nil }

type marshaler struct{}

func (marshaler) MarshalJSON() ([]byte, error) { return []byte(`{"m" : 1}`), nil }

type named string

func TestAppendJSON(t *testing.T) {
	i := 7
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	for _, tc := range []struct {
		name string
		v    any
		fast bool
	}{
		{"empty", map[string]any{}, true},
		{"nil map", map[string]any(nil), true},
		{"nil value", map[string]any{"a": nil}, true},
		{"html", map[string]any{"<a href=\"x\">&amp;</a>": "<script>alert('&')</script>"}, true},
		{"line separators", map[string]any{"a": "x\u2028y\u2029z\u2027\u202a"}, true},
		{"invalid utf8", map[string]any{"a\xff": "b\xc3\x28c\xed\xa0\x80d\xf4\x90\x80\x80e\xe2\x82", "\xc3": "\x80"}, true},
		{"valid utf8", map[string]any{"é": "café 日本 🙂 \U0010FFFF \ufffd"}, true},
		{"control chars", map[string]any{"c": "\x00\x01\b\f\n\r\t\x1f\x7f\"\\/ '"}, true},
		{"key order", map[string]any{"b": 1, "a": 2, "B": 3, "aa": 4, "": 5, "é": 6, "z": 7, "\x00": 8}, true},
		{"floats", map[string]any{
			"a": 0.0, "b": math.Copysign(0, -1), "c": 1e20, "d": 1e21, "e": 1e-6, "f": 1e-7, "g": 123456789.125,
			"h": -1.5e-9, "i": math.MaxFloat64, "j": math.SmallestNonzeroFloat64, "k": 0.1, "l": 1e100, "m": -1e21,
			"n": 9.999999999999999e20, "o": 1.0000000000000001e-6, "p": 36.0, "q": 2.5e-10,
		}, true},
		{"float32", map[string]any{
			"a": float32(0.1), "b": float32(1e21), "c": float32(1e-7), "d": float32(9.99999e20), "e": float32(1e-6),
			"f": float32(math.MaxFloat32), "g": float32(math.SmallestNonzeroFloat32), "h": float32(-3.25), "i": float32(math.Copysign(0, -1)),
			"j": float32(1.0000001e-6), "k": float32(9.999999e-7),
		}, true},
		{"ints", map[string]any{
			"int": -1, "int8": int8(math.MinInt8), "int16": int16(math.MaxInt16), "int32": int32(math.MinInt32),
			"int64": int64(math.MinInt64), "uint": uint(math.MaxUint), "uint8": uint8(255), "uint16": uint16(65535),
			"uint32": uint32(math.MaxUint32), "uint64": uint64(math.MaxUint64), "uintptr": uintptr(12), "zero": 0,
		}, true},
		{"bools", map[string]any{"t": true, "f": false}, true},
		{"numbers", map[string]any{"a": json.Number("12"), "b": json.Number("-0.5e+10"), "c": json.Number(""), "d": json.Number("1E-2")}, true},
		{"nested", map[string]any{
			"m": map[string]any{"k": "v", "n": nil, "e": map[string]any{}},
			"a": []any{1.0, "x", nil, true, []any{}, map[string]any{"z": []any{[]any{}}}},
			"s": []string{"a", "<b>"}, "ns": []string(nil), "na": []any(nil), "nm": map[string]any(nil),
			"ms": map[string]string{"y": "1", "x": "&"}, "nms": map[string]string(nil),
			"am": []map[string]any{{"a": 1}, nil, {}}, "nam": []map[string]any(nil),
		}, true},
		{"many keys", func() map[string]any {
			m := map[string]any{}
			for i := range 100 {
				m[strings.Repeat("k", i%7)+string(rune('a'+i%26))+string(rune('0'+i/26))] = i
			}
			return m
		}(), true},
		{"deep", deep(maxFastDepth), true},
		{"deep arrays", map[string]any{"a": deepArray(maxFastDepth - 1)}, true},
		{"too deep", deep(maxFastDepth + 1), false},
		{"arrays too deep", map[string]any{"a": deepArray(maxFastDepth + 5)}, false},

		// Left to encoding/json.
		{"struct", map[string]any{"s": struct{ A int }{1}}, false},
		{"pointer", map[string]any{"p": &i}, false},
		{"nil pointer", map[string]any{"p": (*int)(nil)}, false},
		{"time", map[string]any{"t": testTime}, false},
		{"duration", map[string]any{"d": time.Second}, false},
		{"marshaler", map[string]any{"m": marshaler{}}, false},
		{"named string", map[string]any{"n": named("<x>")}, false},
		{"bytes", map[string]any{"b": []byte("hi")}, false},
		{"int map", map[string]any{"m": map[int]any{2: "b", 10: "a"}}, false},
		{"text key map", map[string]any{"m": map[textKey]int{1: 1, 2: 2}}, false},
		{"int slice", map[string]any{"s": []int{1, 2}}, false},
		{"raw message", map[string]any{"r": json.RawMessage(`{"a" : 1}`)}, false},

		// Errors, left to encoding/json.
		{"NaN", map[string]any{"f": math.NaN()}, false},
		{"+Inf", map[string]any{"a": 1, "f": math.Inf(1)}, false},
		{"-Inf float32", map[string]any{"f": float32(math.Inf(-1))}, false},
		{"bad number", map[string]any{"n": json.Number("01")}, false},
		{"bad number 2", map[string]any{"n": json.Number("1.")}, false},
		{"bad number 3", map[string]any{"n": json.Number("- 1")}, false},
		{"channel", map[string]any{"c": make(chan int)}, false},
		{"func", map[string]any{"f": func() {}}, false},
		{"cycle", cyclic, false},
	} {
		t.Run(tc.name, func(t *testing.T) { checkAppendJSON(t, tc.v, tc.fast) })
	}
}

func deep(n int) map[string]any {
	m := map[string]any{"leaf": 1}
	for range n {
		m = map[string]any{"m": m}
	}
	return m
}

func deepArray(n int) []any {
	a := []any{1}
	for range n {
		a = []any{a}
	}
	return a
}

func TestIsNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-12", "1.5", "0.0", "1e5", "1E+5", "1e-05", "-0.0e0", "123456789012345678901234567890"} {
		if !isNumber(s) {
			t.Errorf("isNumber(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".1", "1e", "1e+", "+1", "1 ", " 1", "1x", "0x1", "NaN", "--1", "1.e5", "1e5.0"} {
		if isNumber(s) {
			t.Errorf("isNumber(%q) = true", s)
		}
	}
}

// TestMarshalReusesBuffer checks that the fast path leaves the encoder's
// buffer holding the body (so the next event reuses its array), also when
// the body outgrew it, and that a fallback after a fast encode starts
// clean.
func TestMarshalReusesBuffer(t *testing.T) {
	var enc encoder
	big := map[string]any{"s": strings.Repeat("x", 1000)}
	b, err := enc.marshal(big)
	if err != nil || len(b) != 1008 || enc.buf.Len() != len(b) || &enc.buf.Bytes()[0] != &b[0] {
		t.Fatalf("marshal: %d bytes, %v; buffer holds %d", len(b), err, enc.buf.Len())
	}
	small := map[string]any{"a": 1}
	b2, err := enc.marshal(small)
	if err != nil || string(b2) != `{"a":1}` || &b2[0] != &b[0] {
		t.Fatalf("second marshal %s, %v: not in the same array", b2, err)
	}
	b3, err := enc.marshal(map[string]any{"t": time.Duration(5)})
	if err != nil || string(b3) != `{"t":5}` {
		t.Fatalf("fallback marshal %s, %v", b3, err)
	}
}

func FuzzFastJSONEncode(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":[true,null,"x"],"c":{"d":-2.5e-7}}`), "<&>", int64(-1), 1e21, float32(1e-7))
	f.Add([]byte(`{"\u2028":"\ud800","é":"\u0000"}`), "a\xffb\u2029", int64(math.MinInt64), math.Copysign(0, -1), float32(0.1))
	f.Add([]byte(`{"n":123456789012345678901234567890,"f":0.000001,"g":1e-7}`), "01", int64(255), 123456789.125, float32(3.4028235e38))
	f.Add([]byte(`[1]`), "1.5e+3", int64(0), 1e-6, float32(9.99999e20))
	f.Fuzz(func(t *testing.T, data []byte, s string, i int64, x float64, x32 float32) {
		// Data as a consumer decodes it, with float64 or json.Number numbers.
		// Only nesting deeper than maxFastDepth may be declined.
		var m map[string]any
		if json.Unmarshal(data, &m) == nil {
			checkAppendJSON(t, m, nesting(m) <= maxFastDepth)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if m = nil; dec.Decode(&m) == nil {
			checkAppendJSON(t, m, nesting(m) <= maxFastDepth)
		}
		// Data as a producer builds it, from raw strings (any bytes) and
		// numbers of every type. Only NaN, infinities, a bad json.Number
		// and deep nesting may (must) be declined.
		finite := !math.IsNaN(x) && !math.IsInf(x, 0) && !math.IsNaN(float64(x32)) && !math.IsInf(float64(x32), 0)
		built := map[string]any{
			s: s, s + "2": []any{s, x, nil}, "ss": []string{s, s}, "ms": map[string]string{s: s, "k": s},
			"int": int(i), "int8": int8(i), "int16": int16(i), "int32": int32(i), "int64": i,
			"uint": uint(i), "uint8": uint8(i), "uint16": uint16(i), "uint32": uint32(i), "uint64": uint64(i), "uintptr": uintptr(i),
			"f64": x, "f32": x32, "f64of32": float64(x32), "f32of64": float32(x),
			"nested": map[string]any{"m": m, "am": []map[string]any{m, {s: i}}},
		}
		checkAppendJSON(t, built, finite && nesting(built) <= maxFastDepth)
		checkAppendJSON(t, map[string]any{"n": json.Number(s)}, false)
		if finite {
			checkAppendJSON(t, map[string]any{"n": json.Number(s), "other": x}, false)
		}
	})
}

// nesting is how deep the deepest object or array in v is nested, v itself
// being at 0 (-1 if v is neither).
func nesting(v any) int {
	d := -1
	switch v := v.(type) {
	case map[string]any:
		d = 0
		for _, e := range v {
			d = max(d, nesting(e)+1)
		}
	case []any:
		d = 0
		for _, e := range v {
			d = max(d, nesting(e)+1)
		}
	case []map[string]any:
		d = 0
		for _, e := range v {
			d = max(d, nesting(e)+1)
		}
	case map[string]string, []string:
		d = 0
	}
	return d
}

// BenchmarkMarshalData compares marshal (appendJSON) with what it did
// before (json.Encoder into the same reused buffer) on a typical event's
// data and on the 256-byte payload of test/bench/library.
func BenchmarkMarshalData(b *testing.B) {
	payloads := []struct {
		name string
		data map[string]any
	}{
		{"event", map[string]any{
			"userId": "u-1234", "email": "ada@example.com", "name": "Ada Lovelace", "age": float64(36),
			"address": map[string]any{"city": "London", "zip": "W1", "primary": true},
		}},
		{"256B", map[string]any{"payload": strings.Repeat("x", 256-len(`{"payload":""}`))}},
	}
	for _, p := range payloads {
		b.Run(p.name+"/fast", func(b *testing.B) {
			var enc encoder
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.marshal(p.data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(p.name+"/encoding-json", func(b *testing.B) {
			var buf bytes.Buffer
			je := json.NewEncoder(&buf)
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				if err := je.Encode(p.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
