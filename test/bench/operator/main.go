// Command operator benchmarks the eventstream-operator end to end: envtest's
// real etcd and kube-apiserver, a real bin/nats-server with JetStream and the
// real bin/manager, all subprocesses on loopback. Each run starts a fresh
// control plane, nats-server and manager; every figure is the median over
// -runs runs, printed next to its target. It reports; it does not assert.
//
//	go run ./test/bench/operator              # full sizes, 3 runs (make bench)
//	go run ./test/bench/operator -quick -runs 1
//
// Scenarios (-scenarios, comma-separated): convergence (run whenever one of
// floor, steady, memory, drift is: it creates the objects they use), floor,
// steady, memory, drift, buckets (EventKeyValues and EventObjectStores: floor,
// convergence and steady state, in an environment of its own), burst (in an
// environment of its own), library.
// See docs/performance.md for how each figure is measured.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.uber.org/zap/zapcore"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/fixtures"
	"github.com/giia/eventstream-operator/internal/testutil/repo"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

var (
	runs            = flag.Int("runs", 3, "runs (each with a fresh API server, nats-server and manager); medians are reported")
	quick           = flag.Bool("quick", false, "small sizes: 100 EventStreams, 100 EventConsumers, 10 drift deletions, 100 EventKeyValues, 20 EventObjectStores")
	sizesFlag       = flag.String("sizes", "100,1000", "EventStream counts for the convergence scenario (the largest is used by steady state and drift)")
	nConsumers      = flag.Int("consumers", 1000, "EventConsumers to converge (0: none)")
	nConsStreams    = flag.Int("consumer-streams", 10, "EventStreams the consumers are spread over")
	nDrift          = flag.Int("drift", 50, "streams deleted out of band in the drift scenario")
	parallel        = flag.Int("parallel", 16, "client goroutines creating objects (convergence and floor)")
	workers         = flag.Int("max-concurrent-reconciles", 8, "the manager's --max-concurrent-reconciles (8, the manager's default)")
	steadyResync    = flag.Duration("steady-resync", 10*time.Second, "the manager's --resync-interval for convergence, steady state and memory")
	steadyIntervals = flag.Int("steady-intervals", 3, "resync intervals counted in the steady state")
	driftResync     = flag.Duration("drift-resync", time.Minute, "the manager's --resync-interval for the drift scenario")
	timeout         = flag.Duration("timeout", 5*time.Minute, "limit of each convergence (reported as timeout)")
	scenarios       = flag.String("scenarios", "convergence,floor,steady,memory,drift,buckets,burst,library", "scenarios to run")
	nKeyValues      = flag.Int("keyvalues", 1000, "buckets scenario: EventKeyValues to converge (-quick: 100)")
	nObjectStores   = flag.Int("objectstores", 100, "buckets scenario: EventObjectStores to converge (-quick: 20)")
	bucketsRuns     = flag.Int("buckets-runs", 1, "buckets scenario: in how many of the -runs it runs")
	burstSize       = flag.Int("burst-size", 10000, "burst scenario: EventStreams whose JetStream streams are all deleted at once (-quick: 500)")
	burstParallel   = flag.Int("burst-parallel", 64, "burst scenario: goroutines deleting the streams")
	burstRuns       = flag.Int("burst-runs", 1, "burst scenario: in how many of the -runs it runs (it is long: 10000 streams took 7 min on 2 cores at load average 4-8, 14 min at 16-19)")
	burstResync     = flag.Duration("burst-resync", 30*time.Minute, "burst scenario: the manager's --resync-interval (long, so that only advisories repair)")
	libraryArgs     = flag.String("library-args", "", "extra arguments for go run ./test/bench/library")
	admissionPolicy = flag.Bool("admission-policy", true, "install config/admission (the finalizer MutatingAdmissionPolicy), as config/default and the chart do")
	profileDir      = flag.String("profile-dir", "", "write CPU profiles of the manager and kube-apiserver, taken during the largest EventStream convergence of each run, into this directory")
	profileTime     = flag.Duration("profile-time", 8*time.Second, "length of those profiles")
	keep            = flag.Bool("keep", false, "keep the temporary directory (manager and nats-server logs)")
	verbose         = flag.Bool("v", false, "print every run's diagnostic values, not only the medians")
)

