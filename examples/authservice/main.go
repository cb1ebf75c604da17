// Command authservice is an example service that publishes the auth event
// catalog (user.created, user.login.succeeded, user.login.failed,
// user.role.assigned) on auth.user.* with the events library.
//
//	go run ./examples/authservice -nats-url nats://localhost:4222 -org org-42
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/pkg/events"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	url := flag.String("nats-url", "nats://127.0.0.1:4222", "NATS server URL")
	org := flag.String("org", "org-42", "organization ID stamped on every event")
	creds := flag.String("creds", "", "NATS credentials file")
	createStreams := flag.Bool("create-streams", true, "create the default streams if missing (normally the operator's job)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var opts []events.ConnectOption
	if *creds != "" {
		opts = append(opts, events.WithCredsFile(*creds))
	}
	nc, err := events.Connect(*url, append(opts, events.WithName("auth-service"))...)
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
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = pub.Close(cctx)
	}()

	svc := auth.NewPublisher(pub, events.SystemClock{}, *org)
	for _, step := range []struct {
		name string
		run  func() (*events.Event, error)
	}{
		{"user created", func() (*events.Event, error) { return svc.UserCreated(ctx, "u-1", "ada@example.com") }},
		{"login failed", func() (*events.Event, error) {
			return svc.LoginFailed(ctx, "ada@example.com", "192.0.2.10", auth.ReasonBadPassword)
		}},
		{"login succeeded", func() (*events.Event, error) { return svc.LoginSucceeded(ctx, "u-1", "192.0.2.10") }},
		{"role assigned", func() (*events.Event, error) { return svc.RoleAssigned(ctx, "u-1", "admin", "u-0") }},
	} {
		e, err := step.run()
		if err != nil {
			return fmt.Errorf("publish %s: %w", step.name, err)
		}
		log.Info("published", "type", e.Type, "id", e.ID)
	}
	return nil
}
