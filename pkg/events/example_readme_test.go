package events_test

// The Go snippets of README.md and pkg/events/README.md are copied from the
// examples in this file (examples/readme_test.go fails when a snippet is not
// the text of an example or test that runs). Each snippet is the body of a
// closure returning an error, so that it reads as service code.

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// readmeServer is the platform's NATS for the README examples: an embedded
// JetStream server with the auth and dead-letter streams.
func readmeServer() (*eventstest.Server, jetstream.JetStream, error) {
	srv, err := eventstest.StartJetStream("")
	if err != nil {
		return nil, nil, err
	}
	nc, err := events.Connect(srv.URL())
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	for _, s := range []struct{ name, subject string }{{events.StreamAuth, "auth.>"}, {events.StreamDLQ, "dlq.>"}} {
		cfg := events.NewStreamConfig(s.name, s.subject)
		cfg.Storage, cfg.MaxBytes = jetstream.MemoryStorage, 64<<20
		if _, err := events.CreateStream(context.Background(), js, cfg); err != nil {
			srv.Close()
			return nil, nil, err
		}
	}
	return srv, js, nil
}

// pkg/events/README.md, "Publish".
func Example_readmePublish() {
	srv, js, err := readmeServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url, orgID := srv.URL(), "org-42"
	clock := events.ClockFunc(func() time.Time { return time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC) })
	log := slog.New(slog.DiscardHandler)

	publish := func() error {
		nc, err := events.Connect(url, events.WithName("auth-service")) // + events.WithCredsFile("/etc/nats/app.creds")
		if err != nil {
			return err
		}
		defer nc.Close()
		pub, err := events.NewPublisher(nc, events.WithErrorHandler(func(subject string, e *events.Event, err error) {
			log.Error("async publish failed", "subject", subject, "id", e.ID, "error", err)
		}))
		if err != nil {
			return err
		}
		defer func() { _ = pub.Close() }() // waits for pending async publishes (bounded by the retry budget); does not close nc

		// Data is any JSON-serialisable value: a struct, or the seed's map[string]interface{}.
		type UserCreated struct {
			UserID string `json:"user_id"`
			Email  string `json:"email"`
		}
		e, err := events.NewEvent("user.created", "auth-service", orgID, clock.Now(),
			UserCreated{UserID: "u-1", Email: "ada@example.com"})
		if err != nil {
			return err
		}
		return pub.Publish(ctx, events.SubjectFor("auth", e.Type), e) // auth.user.created
	}
	if err := publish(); err != nil {
		fmt.Println(err)
		return
	}

	stream, err := js.Stream(ctx, events.StreamAuth)
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := stream.GetLastMsgForSubject(ctx, "auth.user.created")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.Subject, string(m.Data))
	// Output:
	// auth.user.created {"user_id":"u-1","email":"ada@example.com"}
}

// pkg/events/README.md, "Subscribe": one typed handler.
func Example_readmeSubscribeTyped() {
	srv, js, err := readmeServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := events.NewPublisher(js.Conn())
	if err != nil {
		fmt.Println(err)
		return
	}
	e, _ := events.NewEvent("user.created", "auth-service", "org-42", time.Now(), map[string]interface{}{"user_id": "u-1", "email": "ada@example.com"})
	if err := pub.Publish(ctx, "auth.user.created", e); err != nil {
		fmt.Println(err)
		return
	}
	welcomed := make(chan string, 1)
	shutdown := make(chan struct{}) // a service waits for SIGTERM; here, for the first welcome
	sendWelcome := func(ctx context.Context, eventID, email string) error {
		welcomed <- email
		close(shutdown)
		return nil
	}
	shutdownCtx := ctx

	subscribe := func() error {
		type UserCreated struct {
			UserID string `json:"user_id"`
			Email  string `json:"email"`
		}
		sub, err := events.SubscribeDurable(ctx, js, events.StreamAuth, "welcome-mail",
			events.Typed(func(ctx context.Context, e *events.Event, u UserCreated) error {
				return sendWelcome(ctx, e.ID, u.Email) // idempotent: keyed on e.ID
			}),
			events.SubscriberConfig{FilterSubjects: []string{"auth.user.created"}, Concurrency: 4})
		if err != nil {
			return err
		}
		<-shutdown                   // e.g. closed on SIGTERM
		return sub.Stop(shutdownCtx) // stop fetching, let running handlers finish
	}
	if err := subscribe(); err != nil {
		fmt.Println(err)
	}
	fmt.Println("welcome sent to", <-welcomed)
	// Output:
	// welcome sent to ada@example.com
}

