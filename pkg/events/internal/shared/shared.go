// Package shared lets the admin package use helpers of the events package
// without widening the events API that services see: events sets the
// function variables in its init, and admin, which imports events (so that
// init has run), calls them. One implementation, two packages.
package shared

import (
	"net/url"
	"strings"
)

var (
	// Wrap returns err as an *events.OpError for operation op on name,
	// classified by the sentinel that describes it (events.ErrNotFound,
	// events.ErrConnection, ...); nil stays nil.
	Wrap func(op, name string, err error) error
	// ValidateSubject checks a NATS subject; wildcards allows '*' and '>'.
	ValidateSubject func(subject string, wildcards bool) error
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
