//go:build chaos

package chaos

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/util/retry"

	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
	"github.com/giia/eventstream-operator/pkg/events"
)

const clusterEvents = 2000

// TestClusterLeaderKilled: three nats-servers in a JetStream cluster on
// loopback and the operator managing an EventStream with replicas: 3. The
// process that is the stream's leader is SIGKILLed while a sync publisher
// sends 2,000 events: none is lost or duplicated and the EventStream is
// Ready again. Then an EventStream scaled from 1 to 3 replicas is updated.
func TestClusterLeaderKilled(t *testing.T) {
	c := controlPlane(t)
	dir := t.TempDir()
	const n = 3
	members, err := natsproc.NewCluster(dir, n)
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]*natsproc.Server{}
	for _, s := range members {
		servers[s.Name] = s
		t.Cleanup(s.Stop)
		startNATS(t, s)
	}
	all := natsproc.URLs(members)
	_, js := connect(t, all, "chaos-admin")
	t0 := time.Now()
	if err := natsproc.WaitJetStream(js, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	clusterUp := time.Since(t0)

	const ns = "chaos-cluster"
	createNamespace(t, c, ns)
	mgr := startManager(t, dir, all, ns)
	ctx := context.Background()

	ha := smallStream(ns, "ha", "ha.>")
	mb := resource.MustParse("64Mi") // 2,000 events fit: nothing discarded
	ha.Spec.MaxBytes = &mb
	ha.Spec.Replicas = 3
	if err := c.Create(ctx, ha); err != nil {
		t.Fatal(err)
	}
	waitStreamReady(t, c, ns, "ha", 2*time.Minute)
	info, err := streamInfo(js, "HA")
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("HA: replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
	}

	pnc, err := events.Connect(all, events.WithName("chaos-ha-pub"), events.WithReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer pnc.Close()
	pub, err := events.NewPublisher(pnc, publishRetry()...)
	if err != nil {
		t.Fatal(err)
	}

	rnd, seed := chaosRand(t)
	killAt := int(float64(clusterEvents) * (0.25 + 0.35*rnd.Float64()))
	t.Logf("seed %d: the stream leader is killed after %d of %d publishes", seed, killAt, clusterEvents)
	var victim *natsproc.Server
	var oldLeader string
	var killErr error
	var done atomic.Int64
	// From the kill until the checks, sample the EventStream's Ready.
	var samples, notReady atomic.Int64
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	watchReady := func() {
		defer close(watchDone)
		for i := 0; i < 1500; i++ { // ≤ 5 min
			select {
			case <-stopWatch:
				return
			case <-time.After(200 * time.Millisecond):
			}
			s, err := getStream(c, ns, "ha")
			if err != nil {
				continue
			}
			samples.Add(1)
			if !isReadyNow(s) {
				notReady.Add(1)
			}
		}
	}
	ok := make([]string, 0, clusterEvents)
	var pubErrs []error
	var maxLat time.Duration
	start := time.Now()
	for i := range clusterEvents {
		if i == killAt {
			info, err := streamInfo(js, "HA")
			if err != nil || info.Cluster == nil || servers[info.Cluster.Leader] == nil {
				killErr = fmt.Errorf("no stream leader to kill: %v %+v", err, info)
			} else {
				oldLeader = info.Cluster.Leader
				victim = servers[oldLeader]
				victim.Kill()
				go watchReady()
			}
		}
		e := newEvent("ha", i)
		pctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		t1 := time.Now()
		err := pub.Publish(pctx, "ha.order.created", e)
		maxLat = max(maxLat, time.Since(t1))
		cancel()
		if err != nil {
			pubErrs = append(pubErrs, err)
		} else {
			ok = append(ok, e.ID)
		}
		done.Add(1)
	}
	pubTime := time.Since(start)
	if killErr != nil {
		t.Fatal(killErr)
	}

	// The stream has a new leader; the EventStream is Ready.
	var newLeader string
	if err := eventually(time.Minute, 250*time.Millisecond, func() error {
		info, err := streamInfo(js, "HA")
		if err != nil {
			return err
		}
		if info.Cluster == nil || info.Cluster.Leader == "" || info.Cluster.Leader == oldLeader {
			return fmt.Errorf("leader %+v", info.Cluster)
		}
		newLeader = info.Cluster.Leader
		return nil
	}); err != nil {
		t.Fatalf("no new stream leader: %v", err)
	}
	haReady := waitStreamReady(t, c, ns, "ha", time.Minute)
	close(stopWatch)
	if victim != nil {
		<-watchDone
	}

	stored, ids := eventIDsByGet(t, js, "HA")
	_, extra := dupes(ids)
	lost := 0
	for _, id := range ok {
		if ids[id] == 0 {
			lost++
		}
	}

	// The killed server comes back; an EventStream is scaled from 1 to 3.
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	scale := smallStream(ns, "scale", "scale.>")
	scale.Spec.Replicas = 1
	if err := c.Create(ctx, scale); err != nil {
		t.Fatal(err)
	}
	waitStreamReady(t, c, ns, "scale", 2*time.Minute)
	if info, err := streamInfo(js, "SCALE"); err != nil || info.Config.Replicas != 1 {
		t.Fatalf("SCALE before: %v %v", err, info)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := getStream(c, ns, "scale")
		if err != nil {
			return err
		}
		s.Spec.Replicas = 3
		return c.Update(ctx, s)
	}); err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	var peers string
	scaleErr := eventually(2*time.Minute, 250*time.Millisecond, func() error {
		s, err := getStream(c, ns, "scale")
		if err != nil {
			return err
		}
		if !isReadyNow(s) {
			return fmt.Errorf("scale: %s", condString(s))
		}
		info, err := streamInfo(js, "SCALE")
		if err != nil {
			return err
		}
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			return fmt.Errorf("SCALE: replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
		}
		peers = info.Cluster.Leader
		for _, r := range info.Cluster.Replicas {
			peers += "," + r.Name
		}
		return nil
	})
	scaled := time.Since(t2)

	fmt.Printf("FIGURES cluster: seed %d; 3 nats-servers (JetStream up %.1fs after start), EventStream replicas 3; stream leader %s SIGKILLed after %d of %d sync publishes; "+
		"new leader %s; %d ok, %d errors, %d retries (client OutMsgs - events), max publish latency %v, %v in all; stream: %d messages, %d distinct IDs, %d duplicates, %d lost; "+
		"EventStream Ready (%s; not Ready in %d of %d samples taken every 200ms from the kill on); scale 1→3: Ready with 3 replicas (peers %s) %.1fs after the update\n",
		seed, clusterUp.Seconds(), oldLeader, killAt, clusterEvents, newLeader, len(ok), len(pubErrs), int(pnc.Stats().OutMsgs)-clusterEvents, maxLat.Round(time.Millisecond),
		pubTime.Round(time.Millisecond), stored, len(ids), extra, lost, readyCond(haReady).Reason, notReady.Load(), samples.Load(), peers, scaled.Seconds())
	if extra != 0 || stored != len(ids) {
		t.Errorf("%d duplicate copies; %d messages for %d IDs", extra, stored, len(ids))
	}
	if lost != 0 {
		t.Errorf("%d events whose Publish returned nil are not in the stream", lost)
	}
	if len(pubErrs) != 0 {
		t.Errorf("%d publishes failed despite retries; first: %v", len(pubErrs), pubErrs[0])
	}
	if scaleErr != nil {
		t.Errorf("scaling 1→3: %v\n%s", scaleErr, tail(mgr.LogPath(), 20))
	}
}
