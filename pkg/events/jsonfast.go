package events

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// unmarshalObject decodes a JSON object into map[string]any with exactly
// encoding/json's result (float64 numbers, []any arrays, nested maps), but
// without reflection: consumers decode every event's data, and
// json.Unmarshal into an interface map costs most of a delivery. Input the
// fast path does not handle simply (escapes, non-ASCII text, anything
// malformed) is handed to json.Unmarshal, so behaviour and error messages
// stay the standard library's; FuzzFastJSON checks the two agree.
func unmarshalObject(data []byte) (map[string]any, error) {
	p := fastParser{data: data}
	p.skipSpace()
	if m, ok := p.object(0); ok {
		p.skipSpace()
		if p.pos == len(p.data) {
			return m, nil
		}
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return m, nil
}

type fastParser struct {
	data []byte
	pos  int
}

// maxFastDepth bounds recursion on the fast path; deeper input goes to
// encoding/json, which has its own limit.
const maxFastDepth = 64

func (p *fastParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *fastParser) object(depth int) (map[string]any, bool) {
	if depth > maxFastDepth || p.pos >= len(p.data) || p.data[p.pos] != '{' {
		return nil, false
	}
	p.pos++
	m := make(map[string]any)
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return m, true
	}
	for {
		p.skipSpace()
		k, ok := p.str()
		if !ok {
			return nil, false
		}
		p.skipSpace()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return nil, false
		}
		p.pos++
		p.skipSpace()
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		m[k] = v
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, false
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return m, true
		default:
			return nil, false
		}
	}
}

func (p *fastParser) array(depth int) ([]any, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	p.pos++ // '['
	a := []any{}
	p.skipSpace()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return a, true
	}
	for {
		p.skipSpace()
		v, ok := p.value(depth + 1)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		p.skipSpace()
		if p.pos >= len(p.data) {
			return nil, false
		}
		switch p.data[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return a, true
		default:
			return nil, false
		}
	}
}

func (p *fastParser) value(depth int) (any, bool) {
	if p.pos >= len(p.data) {
		return nil, false
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		m, ok := p.object(depth)
		return m, ok
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	}
	return nil, false
}

func (p *fastParser) literal(lit string) bool {
	if len(p.data)-p.pos < len(lit) || string(p.data[p.pos:p.pos+len(lit)]) != lit {
		return false
	}
	p.pos += len(lit)
	return true
}

// str reads a string of printable ASCII without escapes; anything else is
// left to encoding/json (which replaces invalid UTF-8, decodes escapes...).
func (p *fastParser) str() (string, bool) {
	if p.pos >= len(p.data) || p.data[p.pos] != '"' {
		return "", false
	}
	start := p.pos + 1
	for i := start; i < len(p.data); i++ {
		c := p.data[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return string(p.data[start:i]), true
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return "", false
		}
	}
	return "", false
}

// number reads a JSON number (strict grammar) as float64.
func (p *fastParser) number() (any, bool) {
	d, i := p.data, p.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return nil, false
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	f, err := strconv.ParseFloat(string(d[p.pos:i]), 64)
	if err != nil {
		return nil, false // out of range: encoding/json reports it
	}
	p.pos = i
	return f, true
}

// appendJSON appends v's JSON to dst byte for byte as json.NewEncoder(w).
// Encode(v) writes it (HTML escaping on), less the trailing newline, but
// without reflection: publishers encode every event's data, and
// encoding/json's map and interface encoders (and its key sorting) were
// about a quarter of the library's cost of a publish. It handles what event
// data is made of: nil, bools, strings, the built-in numeric types,
// json.Number, map[string]any, map[string]string, []any, []string and
// []map[string]any. On anything else (structs, pointers, Marshalers, named
// types, NaN or infinite floats, nesting deeper than maxFastDepth) it
// reports false, and the caller must discard what was appended and encode
// the whole value with encoding/json, so that behaviour and error messages
// stay the standard library's; FuzzFastJSONEncode checks the two agree.
func appendJSON(dst []byte, v any) ([]byte, bool) {
	return appendValue(dst, v, 0)
}

func appendValue(dst []byte, v any, depth int) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case string:
		return appendString(dst, v), true
	case bool:
		return strconv.AppendBool(dst, v), true
	case float64:
		return appendFloat(dst, v, 64)
	case float32:
		return appendFloat(dst, float64(v), 32)
	case int:
		return strconv.AppendInt(dst, int64(v), 10), true
	case int8:
		return strconv.AppendInt(dst, int64(v), 10), true
	case int16:
		return strconv.AppendInt(dst, int64(v), 10), true
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), true
	case int64:
		return strconv.AppendInt(dst, v, 10), true
	case uint:
		return strconv.AppendUint(dst, uint64(v), 10), true
	case uint8:
		return strconv.AppendUint(dst, uint64(v), 10), true
	case uint16:
		return strconv.AppendUint(dst, uint64(v), 10), true
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10), true
	case uint64:
		return strconv.AppendUint(dst, v, 10), true
	case uintptr:
		return strconv.AppendUint(dst, uint64(v), 10), true
	case json.Number:
		return appendNumber(dst, v)
	case map[string]any:
		return appendObject(dst, v, depth, appendValue)
	case map[string]string:
		return appendObject(dst, v, depth, appendStringValue)
	case []any:
		return appendArray(dst, v, depth, appendValue)
	case []string:
		return appendArray(dst, v, depth, appendStringValue)
	case []map[string]any:
		return appendArray(dst, v, depth, func(dst []byte, m map[string]any, depth int) ([]byte, bool) {
			return appendObject(dst, m, depth, appendValue)
		})
	}
	return dst, false
}

