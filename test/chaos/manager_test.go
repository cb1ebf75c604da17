//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
)

const managerKillStreams = 300

func listStreams(c client.Client, ns string) ([]eventsv1.EventStream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var l eventsv1.EventStreamList
	if err := c.List(ctx, &l, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	return l.Items, nil
}

func countReady(items []eventsv1.EventStream) int {
	n := 0
	for i := range items {
		if isReadyNow(&items[i]) {
			n++
		}
	}
	return n
}

// ownedStreams lists JetStream streams and returns, per owner marker, the
// streams that carry it (only markers of EventStreams: "<ns>/<name>").
func ownedStreams(t *testing.T, js jetstream.JetStream) (map[string][]string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	owned := map[string][]string{}
	total := 0
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		total++
		if o := info.Config.Metadata[eventsv1.OwnerMetadataKey]; strings.Contains(o, "/") {
			owned[o] = append(owned[o], info.Config.Name)
		}
	}
	if err := l.Err(); err != nil {
		t.Fatalf("listing streams: %v", err)
	}
	return owned, total
}

// bulkCreate creates EventStreams in the background.
type bulkCreate struct {
	created, errs atomic.Int64
	first         atomic.Value
	wg            sync.WaitGroup
}

// createStreams creates n small EventStreams <prefix>-NNN (subjects
// <prefix>.<name>.>) in ns with 16 goroutines and returns at once.
func createStreams(c client.Client, ns, prefix string, n int) *bulkCreate {
	b := &bulkCreate{}
	var next atomic.Int64
	for range 16 {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				name := fmt.Sprintf("%s-%03d", prefix, i)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := c.Create(ctx, smallStream(ns, name, prefix+"."+name+".>"))
				cancel()
				if err != nil {
					b.errs.Add(1)
					b.first.CompareAndSwap(nil, err)
					continue
				}
				b.created.Add(1)
			}
		}()
	}
	return b
}

// wait waits for the creates and fails the test if one failed.
func (b *bulkCreate) wait(t *testing.T) {
	t.Helper()
	b.wg.Wait()
	if n := b.errs.Load(); n != 0 {
		t.Fatalf("%d creates failed; first: %v", n, b.first.Load())
	}
}

// killWhenReady polls the EventStreams of ns every 50 ms and calls kill as
// soon as at least want of them are Ready; it returns how many were Ready
// then.
func killWhenReady(c client.Client, ns string, want int, within time.Duration, kill func()) (int, error) {
	ready := -1
	err := eventually(within, 50*time.Millisecond, func() error {
		items, err := listStreams(c, ns)
		if err != nil {
			return err
		}
		if n := countReady(items); n >= want {
			kill()
			ready = n
			return nil
		}
		return fmt.Errorf("%d Ready, waiting for %d", countReady(items), want)
	})
	return ready, err
}

// waitAllReady waits until ns holds want EventStreams, all Ready, and
// returns them.
func waitAllReady(c client.Client, ns string, want int, within time.Duration) ([]eventsv1.EventStream, error) {
	var items []eventsv1.EventStream
	err := eventually(within, 250*time.Millisecond, func() error {
		var err error
		if items, err = listStreams(c, ns); err != nil {
			return err
		}
		if n := countReady(items); n != want || len(items) != want {
			return fmt.Errorf("%d of %d Ready (%d EventStreams)", n, want, len(items))
		}
		return nil
	})
	return items, err
}

// ownership is what JetStream holds for the EventStreams of a namespace.
type ownership struct {
	ours, total, dups, orphans, missing int
}

