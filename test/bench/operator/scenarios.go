package main

import (
	"context"
	"fmt"
	goruntime "runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/fixtures"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// parallelDo runs fn(0..n-1) on p goroutines and returns the wall time and
// the number of errors (and the first one).
func parallelDo(n, p int, fn func(i int) error) (time.Duration, int, error) {
	start := time.Now()
	var next atomic.Int64
	next.Store(-1)
	var mu sync.Mutex
	var errs int
	var first error
	var wg sync.WaitGroup
	for range max(p, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					errs++
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errs, first
}

var (
	streamCRs   = fixtures.Streams
	consumerCRs = fixtures.Consumers
)

func isReady(o runtime.Object) bool {
	if u, ok := o.(*unstructured.Unstructured); ok {
		return unstructuredReady(u)
	}
	co, ok := o.(client.Object)
	return ok && fixtures.IsReady(co)
}

func listFor(o client.Object) func() client.ObjectList {
	if u, ok := o.(*unstructured.Unstructured); ok {
		return unstructuredList(u.GetKind())
	}
	if _, ok := o.(*eventsv1.EventConsumer); ok {
		return func() client.ObjectList { return &eventsv1.EventConsumerList{} }
	}
	return func() client.ObjectList { return &eventsv1.EventStreamList{} }
}

func (e *env) ensureNamespace(ctx context.Context, ns string) error {
	err := e.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return err
	}
	return nil
}

// phase is what one timed convergence measured.
type phase struct {
	n          int
	dur        time.Duration // first create → last Ready (or the timeout)
	timedOut   bool
	ready      int
	createDur  time.Duration // all creates acknowledged
	createErrs int
	firstErr   error
	lat        []time.Duration // per object: its create request → Ready seen
	modified   int             // MODIFIED watch events in the namespace
	js         map[string]int
	cpu        cpuSnapshot
	mgr, api   metrics
}

// converge creates objs (all of one kind, in ns) with `parallel` goroutines
// and waits, watching them, until every one is Ready or timeout.
func (e *env) converge(ctx context.Context, ns string, objs []client.Object, parallel int, timeout time.Duration) phase {
	p := phase{n: len(objs)}
	if err := e.ensureNamespace(ctx, ns); err != nil {
		p.firstErr, p.timedOut = err, true
		return p
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	readyAt := map[string]time.Time{}
	created := map[string]time.Time{}
	done := make(chan struct{})
	mark := func(o runtime.Object, now time.Time) {
		name := o.(client.Object).GetName()
		if _, ok := readyAt[name]; ok || !isReady(o) {
			return
		}
		readyAt[name] = now
		if len(readyAt) == len(objs) {
			close(done)
		}
	}
	started := make(chan struct{})
	go watchLoop(wctx, e.c, listFor(objs[0]), ns, func(l client.ObjectList) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		_ = meta.EachListItem(l, func(o runtime.Object) error { mark(o, now); return nil })
	}, func(ev watch.Event) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if ev.Type == watch.Modified {
			p.modified++
		}
		if ev.Type == watch.Added || ev.Type == watch.Modified {
			mark(ev.Object, now)
		}
	}, started)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		p.firstErr, p.timedOut = fmt.Errorf("watch not started"), true
		return p
	}
	cpu0, mgr0, api0 := e.cpu(), e.managerMetrics(), e.apiserverMetrics(ctx)
	e.mon.take()

	t0 := time.Now()
	deadline := t0.Add(timeout)
	p.createDur, p.createErrs, p.firstErr = parallelDo(len(objs), parallel, func(i int) error {
		mu.Lock()
		created[objs[i].GetName()] = time.Now()
		mu.Unlock()
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		return e.c.Create(cctx, objs[i])
	})
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
		p.timedOut = true
	case <-ctx.Done():
		p.timedOut = true
	}
	mu.Lock()
	p.ready = len(readyAt)
	var last time.Time
	for name, t := range readyAt {
		if t.After(last) {
			last = t
		}
		if c, ok := created[name]; ok {
			p.lat = append(p.lat, t.Sub(c))
		}
	}
	mu.Unlock()
	if p.timedOut {
		p.dur = time.Since(t0)
	} else {
		p.dur = last.Sub(t0)
	}
	p.js, _ = e.mon.take()
	cpu1, mgr1, api1 := e.cpu(), e.managerMetrics(), e.apiserverMetrics(ctx)
	p.cpu = cpuSnapshot{}
	for k, v := range cpu1 {
		p.cpu[k] = v - cpu0[k]
	}
	p.mgr, p.api = delta(mgr0, mgr1), delta(api0, api1)
	return p
}

