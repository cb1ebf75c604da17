package schemas_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

func setupB(b *testing.B) *schemas.Registry {
	srv := eventstest.RunJetStream(b)
	js := srv.JetStream(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := schemas.Register(ctx, js, schemas.Record{Type: "user.created", Version: "1.0", Schema: json.RawMessage(userCreatedV1)}); err != nil {
		b.Fatal(err)
	}
	r, err := schemas.Open(ctx, js)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(r.Close)
	return r
}

// BenchmarkValidateData is the registry's cost per event: decoding the data
// once and walking the seed's user.created schema.
func BenchmarkValidateData(b *testing.B) {
	srv := setupB(b)
	e := userCreated(b, "1.0", validUser())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := srv.ValidateData(e); err != nil {
			b.Fatal(err)
		}
	}
}
