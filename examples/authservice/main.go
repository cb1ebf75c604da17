// Command authservice is an example service that publishes the seed's auth
// event catalog (user.created, user.login.succeeded, user.login.failed,
// user.role.assigned) on auth.user.* subjects with the events library.
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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/pkg/events"
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
	if *createStreams {
		js, err := jetstream.New(nc)
		if err == nil {
			err = events.CreateDefaultStreams(ctx, js)
		}
		if err != nil {
			return fmt.Errorf("create streams: %w", err)
		}
	}
	pub, err := events.NewPublisher(nc, events.WithErrorHandler(func(subject string, e *events.Event, err error) {
		log.Error("async publish failed", "subject", subject, "id", e.ID, "error", err)
	}))
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
		log.Info("published", "type", e.Type, "id", e.ID)
	}
	return nil
}