// floorResult: the unavoidable work, done directly with the same parallelism.
type floorResult struct {
	create, status, js time.Duration
	errs               int
	firstErr           error
}

func (f floorResult) total() time.Duration { return f.create + f.status + f.js }

// floor creates objs (manager not running, so nothing reacts), writes each
// one's status once, and runs jsCreate(i) for each: three parts one after the
// other, each with `parallel` goroutines. It then deletes what it made.
func (e *env) floor(ctx context.Context, ns string, objs []client.Object, setStatus func(client.Object),
	jsCreate func(ctx context.Context, i int) error, parallel int) floorResult {
	var f floorResult
	if err := e.ensureNamespace(ctx, ns); err != nil {
		f.firstErr = err
		return f
	}
	add := func(d time.Duration, n int, err error) time.Duration {
		f.errs += n
		if f.firstErr == nil {
			f.firstErr = err
		}
		return d
	}
	f.create = add(parallelDo(len(objs), parallel, func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return e.c.Create(cctx, objs[i])
	}))
	f.status = add(parallelDo(len(objs), parallel, func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		orig := objs[i].DeepCopyObject().(client.Object)
		setStatus(objs[i])
		return e.c.Status().Patch(cctx, objs[i], client.MergeFrom(orig))
	}))
	f.js = add(parallelDo(len(objs), parallel, func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return jsCreate(cctx, i)
	}))
	// Clean up (untimed). Nothing reconciles these objects, so the finalizer
	// the admission policy added on create is dropped first.
	_, _, _ = parallelDo(len(objs), parallel, func(i int) error {
		if len(objs[i].GetFinalizers()) == 0 {
			return nil
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return e.c.Patch(cctx, objs[i], client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
	})
	_ = e.c.DeleteAllOf(ctx, objs[0].DeepCopyObject().(client.Object), client.InNamespace(ns))
	for range 120 {
		l := listFor(objs[0])()
		if err := e.c.List(ctx, l, client.InNamespace(ns)); err == nil && meta.LenList(l) == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	return f
}

func readyCondition(reason, msg string) []metav1.Condition {
	return []metav1.Condition{{Type: eventsv1.ConditionReady, Status: metav1.ConditionTrue, Reason: reason,
		Message: msg, ObservedGeneration: 1, LastTransitionTime: metav1.Now()}}
}

func (e *env) floorStreams(ctx context.Context, n, parallel int) floorResult {
	prefix := fmt.Sprintf("f%d", n)
	objs := streamCRs("floor", prefix, "floor", n)
	names := make([]string, n)
	for i, o := range objs {
		names[i] = o.(*eventsv1.EventStream).JetStreamName()
	}
	f := e.floor(ctx, "floor", objs, func(o client.Object) {
		s := o.(*eventsv1.EventStream)
		s.Status = eventsv1.EventStreamStatus{ObservedGeneration: 1, StreamName: s.JetStreamName(),
			Conditions: readyCondition(eventsv1.ReasonCreated, "stream "+s.JetStreamName()+" created"),
			State:      &eventsv1.EventStreamState{}}
	}, func(ctx context.Context, i int) error {
		s := objs[i].(*eventsv1.EventStream)
		cfg := events.NewStreamConfig(names[i], s.Spec.Subjects...)
		cfg.MaxBytes = fixtures.SmallMaxBytes.Value()
		cfg.Metadata = map[string]string{eventsv1.OwnerMetadataKey: s.OwnerMarker(), eventsv1.UIDMetadataKey: string(s.UID)}
		_, err := events.CreateStream(ctx, e.js, cfg)
		return err
	}, parallel)
	e.deleteStreams(ctx, names, parallel)
	return f
}

func (e *env) floorConsumers(ctx context.Context, n, nStreams, parallel int) floorResult {
	streams := make([]string, nStreams)
	jsNames := make([]string, nStreams)
	for i := range nStreams {
		streams[i] = fmt.Sprintf("fcs-%02d", i)
		jsNames[i] = strings.ToUpper(strings.ReplaceAll(streams[i], "-", "_"))
		cfg := events.NewStreamConfig(jsNames[i], "floorc."+streams[i]+".>")
		cfg.MaxBytes = fixtures.SmallMaxBytes.Value()
		if _, err := events.CreateStream(ctx, e.js, cfg); err != nil {
			return floorResult{firstErr: err}
		}
	}
	objs := consumerCRs("floor", "fc", n, streams)
	f := e.floor(ctx, "floor", objs, func(o client.Object) {
		c := o.(*eventsv1.EventConsumer)
		c.Status = eventsv1.EventConsumerStatus{ObservedGeneration: 1, ConsumerName: c.Name,
			StreamName: jsNames[0], Conditions: readyCondition(eventsv1.ReasonCreated, "consumer "+c.Name+" created"),
			State: &eventsv1.EventConsumerState{}}
	}, func(ctx context.Context, i int) error {
		c := objs[i].(*eventsv1.EventConsumer)
		cfg := admin.NewConsumerConfig(c.Name)
		cfg.Metadata = map[string]string{eventsv1.OwnerMetadataKey: c.OwnerMarker()}
		_, err := admin.CreateConsumer(ctx, e.js, jsNames[i%nStreams], cfg)
		return err
	}, parallel)
	e.deleteStreams(ctx, jsNames, parallel)
	return f
}

func (e *env) deleteStreams(ctx context.Context, names []string, parallel int) {
	_, _, _ = parallelDo(len(names), parallel, func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return e.js.DeleteStream(cctx, names[i])
	})
}

// steadyResult: what the operator did while nothing changed.
type steadyResult struct {
	window             time.Duration
	intervals          int
	streams, consumers int
	js                 map[string]int
	perObj             map[string]int
	watch              map[string]int
	changed            map[string]int
	modifiedObjects    int
	api, mgr           metrics
	cpu                cpuSnapshot
}

// steady counts what happens over intervals resync intervals: JetStream
// requests, changes to the watched kinds (streamKinds if none) and the API
// server's and the manager's counters.
func (e *env) steady(ctx context.Context, resync time.Duration, intervals, streams, consumers int, kinds ...watchedKind) steadyResult {
	r := steadyResult{intervals: intervals, streams: streams, consumers: consumers}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wc := startWriteCounter(wctx, e.c, kinds...)
	api0, mgr0, cpu0 := e.apiserverMetrics(ctx), e.managerMetrics(), e.cpu()
	e.mon.take()
	t0 := time.Now()
	select {
	case <-time.After(time.Duration(intervals) * resync):
	case <-ctx.Done():
	}
	r.window = time.Since(t0)
	r.js, r.perObj = e.mon.take()
	r.watch, r.changed, r.modifiedObjects = wc.snapshot()
	api1, mgr1, cpu1 := e.apiserverMetrics(ctx), e.managerMetrics(), e.cpu()
	r.api, r.mgr = delta(api0, api1), delta(mgr0, mgr1)
	r.cpu = cpuSnapshot{}
	for k, v := range cpu1 {
		r.cpu[k] = v - cpu0[k]
	}
	return r
}

// waitSettled waits until the manager's reconcile count stops moving (3
// polls, 1s apart) and its queues are empty, at most limit.
func (e *env) waitSettled(ctx context.Context, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	last, same := -1.0, 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m := e.managerMetrics()
		total := m.sum("controller_runtime_reconcile_total", nil)
		depth := m.sum("workqueue_depth", nil)
		if total == last && depth == 0 {
			same++
			if same >= 3 {
				return true
			}
		} else {
			same = 0
		}
		last = total
		time.Sleep(time.Second)
	}
	return false
}

