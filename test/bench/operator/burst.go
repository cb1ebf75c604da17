package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// burstRun is the burst scenario, in an environment of its own (a fresh
// API server, nats-server and manager, so that its memory figure is its
// own): n EventStreams are created and Ready, then every JetStream stream is
// deleted out of band at once, and the time until the operator has
// recreated all of them is measured, with what the manager did meanwhile.
func burstRun(ctx context.Context, root, assets, dir string, n int) (vals, error) {
	v := vals{}
	l1 := func() float64 {
		var x float64
		_, _ = fmt.Sscan(loadavg(), &x)
		return x
	}
	v["burst load1 at start"] = l1()
	e, err := startEnv(ctx, root, assets, dir)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	if err := e.startManager(ctx, *burstResync, *workers); err != nil {
		return v, err
	}

	// Setup: n EventStreams Ready (timed, reported, but not the figure).
	const ns = "burst"
	objs := streamCRs(ns, "b", "burst", n)
	p := e.converge(ctx, ns, objs, *parallel, *timeout*time.Duration(max(n/1000, 1)))
	v["burst setup: all Ready s"] = p.dur.Seconds()
	if p.timedOut {
		return v, fmt.Errorf("burst: %d of %d EventStreams Ready before the timeout (first error: %v)", p.ready, n, p.firstErr)
	}
	settled := e.waitSettled(ctx, 5*time.Minute)
	v["burst settled after setup"] = b2f(settled)
	v["burst peak RSS before the burst MiB (VmHWM)"] = float64(procStatusKB(e.mgr.Proc.Pid(), "VmHWM")) / 1024
	names := make([]string, n)
	for i, o := range objs {
		names[i] = o.(*eventsv1.EventStream).JetStreamName()
	}

	// JetStream announces each re-creation; a plain subscription records
	// when each deleted name comes back.
	var mu sync.Mutex
	back := map[string]time.Time{}
	allBack := make(chan struct{})
	want := map[string]bool{}
	for _, name := range names {
		want[name] = true
	}
	sub, err := e.nc.Subscribe("$JS.EVENT.ADVISORY.STREAM.CREATED.*", func(m *nats.Msg) {
		name := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if _, ok := back[name]; ok || !want[name] {
			return
		}
		back[name] = now
		if len(back) == n {
			close(allBack)
		}
	})
	if err != nil {
		return v, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = sub.SetPendingLimits(-1, -1)
	if err := e.nc.Flush(); err != nil {
		return v, err
	}

	natsLog := filepath.Join(e.dir, "nats-server.log")
	slow0 := countInFile(natsLog, "Slow Consumer")
	disc0 := countInFile(e.mgrLog, "disconnected from NATS")
	mgr0, cpu0 := e.managerMetrics(), e.cpu()
	e.mon.take()
	v["burst load1 at burst"] = l1()

	// The burst: every stream deleted at once, with many concurrent
	// deleters on the bench's own connection.
	t0 := time.Now()
	delDur, delErrs, delFirst := parallelDo(n, *burstParallel, func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return e.js.DeleteStream(cctx, names[i])
	})
	v["burst deletes acknowledged s"] = delDur.Seconds()
	v["burst delete errors"] = float64(delErrs)
	if delFirst != nil {
		fmt.Fprintf(os.Stderr, "burst: %d delete errors, first: %v\n", delErrs, delFirst)
	}
	limit := *timeout * time.Duration(max(n/1000, 1))
	select {
	case <-allBack:
	case <-time.After(time.Until(t0.Add(limit))):
	case <-ctx.Done():
	}
	mu.Lock()
	recreated := len(back)
	var last time.Time
	for _, t := range back {
		if t.After(last) {
			last = t
		}
	}
	mu.Unlock()
	v["burst streams recreated"] = float64(recreated)
	if recreated == n {
		v["burst all recreated s"] = last.Sub(t0).Seconds()
	} else {
		v["burst all recreated s"] = -1
	}

	// Ready after the burst: every EventStream Ready (they are polled once
	// everything is back, so the figure is at least the re-creation time),
	// and each stream present in JetStream.
	ready := 0
	for time.Now().Before(t0.Add(limit)) && ctx.Err() == nil {
		l := &eventsv1.EventStreamList{}
		if err := e.c.List(ctx, l, client.InNamespace(ns)); err == nil {
			ready = 0
			for i := range l.Items {
				if meta.IsStatusConditionTrue(l.Items[i].Status.Conditions, eventsv1.ConditionReady) {
					ready++
				}
			}
			if ready == n {
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	readyAt := time.Now()
	v["burst EventStreams Ready after"] = float64(ready)
	if ready == n && recreated == n {
		end := readyAt
		if last.After(end) {
			end = last
		}
		v["burst all recreated and Ready s"] = end.Sub(t0).Seconds()
	} else {
		v["burst all recreated and Ready s"] = -1
	}
	present := 0
	lister := e.js.StreamNames(ctx)
	for name := range lister.Name() {
		if want[name] {
			present++
		}
	}
	v["burst streams present in JetStream"] = float64(present)

	// What the manager did, once it is quiet again.
	e.waitSettled(ctx, 2*time.Minute)
	window := time.Since(t0)
	js, _ := e.mon.take()
	mgr1, cpu1 := e.managerMetrics(), e.cpu()
	d := delta(mgr0, mgr1)
	v["burst EventStream reconciles /obj"] = d.sum("controller_runtime_reconcile_total", withLabel("controller", "eventstream")) / float64(n)
	v["burst reconcile errors /obj"] = d.sum("controller_runtime_reconcile_total", func(s string) bool {
		return label(s, "controller") == "eventstream" && label(s, "result") == "error"
	}) / float64(n)
	v["burst stream triggers /obj"] = d.sum("eventstream_operator_triggers_dispatched_total", withLabel("controller", "eventstream")) / float64(n)
	v["burst STREAM.CREATE requests /obj"] = float64(js["STREAM.CREATE"]) / float64(n)
	v["burst advisory callback max ms"] = 1000 * mgr1.sum("eventstream_operator_advisory_callback_max_seconds", nil)
	if c := d.sum("eventstream_operator_advisory_callback_duration_seconds_count", nil); c > 0 {
		v["burst advisories handled"] = c
		v["burst advisory callback mean µs"] = 1e6 * d.sum("eventstream_operator_advisory_callback_duration_seconds_sum", nil) / c
	}
	v["burst advisories dropped (client slow consumer)"] = d.sum("eventstream_operator_advisories_dropped_total", nil)
	v["burst nats-server slow consumer reports"] = float64(countInFile(natsLog, "Slow Consumer") - slow0)
	v["burst manager NATS disconnects"] = float64(countInFile(e.mgrLog, "disconnected from NATS") - disc0)
	v["burst peak RSS MiB (VmHWM)"] = float64(procStatusKB(e.mgr.Proc.Pid(), "VmHWM")) / 1024
	diag := vals{}
	addJSPerObject(diag, "", js, n)
	addManager(diag, "", d, n, n, n)
	cpu := cpuSnapshot{}
	for k, x := range cpu1 {
		cpu[k] = x - cpu0[k]
	}
	addCPU(diag, "", cpu, window)
	for k, x := range diag {
		v["diag burst: "+k] = x
	}
	v["burst load1 at end"] = l1()
	return v, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func countInFile(path, s string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

func reportBurst(rs []vals) {
	table(fmt.Sprintf("7. Burst (%d EventStreams Ready, then all their JetStream streams deleted out of band at once by %d goroutines; --resync-interval %s, --max-concurrent-reconciles %d)",
		*burstSize, *burstParallel, *burstResync, *workers), rs, []row{
		{"setup: first create → all Ready (untimed figure)", "burst setup: all Ready s", "s", "", nil},
		{"deletes acknowledged (client side)", "burst deletes acknowledged s", "s", "", nil},
		{"delete errors", "burst delete errors", "", "", nil},
		{"streams recreated (STREAM.CREATED advisories)", "burst streams recreated", "", fmt.Sprint(*burstSize), func(x float64) bool { return x == float64(*burstSize) }},
		{"first delete → last stream recreated", "burst all recreated s", "s", "", nil},
		{"first delete → all recreated and every EventStream Ready", "burst all recreated and Ready s", "s", "", nil},
		{"streams present in JetStream afterwards", "burst streams present in JetStream", "", "", nil},
		{"EventStream reconciles per object (burst until quiet)", "burst EventStream reconciles /obj", "x", "", nil},
		{"  of which errors (requeued)", "burst reconcile errors /obj", "x", "", nil},
		{"stream triggers per object after coalescing", "burst stream triggers /obj", "x", "", nil},
		{"STREAM.CREATE requests per object", "burst STREAM.CREATE requests /obj", "x", "", nil},
		{"advisories handled by the manager", "burst advisories handled", "", "", nil},
		{"advisory callback: mean (µs)", "burst advisory callback mean µs", "x", "", nil},
		{"advisory callback: max (ms, since the manager started)", "burst advisory callback max ms", "x", "", nil},
		{"advisories dropped by nats.go (slow consumer)", "burst advisories dropped (client slow consumer)", "", "0", le(0)},
		{"nats-server slow-consumer reports", "burst nats-server slow consumer reports", "", "0", le(0)},
		{"manager NATS disconnects", "burst manager NATS disconnects", "", "0", le(0)},
		{"manager peak RSS before the burst", "burst peak RSS before the burst MiB (VmHWM)", "MiB", "", nil},
		{"manager peak RSS (VmHWM)", "burst peak RSS MiB (VmHWM)", "MiB", "", nil},
		{"run wall time", "burst run wall s", "s", "", nil},
		{"1-minute load average at run start", "burst load1 at start", "x", "", nil},
		{"1-minute load average when the deletions start", "burst load1 at burst", "x", "", nil},
		{"1-minute load average at run end", "burst load1 at end", "x", "", nil},
	})
	printAll("Diagnosis, burst (per object unless a total; median; per run)", rs, "diag burst: ")
}
