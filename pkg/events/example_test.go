package events_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// A fixed clock makes the event's timestamp reproducible; services use
// events.SystemClock{} in production.
func ExampleNewEvent() {
	clock := events.ClockFunc(func() time.Time { return time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC) })
	e, err := events.NewEvent("user.created", "auth-service", "org-42", clock.Now(), map[string]any{
		"user_id": "u-1",
		"email":   "ada@example.com",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(e.Type, e.Source, e.OrganizationID)
	fmt.Println(e.Timestamp.Format(time.RFC3339), e.SchemaVersion, len(e.ID))

	fmt.Println(string(e.Data))

	e.OrganizationID = ""
	fmt.Println(e.Validate())
	// Output:
	// user.created auth-service org-42
	// 2026-03-14T15:09:26Z 1.0 36
	// {"email":"ada@example.com","user_id":"u-1"}
	// events: invalid organizationid: must not be empty
}

// Data is the encoded JSON; DataAs decodes it into a type of the caller's,
// DataMap into a map whose numbers are json.Number.
func ExampleDataAs() {
	type userCreated struct {
		UserID int64  `json:"user_id"`
		Email  string `json:"email"`
	}
	e, err := events.NewEvent("user.created", "auth-service", "org-42", time.Now(),
		userCreated{UserID: 9007199254740993, Email: "ada@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	u, err := events.DataAs[userCreated](e)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.UserID, u.Email)
	m, err := e.DataMap()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m["user_id"])
	// Output:
	// 9007199254740993 ada@example.com
	// 9007199254740993
}

// exampleServer starts an embedded JetStream server with the auth and
// dead-letter streams, standing in for the platform's NATS.
func exampleServer() (*eventstest.Server, jetstream.JetStream) {
	srv, err := eventstest.StartJetStream("")
	if err != nil {
		log.Fatal(err)
	}
	nc, err := events.Connect(srv.URL())
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, s := range []struct{ name, subject string }{{events.StreamAuth, "auth.>"}, {events.StreamDLQ, "dlq.>"}} {
		cfg := events.NewStreamConfig(s.name, s.subject)
		cfg.Storage, cfg.MaxBytes = jetstream.MemoryStorage, 64<<20
		if _, err := events.CreateStream(ctx, js, cfg); err != nil {
			log.Fatal(err)
		}
	}
	return srv, js
}

func ExamplePublisher_Publish() {
	srv, js := exampleServer()
	defer srv.Close()

	nc, err := events.Connect(srv.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	pub, err := events.NewPublisher(nc)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = pub.Close() }() // waits for async publishes; nc stays open
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	e, err := events.NewEvent("user.created", "auth-service", "org-42", time.Now(), map[string]any{"user_id": "u-1"})
	if err != nil {
		log.Fatal(err)
	}
	// Publishing the same event twice stores it once: its ID is the
	// message ID JetStream deduplicates on.
	for range 2 {
		if err := pub.Publish(ctx, "auth.user.created", e); err != nil {
			log.Fatal(err)
		}
	}
	info, err := events.GetStreamInfo(ctx, js, events.StreamAuth)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored:", info.State.Msgs)
	// Output:
	// stored: 1
}

func ExampleSubscribeDurable() {
	srv, js := exampleServer()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	pub, err := events.NewPublisher(js.Conn())
	if err != nil {
		log.Fatal(err)
	}
	e, _ := events.NewEvent("user.login.failed", "auth-service", "org-42", time.Now(), map[string]any{"reason": "bad password"})
	if err := pub.Publish(ctx, "auth.user.login.failed", e); err != nil {
		log.Fatal(err)
	}

	handled := make(chan struct{})
	// The handler gets the data decoded into its own type; data that does
	// not decode is dead-lettered without calling it.
	type loginFailed struct {
		Reason string `json:"reason"`
	}
	handler := events.Typed(func(ctx context.Context, e *events.Event, data loginFailed) error {
		// Handlers must be idempotent: key side effects on e.ID.
		fmt.Println(e.Type, e.OrganizationID, data.Reason)
		close(handled)
		return nil
	})
	sub, err := events.SubscribeDurable(ctx, js, events.StreamAuth, "audit", handler,
		events.SubscriberConfig{FilterSubjects: []string{"auth.user.>"}})
	if err != nil {
		log.Fatal(err)
	}
	<-handled
	// Stop drains: no new messages, running handlers finish.
	if err := sub.Stop(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// user.login.failed org-42 bad password
}

// A redrive: two dead letters go back to their original subject in
// AUTH_EVENTS, without their Dlq-* headers, and leave the DLQ.
func ExampleReplay() {
	srv, js := exampleServer()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for seq := uint64(1); seq <= 2; seq++ {
		e, err := events.NewEvent("user.created", "auth-service", "org-42", time.Now(), map[string]any{"user_id": seq})
		if err != nil {
			log.Fatal(err)
		}
		msg, err := events.Encode(e, events.ModeBinary)
		if err != nil {
			log.Fatal(err)
		}
		letter := events.NewDeadLetterMsg("dlq.auth.user.created", msg.Header, msg.Data, events.DeadLetterInfo{
			Stream: events.StreamAuth, Consumer: "analytics-auth", Subject: "auth.user.created", Sequence: seq, Reason: "db down", Time: time.Now(),
		})
		if _, err := js.PublishMsg(ctx, letter); err != nil {
			log.Fatal(err)
		}
	}

	var last events.ReplayProgress // a program would persist it, and load it when it starts
	p, err := events.Replay(ctx, js, events.ReplaySpec{
		ID:             "redrive-auth-1", // the replay's identity; the same ID resumes
		Stream:         events.StreamDLQ,
		FilterSubjects: []string{"dlq.auth.>"},
		Target:         events.ReplayTarget{Original: true},        // or Subject: "x.y", or SubjectPrefix: "replay."
		Redrive:        true,                                       // back to Dlq-Original-Subject, Dlq-* headers removed, ce-* kept
		DeleteRedriven: true,                                       // delete each dead letter once its copy is acked
		RateLimit:      500,                                        // msgs/s; 0 = unlimited
		Checkpoint:     last,                                       // the last progress saved; zero = from the start
		OnProgress:     func(p events.ReplayProgress) { last = p }, // after every acked batch
	})
	if err != nil {
		log.Fatal(err) // IsTransient(err): call Replay again with Checkpoint: last
	}
	auth, _ := events.GetStreamInfo(ctx, js, events.StreamAuth)
	dlq, _ := events.GetStreamInfo(ctx, js, events.StreamDLQ)
	st, err := js.Stream(ctx, events.StreamAuth)
	if err != nil {
		log.Fatal(err)
	}
	back, err := st.GetLastMsgForSubject(ctx, "auth.user.created")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("replayed %d of %d, done %v, saved %v\n", p.Replayed, p.Total, p.Done, last == p)
	fmt.Printf("AUTH_EVENTS %d, DLQ_EVENTS %d\n", auth.State.Msgs, dlq.State.Msgs)
	fmt.Println(back.Header.Get(events.HeaderType), back.Header.Get(events.HeaderDLQReason) == "", back.Header.Get(events.HeaderMsgID))
	// Output:
	// replayed 2 of 2, done true, saved true
	// AUTH_EVENTS 2, DLQ_EVENTS 0
	// user.created true replay-redrive-auth-1-2
}
