// Command subscriber is an example consumer: it reads the AUTH_EVENTS stream
// through a durable consumer, routes events by type, and drains on SIGTERM
// or Ctrl-C so that no handler is cut off mid-event.
//
//	go run ./examples/subscriber -nats-url nats://localhost:4222
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/examples/subscriber/router"
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
	stream := flag.String("stream", events.StreamAuth, "stream to consume")
	consumer := flag.String("consumer", "auth-audit", "durable consumer name (created if missing)")
	concurrency := flag.Int("concurrency", 1, "handlers running at once")
	drain := flag.Duration("drain-timeout", 20*time.Second, "how long shutdown waits for running handlers")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, err := events.Connect(*url, events.WithName("auth-audit"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	r := router.New(log)
	r.Handle(auth.TypeUserCreated, func(ctx context.Context, e *events.Event) error {
		log.Info("welcome mail queued", "user", e.Data["userId"], "org", e.OrganizationID, "id", e.ID)
		return nil
	})
	r.Handle(auth.TypeUserLoginFailed, func(ctx context.Context, e *events.Event) error {
		reason, _ := e.Data["reason"].(string)
		if reason == "" {
			// Retrying will not add a reason: dead-letter it now.
			return events.Permanent(errors.New("login.failed without a reason"))
		}
		log.Info("failed login", "email", e.Data["email"], "reason", reason)
		return nil
	})
	r.Handle(auth.TypeUserLoginSucceeded, func(ctx context.Context, e *events.Event) error {
		log.Info("login", "user", e.Data["userId"])
		return nil
	})
	r.Handle(auth.TypeUserRoleAssigned, func(ctx context.Context, e *events.Event) error {
		log.Info("role assigned", "user", e.Data["userId"], "role", e.Data["role"])
		return nil
	})

	sub, err := events.SubscribeDurable(ctx, js, *stream, *consumer, r.Handler(), events.SubscriberConfig{
		FilterSubjects: []string{"auth.user.>"},
		Concurrency:    *concurrency,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	log.Info("consuming", "stream", *stream, "consumer", *consumer)
	<-ctx.Done()
	log.Info("shutting down: draining")
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	return sub.Stop(sctx)
}