// vals are one run's figures by name; -1 means timeout / not measured.
type vals map[string]float64

func has(s string) bool { return slices.Contains(strings.Split(*scenarios, ","), s) }

func main() {
	flag.Parse()
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	if *quick {
		*sizesFlag, *nConsumers, *nDrift = "100", 100, 10
		if !flagSet("keyvalues") {
			*nKeyValues = 100
		}
		if !flagSet("objectstores") {
			*nObjectStores = 20
		}
		if !flagSet("burst-size") {
			*burstSize = 500
		}
	}
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatalf("bad -sizes %q", *sizesFlag)
		}
		sizes = append(sizes, n)
	}
	sort.Ints(sizes)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := repo.Root()
	if err != nil {
		fatalf("%v", err)
	}
	mainRun := has("convergence") || has("floor") || has("steady") || has("memory") || has("drift")
	var assets string
	if mainRun || has("burst") || has("buckets") { // the library scenario needs neither
		for _, b := range []string{"bin/manager", "bin/nats-server"} {
			if _, err := os.Stat(filepath.Join(root, b)); err != nil {
				fatalf("%s missing: run `make build nats-server` (make bench does)", b)
			}
		}
		if assets, err = repo.EnvtestAssets(); err != nil {
			fatalf("%v", err)
		}
	}
	base, err := os.MkdirTemp("", "operator-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	if !*keep {
		defer os.RemoveAll(base)
	}

	began := time.Now()
	if mainRun || has("burst") || has("buckets") {
		fmt.Printf("eventstream-operator benchmark: scenarios %s, %d run(s), parallel %d, workers %d", *scenarios, *runs, *parallel, *workers)
		if mainRun {
			fmt.Printf(", sizes %v, %d consumers on %d streams", sizes, *nConsumers, *nConsStreams)
		}
		if has("buckets") {
			fmt.Printf(", %d EventKeyValues and %d EventObjectStores (in %d run(s))", *nKeyValues, *nObjectStores, min(*bucketsRuns, *runs))
		}
		if has("burst") {
			fmt.Printf(", a burst of %d (in %d run(s))", *burstSize, min(*burstRuns, *runs))
		}
		fmt.Println()
	} else {
		fmt.Printf("eventstream-operator benchmark: scenarios %s\n", *scenarios)
	}
	fmt.Printf("machine: %d CPUs (nproc), %s, load average at start %s\n", runtime.NumCPU(), memTotal(), loadavg())

	var results, buckets, bursts []vals
	for r := 1; r <= *runs && ctx.Err() == nil; r++ {
		dir := filepath.Join(base, fmt.Sprintf("run-%d", r))
		_ = os.MkdirAll(dir, 0o755)
		if mainRun {
			t := time.Now()
			fmt.Fprintf(os.Stderr, "run %d/%d (load %s)...\n", r, *runs, loadavg())
			v, err := oneRun(ctx, r, root, assets, dir, sizes)
			if err != nil {
				fmt.Fprintf(os.Stderr, "run %d: %v\n", r, err)
			}
			if v != nil {
				v["run wall s"] = time.Since(t).Seconds()
				results = append(results, v)
				if *verbose {
					printAll(fmt.Sprintf("run %d: every value", r), []vals{v}, "")
				}
			}
			fmt.Fprintf(os.Stderr, "run %d done in %s (load %s)\n", r, time.Since(t).Round(time.Second), loadavg())
		}
		if has("buckets") && *nKeyValues+*nObjectStores > 0 && r <= *bucketsRuns && ctx.Err() == nil {
			bdir := filepath.Join(dir, "buckets")
			_ = os.MkdirAll(bdir, 0o755)
			t := time.Now()
			fmt.Fprintf(os.Stderr, "run %d/%d: buckets, %d EventKeyValues and %d EventObjectStores (load %s)...\n", r, *runs, *nKeyValues, *nObjectStores, loadavg())
			v, err := bucketsRun(ctx, root, assets, bdir, *nKeyValues, *nObjectStores)
			if err != nil {
				fmt.Fprintf(os.Stderr, "run %d buckets: %v\n", r, err)
			}
			if v != nil {
				v["buckets run wall s"] = time.Since(t).Seconds()
				buckets = append(buckets, v)
				if *verbose {
					printAll(fmt.Sprintf("run %d buckets: every value", r), []vals{v}, "")
				}
			}
			fmt.Fprintf(os.Stderr, "run %d buckets done in %s (load %s)\n", r, time.Since(t).Round(time.Second), loadavg())
		}
		if has("burst") && *burstSize > 0 && r <= *burstRuns && ctx.Err() == nil {
			bdir := filepath.Join(dir, "burst")
			_ = os.MkdirAll(bdir, 0o755)
			t := time.Now()
			fmt.Fprintf(os.Stderr, "run %d/%d: burst of %d (load %s)...\n", r, *runs, *burstSize, loadavg())
			v, err := burstRun(ctx, root, assets, bdir, *burstSize)
			if err != nil {
				fmt.Fprintf(os.Stderr, "run %d burst: %v\n", r, err)
			}
			if v != nil {
				v["burst run wall s"] = time.Since(t).Seconds()
				bursts = append(bursts, v)
				if *verbose {
					printAll(fmt.Sprintf("run %d burst: every value", r), []vals{v}, "")
				}
			}
			fmt.Fprintf(os.Stderr, "run %d burst done in %s (load %s)\n", r, time.Since(t).Round(time.Second), loadavg())
		}
	}
	if len(results) > 0 {
		report(results, sizes)
	}
	if len(bursts) > 0 {
		reportBurst(bursts)
	}
	if len(buckets) > 0 {
		reportBuckets(buckets, *nKeyValues, *nObjectStores)
	}
	if has("library") && ctx.Err() == nil {
		library(ctx, root)
	}
	fmt.Printf("\nwall time %s; load average at end %s", time.Since(began).Round(time.Second), loadavg())
	if *keep {
		fmt.Printf("; logs in %s", base)
	}
	fmt.Println()
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func oneRun(ctx context.Context, r int, root, assets, dir string, sizes []int) (vals, error) {
	v := vals{}
	loadAt := func(k string) {
		l1, _ := strconv.ParseFloat(strings.Fields(loadavg())[0], 64)
		v["load1 at "+k] = l1
	}
	loadAt("start")
	e, err := startEnv(ctx, root, assets, dir)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	largest := sizes[len(sizes)-1]

	// Warm the API server up (CRD handlers, CEL) so that the first timed
	// creates do not pay for it: 20 of each kind, created then deleted.
	warm := append(streamCRs("warmup", "w", "warmup", 20), consumerCRs("warmup", "wc", 20, []string{"w-0000"})...)
	_ = e.ensureNamespace(ctx, "warmup")
	_, _, _ = parallelDo(len(warm), *parallel, func(i int) error { return e.c.Create(ctx, warm[i]) })
	_ = e.c.DeleteAllOf(ctx, &eventsv1.EventStream{}, client.InNamespace("warmup"))
	_ = e.c.DeleteAllOf(ctx, &eventsv1.EventConsumer{}, client.InNamespace("warmup"))

	// 2. Floor: the manager is not running yet.
	if has("floor") {
		for _, n := range sizes {
			f := e.floorStreams(ctx, n, *parallel)
			putFloor(v, fmt.Sprintf("floor streams %d", n), f)
		}
		if *nConsumers > 0 {
			putFloor(v, fmt.Sprintf("floor consumers %d", *nConsumers), e.floorConsumers(ctx, *nConsumers, *nConsStreams, *parallel))
		}
	}

	// 1. Convergence.
	if err := e.startManager(ctx, *steadyResync, *workers); err != nil {
		return v, err
	}
	loadAt("convergence")
	for _, n := range sizes {
		objs := streamCRs(fmt.Sprintf("bench-s%d", n), fmt.Sprintf("s%d", n), "bench", n)
		var profiled func()
		if *profileDir != "" && n == largest {
			profiled = e.profile(ctx, *profileDir, fmt.Sprintf("run%d-streams%d", r, n), *profileTime)
		}
		p := e.converge(ctx, fmt.Sprintf("bench-s%d", n), objs, *parallel, *timeout)
		if profiled != nil {
			profiled()
		}
		putPhase(v, fmt.Sprintf("streams %d", n), p)
	}
	nStreams := 0
	for _, n := range sizes {
		nStreams += n
	}
	if *nConsumers > 0 {
		ns := "bench-c"
		streams := make([]string, *nConsStreams)
		for i := range streams {
			streams[i] = fmt.Sprintf("cs-%02d", i)
		}
		// The consumers' streams: created and Ready first, untimed.
		objs := make([]client.Object, len(streams))
		for i, s := range streams {
			objs[i] = fixtures.Stream(ns, s, "cons."+s+".>")
		}
		if p := e.converge(ctx, ns, objs, *parallel, *timeout); p.timedOut {
			return v, fmt.Errorf("the consumers' streams did not become Ready: %v", p.firstErr)
		}
		nStreams += len(streams)
		p := e.converge(ctx, ns, consumerCRs(ns, "c", *nConsumers, streams), *parallel, *timeout)
		putPhase(v, fmt.Sprintf("consumers %d", *nConsumers), p)
	}

	// 3. Steady state: after convergence, wait one and a half resync
	// intervals (the first resync of everything), then count.
	if has("steady") {
		time.Sleep(*steadyResync * 3 / 2)
		loadAt("steady")
		s := e.steady(ctx, *steadyResync, *steadyIntervals, nStreams, *nConsumers)
		putSteady(v, s)
	}

	// 5. Memory: the manager that converged everything.
	if e.mgr != nil {
		pid := e.mgr.Proc.Pid()
		v["memory peak RSS MiB (VmHWM)"] = float64(procStatusKB(pid, "VmHWM")) / 1024
		v["memory RSS now MiB (VmRSS)"] = float64(procStatusKB(pid, "VmRSS")) / 1024
		m := e.managerMetrics()
		v["memory Go heap in use MiB"] = m.sum("go_memstats_heap_inuse_bytes", nil) / (1 << 20)
		v["memory objects managed"] = float64(nStreams + *nConsumers)
	}

	// 4. Drift repair, with a manager restarted at the drift resync interval.
	if has("drift") && *nDrift > 0 {
		e.stopManager()
		if err := e.startManager(ctx, *driftResync, *workers); err != nil {
			return v, err
		}
		t := time.Now()
		settled := e.waitSettled(ctx, 3*time.Minute)
		v["drift restart: settle s"] = time.Since(t).Seconds()
		if !settled {
			v["drift restart: settle s"] = -1
		}
		v["memory peak RSS after restart MiB (VmHWM)"] = float64(procStatusKB(e.mgr.Proc.Pid(), "VmHWM")) / 1024
		loadAt("drift")
		var names []string
		step := max(largest / *nDrift, 1)
		for i := 0; i < largest && len(names) < *nDrift; i += step {
			names = append(names, strings.ToUpper(fmt.Sprintf("s%d_%04d", largest, i)))
		}
		mgr0 := e.managerMetrics()
		e.mon.take()
		ds := e.drift(ctx, names, *driftResync+30*time.Second)
		js, _ := e.mon.take()
		mgr1 := e.managerMetrics()
		var ok []time.Duration
		timeouts := 0
		for _, d := range ds {
			if d < 0 {
				timeouts++
			} else {
				ok = append(ok, d)
			}
		}
		v["drift deletions"] = float64(len(ds))
		v["drift not repaired in time"] = float64(timeouts)
		if timeouts == 0 {
			v["drift p50 s"] = percentile(ok, 0.5).Seconds()
			v["drift p99 s"] = percentile(ok, 0.99).Seconds()
		} else {
			v["drift p50 s"], v["drift p99 s"] = -1, -1
		}
		if len(ok) > 0 {
			v["drift min s"] = percentile(ok, 0).Seconds()
			v["drift max s"] = percentile(ok, 1).Seconds()
		}
		diag := vals{}
		addJSPerObject(diag, "", js, max(len(ds), 1))
		addManager(diag, "", delta(mgr0, mgr1), len(ds), len(ds), len(ds))
		for k, x := range diag {
			v["diag drift: "+k] = x
		}
	}
	loadAt("end")
	return v, nil
}

