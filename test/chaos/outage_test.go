//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
)

// outage is how long NATS stays down: CHAOS_OUTAGE (a Go duration), 60s by
// default.
func outage(t *testing.T) time.Duration {
	if v := os.Getenv("CHAOS_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 10*time.Second {
			t.Fatalf("CHAOS_OUTAGE=%q: want a duration of at least 10s", v)
		}
		return d
	}
	return 60 * time.Second
}

func int64p(v int64) *int64 { return &v }

// TestNATSUnreachable: nats-server is stopped for 60 s while EventStreams
// are created, changed and deleted. Their conditions say NatsUnavailable
// (with "unreachable" in the message) meanwhile; once NATS is back everything
// converges and the deletions complete.
func TestNATSUnreachable(t *testing.T) {
	down := outage(t)
	c := controlPlane(t)
	dir := t.TempDir()
	srv := natsproc.StartStandalone(t, dir)
	_, js := connect(t, srv.URL(), "chaos-admin")
	const ns = "chaos-outage"
	createNamespace(t, c, ns)
	mgr := startManager(t, dir, srv.URL(), ns)
	ctx := context.Background()

	// Before: one stream to change, two to delete.
	changed := smallStream(ns, "changed", "out.changed.>")
	changed.Spec.Description = "before the outage"
	toDelete := []string{"gone-1", "gone-2"}
	objs := []*eventsv1.EventStream{changed}
	for _, n := range toDelete {
		s := smallStream(ns, n, "out."+n+".>")
		s.Spec.DeletionPolicy = eventsv1.DeletionPolicyDelete
		objs = append(objs, s)
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range objs {
		waitStreamReady(t, c, ns, o.Name, time.Minute)
	}

	// NATS goes away.
	srv.Stop()
	downAt := time.Now()
	created := []string{"new-1", "new-2", "new-3"}
	for _, n := range created {
		s := smallStream(ns, n, "out."+n+".>")
		s.Spec.MaxMsgs = int64p(1000)
		s.Spec.Description = "created while NATS was down"
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := getStream(c, ns, "changed")
		if err != nil {
			return err
		}
		s.Spec.Description = "changed while NATS was down"
		s.Spec.MaxMsgs = int64p(5000)
		return c.Update(ctx, s)
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range toDelete {
		if err := c.Delete(ctx, &eventsv1.EventStream{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}}); err != nil {
			t.Fatal(err)
		}
	}

	// The conditions say why, for the current generation.
	var sample string
	var condAfter time.Duration
	err := eventually(down-5*time.Second, 500*time.Millisecond, func() error {
		for _, n := range append([]string{"changed"}, created...) {
			s, err := getStream(c, ns, n)
			if err != nil {
				return err
			}
			cond := readyCond(s)
			if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != eventsv1.ReasonNatsUnavailable ||
				cond.ObservedGeneration != s.Generation || !strings.Contains(strings.ToLower(cond.Message), "unreachable") {
				return fmt.Errorf("%s: %s", n, condString(s))
			}
			sample = cond.Message
		}
		return nil
	})
	condAfter = time.Since(downAt)
	if err != nil {
		t.Errorf("during the outage, want Ready=False NatsUnavailable mentioning \"unreachable\": %v", err)
	}
	var deleting []string
	for _, n := range toDelete {
		s, err := getStream(c, ns, n)
		if err != nil {
			t.Errorf("%s vanished while NATS was down (its JetStream stream cannot have been deleted): %v", n, err)
			continue
		}
		deleting = append(deleting, n+": "+condString(s))
	}
	readyz := mgr.Ready(context.Background())
	if readyz {
		t.Errorf("the manager's /readyz is OK while NATS is down")
	}
	time.Sleep(time.Until(downAt.Add(down)))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	actualDown := upAt.Sub(downAt)

	// Everything converges.
	err = eventually(2*time.Minute, 250*time.Millisecond, func() error {
		for _, n := range created {
			s, err := getStream(c, ns, n)
			if err != nil {
				return err
			}
			if !isReadyNow(s) {
				return fmt.Errorf("%s: %s", n, condString(s))
			}
			info, err := streamInfo(js, s.JetStreamName())
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			if info.Config.MaxMsgs != 1000 || info.Config.MaxBytes != 1<<20 || info.Config.Description != "created while NATS was down" ||
				len(info.Config.Subjects) != 1 || info.Config.Subjects[0] != "out."+n+".>" {
				return fmt.Errorf("%s: JetStream config %+v", n, info.Config)
			}
		}
		s, err := getStream(c, ns, "changed")
		if err != nil {
			return err
		}
		if !isReadyNow(s) {
			return fmt.Errorf("changed: %s", condString(s))
		}
		info, err := streamInfo(js, s.JetStreamName())
		if err != nil {
			return fmt.Errorf("changed: %w", err)
		}
		if info.Config.MaxMsgs != 5000 || info.Config.Description != "changed while NATS was down" {
			return fmt.Errorf("changed: the change is not applied: maxMsgs %d, description %q", info.Config.MaxMsgs, info.Config.Description)
		}
		for _, n := range toDelete {
			_, err := getStream(c, ns, n)
			if err == nil {
				return fmt.Errorf("%s: still exists", n)
			}
			if !apierrors.IsNotFound(err) {
				return err
			}
			if _, err := streamInfo(js, jsName(n)); !errors.Is(err, jetstream.ErrStreamNotFound) {
				return fmt.Errorf("JetStream stream %s not deleted (%v)", jsName(n), err)
			}
		}
		return nil
	})
	converged := time.Since(upAt)
	fmt.Printf("FIGURES nats-unreachable: NATS down %.0fs while 3 EventStreams were created, 1 changed, 2 deleted; "+
		"all conditions Ready=False NatsUnavailable %.1fs after the stop (e.g. %q); deletions pending meanwhile %v; manager /readyz ok during the outage: %v; "+
		"after NATS returned: everything converged (created Ready with their config, change applied, 2 CRs and streams gone) in %.1fs\n",
		actualDown.Seconds(), condAfter.Seconds(), sample, deleting, readyz, converged.Seconds())
	if err != nil {
		t.Fatalf("after NATS came back: %v\n%s", err, tail(mgr.LogPath(), 30))
	}
}
