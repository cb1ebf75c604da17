//go:build chaos

package chaos

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/dlq"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
	"github.com/giia/eventstream-operator/internal/testutil/proc"
	"github.com/giia/eventstream-operator/pkg/events"
)

const consumerEvents = 1000

// buildConsumer compiles test/chaos/consumer into dir.
func buildConsumer(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "consumer")
	cmd := exec.Command("go", "build", "-tags", "chaos", "-o", bin, "./consumer")
	cmd.Dir = filepath.Join(root, "test", "chaos")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the consumer: %v\n%s", err, out)
	}
	return bin
}

// readLines returns the lines of a file (missing file: none).
func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestConsumerKilledWithFailingHandler: 1,000 events on a stream whose
// EventConsumer dead-letters (maxDeliver 3, backoff 1s 2s); a consuming
// process whose handler fails 30% of deliveries is SIGKILLed once a random
// number (20–70 %, from the logged seed) of the events are handled, and
// restarted, and so is the operator's manager. Every event ends up handled or
// in the dead-letter stream, and every dead letter is counted once in
// status.state.deadLettered (the counts live in the operator's KeyValue
// ledger, not in the killed manager's memory).
func TestConsumerKilledWithFailingHandler(t *testing.T) {
	c := controlPlane(t)
	dir := t.TempDir()
	consumerBin := buildConsumer(t, dir)
	srv := natsproc.StartStandalone(t, dir)
	nc, js := connect(t, srv.URL(), "chaos-admin")
	const ns = "chaos-consumer"
	createNamespace(t, c, ns)
	mgr := startManager(t, dir, srv.URL(), ns)
	ctx := context.Background()

	work := smallStream(ns, "work", "work.>")
	dlq := smallStream(ns, "work-dlq", "dlq.work.>")
	evc := &eventsv1.EventConsumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "worker"},
		Spec: eventsv1.EventConsumerSpec{
			StreamRef:  eventsv1.LocalObjectReference{Name: "work"},
			AckWait:    "5s",
			MaxDeliver: 3,
			Backoff:    []eventsv1.Duration{"1s", "2s"},
			DeadLetter: &eventsv1.DeadLetter{},
		},
	}
	for _, o := range []client.Object{work, dlq, evc} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	waitStreamReady(t, c, ns, "work", time.Minute)
	waitStreamReady(t, c, ns, "work-dlq", time.Minute)
	waitConsumerReady(t, c, ns, "worker", time.Minute)

	// 1,000 events.
	pub, err := events.NewPublisher(nc, publishRetry()...)
	if err != nil {
		t.Fatal(err)
	}
	published := map[string]bool{}
	for i := range consumerEvents {
		e := newEvent("work", i)
		if err := pub.PublishAsync(ctx, "work.order.created", e); err != nil {
			t.Fatal(err)
		}
		published[e.ID] = true
	}
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	if err := pub.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if info, err := streamInfo(js, "WORK"); err != nil || info.State.Msgs != consumerEvents {
		t.Fatalf("WORK holds %v messages (%v), want %d", info, err, consumerEvents)
	}

	rnd, seed := chaosRand(t)
	killAt := consumerEvents/5 + rnd.IntN(consumerEvents/2+1)
	t.Logf("the consumer is SIGKILLed once %d of %d events are handled", killAt, consumerEvents)
	out := filepath.Join(dir, "handled.txt")
	runConsumer := func(n int) *proc.Process {
		p, err := proc.Start("consumer", filepath.Join(dir, fmt.Sprintf("consumer-%d.log", n)), os.Environ(), consumerBin,
			"-url", srv.URL(), "-stream", "WORK", "-consumer", "worker", "-out", out, "-fail", "0.3")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	start := time.Now()
	p1 := runConsumer(1)
	handledAtKill := 0
	if err := eventually(time.Minute, 20*time.Millisecond, func() error {
		if p1.Exited() {
			return fmt.Errorf("consumer exited:\n%s", tail(p1.Log, 20))
		}
		if handledAtKill = len(readLines(out)); handledAtKill >= killAt {
			return nil
		}
		return fmt.Errorf("%d handled", handledAtKill)
	}); err != nil {
		t.Fatalf("the consumer did not handle %d events: %v", killAt, err)
	}
	p1.Kill()
	killedAfter := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	p2 := runConsumer(2)
	defer func() { _, _ = p2.Stop(15 * time.Second) }()

	// The manager is SIGKILLed while dead letters are being counted, and
	// comes back 2 s later.
	dlqAtManagerKill := 0
	if err := eventually(time.Minute, 50*time.Millisecond, func() error {
		info, err := streamInfo(js, "WORK_DLQ")
		if err != nil {
			return err
		}
		if dlqAtManagerKill = int(info.State.Msgs); dlqAtManagerKill >= 10 {
			return nil
		}
		return fmt.Errorf("%d dead letters", dlqAtManagerKill)
	}); err != nil {
		t.Fatalf("no dead letters to count: %v", err)
	}
	mgr.Kill()
	time.Sleep(2 * time.Second)
	startMgr(t, mgr)

	// Wait until every event is handled or dead-lettered, and the consumer
	// has nothing left in flight.
	var handled map[string]int
	var dead map[string]int
	var dlqMsgs int
	err = eventually(2*time.Minute, 500*time.Millisecond, func() error {
		handled = map[string]int{}
		for _, id := range readLines(out) {
			handled[id]++
		}
		dlqMsgs, dead = eventIDs(t, js, "WORK_DLQ")
		missing := 0
		for id := range published {
			if handled[id] == 0 && dead[id] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d events neither handled nor dead-lettered", missing)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cons, err := js.Consumer(cctx, "WORK", "worker")
		if err != nil {
			return err
		}
		info, err := cons.Info(cctx)
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("consumer: %d pending, %d ack pending", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	settled := time.Since(start)
	if err != nil {
		t.Errorf("not settled: %v\n%s", err, tail(mgr.LogPath(), 20))
	}
	_, _ = p2.Stop(15 * time.Second)

	lost, handledTwice, extraHandles, both, unknown := 0, 0, 0, 0, 0
	for id := range published {
		if handled[id] == 0 && dead[id] == 0 {
			lost++
		}
		if handled[id] > 1 {
			handledTwice++
			extraHandles += handled[id] - 1
		}
		if handled[id] > 0 && dead[id] > 0 {
			both++
		}
	}
	for id := range handled {
		if !published[id] {
			unknown++
		}
	}
	dlqDupIDs, _ := dupes(dead)
	reasons := dlqReasons(t, js, "WORK_DLQ")
	// The operator counts every dead letter of the consumer (forwarded or
	// sent by the library) into status.state.deadLettered.
	var deadLettered int64
	t3 := time.Now()
	// Advisories the killed manager had been sent but not acknowledged
	// come back after the capture consumer's ack wait (30 s), hence 45 s.
	countErr := eventually(45*time.Second, 500*time.Millisecond, func() error {
		x, err := getConsumer(c, ns, "worker")
		if err != nil {
			return err
		}
		if x.Status.State != nil {
			deadLettered = x.Status.State.DeadLettered
		}
		if deadLettered != int64(dlqMsgs) {
			return fmt.Errorf("status.state.deadLettered %d, dead-letter stream holds %d", deadLettered, dlqMsgs)
		}
		return nil
	})
	countLag := time.Since(t3)
	fmt.Printf("FIGURES consumer-killed: seed %d; %d events, handler failing 30%%, maxDeliver 3, backoff 1s/2s; consumer SIGKILLed %.1fs in with %d handled, restarted; "+
		"settled %.1fs after the start: %d distinct events handled (%d handle calls recorded, %d events handled more than once, %d extra), "+
		"%d dead letters for %d events (%d events dead-lettered twice; by reason: %v), %d both handled and dead-lettered, %d lost; "+
		"manager SIGKILLed with %d dead letters stored and restarted; EventConsumer status.state.deadLettered %d (%.1fs after settling); %s\n",
		seed, consumerEvents, killedAfter.Seconds(), handledAtKill, settled.Seconds(), len(handled), len(readLines(out)), handledTwice, extraHandles,
		dlqMsgs, len(dead), dlqDupIDs, reasons, both, lost, dlqAtManagerKill, deadLettered, countLag.Seconds(), strings.TrimSpace(tail(p2.Log, 1)))
	if lost != 0 {
		t.Errorf("%d events lost: neither handled nor in the dead-letter stream", lost)
	}
	if unknown != 0 {
		t.Errorf("%d handled IDs were never published", unknown)
	}
	if dlqDupIDs != 0 {
		t.Errorf("%d events dead-lettered more than once (a dead letter must be stored once)", dlqDupIDs)
	}
	if countErr != nil {
		t.Logf("ledger: %s\n%s", ledgerValue(js, ns+"/worker"), tail(mgr.LogPath(), 30))
		// The count once lost increments when dead letters arrived faster
		// than status patches reached the cache, and could lose those not
		// yet written when the manager died (both fixed by the ledger; see
		// docs/reliability.md).
		t.Errorf("dead-letter count: %v", countErr)
	}
	if len(dead) == 0 {
		t.Errorf("no dead letter at all with a handler failing 30%% of 3 deliveries: the dead-letter path was not exercised")
	}
}

// ledgerValue reads the operator's dead-letter count of key from its
// KeyValue ledger, for diagnostics.
func ledgerValue(js jetstream.JetStream, key string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, dlq.DefaultLedgerBucket)
	if err != nil {
		return err.Error()
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return err.Error()
	}
	return string(e.Value())
}

// dlqReasons counts dead letters by who sent them: the library (reason
// "failed on the last of N deliveries…") or the operator (anything else, e.g.
// a MAX_DELIVERIES advisory for a delivery the killed consumer never finished).
func dlqReasons(t *testing.T, js jetstream.JetStream, stream string) map[string]int {
	t.Helper()
	out := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Errorf("dlq stream: %v", err)
		return out
	}
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return out
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		r := m.Header.Get(events.HeaderDLQReason)
		switch {
		case strings.HasPrefix(r, "failed on the last of"):
			out["library (last delivery failed)"]++
		default:
			if len(r) > 60 {
				r = r[:60] + "…"
			}
			out["other: "+r]++
		}
	}
	return out
}
