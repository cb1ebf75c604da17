//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
)

const (
	redriveEvents   = 50
	redriveSubject  = "catalog.e2e.redrive"
	redriveConsumer = "e2e-redrive"
	redriveReplay   = "redrive-e2e"
)

// redriveManifest is the EventReplay a user applies after fixing the
// handler: the dead letters of one subject back to where they came from,
// deleted from DLQ_EVENTS once redriven.
var redriveManifest = `apiVersion: events.giia.io/v1alpha1
kind: EventReplay
metadata:
  name: ` + redriveReplay + `
spec:
  source:
    streamRef:
      name: dlq-events
    filterSubjects:
    - "dlq.` + redriveSubject + `"
  target:
    original: true
  redrive:
    deleteRedriven: true
`

// redriveEndToEnd: a consumer on CATALOG_EVENTS (events.SubscribeDurable)
// whose handler fails dead-letters 50 events into DLQ_EVENTS; the handler is
// "fixed"; an EventReplay in redrive mode, applied with kubectl, sends them
// back; kubectl wait sees it Ready; the handler handles each of the 50
// exactly once, and DLQ_EVENTS no longer holds them. Deleting the
// EventReplay then goes through its finalizer.
func (s *suite) redriveEndToEnd() error {
	ctx, cancel := context.WithTimeout(s.ctx, 3*time.Minute)
	defer cancel()

	var (
		fixed   atomic.Bool
		failed  atomic.Int64
		mu      sync.Mutex
		handled = map[string]int{}
	)
	sub, err := events.SubscribeDurable(ctx, s.js, "CATALOG_EVENTS", redriveConsumer, func(_ context.Context, e *events.Event) error {
		if !fixed.Load() {
			failed.Add(1)
			return events.Permanent(errors.New("e2e: the handler's bug"))
		}
		mu.Lock()
		handled[e.ID]++
		mu.Unlock()
		return nil
	}, events.SubscriberConfig{FilterSubjects: []string{redriveSubject}, MaxDeliver: 2})
	if err != nil {
		return fmt.Errorf("subscribing to CATALOG_EVENTS/%s: %w", redriveConsumer, err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = sub.Stop(sctx)
		_ = s.js.DeleteConsumer(sctx, "CATALOG_EVENTS", redriveConsumer)
	}()

	pub, err := events.NewPublisher(s.nc)
	if err != nil {
		return err
	}
	defer func() { _ = pub.Close() }()
	sent := map[string]bool{}
	for i := range redriveEvents {
		e, err := events.NewEvent("product.updated", "e2e-test", "org-e2e", time.Now(), map[string]any{"product_id": fmt.Sprintf("p-%d", i)})
		if err != nil {
			return err
		}
		if err := pub.Publish(ctx, redriveSubject, e); err != nil {
			return fmt.Errorf("publishing to %s: %w", redriveSubject, err)
		}
		sent[e.ID] = true
	}

	dlqSubject := events.DeadLetterSubject(redriveSubject)
	if err := waitFor(ctx, 60*time.Second, func() error {
		n, err := s.subjectCount(ctx, "DLQ_EVENTS", dlqSubject)
		if err != nil {
			return err
		}
		if n != redriveEvents {
			return fmt.Errorf("DLQ_EVENTS holds %d messages on %s, want %d (handler failures so far: %d)", n, dlqSubject, redriveEvents, failed.Load())
		}
		return nil
	}); err != nil {
		return err
	}
	logf(s.t, s.start, "the failing handler dead-lettered %d events into DLQ_EVENTS (%s)", redriveEvents, dlqSubject)

	fixed.Store(true)
	manifest := filepath.Join(s.work, "eventreplay-redrive.yaml")
	if err := os.WriteFile(manifest, []byte(redriveManifest), 0o600); err != nil {
		return err
	}
	begin := time.Now()
	if _, err := s.kubectl(30*time.Second, "apply", "-n", samplesNS, "-f", manifest); err != nil {
		return err
	}
	if _, err := s.kubectl(90*time.Second, "wait", "--for=condition=Ready", "evr/"+redriveReplay, "-n", samplesNS, "--timeout=60s"); err != nil {
		_, _ = s.kubectl(30*time.Second, "get", "evr", redriveReplay, "-n", samplesNS, "-o", "yaml")
		return err
	}
	logf(s.t, s.start, "EventReplay %s Ready %s after kubectl apply", redriveReplay, time.Since(begin).Round(time.Millisecond))
	out, err := s.kubectl(30*time.Second, "get", "evr", redriveReplay, "-n", samplesNS, "-o",
		"jsonpath={.status.phase} {.status.replayed}/{.status.total} skipped={.status.skipped}")
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("Succeeded %d/%d skipped=", redriveEvents, redriveEvents); strings.TrimSpace(out) != want && strings.TrimSpace(out) != want+"0" {
		return fmt.Errorf("EventReplay status %q, want %q", out, want)
	}
	_, _ = s.kubectl(30*time.Second, "get", "evr", "-n", samplesNS)

	if err := waitFor(ctx, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(handled) != redriveEvents {
			return fmt.Errorf("%d of %d redriven events handled", len(handled), redriveEvents)
		}
		return nil
	}); err != nil {
		return err
	}
	// A duplicate would arrive within moments: give it the time to.
	time.Sleep(2 * time.Second)
	mu.Lock()
	var problems []string
	for id, n := range handled {
		if !sent[id] {
			problems = append(problems, fmt.Sprintf("handled %s, which was not sent", id))
		} else if n != 1 {
			problems = append(problems, fmt.Sprintf("%s handled %d times", id, n))
		}
	}
	mu.Unlock()
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("after the redrive: %s", strings.Join(problems, "; "))
	}
	n, err := s.subjectCount(ctx, "DLQ_EVENTS", dlqSubject)
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("DLQ_EVENTS still holds %d messages on %s after a redrive with deleteRedriven", n, dlqSubject)
	}
	logf(s.t, s.start, "the fixed handler handled each of the %d redriven events once; DLQ_EVENTS holds none of them", redriveEvents)

	if _, err := s.kubectl(60*time.Second, "delete", "evr", redriveReplay, "-n", samplesNS, "--timeout=45s"); err != nil {
		return err
	}
	return nil
}

// subjectCount is the number of messages stream holds on subject.
func (s *suite) subjectCount(ctx context.Context, stream, subject string) (uint64, error) {
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[subject], nil
}

// waitFor polls fn every 200 ms until it returns nil, within ends or ctx is
// done; it returns the last error.
func waitFor(ctx context.Context, within time.Duration, fn func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
