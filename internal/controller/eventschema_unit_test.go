package controller

import (
	"github.com/go-logr/logr"
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

// A write that failed (a compare-and-set lost to someone else's write) has
// no echo: its expectation is withdrawn, so the next change made out of
// band is not taken for the operator's own and is repaired at once.
func TestSchemaWatchForgetsTheOwnWriteThatFailed(t *testing.T) {
	w := newSchemaWatch(nil, "EVENT_SCHEMAS", logr.Discard())
	w.expectOwnWrite("user.created.1.0")
	w.forgetOwnWrite("user.created.1.0")
	if w.isOwnWrite("user.created.1.0") {
		t.Fatal("a put after a failed own write was taken for the operator's echo")
	}
	w.expectOwnWrite("user.created.1.0")
	w.expectOwnWrite("user.created.1.0")
	w.forgetOwnWrite("user.created.1.0")
	if !w.isOwnWrite("user.created.1.0") {
		t.Fatal("the echo of the write that succeeded was not recognised")
	}
	if w.isOwnWrite("user.created.1.0") {
		t.Fatal("a second put was taken for an echo after one write succeeded and one failed")
	}
}