// pkg/events/README.md, "Subscribe": several types on one consumer, and
// the schema-less view.
func Example_readmeSubscribeSwitch() {
	srv, js, err := readmeServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pub, err := events.NewPublisher(js.Conn())
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range []struct {
		typ  string
		data map[string]interface{}
	}{
		{"user.login.failed", map[string]interface{}{"email": "ada@example.com", "reason": "invalid_password"}},
		{"user.role.assigned", map[string]interface{}{"user_id": "u-1", "user_email": "ada@example.com", "role_id": "r-7", "role_name": "admin"}},
	} {
		e, _ := events.NewEvent(p.typ, "auth-service", "org-42", time.Now(), p.data)
		if err := pub.Publish(ctx, events.SubjectFor("auth", p.typ), e); err != nil {
			fmt.Println(err)
			return
		}
	}
	shutdown := make(chan struct{}) // a service waits for SIGTERM; here, for both events
	handled := 0
	audit := func(ctx context.Context, e *events.Event, fields ...any) error {
		fmt.Println(append([]any{e.Type}, fields...)...)
		if handled++; handled == 2 {
			close(shutdown)
		}
		return nil
	}

	subscribe := func() error {
		type LoginFailed struct {
			Email  string `json:"email"`
			Reason string `json:"reason"` // user_not_found, invalid_password, inactive_account
		}
		handler := func(ctx context.Context, e *events.Event) error {
			switch e.Type {
			case "user.login.failed":
				d, err := events.DataAs[LoginFailed](e)
				if err != nil {
					return events.Permanent(err) // retrying will not make it decode: dead-letter it now
				}
				return audit(ctx, e, d.Email, d.Reason)
			default:
				m, err := e.DataMap() // schema-less view; numbers come as json.Number
				if err != nil {
					return events.Permanent(err)
				}
				return audit(ctx, e, m["role_name"])
			}
		}
		sub, err := events.SubscribeDurable(ctx, js, events.StreamAuth, "auth-audit", handler,
			events.SubscriberConfig{FilterSubjects: []string{"auth.user.>"}})
		if err != nil {
			return err
		}
		<-shutdown // e.g. closed on SIGTERM
		return sub.Stop(ctx)
	}
	if err := subscribe(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// user.login.failed ada@example.com invalid_password
	// user.role.assigned admin
}

// README.md, "The client library": the seed's publisher pattern and a
// typed subscriber.
func Example_readmeClientLibrary() {
	srv, js, err := readmeServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url, orgID := srv.URL(), "org-42"
	user := struct{ ID, Email, FirstName, LastName, Status string }{"u-1", "ada@example.com", "Ada", "Lovelace", "active"}
	type UserCreated struct {
		UserID    string `json:"user_id"`
		Email     string `json:"email"`
		FirstName string `json:"first_name"`
		LastName  string `json:"last_name"`
		Status    string `json:"status"`
	}
	got := make(chan UserCreated, 1)
	shutdown := make(chan struct{}) // a service waits for SIGTERM; here, for the first event
	welcome := func(ctx context.Context, eventID string, u UserCreated) error {
		got <- u
		close(shutdown)
		return nil
	}

	service := func() error {
		nc, err := events.Connect(url, events.WithName("auth-service"))
		if err != nil {
			return err
		}
		defer nc.Close()
		pub, err := events.NewPublisher(nc) // validates, deduplicates by event ID, retries transient failures
		if err != nil {
			return err
		}
		defer func() { _ = pub.Close() }() // waits for pending async publishes

		event, err := events.NewEvent("user.created", "auth-service", orgID, time.Now(), map[string]interface{}{
			"user_id": user.ID, "email": user.Email, "first_name": user.FirstName, "last_name": user.LastName, "status": user.Status,
		})
		if err != nil {
			return err
		}
		if err := pub.PublishAsync(ctx, "auth.user.created", event); err != nil {
			return err
		}

		sub, err := events.SubscribeDurable(ctx, js, "AUTH_EVENTS", "analytics-auth",
			events.Typed(func(ctx context.Context, e *events.Event, u UserCreated) error {
				return welcome(ctx, e.ID, u) // undecodable data: dead-lettered, never retried
			}),
			events.SubscriberConfig{FilterSubjects: []string{"auth.user.created"}})
		if err != nil {
			return err
		}
		<-shutdown           // e.g. closed on SIGTERM
		return sub.Stop(ctx) // stop fetching, let running handlers finish
	}
	if err := service(); err != nil {
		fmt.Println(err)
	}
	fmt.Printf("%+v\n", <-got)
	// Output:
	// {UserID:u-1 Email:ada@example.com FirstName:Ada LastName:Lovelace Status:active}
}

// pkg/events/README.md, "JetStream domains": a service connected to the hub
// uses a stream in a leaf node's JetStream domain.
func Example_readmeDomains() {
	hub, err := eventstest.StartJetStream("", eventstest.WithLeafNodes())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer hub.Close()
	leaf, err := eventstest.StartLeaf(hub, "edge", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer leaf.Close()
	nc, err := events.Connect(hub.URL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	handled := make(chan struct{})
	handler := func(_ context.Context, e *events.Event) error {
		fmt.Println("handled", e.Type)
		close(handled)
		return nil
	}
	e, _ := events.NewEvent("sensor.reading", "sensors", "org-42", time.Now(), map[string]any{"celsius": 21.5})
	run := func() error {
		edge, err := jetstream.NewWithDomain(nc, "edge")
		if err != nil {
			return err
		}
		cfg := events.NewStreamConfig("SENSORS", "sensors.>")
		cfg.Storage, cfg.MaxBytes = jetstream.MemoryStorage, 64<<20
		if _, err := events.CreateStream(ctx, edge, cfg); err != nil {
			return err
		}

		js, _ := jetstream.NewWithDomain(nc, "edge") // API requests to $JS.edge.API
		sub, err := events.SubscribeDurable(ctx, js, "SENSORS", "billing", handler, events.SubscriberConfig{})
		if err != nil {
			return err
		}
		defer func() { _ = sub.Stop(ctx) }()
		pub, _ := events.NewPublisher(nc)
		defer pub.Close()
		err = pub.Publish(ctx, "sensors.t1", e) // stored in the leaf's SENSORS; dead letters in the leaf's DLQ_EVENTS

		if err != nil {
			return err
		}
		<-handled
		return nil
	}
	if err := run(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// handled sensor.reading
}
