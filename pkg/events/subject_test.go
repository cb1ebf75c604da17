package events_test

import (
	"testing"

	"github.com/giia/eventstream-operator/pkg/events"
)

// SubjectFor follows the seed: {service}.{type}, the type's dots kept, so
// that auth.user.> (or auth.>) captures every auth-service event.
func TestSubjectFor(t *testing.T) {
	for _, c := range []struct{ service, typ, want string }{
		{"auth", "user.created", "auth.user.created"},
		{"auth", "user.login.succeeded", "auth.user.login.succeeded"},
		{"auth", "user.login.failed", "auth.user.login.failed"},
		{"auth", "user.role.assigned", "auth.user.role.assigned"},
		{"catalog", "product.updated", "catalog.product.updated"},
		{"ddmrp", "buffer", "ddmrp.buffer"},
	} {
		if got := events.SubjectFor(c.service, c.typ); got != c.want {
			t.Errorf("SubjectFor(%q, %q) = %q, want %q", c.service, c.typ, got, c.want)
		}
	}
}
