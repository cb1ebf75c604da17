package main

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	k8sevents "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/fixtures"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// The bucket kinds. The scenario builds them as unstructured objects from
// their JSON field names (spec.maxBytes, status.conditions), so it depends
// on the resources' API, not on their Go types.
const (
	kvKind = "EventKeyValue"
	osKind = "EventObjectStore"
)

// bucketKinds are what the buckets scenario's steady state watches.
var bucketKinds = []watchedKind{
	{kvKind, unstructuredList(kvKind)},
	{osKind, unstructuredList(osKind)},
	{"Event", func() client.ObjectList { return &k8sevents.EventList{} }},
}

// unstructuredList returns a constructor of empty lists of kind.
func unstructuredList(kind string) func() client.ObjectList {
	return func() client.ObjectList {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(eventsv1.GroupVersion.WithKind(kind + "List"))
		return l
	}
}

// unstructuredReady reports Ready=True in status.conditions.
func unstructuredReady(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == eventsv1.ConditionReady {
			return m["status"] == "True"
		}
	}
	return false
}

// bucketCRs is n resources of kind named prefix-0000…, each with maxBytes
// fixtures.SmallMaxBytes (as the benchmark's EventStreams) and every other
// field defaulted: the bucket is named after the resource.
func bucketCRs(kind, ns, prefix string, n int) []client.Object {
	out := make([]client.Object, n)
	for i := range n {
		u := &unstructured.Unstructured{Object: map[string]any{
			"spec": map[string]any{"maxBytes": fixtures.SmallMaxBytes.String()},
		}}
		u.SetGroupVersionKind(eventsv1.GroupVersion.WithKind(kind))
		u.SetNamespace(ns)
		u.SetName(fmt.Sprintf("%s-%04d", prefix, i))
		out[i] = u
	}
	return out
}

// bucketState is what the operator writes in status.state of a new, empty
// bucket.
func bucketState(kind string) map[string]any {
	if kind == kvKind {
		return map[string]any{"values": int64(0), "bytes": int64(0), "keys": int64(0)}
	}
	return map[string]any{"objects": int64(0), "bytes": int64(0), "sealed": false}
}

// floorBuckets is the floor of n buckets of kind: n resources created, one
// status write each (Ready, bucketName, state) and n admin.CreateKeyValue /
// admin.CreateObjectStore calls (the operator's calls: one STREAM.CREATE of
// the bucket's stream each), one part after the other.
func (e *env) floorBuckets(ctx context.Context, kind string, n, parallel int) floorResult {
	const ns = "floor"
	prefix := fmt.Sprintf("fkv%d", n)
	if kind == osKind {
		prefix = fmt.Sprintf("fos%d", n)
	}
	objs := bucketCRs(kind, ns, prefix, n)
	f := e.floor(ctx, ns, objs, func(o client.Object) {
		u := o.(*unstructured.Unstructured)
		what := "KeyValue bucket "
		if kind == osKind {
			what = "ObjectStore bucket "
		}
		u.Object["status"] = map[string]any{
			"observedGeneration": int64(1),
			"bucketName":         u.GetName(),
			"conditions": []any{map[string]any{
				"type": eventsv1.ConditionReady, "status": "True", "reason": eventsv1.ReasonCreated,
				"message": what + u.GetName() + " created", "observedGeneration": int64(1),
				"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
			}},
			"state": bucketState(kind),
		}
	}, func(ctx context.Context, i int) error {
		u := objs[i].(*unstructured.Unstructured)
		md := map[string]string{eventsv1.OwnerMetadataKey: ns + "/" + u.GetName(), eventsv1.UIDMetadataKey: string(u.GetUID())}
		if kind == kvKind {
			cfg := admin.NewKeyValueConfig(u.GetName())
			cfg.MaxBytes, cfg.Metadata = fixtures.SmallMaxBytes.Value(), md
			_, err := admin.CreateKeyValue(ctx, e.js, cfg)
			return err
		}
		cfg := admin.NewObjectStoreConfig(u.GetName())
		cfg.MaxBytes, cfg.Metadata = fixtures.SmallMaxBytes.Value(), md
		_, err := admin.CreateObjectStore(ctx, e.js, cfg)
		return err
	}, parallel)
	_, _, _ = parallelDo(n, parallel, func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if kind == kvKind {
			return admin.DeleteKeyValue(cctx, e.js, objs[i].GetName())
		}
		return admin.DeleteObjectStore(cctx, e.js, objs[i].GetName())
	})
	return f
}

