package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
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
