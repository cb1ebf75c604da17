package events

import "github.com/giia/eventstream-operator/pkg/events/internal/shared"

// redactURL hides user information in a NATS URL (nats://user:pass@host)
// so that it can be logged or put into an error. The operator uses the same
// function as admin.RedactURL.
func redactURL(raw string) string { return shared.RedactURL(raw) }

// The admin package reaches these helpers through internal/shared.
func init() {
	shared.Wrap = wrap
	shared.ValidateSubject = validateSubject
	shared.CreateStream = createStreamRequest
}
