// Command subscriber is an example consumer: it reads the auth service's
// events (auth.user.> on the AUTH_EVENTS stream) through a durable consumer,
// hands each to a typed handler for its type (package audit), and drains on
// SIGTERM or Ctrl-C so that no handler is cut off mid-event.
//
// Every event's data is validated against the schema registry (the
// EVENT_SCHEMAS KeyValue bucket; -schemas-bucket, -validate=false to turn it
// off) before its handler runs: data that does not match is dead-lettered on
// its first delivery (DLQ_EVENTS, subject dlq.<original>) with the
// validator's message as the Dlq-Reason header, and logged. It accepts the
// schema major versions of -accept-majors (default 1, the catalog's); other
// majors are dead-lettered, or acknowledged and skipped with
// -skip-other-majors.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/examples/subscriber/audit"
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
	validate := fs.Bool("validate", true, "validate event data against the schema registry before handling")
	bucket := fs.String("schemas-bucket", schemas.DefaultBucket, "KeyValue bucket of the schema registry")
	rejectUnknown := fs.Bool("reject-unknown", false, "dead-letter events whose type and version have no schema (default: handle them unvalidated)")
	majors := fs.String("accept-majors", "1", "comma-separated schema major versions handled (empty: any)")
	skipOthers := fs.Bool("skip-other-majors", false, "acknowledge and skip events of other majors instead of dead-lettering them")
	if err := fs.Parse(args); err != nil {
		return err
	}
	accept, err := parseMajors(*majors)
	if err != nil {
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

	cfg := events.SubscriberConfig{
		FilterSubjects: []string{audit.FilterSubject},
		Concurrency:    *concurrency,
		Logger:         log,
		AcceptMajors:   accept,
	}
	if *skipOthers {
		cfg.OtherMajors = events.SkipOtherMajors
	}
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
		cfg.DataValidator = loggingValidator{registry, log}
	}
	trail := audit.New(log)
	sub, err := events.SubscribeDurable(ctx, js, *stream, *consumer, trail.Router().Handler(), cfg)
	if err != nil {
		return err
	}
	log.Info("consuming", "stream", *stream, "consumer", *consumer, "filter", audit.FilterSubject,
		"validate", *validate, "bucket", *bucket, "accept-majors", *majors)
	<-ctx.Done()
	log.Info("shutting down: draining")
	sctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	err = sub.Stop(sctx)
	st := sub.Stats()
	log.Info("stopped", "acked", st.Acked, "dead-lettered", st.DeadLettered, "skipped", st.Skipped, "retried", st.Retried)
	return err
}

// loggingValidator logs the events the registry refuses (the subscription
// then dead-letters them with the same message as Dlq-Reason).
type loggingValidator struct {
	v   events.DataValidator
	log *slog.Logger
}

func (l loggingValidator) ValidateData(e *events.Event) (string, error) {
	uri, err := l.v.ValidateData(e)
	if err != nil {
		l.log.Warn("invalid event data: dead-lettering", "type", e.Type, "schemaversion", e.SchemaVersion, "id", e.ID, "schema", uri, "error", err)
	}
	return uri, err
}

// parseMajors reads "1,2" (empty: nil, any major).
func parseMajors(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("-accept-majors: %q is not a major version number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
