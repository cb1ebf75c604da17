// Package metrics checks the operator's Prometheus metrics end to end: the
// real bin/manager (built from this tree), envtest's API server and a real
// nats-server, the samples applied, events published and consumed, and the
// manager's /metrics scraped for the values the test caused.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	eventsv1 "github.com/giia/eventstream-operator/api/v1alpha1"
	"github.com/giia/eventstream-operator/internal/testutil/controlplane"
	"github.com/giia/eventstream-operator/internal/testutil/managerproc"
	"github.com/giia/eventstream-operator/internal/testutil/natsproc"
	"github.com/giia/eventstream-operator/internal/testutil/proc"
	"github.com/giia/eventstream-operator/internal/testutil/repo"
)

const ns = "metrics"

// series is one scraped series: its name, labels and value.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// find returns the series of ms named name whose labels include want.
func find(ms managerproc.Metrics, name string, want map[string]string) []series {
	var out []series
	for key, v := range ms {
		n, rest, _ := strings.Cut(key, "{")
		if n != name {
			continue
		}
		labels := map[string]string{}
		for _, m := range labelRE.FindAllStringSubmatch(rest, -1) {
			labels[m[1]] = m[2]
		}
		ok := true
		for k, w := range want {
			if labels[k] != w {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, series{n, labels, v})
		}
	}
	return out
}

// sum adds the values of the series find returns.
func sum(ms managerproc.Metrics, name string, want map[string]string) (float64, int) {
	var total float64
	ss := find(ms, name, want)
	for _, s := range ss {
		total += s.value
	}
	return total, len(ss)
}

// check is one expectation on a scrape.
type check struct {
	what   string
	name   string
	labels map[string]string
	ok     func(v float64) bool
	want   string
}

func eq(n float64) (func(float64) bool, string) {
	return func(v float64) bool { return v == n }, fmt.Sprintf("= %v", n)
}
func atLeast(n float64) (func(float64) bool, string) {
	return func(v float64) bool { return v >= n }, fmt.Sprintf(">= %v", n)
}

// failing returns the checks ms does not pass, described.
func failing(ms managerproc.Metrics, checks []check) []string {
	var bad []string
	for _, c := range checks {
		v, n := sum(ms, c.name, c.labels)
		if n == 0 || !c.ok(v) {
			bad = append(bad, fmt.Sprintf("%s: %s%v = %v over %d series, want %s", c.what, c.name, c.labels, v, n, c.want))
		}
	}
	return bad
}

