//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/managerproc"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
	"github.com/giia/eventstream-operator/pkg/events"
)

const (
	leaderStreams = 300
	// Lease timings given to both managers (shorter than the 15s/10s/2s
	// defaults, so that a takeover fits in the test).
	leaseDuration = 10 * time.Second
	renewDeadline = 6 * time.Second
	retryPeriod   = time.Second
	// The lease the manager holds (cmd/main.go's LeaderElectionID).
	leaseName = "eventstream-operator.events.giia.io"
	// Dead letters terminated before the kill (and counted then), right
	// before it (in flight), and right after it (no leader yet).
	deadBefore, deadAtKill, deadAfter = 5, 3, 5
)

func getLease(c client.Client, ns string) (*coordinationv1.Lease, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var l coordinationv1.Lease
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: leaseName}, &l)
	return &l, err
}

func leaseHolder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// waitLeader waits until the Lease has a holder and exactly one of the
// managers runs its controllers, and returns that one and the holder.
func waitLeader(t *testing.T, c client.Client, ns string, mgrs []*managerproc.Manager, within time.Duration) (*managerproc.Manager, string) {
	t.Helper()
	var leader *managerproc.Manager
	var holder string
	if err := eventually(within, 100*time.Millisecond, func() error {
		l, err := getLease(c, ns)
		if err != nil {
			return err
		}
		if holder = leaseHolder(l); holder == "" {
			return fmt.Errorf("lease %s/%s has no holder", ns, leaseName)
		}
		leader = nil
		for _, m := range mgrs {
			if m.Proc.Exited() {
				return fmt.Errorf("%s exited:\n%s", m.Name, tail(m.LogPath(), 20))
			}
			if m.Leading(context.Background()) {
				if leader != nil {
					return fmt.Errorf("both %s and %s run their controllers", leader.Name, m.Name)
				}
				leader = m
			}
		}
		if leader == nil {
			return fmt.Errorf("lease held by %s, but no manager runs its controllers yet", holder)
		}
		return nil
	}); err != nil {
		t.Fatalf("no leader: %v", err)
	}
	return leader, holder
}

// terminate fetches n messages of a consumer and terminates each (Term):
// JetStream announces MSG_TERMINATED, which the operator's dead-letter
// forwarder turns into a dead letter and counts.
func terminate(cons jetstream.Consumer, n int) error {
	for n > 0 {
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			if err := m.Term(); err != nil {
				return err
			}
			got++
		}
		if got == 0 {
			return fmt.Errorf("fetch: no message (%v)", batch.Error())
		}
		n -= got
	}
	return nil
}