// drift deletes each stream out of band, one at a time, and measures the time
// until JetStream announces it created again. -1: not back within limit.
func (e *env) drift(ctx context.Context, names []string, limit time.Duration) []time.Duration {
	var out []time.Duration
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		sub, err := e.nc.SubscribeSync("$JS.EVENT.ADVISORY.STREAM.CREATED." + name)
		if err != nil {
			out = append(out, -1)
			continue
		}
		_ = e.nc.Flush()
		t0 := time.Now()
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = e.js.DeleteStream(dctx, name)
		cancel()
		if err != nil {
			_ = sub.Unsubscribe()
			out = append(out, -1)
			continue
		}
		if _, err := sub.NextMsg(limit); err != nil {
			out = append(out, -1)
		} else {
			out = append(out, time.Since(t0))
		}
		_ = sub.Unsubscribe()
		// Let the reconcile that recreated it finish (status) before the next.
		time.Sleep(100 * time.Millisecond)
	}
	return out
}

// percentile (nearest rank) of ds; ds is sorted in place.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	slices.Sort(ds)
	k := int(float64(len(ds))*p+0.999999) - 1
	k = min(max(k, 0), len(ds)-1)
	return ds[k]
}

// ---- summaries of a phase into named values ----

func addJSPerObject(v vals, prefix string, js map[string]int, n int) {
	for k, c := range js {
		v[prefix+"JetStream "+k+" /obj"] = float64(c) / float64(n)
	}
}

