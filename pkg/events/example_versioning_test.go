package events_test

// The versioning strategy of docs/versioning.md, run: user.created 1.0, a
// compatible 1.1 (adds an optional locale) and a breaking 2.0 (first_name
// and last_name become name), all registered in the schema registry; a
// publisher validating against it; one consumer that accepts majors 1 and 2
// and reads both into its current struct.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

// UserCreated is the consumer's current view of user.created: the 2.x
// layout.
type UserCreated struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
	Name   string `json:"name"`
	Status string `json:"status"`
	Locale string `json:"locale,omitempty"`
}

// UserCreatedV1 is the 1.x layout (1.1 added the optional locale).
type UserCreatedV1 struct {
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Status    string `json:"status"`
	Locale    string `json:"locale,omitempty"`
}

// The three schemas, as EventSchema resources would declare them.
var userCreatedSchemas = map[string]string{
	"1.0": `{"type": "object", "required": ["user_id", "email", "first_name", "last_name", "status"],
	  "properties": {"user_id": {"type": "string"}, "email": {"type": "string"},
	    "first_name": {"type": "string"}, "last_name": {"type": "string"}, "status": {"type": "string"}}}`,
	"1.1": `{"type": "object", "required": ["user_id", "email", "first_name", "last_name", "status"],
	  "properties": {"user_id": {"type": "string"}, "email": {"type": "string"},
	    "first_name": {"type": "string"}, "last_name": {"type": "string"}, "status": {"type": "string"},
	    "locale": {"type": "string"}}}`,
	"2.0": `{"type": "object", "required": ["user_id", "email", "name", "status"],
	  "properties": {"user_id": {"type": "string"}, "email": {"type": "string"},
	    "name": {"type": "string"}, "status": {"type": "string"}, "locale": {"type": "string"}}}`,
}

func Example_versioning() {
	srv, js, err := readmeServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, v := range []string{"1.0", "1.1", "2.0"} {
		rec := schemas.Record{Type: "user.created", Version: v, Schema: json.RawMessage(userCreatedSchemas[v]), Owner: "example"}
		if err := schemas.Register(ctx, js, rec); err != nil {
			fmt.Println(err)
			return
		}
	}
	nc, err := events.Connect(srv.URL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	registry, err := schemas.Open(ctx, js)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer registry.Close()
	pub, err := events.NewPublisher(nc, events.WithDataValidator(registry))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = pub.Close() }()

	// One consumer for 1.x and 2.x: a decoder per major upgrades the old
	// layout to the current struct.
	handled := make(chan string, 10)
	handler := events.Versioned(func(ctx context.Context, e *events.Event, u UserCreated) error {
		handled <- fmt.Sprintf("%s: %s %q %s locale=%q", e.SchemaVersion, u.UserID, u.Name, u.Status, u.Locale)
		return nil
	},
		events.Upgrade(1, func(old UserCreatedV1) (UserCreated, error) {
			return UserCreated{UserID: old.UserID, Email: old.Email, Name: old.FirstName + " " + old.LastName,
				Status: old.Status, Locale: old.Locale}, nil
		}),
		events.Current[UserCreated](2),
	)
	sub, err := events.SubscribeDurable(ctx, js, events.StreamAuth, "user-directory", handler, events.SubscriberConfig{
		DataValidator: registry,
		AcceptMajors:  []int{1, 2},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = sub.Stop(context.Background()) }()

	publish := func(version string, data any) {
		e, err := events.NewEvent("user.created", "auth-service", "org-42", time.Now(), data)
		if err != nil {
			fmt.Println(err)
			return
		}
		e.SchemaVersion = version
		if err := pub.Publish(ctx, "auth.user.created", e); err != nil {
			fmt.Println("refused:", err)
		}
	}
	publish("1.0", UserCreatedV1{UserID: "u-1", Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Status: "active"})
	publish("1.1", UserCreatedV1{UserID: "u-2", Email: "alan@example.com", FirstName: "Alan", LastName: "Turing", Status: "active", Locale: "en-GB"})
	publish("2.0", UserCreated{UserID: "u-3", Email: "grace@example.com", Name: "Grace Hopper", Status: "active", Locale: "en-US"})
	publish("2.0", UserCreatedV1{UserID: "u-4", Email: "x@example.com", FirstName: "X", LastName: "Y", Status: "active"})
	for range 3 {
		select {
		case h := <-handled:
			fmt.Println(h)
		case <-ctx.Done():
			fmt.Println("timed out")
			return
		}
	}
	// Output:
	// refused: events: invalid data: missing property 'name'
	// 1.0: u-1 "Ada Lovelace" active locale=""
	// 1.1: u-2 "Alan Turing" active locale="en-GB"
	// 2.0: u-3 "Grace Hopper" active locale="en-US"
}
