package schemas

import "testing"

// parseKey inverts Key for every pair, escapes included, and refuses keys
// Key never produces: such keys in the bucket are ignored, since no event
// can look them up.
func TestParseKeyInvertsKey(t *testing.T) {
	for _, tc := range []struct{ typ, version string }{
		{"user.created", "1.0"},
		{"user.login.succeeded", "12.345"},
		{".leading", "1.0"},
		{"trailing.", "1.0"},
		{"double..dot", "1.0"},
		{"a=b c/d*>", "0.1"},
		{"ünïcode", "2.0"},
	} {
		key := Key(tc.typ, tc.version)
		typ, version, ok := parseKey(key)
		if !ok || typ != tc.typ || version != tc.version {
			t.Errorf("Key(%q, %q) = %q parses as %q, %q, %v", tc.typ, tc.version, key, typ, version, ok)
		}
	}
	for _, key := range []string{"nonsense", "a.b", ".1.0", "x.1.0.=ZZ", "x.=4", "x.not-a-version", "user.created.1.=30"} {
		if typ, version, ok := parseKey(key); ok {
			t.Errorf("%q parses as %q, %q", key, typ, version)
		}
	}
}