func putFloor(v vals, name string, f floorResult) {
	if f.firstErr != nil {
		fmt.Fprintf(os.Stderr, "%s: %d errors, first: %v\n", name, f.errs, f.firstErr)
	}
	v[name+": create CRs s"] = f.create.Seconds()
	v[name+": status writes s"] = f.status.Seconds()
	v[name+": JetStream creates s"] = f.js.Seconds()
	v[name+": total s"] = f.total().Seconds()
	v[name+": errors"] = float64(f.errs)
}

func putPhase(v vals, name string, p phase) {
	if p.firstErr != nil {
		fmt.Fprintf(os.Stderr, "%s: %d create errors, first: %v\n", name, p.createErrs, p.firstErr)
	}
	v[name+": all Ready s"] = p.dur.Seconds()
	if p.timedOut {
		v[name+": all Ready s"] = -1
	}
	v[name+": Ready"] = float64(p.ready)
	v[name+": creates acknowledged s"] = p.createDur.Seconds()
	v[name+": create errors"] = float64(p.createErrs)
	v[name+": per-object latency p50 s"] = percentile(p.lat, 0.5).Seconds()
	v[name+": per-object latency p99 s"] = percentile(p.lat, 0.99).Seconds()
	d := vals{}
	n := max(p.n, 1)
	addJSPerObject(d, "", p.js, n)
	addAPIWrites(d, "", p.api, n)
	d["watch MODIFIED events /obj"] = float64(p.modified) / float64(n)
	addManager(d, "", p.mgr, n, n, n)
	addCPU(d, "", p.cpu, p.dur)
	for k, x := range d {
		v["diag "+name+": "+k] = x
	}
}

