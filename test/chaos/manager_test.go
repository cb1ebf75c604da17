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
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

const managerKillStreams = 300

func smallStream(ns, name string, subjects ...string) *eventsv1.EventStream {
	mb := resource.MustParse("1Mi")
	return &eventsv1.EventStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       eventsv1.EventStreamSpec{Subjects: subjects, MaxBytes: &mb},
	}
}

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

// TestManagerKilledWhileConverging: bin/manager is SIGKILLed when about a
// third of 300 new EventStreams are Ready, and restarted. All 300 become
// Ready, and JetStream holds exactly one stream per EventStream: no
// duplicate, no orphan.
func TestManagerKilledWhileConverging(t *testing.T) {
	c := controlPlane(t)
	dir := t.TempDir()
	srv := startStandalone(t, dir)
	_, js := connect(t, srv.url(), "chaos-admin")
	const ns = "chaos-manager"
	createNamespace(t, c, ns)
	mgr := startManager(t, dir, srv.url(), ns)

	start := time.Now()
	var created, createErrs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= managerKillStreams {
					return
				}
				name := fmt.Sprintf("mk-%03d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := c.Create(ctx, smallStream(ns, name, "mk."+name+".>"))
				cancel()
				if err != nil {
					createErrs.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				created.Add(1)
			}
		}()
	}

	// Kill the manager once a third is Ready.
	readyAtKill, createdAtKill := -1, -1
	err := eventually(2*time.Minute, 50*time.Millisecond, func() error {
		items, err := listStreams(c, ns)
		if err != nil {
			return err
		}
		if n := countReady(items); n >= managerKillStreams/3 {
			mgr.kill()
			readyAtKill, createdAtKill = n, int(created.Load())
			return nil
		}
		return fmt.Errorf("%d Ready", countReady(items))
	})
	killedAfter := time.Since(start)
	if err != nil {
		t.Fatalf("a third of the streams never became Ready: %v\n%s", err, tail(mgr.logPath(), 30))
	}
	wg.Wait()
	if n := createErrs.Load(); n != 0 {
		t.Fatalf("%d creates failed; first: %v", n, firstErr.Load())
	}
	_, jsAtKill := ownedStreams(t, js)

	t0 := time.Now()
	mgr.start(t, true)
	var items []eventsv1.EventStream
	err = eventually(3*time.Minute, 250*time.Millisecond, func() error {
		var err error
		if items, err = listStreams(c, ns); err != nil {
			return err
		}
		if n := countReady(items); n != managerKillStreams {
			return fmt.Errorf("%d of %d Ready", n, managerKillStreams)
		}
		return nil
	})
	converged := time.Since(t0)
	if err != nil {
		t.Fatalf("after the restart: %v\n%s", err, tail(mgr.logPath(), 30))
	}

	owned, total := ownedStreams(t, js)
	byName := map[string]eventsv1.EventStream{}
	for _, s := range items {
		byName[s.Name] = s
	}
	dups, orphans, missing, ours := 0, 0, 0, 0
	for owner, streams := range owned {
		ons, name, _ := strings.Cut(owner, "/")
		if ons != ns {
			continue
		}
		ours += len(streams)
		if len(streams) > 1 {
			dups += len(streams) - 1
			t.Errorf("%s owns %d streams: %v", owner, len(streams), streams)
		}
		if s, ok := byName[name]; !ok {
			orphans += len(streams)
			t.Errorf("orphan: %v owned by %s, which does not exist", streams, owner)
		} else if len(streams) == 1 && streams[0] != s.JetStreamName() {
			t.Errorf("%s owns %s, expected %s", owner, streams[0], s.JetStreamName())
		}
	}
	for _, s := range items {
		if len(owned[s.OwnerMarker()]) == 0 {
			missing++
			t.Errorf("EventStream %s is Ready but JetStream has no stream owned by it", s.Name)
		}
		if s.Status.StreamName != s.JetStreamName() {
			t.Errorf("EventStream %s: status.streamName %q", s.Name, s.Status.StreamName)
		}
	}
	fmt.Printf("FIGURES manager-killed: %d EventStreams, manager SIGKILLed %.1fs after the first create with %d Ready, %d created, %d JetStream streams; "+
		"restarted: all %d Ready %.1fs after the restart; JetStream: %d streams owned by the namespace (%d in total), %d duplicates, %d orphans, %d missing\n",
		managerKillStreams, killedAfter.Seconds(), readyAtKill, createdAtKill, jsAtKill,
		countReady(items), converged.Seconds(), ours, total, dups, orphans, missing)
	if ours != managerKillStreams {
		t.Errorf("%d JetStream streams owned by EventStreams of %s, want %d", ours, ns, managerKillStreams)
	}
	if readyAtKill >= managerKillStreams {
		t.Errorf("the manager was killed only after everything converged")
	}
}