// applySamples creates in ns every resource config/samples/kustomization.yaml
// lists, and returns how many of each kind.
func applySamples(t *testing.T, c client.Client) map[string]int {
	t.Helper()
	dir, err := repo.Path("config", "samples")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, f := range k.Resources {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(raw, &u.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		u.SetNamespace(ns)
		if err := c.Create(context.Background(), u); err != nil {
			t.Fatalf("creating %s: %v", f, err)
		}
		kinds[u.GetKind()]++
	}
	return kinds
}

// notReady names the sample resources that are not Ready=True.
func notReady(ctx context.Context, c client.Client) ([]string, error) {
	var out []string
	lists := map[string]client.ObjectList{
		"EventStream": &eventsv1.EventStreamList{}, "EventConsumer": &eventsv1.EventConsumerList{}, "EventSchema": &eventsv1.EventSchemaList{},
	}
	for kind, l := range lists {
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		items, err := metaItems(l)
		if err != nil {
			return nil, err
		}
		for _, conds := range items {
			ready := false
			for _, cond := range conds.conds {
				if cond.Type == eventsv1.ConditionReady && cond.Status == metav1.ConditionTrue {
					ready = true
				}
			}
			if !ready {
				out = append(out, kind+"/"+conds.name)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

type named struct {
	name  string
	conds []metav1.Condition
}

func metaItems(l client.ObjectList) ([]named, error) {
	var out []named
	switch x := l.(type) {
	case *eventsv1.EventStreamList:
		for _, i := range x.Items {
			out = append(out, named{i.Name, i.Status.Conditions})
		}
	case *eventsv1.EventConsumerList:
		for _, i := range x.Items {
			out = append(out, named{i.Name, i.Status.Conditions})
		}
	case *eventsv1.EventSchemaList:
		for _, i := range x.Items {
			out = append(out, named{i.Name, i.Status.Conditions})
		}
	default:
		return nil, errors.New("unexpected list")
	}
	return out, nil
}

// TestManagerMetricsAfterTheSamples: the samples applied, N events
// published to AUTH_EVENTS, M acknowledged and one terminated by the
// analytics-auth consumer (dead-lettered by the operator to DLQ_EVENTS) and
// CATALOG_EVENTS deleted behind the operator's back: after a resync, the
// manager's /metrics has each stream's and consumer's state, the resources
// by kind and Ready reason, the reconcile outcomes, the drift repair, the
// forwarder's counters and the advisory lag.
func TestManagerMetricsAfterTheSamples(t *testing.T) {
	ctrllog.SetLogger(logr.Discard())
	const (
		published    = 10
		acked        = 4
		terminated   = 1
		resync       = 2 * time.Second
		streamsTotal = 7
	)
	dir := t.TempDir()
	bin, err := managerproc.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	plane, err := controlplane.Start(controlplane.Options{Dir: filepath.Join(dir, "kube"), CRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plane.Stop() })
	srv := natsproc.StartStandalone(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	m := &managerproc.Manager{Bin: bin, Dir: dir, Kubeconfig: plane.Kubeconfig, NATSURL: srv.URL(),
		Args: []string{"--watch-namespaces", ns, "--resync-interval", resync.String()}}
	t.Cleanup(func() { _, _ = m.Stop(10 * time.Second) })
	if err := m.Start(ctx, managerproc.Ready, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := plane.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	kinds := applySamples(t, plane.Client)
	if kinds["EventStream"] != streamsTotal {
		t.Fatalf("the samples hold %d EventStreams, want %d", kinds["EventStream"], streamsTotal)
	}
	start := time.Now()
	if err := proc.Poll(ctx, 60*time.Second, 200*time.Millisecond, "every sample Ready", func() error {
		nr, err := notReady(ctx, plane.Client)
		if err == nil && len(nr) > 0 {
			err = fmt.Errorf("not Ready: %v", nr)
		}
		return err
	}); err != nil {
		t.Fatalf("%v\nmanager log:\n%s", err, proc.Tail(m.LogPath(), 30))
	}
	t.Logf("samples Ready in %v", time.Since(start).Round(time.Millisecond))

	nc, js, err := natsproc.Connect(srv.URL(), "metrics-test", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i := range published {
		if _, err := js.Publish(ctx, fmt.Sprintf("auth.user.created.%d", i), []byte(`{"id":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.Consumer(ctx, "AUTH_EVENTS", "analytics-auth")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(acked+terminated, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for msg := range batch.Messages() {
		if n < acked {
			err = msg.DoubleAck(ctx)
		} else {
			err = msg.TermWithReason("metrics test: bad payload")
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != acked+terminated {
		t.Fatalf("fetched %d messages, want %d (%v)", n, acked+terminated, batch.Error())
	}
	// Drift: a stream deleted outside the operator is recreated.
	if err := js.DeleteStream(ctx, "CATALOG_EVENTS"); err != nil {
		t.Fatal(err)
	}

	auth := map[string]string{"namespace": ns, "name": "auth-events", "stream": "AUTH_EVENTS"}
	analytics := map[string]string{"namespace": ns, "name": "analytics-auth", "stream": "AUTH_EVENTS", "consumer": "analytics-auth"}
	dlq := map[string]string{"namespace": ns, "name": "dlq-events", "stream": "DLQ_EVENTS"}
	var checks []check
	add := func(what, name string, labels map[string]string, ok func(float64) bool, want string) {
		checks = append(checks, check{what, name, labels, ok, want})
	}
	p, w := eq(published)
	add("messages published to AUTH_EVENTS", "eventstream_operator_stream_messages", auth, p, w)
	p, w = atLeast(published * 8)
	add("AUTH_EVENTS holds the bytes of the messages", "eventstream_operator_stream_bytes", auth, p, w)
	p, w = atLeast(0)
	add("AUTH_EVENTS's first message age", "eventstream_operator_stream_first_message_age_seconds", auth, p, w)
	add("AUTH_EVENTS's last message age", "eventstream_operator_stream_last_message_age_seconds", auth, p, w)
	p, w = eq(1)
	add("AUTH_EVENTS has one consumer", "eventstream_operator_stream_consumers", auth, p, w)
	add("the dead letter is in DLQ_EVENTS", "eventstream_operator_stream_messages", dlq, p, w)
	p, w = eq(published - acked - terminated)
	add("analytics-auth's pending (published - fetched)", "eventstream_operator_consumer_pending", analytics, p, w)
	p, w = eq(0)
	add("analytics-auth's ack pending", "eventstream_operator_consumer_ack_pending", analytics, p, w)
	add("analytics-auth's redelivered", "eventstream_operator_consumer_redelivered", analytics, p, w)
	add("analytics-auth's waiting", "eventstream_operator_consumer_waiting", analytics, p, w)
	p, w = eq(terminated)
	add("analytics-auth's dead-lettered", "eventstream_operator_consumer_dead_lettered", analytics, p, w)
	add("dead letters forwarded", "eventstream_operator_dead_letters_forwarded_total", nil, p, w)
	p, w = eq(0)
	add("dead letters not stored", "eventstream_operator_dead_letters_not_stored_total", nil, p, w)
	add("malformed dead-letter advisories", "eventstream_operator_dead_letters_malformed_total", nil, p, w)
	p, w = atLeast(terminated)
	add("advisory lag observations", "eventstream_operator_advisory_lag_seconds_count", nil, p, w)
	p, w = eq(streamsTotal)
	add("Ready EventStreams", "eventstream_operator_resources", map[string]string{"kind": "EventStream", "ready": "True"}, p, w)
	p, w = eq(float64(kinds["EventConsumer"]))
	add("Ready EventConsumers", "eventstream_operator_resources", map[string]string{"kind": "EventConsumer", "ready": "True"}, p, w)
	p, w = eq(float64(kinds["EventSchema"]))
	add("Ready EventSchemas", "eventstream_operator_resources", map[string]string{"kind": "EventSchema", "ready": "True"}, p, w)
	p, w = atLeast(streamsTotal)
	add("EventStream reconciles that created the stream", "eventstream_operator_reconcile_outcomes_total", map[string]string{"kind": "EventStream", "reason": "Created"}, p, w)
	p, w = atLeast(1)
	add("EventStream reconciles in sync (resyncs)", "eventstream_operator_reconcile_outcomes_total", map[string]string{"kind": "EventStream", "reason": "InSync"}, p, w)
	add("the deleted CATALOG_EVENTS was a drift repair", "eventstream_operator_drift_repairs_total", map[string]string{"kind": "EventStream"}, p, w)
	p, w = eq(1)
	add("the operator's NATS connection is up", "eventstream_operator_nats_connected", nil, p, w)
	p, w = atLeast(1)
	add("JetStream requests timed", "eventstream_operator_jetstream_request_duration_seconds_count", map[string]string{"operation": "stream_info", "outcome": "success"}, p, w)

	var last managerproc.Metrics
	err = proc.Poll(ctx, 30*time.Second, 500*time.Millisecond, "the metrics", func() error {
		ms, err := m.Metrics(ctx)
		if err != nil {
			return err
		}
		last = ms
		bad := failing(ms, checks)
		if got := len(find(ms, "eventstream_operator_stream_messages", map[string]string{"namespace": ns})); got != streamsTotal {
			bad = append(bad, fmt.Sprintf("%d stream_messages series, want one per EventStream (%d)", got, streamsTotal))
		}
		if len(bad) > 0 {
			return errors.New(strings.Join(bad, "\n"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range find(last, "eventstream_operator_stream_messages", map[string]string{"namespace": ns}) {
		t.Logf("stream_messages%v = %v", s.labels, s.value)
	}

	// A deleted resource's series go with it.
	evc := &eventsv1.EventConsumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "analytics-auth"}}
	if err := plane.Client.Delete(ctx, evc); err != nil {
		t.Fatal(err)
	}
	if err := proc.Poll(ctx, 30*time.Second, 200*time.Millisecond, "analytics-auth's series deleted", func() error {
		ms, err := m.Metrics(ctx)
		if err != nil {
			return err
		}
		for _, name := range []string{"pending", "ack_pending", "redelivered", "waiting", "dead_lettered"} {
			if ss := find(ms, "eventstream_operator_consumer_"+name, map[string]string{"namespace": ns, "name": "analytics-auth"}); len(ss) > 0 {
				return fmt.Errorf("%s still exported: %v", name, ss[0].labels)
			}
		}
		if v, _ := sum(ms, "eventstream_operator_resources", map[string]string{"kind": "EventConsumer"}); v != float64(kinds["EventConsumer"]-1) {
			return fmt.Errorf("resources{kind=EventConsumer} = %v, want %d", v, kinds["EventConsumer"]-1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
