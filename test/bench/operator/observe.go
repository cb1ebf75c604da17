package main

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	k8sevents "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
)

// jsMonitor counts JetStream API requests with a plain subscription on
// $JS.API.> (a copy of every request any client of the account sends).
type jsMonitor struct {
	sub *nats.Subscription

	mu     sync.Mutex
	counts map[string]int // by category
	perObj map[string]int // INFO requests by subject
}

// JetStream write categories. nats.go v1.55 creates AND updates consumers on
// $JS.API.CONSUMER.CREATE.<stream>.<consumer>[.<filter>] with "action" in the
// body ("create" / "update"); CONSUMER.DURABLE.CREATE is the legacy subject.
var jsWriteCategories = []string{
	"STREAM.CREATE", "STREAM.UPDATE", "STREAM.DELETE",
	"CONSUMER.CREATE(create)", "CONSUMER.CREATE(update)", "CONSUMER.CREATE(upsert)",
	"CONSUMER.DURABLE.CREATE", "CONSUMER.DELETE",
}

func newJSMonitor(nc *nats.Conn) (*jsMonitor, error) {
	m := &jsMonitor{counts: map[string]int{}, perObj: map[string]int{}}
	sub, err := nc.Subscribe("$JS.API.>", m.handle)
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	m.sub = sub
	return m, nc.Flush()
}

func classifyJS(subject string, body []byte) (cat string, info bool) {
	s := strings.TrimPrefix(subject, "$JS.API.")
	for _, p := range []string{
		"STREAM.CREATE.", "STREAM.UPDATE.", "STREAM.DELETE.", "STREAM.INFO.", "STREAM.PURGE.",
		"STREAM.MSG.GET.", "STREAM.MSG.DELETE.", "CONSUMER.DURABLE.CREATE.", "CONSUMER.INFO.",
		"CONSUMER.DELETE.", "CONSUMER.MSG.NEXT.", "CONSUMER.NAMES.", "CONSUMER.LIST.", "DIRECT.GET.",
	} {
		if strings.HasPrefix(s, p) {
			return strings.TrimSuffix(p, "."), p == "STREAM.INFO." || p == "CONSUMER.INFO."
		}
	}
	if strings.HasPrefix(s, "CONSUMER.CREATE.") {
		switch {
		case bytes.Contains(body, []byte(`"action":"update"`)):
			return "CONSUMER.CREATE(update)", false
		case bytes.Contains(body, []byte(`"action":"create"`)):
			return "CONSUMER.CREATE(create)", false
		}
		return "CONSUMER.CREATE(upsert)", false
	}
	f := strings.SplitN(s, ".", 3)
	if len(f) >= 2 {
		return f[0] + "." + f[1], false
	}
	return s, false
}

func (m *jsMonitor) handle(msg *nats.Msg) {
	cat, info := classifyJS(msg.Subject, msg.Data)
	m.mu.Lock()
	m.counts[cat]++
	if info {
		m.perObj[msg.Subject]++
	}
	m.mu.Unlock()
}

// take returns the counts since the last take and resets them.
func (m *jsMonitor) take() (map[string]int, map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, p := m.counts, m.perObj
	m.counts, m.perObj = map[string]int{}, map[string]int{}
	return c, p
}

func (m *jsMonitor) close() { _ = m.sub.Unsubscribe() }

// ---- Kubernetes watches ----

// watchLoop lists then watches list's kind in ns ("" = all), calling fn for
// every event until ctx ends; started is closed once the first watch is open.
// initial, if set, receives the listed objects (at every relist).
func watchLoop(ctx context.Context, c client.WithWatch, newList func() client.ObjectList, ns string,
	initial func(client.ObjectList), fn func(watch.Event), started chan<- struct{}) {
	first := true
	for ctx.Err() == nil {
		list := newList()
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if initial != nil {
			initial(list)
		}
		rv := list.GetResourceVersion()
		for ctx.Err() == nil {
			w, err := c.Watch(ctx, newList(), &client.ListOptions{Namespace: ns,
				Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				break // relist
			}
			if first {
				first = false
				close(started)
			}
			expired := false
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					expired = true
					break
				}
				if o, ok := ev.Object.(client.Object); ok {
					rv = o.GetResourceVersion()
				}
				if ev.Type != watch.Bookmark {
					fn(ev)
				}
			}
			w.Stop()
			if expired {
				break
			}
		}
	}
}