// The API server labels requests with HTTP-style verbs (POST = create, PUT =
// update).
var apiWriteVerbs = map[string]bool{"POST": true, "PUT": true, "CREATE": true, "UPDATE": true, "PATCH": true, "DELETE": true, "APPLY": true, "DELETECOLLECTION": true}

// addAPIWrites: Kubernetes write requests seen by the API server, to the
// operator's resources and to Events, per object.
func addAPIWrites(v vals, prefix string, api metrics, n int) {
	for k, c := range api {
		if metricName(k) != "apiserver_request_total" || c == 0 {
			continue
		}
		verb, group, res, sub := label(k, "verb"), label(k, "group"), label(k, "resource"), label(k, "subresource")
		if !apiWriteVerbs[verb] || (group != "events.giia.io" && res != "events") {
			continue
		}
		if sub != "" {
			res += "/" + sub
		}
		v[prefix+"API server "+verb+" "+res+" /obj"] += c / float64(n)
	}
	// Server-side latency of the same requests.
	type acc struct{ sum, count float64 }
	lat := map[string]*acc{}
	for k, x := range api {
		name := metricName(k)
		if name != "apiserver_request_duration_seconds_sum" && name != "apiserver_request_duration_seconds_count" {
			continue
		}
		verb, group, res, sub := label(k, "verb"), label(k, "group"), label(k, "resource"), label(k, "subresource")
		if !apiWriteVerbs[verb] || (group != "events.giia.io" && res != "events") {
			continue
		}
		if sub != "" {
			res += "/" + sub
		}
		key := verb + " " + res
		if lat[key] == nil {
			lat[key] = &acc{}
		}
		if name == "apiserver_request_duration_seconds_sum" {
			lat[key].sum += x
		} else {
			lat[key].count += x
		}
	}
	for key, a := range lat {
		if a.count > 0 {
			v[prefix+"API server "+key+" mean ms (server side)"] = 1000 * a.sum / a.count
		}
	}
}

