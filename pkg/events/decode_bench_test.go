package events

import (
	"testing"
	"time"
)

// BenchmarkDecode decodes a binary-mode message as the publisher writes it
// (the seed's user.created payload): the subscriber's per-message cost
// before the handler runs.
func BenchmarkDecode(b *testing.B) {
	e, err := NewEvent("auth.user.created", "auth-service", "org-1", time.Now(), map[string]any{
		"user_id": "a4c1f0a2-3b7e-4d5f-9a1b-6c2d8e0f1a2b", "email": "ada@example.com",
		"first_name": "Ada", "last_name": "Lovelace", "status": "active",
	})
	if err != nil {
		b.Fatal(err)
	}
	msg, err := Encode(e, ModeBinary)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeParts(msg.Header, msg.Data); err != nil {
			b.Fatal(err)
		}
	}
}
