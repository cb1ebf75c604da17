//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/internal/testutil/proc"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// The four EventSchemas of config/samples: resource name and event type, all
// at schemaversion 1.0.
var sampleSchemas = []struct{ name, eventType string }{
	{"user-created-v1-0", "user.created"},
	{"user-login-succeeded-v1-0", "user.login.succeeded"},
	{"user-login-failed-v1-0", "user.login.failed"},
	{"user-role-assigned-v1-0", "user.role.assigned"},
}

// schemasEndToEnd: the sample EventSchemas are in the registry bucket, owned
// by their resources; the example auth service (validating against the
// registry the operator filled) publishes the seed's six events, each with
// its dataschema, and one invalid user.created through plain nats.go; the
// example subscriber (validating too) handles the six and dead-letters the
// invalid one into DLQ_EVENTS with the validator's reason.
func (s *suite) schemasEndToEnd() error {
	ctx, cancel := context.WithTimeout(s.ctx, 3*time.Minute)
	defer cancel()

	kv, err := s.js.KeyValue(ctx, schemas.DefaultBucket)
	if err != nil {
		return fmt.Errorf("the registry bucket %s: %w", schemas.DefaultBucket, err)
	}
	for _, want := range sampleSchemas {
		entry, err := kv.Get(ctx, schemas.Key(want.eventType, "1.0"))
		if err != nil {
			return fmt.Errorf("key %s: %w", schemas.Key(want.eventType, "1.0"), err)
		}
		var rec schemas.Record
		if err := json.Unmarshal(entry.Value(), &rec); err != nil {
			return fmt.Errorf("key %s holds no Record: %w", entry.Key(), err)
		}
		if rec.Type != want.eventType || rec.Version != "1.0" || rec.Owner != samplesNS+"/"+want.name || len(rec.Schema) == 0 {
			return fmt.Errorf("key %s: type %q version %q owner %q, want %s 1.0 owned by %s/%s",
				entry.Key(), rec.Type, rec.Version, rec.Owner, want.eventType, samplesNS, want.name)
		}
	}
	logf(s.t, s.start, "the %d sample schemas are in %s, owned by their EventSchemas", len(sampleSchemas), schemas.DefaultBucket)

	bins := map[string]string{}
	for _, name := range []string{"authservice", "subscriber"} {
		bins[name] = filepath.Join(s.work, name)
		if _, err := s.command(false, 3*time.Minute, "go", "build", "-o", bins[name], "./examples/"+name); err != nil {
			return err
		}
	}

	subLog := filepath.Join(s.work, "subscriber.log")
	sub, err := proc.Start("subscriber", subLog, nil, bins["subscriber"], "-nats-url", s.natsURL, "-consumer", "e2e-schemas")
	if err != nil {
		return err
	}
	defer func() { _, _ = sub.Stop(10 * time.Second) }()
	if err := proc.Poll(ctx, time.Minute, 100*time.Millisecond, "the subscriber consuming", func() error {
		if sub.Exited() {
			return proc.Permanent(fmt.Errorf("the subscriber exited: %v\n%s", sub.ExitErr(), proc.Tail(subLog, 20)))
		}
		if lines, _ := proc.Grep(subLog, "msg=consuming"); len(lines) == 0 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil {
		return err
	}

	out, err := s.command(true, time.Minute, bins["authservice"], "-nats-url", s.natsURL, "-create-streams=false", "-publish-invalid-raw")
	if err != nil {
		return err
	}
	valid, invalid, err := publishedIDs(out)
	if err != nil {
		return err
	}

	// The valid events were stored with the dataschema of their schema.
	auth, err := s.js.Stream(ctx, "AUTH_EVENTS")
	if err != nil {
		return err
	}
	stored, err := headersByID(ctx, auth, "auth.user.")
	if err != nil {
		return err
	}
	for id, typ := range valid {
		h, ok := stored[id]
		if !ok {
			return fmt.Errorf("event %s (%s) is not in AUTH_EVENTS", id, typ)
		}
		if got, want := h.Get(events.HeaderPrefix+"dataschema"), schemas.URI(typ, "1.0"); got != want {
			return fmt.Errorf("event %s (%s) carries dataschema %q, want %q", id, typ, got, want)
		}
	}

	// The invalid one is dead-lettered by the subscriber with the
	// validator's reason; no valid one is.
	dlq, err := s.js.Stream(ctx, "DLQ_EVENTS")
	if err != nil {
		return err
	}
	var reason string
	if err := proc.Poll(ctx, time.Minute, 200*time.Millisecond, "the invalid event in DLQ_EVENTS", func() error {
		letters, err := headersByID(ctx, dlq, "dlq.auth.")
		if err != nil {
			return err
		}
		for id := range valid {
			if _, ok := letters[id]; ok {
				return proc.Permanent(fmt.Errorf("the valid event %s (%s) was dead-lettered: %s", id, valid[id], letters[id].Get(events.HeaderDLQReason)))
			}
		}
		h, ok := letters[invalid]
		if !ok {
			return errors.New("not yet")
		}
		reason = h.Get(events.HeaderDLQReason)
		if !strings.Contains(reason, "user_id") || h.Get(events.HeaderDLQSubject) != "auth.user.created" {
			return proc.Permanent(fmt.Errorf("dead letter of %s: reason %q, original subject %q; want the validator's reason naming user_id, auth.user.created",
				invalid, reason, h.Get(events.HeaderDLQSubject)))
		}
		return nil
	}); err != nil {
		return fmt.Errorf("%w\nsubscriber log:\n%s", err, indent(proc.Tail(subLog, 20)))
	}
	logf(s.t, s.start, "invalid user.created %s dead-lettered to DLQ_EVENTS: %s", invalid, reason)

	if killed, err := sub.Stop(20 * time.Second); killed || err != nil {
		return fmt.Errorf("the subscriber did not stop on SIGTERM (killed %v): %v", killed, err)
	}
	// Its last line counts what it did; at least the six valid events were
	// acked (events of earlier steps may be there too).
	m := regexp.MustCompile(`msg=stopped acked=(\d+) dead-lettered=(\d+)`).FindStringSubmatch(proc.Tail(subLog, 5))
	var acked, dead int
	if m != nil {
		_, _ = fmt.Sscan(m[1], &acked)
		_, _ = fmt.Sscan(m[2], &dead)
	}
	if m == nil || acked < len(valid) || dead < 1 {
		return fmt.Errorf("subscriber stopped with %q; want at least %d acked and 1 dead-lettered", proc.Tail(subLog, 3), len(valid))
	}
	logf(s.t, s.start, "subscriber: %d acked, %d dead-lettered", acked, dead)
	return nil
}

// publishedIDs reads the auth service's log: the ID and type of every event
// it published through the library, and the ID of the invalid one it sent
// with plain nats.go.
func publishedIDs(out string) (valid map[string]string, invalid string, err error) {
	valid = map[string]string{}
	pub := regexp.MustCompile(`msg=published type=(\S+) id=(\S+)`)
	raw := regexp.MustCompile(`msg="published an invalid user.created through plain nats.go" id=(\S+)`)
	for _, line := range strings.Split(out, "\n") {
		if m := pub.FindStringSubmatch(line); m != nil {
			valid[m[2]] = m[1]
		}
		if m := raw.FindStringSubmatch(line); m != nil {
			invalid = m[1]
		}
	}
	if len(valid) != 6 || invalid == "" {
		return nil, "", fmt.Errorf("the auth service logged %d published events and invalid ID %q; want 6 and one", len(valid), invalid)
	}
	return valid, invalid, nil
}

// headersByID reads every message of stream whose subject starts with
// prefix and returns the headers by CloudEvents ID (ce-id). The streams it
// reads hold tens of messages.
func headersByID(ctx context.Context, stream jetstream.Stream, prefix string) (map[string]nats.Header, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]nats.Header{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(msg.Subject, prefix) {
			out[msg.Header.Get(events.HeaderPrefix+"id")] = msg.Header
		}
	}
	return out, nil
}