// writeCounter counts, from the API server's side, every change to the
// watched kinds (EventStreams, EventConsumers and events.k8s.io Events, or
// the bucket kinds and Events) in all namespaces,
// and remembers which fields the MODIFIED events changed.
type writeCounter struct {
	mu      sync.Mutex
	counts  map[string]int      // "EventStream MODIFIED", ...
	last    map[string][]byte   // kind/ns/name -> last JSON
	changed map[string]int      // "EventStream status.state" -> count
	objects map[string]struct{} // kind/ns/name modified
}

// watchedKind is a kind the writeCounter watches.
type watchedKind struct {
	kind string
	list func() client.ObjectList
}

// streamKinds are what the main scenarios' steady state watches.
var streamKinds = []watchedKind{
	{"EventStream", func() client.ObjectList { return &eventsv1.EventStreamList{} }},
	{"EventConsumer", func() client.ObjectList { return &eventsv1.EventConsumerList{} }},
	{"Event", func() client.ObjectList { return &k8sevents.EventList{} }},
}

// startWriteCounter watches kinds (streamKinds when none are given).
func startWriteCounter(ctx context.Context, c client.WithWatch, kinds ...watchedKind) *writeCounter {
	wc := &writeCounter{counts: map[string]int{}, last: map[string][]byte{}, changed: map[string]int{}, objects: map[string]struct{}{}}
	if len(kinds) == 0 {
		kinds = streamKinds
	}
	var wg sync.WaitGroup
	for _, k := range kinds {
		started := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-started
		}()
		go watchLoop(ctx, c, k.list, "", func(l client.ObjectList) {
			if k.kind == "Event" {
				return
			}
			items := reflect.ValueOf(l).Elem().FieldByName("Items")
			wc.mu.Lock()
			for i := 0; i < items.Len(); i++ {
				o := items.Index(i).Addr().Interface().(client.Object)
				b, _ := json.Marshal(o)
				wc.last[k.kind+"/"+o.GetNamespace()+"/"+o.GetName()] = b
			}
			wc.mu.Unlock()
		}, func(ev watch.Event) {
			o := ev.Object.(client.Object)
			key := k.kind + "/" + o.GetNamespace() + "/" + o.GetName()
			b, _ := json.Marshal(o)
			wc.mu.Lock()
			defer wc.mu.Unlock()
			wc.counts[k.kind+" "+string(ev.Type)]++
			if ev.Type == watch.Modified && k.kind != "Event" {
				wc.objects[key] = struct{}{}
				for _, f := range changedFields(wc.last[key], b) {
					wc.changed[k.kind+" "+f]++
				}
			}
			wc.last[key] = b
		}, started)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
	return wc
}

func (wc *writeCounter) snapshot() (counts map[string]int, changed map[string]int, objects int) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	counts, changed = map[string]int{}, map[string]int{}
	for k, v := range wc.counts {
		counts[k] = v
	}
	for k, v := range wc.changed {
		changed[k] = v
	}
	return counts, changed, len(wc.objects)
}

// changedFields compares two JSON objects two levels deep (metadata.*,
// spec.*, status.*), ignoring resourceVersion and managedFields.
func changedFields(a, b []byte) []string {
	var x, y map[string]any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return []string{"?"}
	}
	var out []string
	for _, top := range []string{"metadata", "spec", "status"} {
		xm, _ := x[top].(map[string]any)
		ym, _ := y[top].(map[string]any)
		keys := map[string]bool{}
		for k := range xm {
			keys[k] = true
		}
		for k := range ym {
			keys[k] = true
		}
		for k := range keys {
			if top == "metadata" && (k == "resourceVersion" || k == "managedFields") {
				continue
			}
			if !reflect.DeepEqual(xm[k], ym[k]) {
				out = append(out, top+"."+k)
			}
		}
	}
	sort.Strings(out)
	return out
}