// checkOwnership fails the test unless JetStream holds exactly one stream,
// with the right name, per EventStream of ns in items (no duplicate, none
// missing) and no stream marked by an EventStream of ns that is not in items
// (no orphan, e.g. a lost delete), and unless every status.streamName is
// right.
func checkOwnership(t *testing.T, js jetstream.JetStream, ns string, items []eventsv1.EventStream) ownership {
	t.Helper()
	owned, total := ownedStreams(t, js)
	o := ownership{total: total}
	byName := map[string]eventsv1.EventStream{}
	for _, s := range items {
		byName[s.Name] = s
	}
	for owner, streams := range owned {
		ons, name, _ := strings.Cut(owner, "/")
		if ons != ns {
			continue
		}
		o.ours += len(streams)
		if len(streams) > 1 {
			o.dups += len(streams) - 1
			t.Errorf("%s owns %d streams: %v", owner, len(streams), streams)
		}
		if s, ok := byName[name]; !ok {
			o.orphans += len(streams)
			t.Errorf("orphan: %v owned by %s, which does not exist", streams, owner)
		} else if len(streams) == 1 && streams[0] != s.JetStreamName() {
			t.Errorf("%s owns %s, expected %s", owner, streams[0], s.JetStreamName())
		}
	}
	for _, s := range items {
		if len(owned[s.OwnerMarker()]) == 0 {
			o.missing++
			t.Errorf("EventStream %s is Ready but JetStream has no stream owned by it", s.Name)
		}
		if s.Status.StreamName != s.JetStreamName() {
			t.Errorf("EventStream %s: status.streamName %q", s.Name, s.Status.StreamName)
		}
	}
	if o.ours != len(items) {
		t.Errorf("%d JetStream streams owned by EventStreams of %s, want %d", o.ours, ns, len(items))
	}
	return o
}

// TestManagerKilledWhileConverging: bin/manager is SIGKILLed when a random
// number (10–80 %, from the logged seed) of 300 new EventStreams are Ready,
// and restarted. All 300 become Ready, and JetStream holds exactly one
// stream per EventStream: no duplicate, no orphan.
func TestManagerKilledWhileConverging(t *testing.T) {
	c := controlPlane(t)
	dir := t.TempDir()
	srv := natsproc.StartStandalone(t, dir)
	_, js := connect(t, srv.URL(), "chaos-admin")
	const ns = "chaos-manager"
	createNamespace(t, c, ns)
	mgr := startManager(t, dir, srv.URL(), ns)
	rnd, seed := chaosRand(t)
	killAt := managerKillStreams/10 + rnd.IntN(managerKillStreams*7/10+1)
	t.Logf("the manager is SIGKILLed once %d of %d EventStreams are Ready", killAt, managerKillStreams)

	start := time.Now()
	bulk := createStreams(c, ns, "mk", managerKillStreams)
	createdAtKill := -1
	readyAtKill, err := killWhenReady(c, ns, killAt, 2*time.Minute, func() {
		mgr.Kill()
		createdAtKill = int(bulk.created.Load())
	})
	killedAfter := time.Since(start)
	if err != nil {
		t.Fatalf("%d streams never became Ready: %v\n%s", killAt, err, tail(mgr.LogPath(), 30))
	}
	bulk.wait(t)
	_, jsAtKill := ownedStreams(t, js)

	t0 := time.Now()
	startMgr(t, mgr)
	items, err := waitAllReady(c, ns, managerKillStreams, 3*time.Minute)
	converged := time.Since(t0)
	if err != nil {
		t.Fatalf("after the restart: %v\n%s", err, tail(mgr.LogPath(), 30))
	}
	o := checkOwnership(t, js, ns, items)
	fmt.Printf("FIGURES manager-killed: seed %d; %d EventStreams, manager SIGKILLed %.1fs after the first create with %d Ready (kill point %d), %d created, %d JetStream streams; "+
		"restarted: all %d Ready %.1fs after the restart; JetStream: %d streams owned by the namespace (%d in total), %d duplicates, %d orphans, %d missing\n",
		seed, managerKillStreams, killedAfter.Seconds(), readyAtKill, killAt, createdAtKill, jsAtKill,
		countReady(items), converged.Seconds(), o.ours, o.total, o.dups, o.orphans, o.missing)
	if readyAtKill >= managerKillStreams {
		t.Errorf("the manager was killed only after everything converged")
	}
}
