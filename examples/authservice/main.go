// Command authservice is an example service that publishes the seed's auth
// event catalog (user.created, user.login.succeeded, user.login.failed,
// user.role.assigned) on auth.user.* subjects with the events library.
//
// Every event's data is validated before it is sent against the schema
// registry (the EVENT_SCHEMAS KeyValue bucket the operator fills from
// EventSchema resources; -schemas-bucket, -validate=false to turn it off):
// an event that does not match its schema is refused and nothing is sent.
// Types without a schema are allowed unless -reject-unknown. Without
// Kubernetes, -register-schemas config/samples fills the bucket from the
// EventSchema manifests first. -publish-invalid-raw sends one user.created
// without user_id through plain nats.go, bypassing the library, so that a
// validating subscriber has something to dead-letter.
//
//	go run ./examples/authservice -nats-url nats://localhost:4222 -org org-42
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/examples/internal/schemafiles"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/schemas"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run publishes one event of each kind in the catalog (a login failure for
// each reason) and returns once the stream acknowledged them all.
func run(ctx context.Context, args []string, logOut io.Writer) error {
	fs := flag.NewFlagSet("authservice", flag.ContinueOnError)
	fs.SetOutput(logOut)
	url := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server URL")
	org := fs.String("org", "org-42", "organization ID stamped on every event")
	creds := fs.String("creds", "", "NATS credentials file")
	createStreams := fs.Bool("create-streams", true, "create the default streams if missing (normally the operator's job)")
	validate := fs.Bool("validate", true, "validate event data against the schema registry before sending")
	bucket := fs.String("schemas-bucket", schemas.DefaultBucket, "KeyValue bucket of the schema registry")
	rejectUnknown := fs.Bool("reject-unknown", false, "refuse events whose type and version have no schema (default: send them unvalidated)")
	registerDir := fs.String("register-schemas", "", "register the EventSchema manifests of this directory (e.g. config/samples) in the bucket first, as the operator would")
	invalidRaw := fs.Bool("publish-invalid-raw", false, "also publish one user.created without user_id through plain nats.go, bypassing validation")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))

	opts := []events.ConnectOption{events.WithName("auth-service")}
	if *creds != "" {
		opts = append(opts, events.WithCredsFile(*creds))
	}
	nc, err := events.Connect(*url, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if *createStreams {
		if err := events.CreateDefaultStreams(ctx, js); err != nil {
			return fmt.Errorf("create streams: %w", err)
		}
	}
	if *registerDir != "" {
		n, err := schemafiles.Register(ctx, js, *registerDir, schemas.WithBucket(*bucket))
		if err != nil {
			return err
		}
		log.Info("registered schemas", "count", n, "bucket", *bucket, "from", *registerDir)
	}
	pubOpts := []events.PublisherOption{events.WithErrorHandler(func(subject string, e *events.Event, err error) {
		log.Error("async publish failed", "subject", subject, "id", e.ID, "error", err)
	})}
	if *validate {
		unknown := schemas.AllowUnknown
		if *rejectUnknown {
			unknown = schemas.RejectUnknown
		}
		registry, err := schemas.Open(ctx, js, schemas.WithBucket(*bucket), schemas.WithUnknownTypes(unknown))
		if err != nil {
			return err
		}
		defer registry.Close()
		pubOpts = append(pubOpts, events.WithDataValidator(registry))
		log.Info("validating event data", "bucket", *bucket, "reject-unknown", *rejectUnknown)
	}
	pub, err := events.NewPublisher(nc, pubOpts...)
	if err != nil {
		return err
	}
	defer func() { _ = pub.Close() }()

	svc := auth.NewPublisher(pub, events.SystemClock{}, *org)
	const email = "ada@example.com"
	steps := []struct {
		name string
		run  func() (*events.Event, error)
	}{
		{"user created", func() (*events.Event, error) {
			return svc.UserCreated(ctx, auth.UserCreated{UserID: "u-1", Email: email, FirstName: "Ada", LastName: "Lovelace", Status: "active"})
		}},
		{"login failed", func() (*events.Event, error) {
			return svc.LoginFailed(ctx, auth.UserLoginFailed{Email: "nobody@example.com", Reason: auth.ReasonUserNotFound})
		}},
		{"login failed", func() (*events.Event, error) {
			return svc.LoginFailed(ctx, auth.UserLoginFailed{Email: email, Reason: auth.ReasonInvalidPassword})
		}},
		{"login failed", func() (*events.Event, error) {
			return svc.LoginFailed(ctx, auth.UserLoginFailed{Email: "gone@example.com", Reason: auth.ReasonInactiveAccount})
		}},
		{"login succeeded", func() (*events.Event, error) {
			return svc.LoginSucceeded(ctx, auth.UserLoginSucceeded{UserID: "u-1", Email: email})
		}},
		{"role assigned", func() (*events.Event, error) {
			return svc.RoleAssigned(ctx, auth.UserRoleAssigned{UserID: "u-1", UserEmail: email, RoleID: "r-7", RoleName: "admin"})
		}},
	}
	for _, step := range steps {
		e, err := step.run()
		if err != nil {
			return fmt.Errorf("publish %s: %w", step.name, err)
		}
		log.Info("published", "type", e.Type, "id", e.ID, "dataschema", dataSchema(*validate, e))
	}
	if *invalidRaw {
		id, err := publishInvalidRaw(ctx, js, *org)
		if err != nil {
			return fmt.Errorf("publish invalid event: %w", err)
		}
		log.Info("published an invalid user.created through plain nats.go", "id", id)
	}
	return nil
}

// dataSchema is the dataschema the publisher sent: the registry's URI for
// the event's type and version when it validated it.
func dataSchema(validated bool, e *events.Event) string {
	if e.DataSchema != "" || !validated {
		return e.DataSchema
	}
	return schemas.URI(e.Type, e.SchemaVersion)
}

// publishInvalidRaw sends a user.created 1.0 whose data lacks user_id and
// has a numeric email, as a producer not using the library could: a binary
// mode CloudEvent built by hand and published with plain nats.go.
func publishInvalidRaw(ctx context.Context, js jetstream.JetStream, org string) (string, error) {
	id := uuid.NewString()
	msg := nats.NewMsg(events.SubjectFor("auth", auth.TypeUserCreated))
	for k, v := range map[string]string{
		"ce-specversion": "1.0", "ce-id": id, "ce-type": auth.TypeUserCreated, "ce-source": "raw-producer",
		"ce-time": time.Now().UTC().Format(time.RFC3339Nano), "ce-organizationid": org, "ce-schemaversion": "1.0",
		"ce-datacontenttype": "application/json", "Nats-Msg-Id": id,
	} {
		msg.Header.Set(k, v)
	}
	msg.Data = []byte(`{"email":42,"first_name":"No","last_name":"Id","status":"active"}`)
	_, err := js.PublishMsg(ctx, msg)
	return id, err
}