// bucketsRun is the buckets scenario, in an environment of its own (a
// fresh API server, nats-server and manager): the floor of nKV KeyValues
// and nOS ObjectStores with the manager stopped, then nKV EventKeyValues
// and nOS EventObjectStores converging, then a steady state.
func bucketsRun(ctx context.Context, root, assets, dir string, nKV, nOS int) (vals, error) {
	v := vals{}
	loadAt := func(k string) {
		var x float64
		_, _ = fmt.Sscan(loadavg(), &x)
		v["buckets load1 at "+k] = x
	}
	loadAt("start")
	e, err := startEnv(ctx, root, assets, dir)
	if err != nil {
		return nil, err
	}
	defer e.stop()

	// Warm the API server up (CRD handlers, CEL): 20 of each kind, created
	// then deleted (the manager, once started, releases them).
	const warmNS = "warmup"
	_ = e.ensureNamespace(ctx, warmNS)
	warm := append(bucketCRs(kvKind, warmNS, "wkv", 20), bucketCRs(osKind, warmNS, "wos", 20)...)
	if _, n, first := parallelDo(len(warm), *parallel, func(i int) error { return e.c.Create(ctx, warm[i]) }); n > 0 {
		return v, fmt.Errorf("warm-up: %d of %d bucket resources refused (are the EventKeyValue and EventObjectStore CRDs in config/crd/bases?), first: %v", n, len(warm), first)
	}
	for _, k := range []string{kvKind, osKind} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(eventsv1.GroupVersion.WithKind(k))
		_ = e.c.DeleteAllOf(ctx, u, client.InNamespace(warmNS))
	}

	// The floor, before the manager starts.
	if nKV > 0 {
		putFloor(v, fmt.Sprintf("floor keyvalues %d", nKV), e.floorBuckets(ctx, kvKind, nKV, *parallel))
	}
	if nOS > 0 {
		putFloor(v, fmt.Sprintf("floor objectstores %d", nOS), e.floorBuckets(ctx, osKind, nOS, *parallel))
	}

	// Convergence, once the manager has released the warm-up objects.
	if err := e.startManager(ctx, *steadyResync, *workers); err != nil {
		return v, err
	}
	for _, k := range []string{kvKind, osKind} {
		if err := e.waitGone(ctx, k, warmNS, time.Minute); err != nil {
			return v, err
		}
	}
	loadAt("convergence")
	if nKV > 0 {
		ns := "bench-kv"
		p := e.converge(ctx, ns, bucketCRs(kvKind, ns, "kv", nKV), *parallel, *timeout)
		putPhase(v, fmt.Sprintf("keyvalues %d", nKV), p)
	}
	if nOS > 0 {
		ns := "bench-os"
		p := e.converge(ctx, ns, bucketCRs(osKind, ns, "os", nOS), *parallel, *timeout)
		putPhase(v, fmt.Sprintf("objectstores %d", nOS), p)
	}

	// Steady state: as for streams, after one and a half resync intervals.
	time.Sleep(*steadyResync * 3 / 2)
	loadAt("steady")
	s := e.steady(ctx, *steadyResync, *steadyIntervals, nKV, nOS, bucketKinds...)
	putBucketsSteady(v, s)

	pid := e.mgr.Proc.Pid()
	v["buckets peak RSS MiB (VmHWM)"] = float64(procStatusKB(pid, "VmHWM")) / 1024
	v["buckets objects managed"] = float64(nKV + nOS)
	loadAt("end")
	return v, nil
}