// addManager summarises the manager's metrics; nStreams and nConsumers are
// the denominators of the per-object figures of each kind, nAll of the
// Kubernetes client requests.
func addManager(v vals, prefix string, m metrics, nStreams, nConsumers, nAll int) {
	per := func(kind string) float64 {
		if strings.Contains(kind, "consumer") {
			return float64(max(nConsumers, 1))
		}
		return float64(max(nStreams, 1))
	}
	addManagerOf(v, prefix, m, []string{"eventstream", "eventconsumer", "eventkeyvalue", "eventobjectstore"}, per, nAll)
}

// addManagerOf summarises the manager's metrics of the controllers ctls;
// per(name) is the denominator of the per-object figures of a controller
// or of a JetStream operation, nAll of the Kubernetes client requests.
func addManagerOf(v vals, prefix string, m metrics, ctls []string, per func(name string) float64, nAll int) {
	for _, ctl := range ctls {
		is := withLabel("controller", ctl)
		if c := m.sum("controller_runtime_reconcile_total", is); c > 0 {
			v[prefix+"manager "+ctl+" reconciles /obj"] = c / per(ctl)
			for _, res := range []string{"error", "requeue", "requeue_after", "success"} {
				if c := m.sum("controller_runtime_reconcile_total", func(s string) bool { return is(s) && label(s, "result") == res }); c > 0 {
					v[prefix+"manager "+ctl+" reconciles result="+res+" /obj"] = c / per(ctl)
				}
			}
		}
		if c := m.sum("controller_runtime_reconcile_time_seconds_count", is); c > 0 {
			v[prefix+"manager "+ctl+" reconcile time mean ms"] = 1000 * m.sum("controller_runtime_reconcile_time_seconds_sum", is) / c
		}
		qn := withLabel("name", ctl)
		if c := m.sum("workqueue_queue_duration_seconds_count", qn); c > 0 {
			v[prefix+"manager "+ctl+" queue wait mean ms"] = 1000 * m.sum("workqueue_queue_duration_seconds_sum", qn) / c
		}
	}
	ops := map[string]bool{}
	for k := range m {
		if metricName(k) == "eventstream_operator_jetstream_request_duration_seconds_count" {
			ops[label(k, "operation")+" "+label(k, "outcome")] = true
		}
	}
	for op := range ops {
		o, oc, _ := strings.Cut(op, " ")
		f := func(s string) bool { return label(s, "operation") == o && label(s, "outcome") == oc }
		c := m.sum("eventstream_operator_jetstream_request_duration_seconds_count", f)
		if c == 0 {
			continue
		}
		v[prefix+"manager JetStream "+op+" /obj"] = c / per(o)
		v[prefix+"manager JetStream "+op+" mean ms"] = 1000 * m.sum("eventstream_operator_jetstream_request_duration_seconds_sum", f) / c
	}
	for k, c := range m {
		if metricName(k) == "rest_client_requests_total" && c > 0 {
			v[prefix+"manager k8s client "+label(k, "method")+" "+label(k, "code")+" /obj"] += c / float64(max(nAll, 1))
		}
	}
}

func addCPU(v vals, prefix string, cpu cpuSnapshot, wall time.Duration) {
	var total float64
	keys := make([]string, 0, len(cpu))
	for k := range cpu {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v[prefix+"CPU s "+k] = cpu[k]
		total += cpu[k]
	}
	v[prefix+"CPU s total (these processes)"] = total
	if wall > 0 {
		v[prefix+fmt.Sprintf("CPU busy %% of %d cores (these processes)", goruntime.NumCPU())] = 100 * total / wall.Seconds() / float64(goruntime.NumCPU())
	}
}
