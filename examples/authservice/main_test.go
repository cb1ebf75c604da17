package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/internal/testutil/repo"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// The command runs against an embedded JetStream server: it creates the
// default streams (seven of 1 GiB each, so the server's store limit is
// raised) and publishes the catalog on its subjects.
func TestRun(t *testing.T) {
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) { o.JetStreamMaxStore = 16 << 30 }))
	js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var log bytes.Buffer
	if err := run(ctx, []string{"-nats-url", srv.URL(), "-org", "org-7"}, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	for _, cfg := range events.DefaultStreams() {
		if _, err := events.GetStreamInfo(ctx, js, cfg.Name); err != nil {
			t.Errorf("stream %s: %v", cfg.Name, err)
		}
	}
	want := []string{
		"auth.user.created", "auth.user.login.failed", "auth.user.login.failed", "auth.user.login.failed",
		"auth.user.login.succeeded", "auth.user.role.assigned",
	}
	if n := eventstest.StreamMsgs(t, js, events.StreamAuth); n != uint64(len(want)) {
		t.Fatalf("AUTH_EVENTS holds %d events, want %d\n%s", n, len(want), log.String())
	}
	reasons := []string{}
	for i, subject := range want {
		m := eventstest.GetMsg(t, js, events.StreamAuth, uint64(i+1))
		e, err := events.DecodeParts(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != subject || e.OrganizationID != "org-7" || e.Source != "auth-service" {
			t.Errorf("message %d: %s %+v", i+1, m.Subject, e)
		}
		if e.Type == "user.login.failed" {
			d, err := e.DataMap()
			if err != nil {
				t.Fatal(err)
			}
			reasons = append(reasons, d["reason"].(string))
		}
	}
	if got := strings.Join(reasons, ","); got != "user_not_found,invalid_password,inactive_account" {
		t.Errorf("reasons %s", got)
	}
	if n := strings.Count(log.String(), "msg=published"); n != len(want) {
		t.Errorf("logged %d publishes, want %d:\n%s", n, len(want), log.String())
	}

	// Run again: the streams exist already; the events are new ones.
	if err := run(ctx, []string{"-nats-url", srv.URL(), "-create-streams=false"}, &log); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if n := eventstest.StreamMsgs(t, js, events.StreamAuth); n != uint64(2*len(want)) {
		t.Errorf("AUTH_EVENTS holds %d events after two runs, want %d", n, 2*len(want))
	}
}

func TestRunRefusesBadFlags(t *testing.T) {
	var log bytes.Buffer
	if err := run(context.Background(), []string{"-no-such-flag"}, &log); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Fatalf("err %v", err)
	}
}

// With the seed's four EventSchemas registered from config/samples (as the
// operator would from the resources), the command publishes the whole
// catalog validated, each event naming its schema in dataschema; an event
// that breaks its schema is refused before sending; and the raw invalid
// event it can send on request bypasses the library.
func TestRunValidatesAgainstTheSampleSchemas(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, events.StreamAuth, []string{"auth.>"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	samples, err := repo.Path("config", "samples")
	if err != nil {
		t.Fatal(err)
	}

	var log bytes.Buffer
	args := []string{"-nats-url", srv.URL(), "-create-streams=false", "-register-schemas", samples, "-reject-unknown", "-publish-invalid-raw"}
	if err := run(ctx, args, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), `msg="registered schemas" count=4 bucket=EVENT_SCHEMAS`) {
		t.Errorf("log:\n%s", log.String())
	}
	const catalog = 6
	if n := eventstest.StreamMsgs(t, js, events.StreamAuth); n != catalog+1 {
		t.Fatalf("AUTH_EVENTS holds %d events, want %d and the raw one\n%s", n, catalog, log.String())
	}
	for seq := uint64(1); seq <= catalog; seq++ {
		m := eventstest.GetMsg(t, js, events.StreamAuth, seq)
		e, err := events.DecodeParts(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if want := schemas.URI(e.Type, "1.0"); e.DataSchema != want {
			t.Errorf("event %d (%s): dataschema %q, want %q", seq, e.Type, e.DataSchema, want)
		}
	}
	raw := eventstest.GetMsg(t, js, events.StreamAuth, catalog+1)
	if raw.Subject != "auth.user.created" || raw.Header.Get(events.HeaderDataSchema) != "" || strings.Contains(string(raw.Data), "user_id") {
		t.Errorf("raw event: %s %v %s", raw.Subject, raw.Header, raw.Data)
	}

	// The same validation in a service: an empty user_id breaks the
	// schema (minLength 1), and nothing is sent.
	registry, err := schemas.Open(ctx, js, schemas.WithUnknownTypes(schemas.RejectUnknown))
	if err != nil {
		t.Fatal(err)
	}
	defer registry.Close()
	pub, err := events.NewPublisher(srv.Conn(t), events.WithDataValidator(registry))
	if err != nil {
		t.Fatal(err)
	}
	svc := auth.NewPublisher(pub, events.SystemClock{}, "org-7")
	_, err = svc.UserCreated(ctx, auth.UserCreated{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Status: "active"})
	var verr *events.ValidationError
	if !errors.As(err, &verr) || verr.Field != "data" || verr.Pointer != "/user_id" || !strings.Contains(verr.Reason, "minLength") && !strings.Contains(verr.Reason, "length must be >= 1") {
		t.Errorf("empty user_id: %v", err)
	}
	if n := eventstest.StreamMsgs(t, js, events.StreamAuth); n != catalog+1 {
		t.Errorf("the refused event was stored: %d events", n)
	}
}