// TestLeaderKilledWhileConverging: two bin/manager processes with leader
// election on the same namespace. While 300 new EventStreams converge, the
// leader is SIGKILLed once a random number of them (10–80 %, from the logged
// seed) are Ready. The other manager must take the lease over and start its
// controllers within the lease duration (plus a retry period and a margin),
// and then everything
// converges: all Ready, one stream per EventStream, no orphan. An
// EventConsumer dead-letters 13 messages: 5 counted before the kill, 3
// terminated right before it, 5 right after it; at the end its
// status.state.deadLettered equals the dead-letter stream's message count.
func TestLeaderKilledWhileConverging(t *testing.T) {
	c := controlPlane(t)
	dir := t.TempDir()
	srv := natsproc.StartStandalone(t, dir)
	nc, js := connect(t, srv.URL(), "chaos-admin")
	const ns = "chaos-leader"
	createNamespace(t, c, ns)
	var mgrs []*managerproc.Manager
	for _, name := range []string{"manager-a", "manager-b"} {
		m := newManager(dir, kube.Kubeconfig, srv.URL(), ns)
		m.Name = name
		m.Args = append(m.Args, "--leader-elect", "--leader-election-namespace", ns,
			"--leader-election-lease-duration", leaseDuration.String(),
			"--leader-election-renew-deadline", renewDeadline.String(),
			"--leader-election-retry-period", retryPeriod.String())
		startMgr(t, m)
		stopAtCleanup(t, m)
		mgrs = append(mgrs, m)
	}
	leader, oldHolder := waitLeader(t, c, ns, mgrs, time.Minute)
	follower := mgrs[0]
	if follower == leader {
		follower = mgrs[1]
	}
	ctx := context.Background()

	// An EventConsumer that dead-letters, and its first dead letters,
	// counted before the kill.
	work := smallStream(ns, "work", "work.>")
	dlqStream := smallStream(ns, "work-dlq", "dlq.work.>")
	evc := &eventsv1.EventConsumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "worker"},
		Spec: eventsv1.EventConsumerSpec{
			StreamRef:  eventsv1.LocalObjectReference{Name: "work"},
			AckWait:    "30s",
			MaxDeliver: 3,
			DeadLetter: &eventsv1.DeadLetter{},
		},
	}
	for _, o := range []client.Object{work, dlqStream, evc} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	waitStreamReady(t, c, ns, "work", time.Minute)
	waitStreamReady(t, c, ns, "work-dlq", time.Minute)
	waitConsumerReady(t, c, ns, "worker", time.Minute)
	pub, err := events.NewPublisher(nc, publishRetry()...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range deadBefore + deadAtKill + deadAfter {
		if err := pub.Publish(ctx, "work.order.created", newEvent("leader", i)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.Consumer(ctx, "WORK", "worker")
	if err != nil {
		t.Fatal(err)
	}
	if err := terminate(cons, deadBefore); err != nil {
		t.Fatal(err)
	}
	deadLettered := func() (int64, int, error) {
		x, err := getConsumer(c, ns, "worker")
		if err != nil {
			return 0, 0, err
		}
		info, err := streamInfo(js, "WORK_DLQ")
		if err != nil {
			return 0, 0, err
		}
		var n int64
		if x.Status.State != nil {
			n = x.Status.State.DeadLettered
		}
		return n, int(info.State.Msgs), nil
	}
	if err := eventually(time.Minute, 200*time.Millisecond, func() error {
		counted, stored, err := deadLettered()
		if err != nil {
			return err
		}
		if counted != deadBefore || stored != deadBefore {
			return fmt.Errorf("%d dead letters counted, %d stored, want %d", counted, stored, deadBefore)
		}
		return nil
	}); err != nil {
		t.Fatalf("before the kill: %v", err)
	}

	// 300 EventStreams; the leader dies midway.
	rnd, seed := chaosRand(t)
	killAt := leaderStreams/10 + rnd.IntN(leaderStreams*7/10+1)
	t.Logf("the leader (%s) is SIGKILLed once %d of %d new EventStreams are Ready", leader.Name, killAt, leaderStreams)
	const others = 2 // work, work-dlq
	start := time.Now()
	bulk := createStreams(c, ns, "le", leaderStreams)
	var killedAt time.Time
	var termErr error
	readyAtKill, err := killWhenReady(c, ns, others+killAt, 2*time.Minute, func() {
		termErr = terminate(cons, deadAtKill)
		leader.Kill()
		killedAt = time.Now()
	})
	if err != nil {
		t.Fatalf("%d streams never became Ready: %v\n%s", killAt, err, tail(leader.LogPath(), 30))
	}
	readyAtKill -= others
	killedAfter := killedAt.Sub(start)
	if termErr != nil {
		t.Fatalf("terminating before the kill: %v", termErr)
	}
	if err := terminate(cons, deadAfter); err != nil {
		t.Fatalf("terminating after the kill: %v", err)
	}

	// Takeover: the follower holds the lease and runs its controllers; the
	// first EventStream that becomes Ready after the kill.
	var newHolder string
	var acquired, workersAt, firstReadyAt time.Time
	err = eventually(leaseDuration+time.Minute, 100*time.Millisecond, func() error {
		if follower.Proc.Exited() {
			return fmt.Errorf("%s exited:\n%s", follower.Name, tail(follower.LogPath(), 20))
		}
		// A new Ready once the new leader's controllers run (a status
		// patch the old leader sent just before dying does not count).
		if firstReadyAt.IsZero() && !workersAt.IsZero() {
			if items, err := listStreams(c, ns); err == nil && countReady(items)-others > readyAtKill {
				firstReadyAt = time.Now()
			}
		}
		if newHolder == "" {
			l, err := getLease(c, ns)
			if err != nil {
				return err
			}
			if h := leaseHolder(l); h != "" && h != oldHolder {
				newHolder = h
				acquired = time.Now()
				if l.Spec.AcquireTime != nil {
					acquired = l.Spec.AcquireTime.Time
				}
			}
		}
		if workersAt.IsZero() && follower.Leading(context.Background()) {
			workersAt = time.Now()
		}
		if newHolder == "" || workersAt.IsZero() || firstReadyAt.IsZero() {
			return fmt.Errorf("lease holder %q (was %q), %s controllers started: %v, new Ready: %v",
				newHolder, oldHolder, follower.Name, !workersAt.IsZero(), !firstReadyAt.IsZero())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no takeover: %v\n%s", err, tail(follower.LogPath(), 30))
	}
	takeover := acquired.Sub(killedAt)
	bulk.wait(t)

	items, err := waitAllReady(c, ns, others+leaderStreams, 3*time.Minute)
	converged := time.Since(killedAt)
	if err != nil {
		t.Fatalf("after the takeover: %v\n%s", err, tail(follower.LogPath(), 30))
	}
	o := checkOwnership(t, js, ns, items)
	waitConsumerReady(t, c, ns, "worker", time.Minute)
	_, dead := eventIDs(t, js, "WORK_DLQ")
	dupIDs, _ := dupes(dead)
	var counted int64
	var stored int
	countErr := eventually(30*time.Second, 500*time.Millisecond, func() error {
		var err error
		if counted, stored, err = deadLettered(); err != nil {
			return err
		}
		if stored != deadBefore+deadAtKill+deadAfter {
			return fmt.Errorf("the dead-letter stream holds %d, want %d", stored, deadBefore+deadAtKill+deadAfter)
		}
		if counted != int64(stored) {
			return fmt.Errorf("status.state.deadLettered %d, dead-letter stream holds %d", counted, stored)
		}
		return nil
	})
	margin := time.Duration(1.2*float64(retryPeriod)) + 5*time.Second
	fmt.Printf("FIGURES leader-killed: seed %d; 2 managers (lease %s, renew deadline %s, retry %s); %d EventStreams, leader %s SIGKILLed %.1fs after the first create "+
		"with %d Ready (kill point %d); %s took the lease %.1fs after the kill (limit %.1fs), its controllers started %.1fs and the first EventStream Ready %.1fs after the kill; "+
		"all %d Ready %.1fs after the kill; JetStream: %d owned streams, %d duplicates, %d orphans, %d missing; "+
		"dead letters: %d stored (%d events dead-lettered twice), status.state.deadLettered %d (%d counted before the kill, %d terminated right before it, %d right after)\n",
		seed, leaseDuration, renewDeadline, retryPeriod, leaderStreams, leader.Name, killedAfter.Seconds(), readyAtKill, killAt,
		follower.Name, takeover.Seconds(), (leaseDuration + margin).Seconds(), workersAt.Sub(killedAt).Seconds(), firstReadyAt.Sub(killedAt).Seconds(),
		countReady(items)-others, converged.Seconds(), o.ours, o.dups, o.orphans, o.missing,
		stored, dupIDs, counted, deadBefore, deadAtKill, deadAfter)
	if takeover > leaseDuration+margin {
		t.Errorf("%s took the lease %s after the kill, more than the lease duration %s + %s", follower.Name, takeover, leaseDuration, margin)
	}
	if w := workersAt.Sub(killedAt); w > leaseDuration+margin {
		t.Errorf("%s started its controllers %s after the kill, more than the lease duration %s + %s", follower.Name, w, leaseDuration, margin)
	}
	if readyAtKill >= leaderStreams {
		t.Errorf("the leader was killed only after everything converged")
	}
	if dupIDs != 0 {
		t.Errorf("%d messages dead-lettered more than once", dupIDs)
	}
	if countErr != nil {
		t.Errorf("dead-letter count: %v", countErr)
	}
	if follower.Proc.Exited() {
		t.Errorf("%s, the new leader, exited:\n%s", follower.Name, tail(follower.LogPath(), 30))
	}
}