// waitGone waits until namespace ns has no resource of kind.
func (e *env) waitGone(ctx context.Context, kind, ns string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		l := unstructuredList(kind)()
		err := e.c.List(ctx, l, client.InNamespace(ns))
		if err == nil && meta.LenList(l) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s in namespace %s not gone within %s (list error: %v)", kind, ns, limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// putBucketsSteady records the steady state of the buckets scenario: s's
// streams are the KeyValues, its consumers the ObjectStores.
func putBucketsSteady(v vals, s steadyResult) {
	iv := float64(s.intervals)
	writes := 0
	for _, c := range jsWriteCategories {
		writes += s.js[c]
	}
	v["buckets steady window s"] = s.window.Seconds()
	v["buckets steady objects"] = float64(s.streams + s.consumers)
	v["buckets steady JetStream writes"] = float64(writes)
	v["buckets steady Kubernetes writes (CR MODIFIED events)"] = float64(s.watch[kvKind+" MODIFIED"] + s.watch[osKind+" MODIFIED"])
	apiW := 0.0
	for k, c := range s.api {
		if metricName(k) == "apiserver_request_total" && apiWriteVerbs[label(k, "verb")] && label(k, "group") == "events.giia.io" {
			apiW += c
		}
	}
	v["buckets steady Kubernetes write requests to CRs (API server)"] = apiW
	v["buckets steady Events created"] = float64(s.watch["Event ADDED"] + s.watch["Event MODIFIED"])
	for _, b := range []struct {
		name, prefix string
		n            int
	}{{"KeyValue", "$JS.API.STREAM.INFO.KV_kv-", s.streams}, {"ObjectStore", "$JS.API.STREAM.INFO.OBJ_os-", s.consumers}} {
		if b.n == 0 {
			continue
		}
		total, seen, most := 0, 0, 0.0
		for subj, c := range s.perObj {
			if strings.HasPrefix(subj, b.prefix) {
				total += c
				seen++
				most = math.Max(most, float64(c)/iv)
			}
		}
		v["buckets steady STREAM.INFO per "+b.name+" per interval (mean)"] = float64(total) / float64(b.n) / iv
		v["buckets steady STREAM.INFO per "+b.name+" per interval (max)"] = most
		v["buckets steady "+b.name+"s without INFO in window"] = float64(b.n - seen)
	}
	if s.consumers > 0 {
		v["buckets steady DIRECT.GET per ObjectStore per interval (mean)"] = float64(s.js["DIRECT.GET"]) / float64(s.consumers) / iv
	}
	for k, c := range s.js {
		v["diag buckets steady: JetStream "+k+" /obj/interval"] = float64(c) / float64(max(s.streams+s.consumers, 1)) / iv
	}
	for k, c := range s.changed {
		v["diag buckets steady: changed field "+k] = float64(c)
	}
	d := vals{}
	addManagerOf(d, "", s.mgr, []string{"eventkeyvalue", "eventobjectstore"}, func(name string) float64 {
		if strings.Contains(strings.ToLower(name), "object") {
			return float64(max(s.consumers, 1))
		}
		return float64(max(s.streams, 1))
	}, s.streams+s.consumers)
	addCPU(d, "", s.cpu, s.window)
	for k, x := range d {
		v["diag buckets steady: "+k] = x
	}
}

func reportBuckets(rs []vals, nKV, nOS int) {
	for _, r := range rs {
		for _, k := range []string{fmt.Sprintf("keyvalues %d", nKV), fmt.Sprintf("objectstores %d", nOS)} {
			if f := r["floor "+k+": total s"]; f > 0 {
				r["ratio "+k] = ratio(r[k+": all Ready s"], f)
			}
		}
	}
	var rows []row
	for _, b := range []struct {
		what string
		n    int
	}{{"keyvalues", nKV}, {"objectstores", nOS}} {
		if b.n == 0 {
			continue
		}
		k := fmt.Sprintf("%s %d", b.what, b.n)
		kind := kvKind + "s"
		if b.what == "objectstores" {
			kind = osKind + "s"
		}
		var ok func(float64) bool
		target := ""
		if b.n >= 1000 {
			ok, target = le(3), "≤ 3 (as streams)"
		}
		rows = append(rows,
			row{fmt.Sprintf("%d %s: first create → all Ready", b.n, kind), k + ": all Ready s", "s", "", nil},
			row{"  creates acknowledged (client side)", k + ": creates acknowledged s", "s", "", nil},
			row{"  per-object create → Ready p50", k + ": per-object latency p50 s", "s", "", nil},
			row{"  per-object create → Ready p99", k + ": per-object latency p99 s", "s", "", nil},
			row{"  create errors", k + ": create errors", "", "", nil},
			row{"  floor: create CRs", "floor " + k + ": create CRs s", "s", "", nil},
			row{"  floor: one status write each", "floor " + k + ": status writes s", "s", "", nil},
			row{"  floor: JetStream creates (admin.Create" + strings.TrimPrefix(kind[:len(kind)-1], "Event") + ")", "floor " + k + ": JetStream creates s", "s", "", nil},
			row{"  floor (sum of the three)", "floor " + k + ": total s", "s", "", nil},
			row{"  convergence / floor", "ratio " + k, "x", target, ok})
	}
	rows = append(rows,
		row{"steady state: objects", "buckets steady objects", "", "", nil},
		row{"steady state: window", "buckets steady window s", "s", "", nil},
		row{"steady state: JetStream writes (STREAM.CREATE/UPDATE/DELETE, consumer writes)", "buckets steady JetStream writes", "", "0", le(0)},
		row{"steady state: Kubernetes writes to CRs (watch MODIFIED events)", "buckets steady Kubernetes writes (CR MODIFIED events)", "", "0", le(0)},
		row{"steady state: Kubernetes write requests to CRs (API server counter, incl. no-op patches)", "buckets steady Kubernetes write requests to CRs (API server)", "", "0", le(0)},
		row{"steady state: Events created/updated", "buckets steady Events created", "", "", nil},
		row{"steady state: STREAM.INFO per KeyValue per interval (mean)", "buckets steady STREAM.INFO per KeyValue per interval (mean)", "", "≤ 1", le(1)},
		row{"steady state: STREAM.INFO per KeyValue per interval (max)", "buckets steady STREAM.INFO per KeyValue per interval (max)", "", "", nil},
		row{"steady state: KeyValues without any INFO in the window", "buckets steady KeyValues without INFO in window", "", "", nil},
		row{"steady state: STREAM.INFO per ObjectStore per interval (mean)", "buckets steady STREAM.INFO per ObjectStore per interval (mean)", "", "≤ 1", le(1)},
		row{"steady state: STREAM.INFO per ObjectStore per interval (max)", "buckets steady STREAM.INFO per ObjectStore per interval (max)", "", "", nil},
		row{"steady state: ObjectStores without any INFO in the window", "buckets steady ObjectStores without INFO in window", "", "", nil},
		row{"steady state: DIRECT.GET per ObjectStore per interval (mean; the object count)", "buckets steady DIRECT.GET per ObjectStore per interval (mean)", "", "", nil},
		row{"manager peak RSS (VmHWM)", "buckets peak RSS MiB (VmHWM)", "MiB", "", nil},
		row{"run wall time", "buckets run wall s", "s", "", nil},
		row{"1-minute load average at run start", "buckets load1 at start", "x", "", nil},
		row{"  at convergence start", "buckets load1 at convergence", "x", "", nil},
		row{"  at steady-state start", "buckets load1 at steady", "x", "", nil},
		row{"  at run end", "buckets load1 at end", "x", "", nil},
	)
	table(fmt.Sprintf("8. Buckets (environment of its own; %d client goroutines, --max-concurrent-reconciles %d, steady state %d × %s resync)",
		*parallel, *workers, *steadyIntervals, *steadyResync), rs, rows)
	for _, k := range []string{fmt.Sprintf("keyvalues %d", nKV), fmt.Sprintf("objectstores %d", nOS)} {
		printAll("Diagnosis, "+k+" converging (median; per run)", rs, "diag "+k+": ")
	}
	printAll("Diagnosis, buckets steady state (median; per run)", rs, "diag buckets steady: ")
}
