package events

import (
	"net/url"
	"strings"
)

// redactURL hides user information in a NATS URL (nats://user:pass@host)
// so that it can be logged or put into an error.
func redactURL(raw string) string {
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

// RedactURL returns url with any user name, password or token replaced, for
// logs and status messages.
func RedactURL(url string) string { return redactURL(url) }