func putSteady(v vals, s steadyResult) {
	iv := float64(s.intervals)
	writes := 0
	for _, c := range jsWriteCategories {
		writes += s.js[c]
	}
	v["steady window s"] = s.window.Seconds()
	v["steady objects"] = float64(s.streams + s.consumers)
	v["steady JetStream writes"] = float64(writes)
	v["steady Kubernetes writes (CR MODIFIED events)"] = float64(s.watch["EventStream MODIFIED"] + s.watch["EventConsumer MODIFIED"])
	apiW := 0.0
	for k, c := range s.api {
		if metricName(k) == "apiserver_request_total" && apiWriteVerbs[label(k, "verb")] && label(k, "group") == "events.giia.io" {
			apiW += c
		}
	}
	v["steady Kubernetes write requests to CRs (API server)"] = apiW
	v["steady Events created"] = float64(s.watch["Event ADDED"] + s.watch["Event MODIFIED"])
	v["steady objects modified"] = float64(s.modifiedObjects)
	var maxS, maxC, noInfoS, noInfoC float64
	var sInfo, cInfo int
	for subj, c := range s.perObj {
		if strings.HasPrefix(subj, "$JS.API.STREAM.INFO.") {
			sInfo += c
			maxS = math.Max(maxS, float64(c)/iv)
		} else {
			cInfo += c
			maxC = math.Max(maxC, float64(c)/iv)
		}
	}
	countPrefix := func(p string) int {
		n := 0
		for subj := range s.perObj {
			if strings.HasPrefix(subj, p) {
				n++
			}
		}
		return n
	}
	noInfoS = float64(s.streams - countPrefix("$JS.API.STREAM.INFO."))
	noInfoC = float64(s.consumers - countPrefix("$JS.API.CONSUMER.INFO."))
	v["steady STREAM.INFO per stream per interval (mean)"] = float64(sInfo) / float64(max(s.streams, 1)) / iv
	v["steady STREAM.INFO per stream per interval (max)"] = maxS
	v["steady streams without INFO in window"] = noInfoS
	if s.consumers > 0 {
		v["steady CONSUMER.INFO per consumer per interval (mean)"] = float64(cInfo) / float64(s.consumers) / iv
		v["steady CONSUMER.INFO per consumer per interval (max)"] = maxC
		v["steady consumers without INFO in window"] = noInfoC
	}
	for k, c := range s.js {
		v["diag steady: JetStream "+k+" total"] = float64(c)
	}
	for k, c := range s.changed {
		v["diag steady: changed field "+k] = float64(c)
	}
	d := vals{}
	addManager(d, "", s.mgr, s.streams, s.consumers, s.streams+s.consumers)
	addCPU(d, "", s.cpu, s.window)
	for k, x := range d {
		v["diag steady: "+k] = x
	}
}