// appendStringValue has appendValue's shape, for the string-typed maps and
// slices.
func appendStringValue(dst []byte, s string, _ int) ([]byte, bool) {
	return appendString(dst, s), true
}

// keysOnStack is how many members an object may have before sorting them
// allocates: they are gathered in an array on the encoding function's
// stack, and event data rarely has more at one level.
const keysOnStack = 16

// member is an object member, gathered with its key so that writing the
// sorted members needs no map lookups.
type member[V any] struct {
	key string
	val V
}

// sortedMembers appends m's members to ms in the order encoding/json writes
// them: sorted by key, compared as strings (byte by byte).
func sortedMembers[V any](ms []member[V], m map[string]V) []member[V] {
	for k, v := range m {
		ms = append(ms, member[V]{k, v})
	}
	slices.SortFunc(ms, func(a, b member[V]) int { return strings.Compare(a.key, b.key) })
	return ms
}

// appendObject writes m's members, sorted by key, each value with elem at
// depth+1; a nil map is null.
func appendObject[V any](dst []byte, m map[string]V, depth int, elem func([]byte, V, int) ([]byte, bool)) ([]byte, bool) {
	if m == nil {
		return append(dst, "null"...), true
	}
	if depth > maxFastDepth {
		return dst, false // maybe a cycle: encoding/json reports it
	}
	var onStack [keysOnStack]member[V]
	dst = append(dst, '{')
	for i, kv := range sortedMembers(onStack[:0], m) {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(appendString(dst, kv.key), ':')
		var ok bool
		if dst, ok = elem(dst, kv.val, depth+1); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// appendArray writes a's elements with elem at depth+1; a nil slice is null.
func appendArray[T any](dst []byte, a []T, depth int, elem func([]byte, T, int) ([]byte, bool)) ([]byte, bool) {
	if a == nil {
		return append(dst, "null"...), true
	}
	if depth > maxFastDepth {
		return dst, false
	}
	dst = append(dst, '[')
	for i, v := range a {
		if i > 0 {
			dst = append(dst, ',')
		}
		var ok bool
		if dst, ok = elem(dst, v, depth+1); !ok {
			return dst, false
		}
	}
	return append(dst, ']'), true
}

// appendFloat formats f as encoding/json does (like ES6 Number to string:
// 'f' format unless the exponent is below -6 or at least 21, with the
// exponent not padded to two digits). bits is the type's size: a float32 is
// formatted with the shortest digits that round-trip as float32, and its
// cutoffs compared in float32. NaN and infinities are left to
// encoding/json, whose error they are.
func appendFloat(dst []byte, f float64, bits int) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		// strconv pads the exponent to two digits, encoding/json does not:
		// e-07 becomes e-7. A positive exponent is at least 21 here.
		if n := len(dst); dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, true
}

// appendNumber writes a json.Number as it is, like encoding/json, which
// writes the empty Number as 0 and refuses one that is not a JSON number
// (left to it, for its error).
func appendNumber(dst []byte, n json.Number) ([]byte, bool) {
	if n == "" {
		return append(dst, '0'), true
	}
	if !isNumber(string(n)) {
		return dst, false
	}
	return append(dst, n...), true
}

// isNumber reports whether s is exactly one JSON number (strict grammar).
func isNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = skipDigits(s, i)
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		if j := skipDigits(s, i+1); j > i+1 {
			i = j
		} else {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if j := skipDigits(s, i); j > i {
			i = j
		} else {
			return false
		}
	}
	return i == len(s)
}

func skipDigits(s string, i int) int {
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

// htmlSafe[b] reports whether the ASCII byte b goes into a JSON string as
// it is: json.Encoder escapes control characters, '"' and '\\', and, with
// HTML escaping on (its default, which the wire format has always had),
// '<', '>' and '&'.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for b := ' '; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string exactly as encoding/json does with
// HTML escaping: the short escapes for \b \f \n \r \t, \u00XX for the
// other unsafe ASCII bytes, \ufffd for each invalid UTF-8 byte, and \u2028
// and \u2029 (valid JSON, but not valid JavaScript) escaped. Runs of safe
// bytes are copied at once.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if htmlSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
