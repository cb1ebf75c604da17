package admin

import "github.com/giia/eventstream-operator/pkg/events/internal/shared"

// RedactURL returns url (one NATS URL or a comma-separated list) with any
// user name, password or token replaced, for logs and status messages. It
// is the redaction the events package applies to its own errors.
func RedactURL(url string) string { return shared.RedactURL(url) }