// ---- report ----

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// series returns the values of key over the runs (timeouts as +Inf).
func series(rs []vals, key string) ([]float64, bool) {
	var out []float64
	for _, r := range rs {
		x, ok := r[key]
		if !ok {
			continue
		}
		if x < 0 && (strings.HasSuffix(key, " s") || strings.HasSuffix(key, "ratio")) {
			x = math.Inf(1)
		}
		out = append(out, x)
	}
	return out, len(out) > 0
}

func fmtVal(x float64, unit string) string {
	switch {
	case math.IsInf(x, 1):
		return "timeout"
	case math.IsNaN(x):
		return "—"
	case unit == "s":
		return fmt.Sprintf("%.2f s", x)
	case unit == "x":
		return fmt.Sprintf("%.2f", x)
	case unit == "MiB":
		return fmt.Sprintf("%.1f MiB", x)
	case x == math.Trunc(x):
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.3f", x)
}

type row struct {
	label, key, unit, target string
	ok                       func(float64) bool
}

func le(t float64) func(float64) bool { return func(x float64) bool { return x <= t } }

func table(title string, rs []vals, rows []row) {
	fmt.Printf("\n%s\n", title)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmedian\tper run\ttarget\t")
	for _, r := range rows {
		xs, ok := series(rs, r.key)
		if !ok {
			continue
		}
		m := median(xs)
		per := make([]string, len(xs))
		for i, x := range xs {
			per[i] = fmtVal(x, r.unit)
		}
		verdict := ""
		if r.ok != nil {
			if r.ok(m) {
				verdict = " (met)"
			} else {
				verdict = " (MISSED)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\t\n", r.label, fmtVal(m, r.unit), strings.Join(per, " / "), r.target, verdict)
	}
	_ = tw.Flush()
}

// printAll prints every key starting with prefix, with medians.
func printAll(title string, rs []vals, prefix string) {
	keys := map[string]bool{}
	for _, r := range rs {
		for k := range r {
			if strings.HasPrefix(k, prefix) {
				keys[k] = true
			}
		}
	}
	if len(keys) == 0 {
		return
	}
	ks := make([]string, 0, len(keys))
	for k := range keys {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	fmt.Printf("\n%s\n", title)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	for _, k := range ks {
		xs, _ := series(rs, k)
		per := make([]string, len(xs))
		for i, x := range xs {
			per[i] = strconv.FormatFloat(x, 'g', 4, 64)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", strings.TrimPrefix(k, prefix), strconv.FormatFloat(median(xs), 'g', 4, 64), strings.Join(per, " / "))
	}
	_ = tw.Flush()
}

func report(rs []vals, sizes []int) {
	// Ratios per run, then medians.
	for _, r := range rs {
		for _, n := range sizes {
			c, f := r[fmt.Sprintf("streams %d: all Ready s", n)], r[fmt.Sprintf("floor streams %d: total s", n)]
			if f > 0 {
				r[fmt.Sprintf("ratio streams %d", n)] = ratio(c, f)
			}
		}
		c, f := r[fmt.Sprintf("consumers %d: all Ready s", *nConsumers)], r[fmt.Sprintf("floor consumers %d: total s", *nConsumers)]
		if f > 0 {
			r[fmt.Sprintf("ratio consumers %d", *nConsumers)] = ratio(c, f)
		}
	}
	fmt.Printf("\n=== results: median of %d run(s); per-run values in order ===\n", len(rs))
	var conv []row
	for _, n := range sizes {
		var ok func(float64) bool
		target := ""
		if n == 1000 {
			ok, target = le(8), "≤ 8 s"
		}
		k := fmt.Sprintf("streams %d", n)
		conv = append(conv,
			row{fmt.Sprintf("%d EventStreams: first create → all Ready", n), k + ": all Ready s", "s", target, ok},
			row{"  creates acknowledged (client side)", k + ": creates acknowledged s", "s", "", nil},
			row{"  per-object create → Ready p50", k + ": per-object latency p50 s", "s", "", nil},
			row{"  per-object create → Ready p99", k + ": per-object latency p99 s", "s", "", nil},
			row{"  create errors", k + ": create errors", "", "", nil})
	}
	if *nConsumers > 0 {
		k := fmt.Sprintf("consumers %d", *nConsumers)
		var ok func(float64) bool
		target := ""
		if *nConsumers == 1000 {
			ok, target = le(8), "≤ 8 s"
		}
		conv = append(conv,
			row{fmt.Sprintf("%d EventConsumers on %d streams: first create → all Ready", *nConsumers, *nConsStreams), k + ": all Ready s", "s", target, ok},
			row{"  creates acknowledged (client side)", k + ": creates acknowledged s", "s", "", nil},
			row{"  per-object create → Ready p50", k + ": per-object latency p50 s", "s", "", nil},
			row{"  per-object create → Ready p99", k + ": per-object latency p99 s", "s", "", nil},
			row{"  create errors", k + ": create errors", "", "", nil})
	}
	table(fmt.Sprintf("1. Convergence (%d client goroutines, manager --max-concurrent-reconciles %d)", *parallel, *workers), rs, conv)

	if has("floor") {
		var fl []row
		add := func(label, k, rk string, n int) {
			var ok func(float64) bool
			target := ""
			if n == 1000 {
				ok, target = le(3), "≤ 3"
			}
			fl = append(fl,
				row{label + ": create CRs", k + ": create CRs s", "s", "", nil},
				row{label + ": one status write each", k + ": status writes s", "s", "", nil},
				row{label + ": JetStream creates", k + ": JetStream creates s", "s", "", nil},
				row{label + ": floor (sum of the three)", k + ": total s", "s", "", nil},
				row{label + ": convergence / floor", rk, "x", target, ok})
		}
		for _, n := range sizes {
			add(fmt.Sprintf("%d streams", n), fmt.Sprintf("floor streams %d", n), fmt.Sprintf("ratio streams %d", n), n)
		}
		if *nConsumers > 0 {
			add(fmt.Sprintf("%d consumers", *nConsumers), fmt.Sprintf("floor consumers %d", *nConsumers), fmt.Sprintf("ratio consumers %d", *nConsumers), *nConsumers)
		}
		table(fmt.Sprintf("2. Floor (manager stopped; the three parts run one after the other, %d goroutines each)", *parallel), rs, fl)
	}

	if has("steady") {
		table(fmt.Sprintf("3. Steady state (--resync-interval %s, %d intervals, nothing changing)", *steadyResync, *steadyIntervals), rs, []row{
			{"objects (streams + consumers)", "steady objects", "", "", nil},
			{"window", "steady window s", "s", "", nil},
			{"JetStream writes (STREAM.CREATE/UPDATE, CONSUMER.CREATE any action, DURABLE.CREATE, deletes)", "steady JetStream writes", "", "0", le(0)},
			{"Kubernetes writes to CRs (watch MODIFIED events)", "steady Kubernetes writes (CR MODIFIED events)", "", "0", le(0)},
			{"Kubernetes write requests to CRs (API server counter, incl. no-op patches)", "steady Kubernetes write requests to CRs (API server)", "", "0", le(0)},
			{"Events created/updated", "steady Events created", "", "", nil},
			{"STREAM.INFO per stream per interval (mean)", "steady STREAM.INFO per stream per interval (mean)", "", "≤ 1", le(1)},
			{"STREAM.INFO per stream per interval (max over streams)", "steady STREAM.INFO per stream per interval (max)", "", "", nil},
			{"streams without any INFO in the window", "steady streams without INFO in window", "", "", nil},
			{"CONSUMER.INFO per consumer per interval (mean)", "steady CONSUMER.INFO per consumer per interval (mean)", "", "≤ 1", le(1)},
			{"CONSUMER.INFO per consumer per interval (max over consumers)", "steady CONSUMER.INFO per consumer per interval (max)", "", "", nil},
			{"consumers without any INFO in the window", "steady consumers without INFO in window", "", "", nil},
		})
	}
	if has("drift") {
		table(fmt.Sprintf("4. Drift repair (--resync-interval %s; streams deleted with jetstream DeleteStream one at a time)", *driftResync), rs, []row{
			{"deletions", "drift deletions", "", "", nil},
			{"not recreated within resync+30s", "drift not repaired in time", "", "0", le(0)},
			{"delete → STREAM.CREATED advisory p50", "drift p50 s", "s", "", nil},
			{"delete → STREAM.CREATED advisory p99 (nearest rank)", "drift p99 s", "s", "≤ 2 s", le(2)},
			{"min", "drift min s", "s", "", nil},
			{"max", "drift max s", "s", "", nil},
		})
	}
	table("5. Memory (bin/manager, /proc/<pid>/status)", rs, []row{
		{"objects managed", "memory objects managed", "", "", nil},
		{"peak RSS (VmHWM) of the manager that converged everything", "memory peak RSS MiB (VmHWM)", "MiB", "≤ 100 MiB", le(100)},
		{"RSS at the end of the steady state (VmRSS)", "memory RSS now MiB (VmRSS)", "MiB", "", nil},
		{"Go heap in use (go_memstats_heap_inuse_bytes)", "memory Go heap in use MiB", "MiB", "", nil},
		{"peak RSS of a manager restarted with everything present", "memory peak RSS after restart MiB (VmHWM)", "MiB", "", nil},
	})
	table("Load (1-minute load average; 2 CPUs shared with other builds)", rs, []row{
		{"at run start", "load1 at start", "x", "", nil},
		{"at convergence start", "load1 at convergence", "x", "", nil},
		{"at steady-state start", "load1 at steady", "x", "", nil},
		{"at drift start", "load1 at drift", "x", "", nil},
		{"at run end", "load1 at end", "x", "", nil},
		{"run wall time", "run wall s", "s", "", nil},
	})
	for _, n := range sizes {
		printAll(fmt.Sprintf("Diagnosis, %d EventStreams converging (median; per run)", n), rs, fmt.Sprintf("diag streams %d: ", n))
	}
	if *nConsumers > 0 {
		printAll(fmt.Sprintf("Diagnosis, %d EventConsumers converging (median; per run)", *nConsumers), rs, fmt.Sprintf("diag consumers %d: ", *nConsumers))
	}
	printAll("Diagnosis, steady state (totals over the window unless /obj; median; per run)", rs, "diag steady: ")
	printAll("Diagnosis, drift (per deletion; median; per run)", rs, "diag drift: ")
}

func ratio(c, f float64) float64 {
	if c < 0 {
		return -1
	}
	return c / f
}

func library(ctx context.Context, root string) {
	fmt.Printf("\n6. Library (go run ./test/bench/library %s; targets: library/raw nats.go ≥ 0.9 for sync publish, async publish and consume + ack; library/sdk-go ≥ 1.0 for sync publish and consume + ack; events.Replay/raw copy loop ≥ 0.8)\n\n", *libraryArgs)
	args := append([]string{"run", "./test/bench/library"}, strings.Fields(*libraryArgs)...)
	cctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "go", args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Printf("library benchmark failed: %v\n", err)
	}
}

// ---- setup helpers ----

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "? memory"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return fmt.Sprintf("%.1f GiB RAM", kb/(1<<20))
		}
	}
	return "? memory"
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "operator bench: "+format+"\n", a...)
	os.Exit(1)
}
