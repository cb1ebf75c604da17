// Package shared lets the admin package use helpers of the events package
// without widening the events API that services see: events sets the
// function variables in its init, and admin, which imports events (so that
// init has run), calls them. One implementation, two packages.
package shared

import (
	"context"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

var (
	// Wrap returns err as an *events.OpError for operation op on name,
	// classified by the sentinel that describes it (events.ErrNotFound,
	// events.ErrConnection, ...); nil stays nil.
	Wrap func(op, name string, err error) error
	// ValidateSubject checks a NATS subject; wildcards allows '*' and '>'.
	ValidateSubject func(subject string, wildcards bool) error
	// CreateStream sends one stream create request, retrying the store
	// errors nats-server returns while it is still removing a deleted
	// stream's directories (events.createStreamRequest).
	CreateStream func(ctx context.Context, js jetstream.StreamManager, cfg jetstream.StreamConfig) (jetstream.Stream, error)
)

// RedactURL hides user information in NATS URLs (a comma-separated list,
// nats://user:pass@host or nats://token@host) so that they can be logged or
// put into an error.
func RedactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			if strings.Contains(p, "@") {
				parts[i] = "<redacted>"
			}
			continue
		}
		u.User = url.User("redacted")
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
