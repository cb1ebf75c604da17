// Command subscriber is an example consumer: it reads the auth service's
// events (auth.user.> on the AUTH_EVENTS stream) through a durable consumer,
// hands each to a typed handler for its type (package audit), and drains on
// SIGTERM or Ctrl-C so that no handler is cut off mid-event.
//
//	go run ./examples/subscriber -nats-url nats://localhost:4222
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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/examples/subscriber/audit"
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

// run consumes until ctx ends, then drains: no new messages, running
// handlers finish (bounded by -drain-timeout).
func run(ctx context.Context, args []string, logOut io.Writer) error {
	fs := flag.NewFlagSet("subscriber", flag.ContinueOnError)
	fs.SetOutput(logOut)
	url := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server URL")
	stream := fs.String("stream", events.StreamAuth, "stream to consume")
	consumer := fs.String("consumer", "auth-audit", "durable consumer name (created if missing)")
	concurrency := fs.Int("concurrency", 1, "handlers running at once")
	drain := fs.Duration("drain-timeout", 20*time.Second, "how long shutdown waits for running handlers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logOut, nil))

	nc, err := events.Connect(*url, events.WithName("auth-audit"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	trail := audit.New(log)
	sub, err := events.SubscribeDurable(ctx, js, *stream, *consumer, trail.Router().Handler(), events.SubscriberConfig{
		FilterSubjects: []string{audit.FilterSubject},
		Concurrency:    *concurrency,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	log.Info("consuming", "stream", *stream, "consumer", *consumer, "filter", audit.FilterSubject)
	<-ctx.Done()
	log.Info("shutting down: draining")
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	return sub.Stop(sctx)
}
