//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
	"github.com/giia/eventstream-operator/pkg/events"
)

const (
	replayMessages = 20000
	// replayRate slows the replay (messages per second) so that a kill
	// lands mid-way: about 10 s in all.
	replayRate = 2000
)

// TestManagerKilledMidReplay: an EventReplay copies 20 000 messages into a
// target stream whose duplicate window is 1 s; bin/manager is SIGKILLed
// once a random number (10–80 %, from the logged seed) of them are in the
// target, and restarted more than a duplicate window later. The replay ends
// Succeeded with replayed = 20 000, and the target holds every message
// exactly once, in source order.
func TestManagerKilledMidReplay(t *testing.T) {
	c := controlPlane(t)
	dir := t.TempDir()
	srv := natsproc.StartStandalone(t, dir)
	_, js := connect(t, srv.URL(), "chaos-admin")
	const ns = "chaos-replay"
	createNamespace(t, c, ns)
	mgr := startManager(t, dir, srv.URL(), ns)
	rnd, seed := chaosRand(t)
	killAt := replayMessages/10 + rnd.IntN(replayMessages*7/10+1)
	t.Logf("the manager is SIGKILLed once %d of %d messages are in the target", killAt, replayMessages)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src := smallStream(ns, "replay-src", "rsrc.>")
	tgt := smallStream(ns, "replay-tgt", "rtgt.>")
	for _, s := range []*eventsv1.EventStream{src, tgt} {
		s.Spec.MaxBytes = ptr.To(resource.MustParse("64Mi"))
		s.Spec.DuplicateWindow = "1s"
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	srcStream := waitStreamReady(t, c, ns, src.Name, time.Minute).Status.StreamName
	tgtStream := waitStreamReady(t, c, ns, tgt.Name, time.Minute).Status.StreamName

	for i := 1; i <= replayMessages; i++ {
		m := &nats.Msg{Subject: fmt.Sprintf("rsrc.k%d", i%16), Data: []byte(strconv.Itoa(i))}
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal("publishing the source messages timed out")
	}

	evr := &eventsv1.EventReplay{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "copy"},
		Spec: eventsv1.EventReplaySpec{
			Source:    eventsv1.ReplaySource{StreamRef: eventsv1.LocalObjectReference{Name: src.Name}},
			Target:    eventsv1.ReplayTarget{Subject: "rtgt.copy"},
			RateLimit: ptr.To[int32](replayRate),
		},
	}
	start := time.Now()
	if err := c.Create(ctx, evr); err != nil {
		t.Fatal(err)
	}
	var atKill uint64
	err := eventually(time.Minute, 20*time.Millisecond, func() error {
		info, err := streamInfo(js, tgtStream)
		if err != nil {
			return err
		}
		if info.State.Msgs < uint64(killAt) {
			return fmt.Errorf("%d messages in the target, waiting for %d", info.State.Msgs, killAt)
		}
		mgr.Kill()
		atKill = info.State.Msgs
		return nil
	})
	if err != nil {
		t.Fatalf("the replay never reached the kill point: %v\n%s", err, tail(mgr.LogPath(), 30))
	}
	killedAfter := time.Since(start)
	statusAtKill, err := getReplay(c, ns, evr.Name)
	if err != nil {
		t.Fatal(err)
	}
	// Longer than the target's duplicate window: exactly-once must not rest
	// on it.
	time.Sleep(1500 * time.Millisecond)

	t0 := time.Now()
	startMgr(t, mgr)
	var done *eventsv1.EventReplay
	err = eventually(time.Minute, 200*time.Millisecond, func() error {
		var err error
		if done, err = getReplay(c, ns, evr.Name); err != nil {
			return err
		}
		if done.Status.Phase != eventsv1.ReplaySucceeded {
			return fmt.Errorf("phase %q, %s, %s", done.Status.Phase, done.Status.Progress, condString(done))
		}
		return nil
	})
	resumed := time.Since(t0)
	if err != nil {
		t.Fatalf("after the restart: %v\n%s", err, tail(mgr.LogPath(), 30))
	}
	if done.Status.Replayed != replayMessages || done.Status.Total != replayMessages {
		t.Errorf("status: replayed %d of %d, want %d of %d", done.Status.Replayed, done.Status.Total, replayMessages, replayMessages)
	}

	n, dups, outOfOrder := checkReplayed(t, js, tgtStream, string(done.UID))
	fmt.Printf("FIGURES replay-manager-killed: seed %d; %d messages from %s to %s at %d msg/s; manager SIGKILLed %.1fs after the create with %d in the target "+
		"(kill point %d; status then %s); restarted after 1.5s (target duplicate window 1s): Succeeded %.1fs after the restart; target: %d messages, %d duplicates, %d out of order\n",
		seed, replayMessages, srcStream, tgtStream, replayRate, killedAfter.Seconds(), atKill, killAt, statusAtKill.Status.Progress,
		resumed.Seconds(), n, dups, outOfOrder)
	if atKill >= replayMessages {
		t.Errorf("the manager was killed only after the replay was done")
	}
}

func getReplay(c client.Client, ns, name string) (*eventsv1.EventReplay, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r eventsv1.EventReplay
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &r)
	return &r, err
}

// checkReplayed reads the target in order and fails the test unless it
// holds message i (body "i", source sequence i) at position i, for every i
// of the source, each from replay uid.
func checkReplayed(t *testing.T, js jetstream.JetStream, stream, uid string) (n, dups, outOfOrder int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	next := 1
	for uint64(n) < info.State.Msgs {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			n++
			body := string(m.Data())
			seen[body]++
			if seen[body] > 1 {
				dups++
			}
			if body != strconv.Itoa(next) || m.Headers().Get(events.HeaderReplaySequence) != body || m.Headers().Get(events.HeaderReplayID) != uid {
				outOfOrder++
				if outOfOrder <= 5 {
					t.Errorf("target position %d: body %q, %s %q, %s %q", next, body, events.HeaderReplaySequence,
						m.Headers().Get(events.HeaderReplaySequence), events.HeaderReplayID, m.Headers().Get(events.HeaderReplayID))
				}
			}
			next++
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			break
		}
	}
	if n != replayMessages || dups != 0 || outOfOrder != 0 || len(seen) != replayMessages {
		t.Errorf("target holds %d messages (%d distinct, %d duplicates, %d out of order), want each of %d exactly once in order",
			n, len(seen), dups, outOfOrder, replayMessages)
	}
	return n, dups, outOfOrder
}
