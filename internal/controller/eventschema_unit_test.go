package controller

import (
	"testing"

	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

func TestKeyTypeReversesSchemasKey(t *testing.T) {
	for _, typ := range []string{"user.created", "user.login.failed", "a", "with=equals", "under_score-dash", "trailing.", ".leading", "two..dots", "sp ace"} {
		got, ok := keyType(schemas.Key(typ, "12.3"))
		if !ok || got != typ {
			t.Errorf("keyType(Key(%q, 12.3)) = %q, %v", typ, got, ok)
		}
	}
	for _, key := range []string{"", "1.0", "nodots", "bad=Z.1.0", "short=4.1.0"} {
		if got, ok := keyType(key); ok {
			t.Errorf("keyType(%q) = %q, want no type", key, got)
		}
	}
}
