package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// pkg/events/README.md, "Schemas": register a schema without Kubernetes,
// publish with validation, consume with validation and accepted majors.
func Example_readmeSchemas() {
	srv, js, err := readmeServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := events.Connect(srv.URL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	orgID := "org-42"
	clock := events.ClockFunc(func() time.Time { return time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC) })
	log := slog.New(slog.DiscardHandler)
	userCreatedSchema := json.RawMessage(userCreatedSchemas["1.0"])
	handler := func(context.Context, *events.Event) error { return nil }

	register := func() error {
		// In a cluster the operator fills the bucket from EventSchema resources.
		return schemas.Register(ctx, js, schemas.Record{Type: "user.created", Version: "1.0", Schema: userCreatedSchema})
	}
	if err := register(); err != nil {
		fmt.Println(err)
		return
	}

	publish := func() error {
		registry, err := schemas.Open(ctx, js) // reads and watches EVENT_SCHEMAS: changes apply without a restart
		if err != nil {
			return err
		}
		defer registry.Close()
		pub, err := events.NewPublisher(nc, events.WithDataValidator(registry))
		if err != nil {
			return err
		}
		defer func() { _ = pub.Close() }()

		e, err := events.NewEvent("user.created", "auth-service", orgID, clock.Now(), map[string]interface{}{
			"user_id": 42, "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "status": "active",
		})
		if err != nil {
			return err
		}
		err = pub.Publish(ctx, "auth.user.created", e) // nothing is sent: user_id must be a string
		var verr *events.ValidationError
		if errors.As(err, &verr) { // also errors.Is(err, events.ErrValidation)
			log.Warn("event refused", "field", verr.Field, "pointer", verr.Pointer, "reason", verr.Reason)
		}
		return err
	}
	fmt.Println(publish())

	registry, err := schemas.Open(ctx, js, schemas.WithUnknownTypes(schemas.RejectUnknown)) // types without a schema: refused
	if err != nil {
		fmt.Println(err)
		return
	}
	defer registry.Close()
	subscribe := func() (*events.Subscription, error) {
		return events.SubscribeDurable(ctx, js, "AUTH_EVENTS", "audit", handler, events.SubscriberConfig{
			DataValidator: registry,    // invalid data: dead-lettered at once, Dlq-Reason = the validator's message
			AcceptMajors:  []int{1, 2}, // other majors: dead-lettered (or OtherMajors: events.SkipOtherMajors)
		})
	}
	sub, err := subscribe()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = sub.Stop(context.Background()) }()
	// An event no schema covers, sent past the library.
	e, _ := events.NewEvent("user.deleted", "raw-producer", orgID, clock.Now(), map[string]interface{}{"user_id": "u-1"})
	msg, _ := events.Encode(e, events.ModeBinary)
	msg.Subject = "auth.user.deleted"
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		fmt.Println(err)
		return
	}
	for sub.Stats().DeadLettered == 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	stream, err := js.Stream(ctx, events.StreamDLQ)
	if err != nil {
		fmt.Println(err)
		return
	}
	dl, err := stream.GetLastMsgForSubject(ctx, "dlq.auth.user.deleted")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(dl.Header.Get(events.HeaderDLQReason))
	// Output:
	// events: invalid data: at /user_id: got number, want string
	// events: invalid schemaversion: no schema for type "user.deleted" version "1.0" in registry EVENT_SCHEMAS
}
