//go:build chaos

// Command consumer is the consuming process of the chaos tests: it consumes
// a durable consumer with events.SubscribeDurable, fails a given fraction of
// deliveries at random, and appends the ID of every event it handled to a
// file (written before the handler returns, so before the ack: a kill can
// make an event handled twice, never handled and unrecorded).
//
//	consumer -url nats://127.0.0.1:4222 -stream WORK -consumer worker -out handled.txt -fail 0.3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
)

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "NATS URL")
	stream := flag.String("stream", "", "stream")
	consumer := flag.String("consumer", "", "durable consumer (created by an EventConsumer)")
	out := flag.String("out", "handled.txt", "file the handled event IDs are appended to")
	failRate := flag.Float64("fail", 0.3, "fraction of deliveries the handler fails")
	concurrency := flag.Int("concurrency", 4, "handlers at once")
	flag.Parse()

	f, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	nc, err := events.Connect(*url, events.WithName("chaos-consumer"), events.WithReconnectWait(100*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	var handled, failed atomic.Int64
	errInjected := errors.New("injected failure")
	handler := func(_ context.Context, e *events.Event) error {
		if rand.Float64() < *failRate {
			failed.Add(1)
			return errInjected
		}
		mu.Lock()
		_, err := fmt.Fprintln(f, e.ID) // one write(2): in the kernel before the ack
		mu.Unlock()
		if err != nil {
			return err
		}
		handled.Add(1)
		return nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sub, err := events.SubscribeDurable(ctx, js, *stream, *consumer, handler,
		events.SubscriberConfig{Concurrency: *concurrency, PullBatch: 20})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("consuming %s/%s", *stream, *consumer)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = sub.Stop(sctx)
	st := sub.Stats()
	log.Printf("stopped: handled %d, failed %d, acked %d, retried %d, dead-lettered %d",
		handled.Load(), failed.Load(), st.Acked, st.Retried, st.DeadLettered)
}
