//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// ---- 7f: the EventKeyValue and EventObjectStore samples ----

// bucketSample is one EventKeyValue or EventObjectStore of config/samples.
type bucketSample struct {
	kind   string // EventKeyValue | EventObjectStore
	short  string // evkv | evos
	file   string // relative to the repository root
	name   string
	bucket string // spec.bucket, or the resource's name
	policy string // spec.deletionPolicy, or Delete
}

// stream is the JetStream stream under the bucket.
func (b bucketSample) stream() string {
	if b.kind == "EventKeyValue" {
		return "KV_" + b.bucket
	}
	return "OBJ_" + b.bucket
}

func (b bucketSample) String() string { return b.short + "/" + b.name + " (bucket " + b.bucket + ")" }

// readBucketSamples reads the bucket samples of config/samples: at least
// one of each kind.
func readBucketSamples(root string) ([]bucketSample, error) {
	var out []bucketSample
	for _, k := range []struct{ kind, short, glob string }{
		{"EventKeyValue", "evkv", "events_v1alpha1_eventkeyvalue_*.yaml"},
		{"EventObjectStore", "evos", "events_v1alpha1_eventobjectstore_*.yaml"},
	} {
		files, err := filepath.Glob(filepath.Join(root, "config", "samples", k.glob))
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("config/samples has no %s sample (%s)", k.kind, k.glob)
		}
		sort.Strings(files)
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(raw, &u.Object); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if u.GetKind() != k.kind {
				return nil, fmt.Errorf("%s: kind %q, want %s", f, u.GetKind(), k.kind)
			}
			rel, _ := filepath.Rel(root, f)
			b := bucketSample{kind: k.kind, short: k.short, file: rel, name: u.GetName(), policy: "Delete"}
			b.bucket, _, _ = unstructured.NestedString(u.Object, "spec", "bucket")
			if b.bucket == "" {
				b.bucket = b.name
			}
			if p, _, _ := unstructured.NestedString(u.Object, "spec", "deletionPolicy"); p != "" {
				b.policy = p
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// bucketSamples applies the EventKeyValue and EventObjectStore samples and
// waits until they are Ready; writes and reads a value and an object with
// nats.go; checks the Values/Objects and Bytes columns of kubectl get;
// deletes each bucket out of band and sees the operator recreate it; and
// deletes the resources (deletionPolicy Delete) and sees the buckets go.
func (s *suite) bucketSamples() error {
	ctx, cancel := context.WithTimeout(s.ctx, 6*time.Minute)
	defer cancel()
	samples, err := readBucketSamples(s.root)
	if err != nil {
		return err
	}
	var refs []string
	for _, b := range samples {
		if _, err := s.kubectl(time.Minute, "apply", "-n", samplesNS, "-f", b.file); err != nil {
			return err
		}
		refs = append(refs, b.short+"/"+b.name)
	}
	begin := time.Now()
	if _, err := s.kubectl(150*time.Second, append([]string{"wait", "--for=condition=Ready", "-n", samplesNS, "--timeout=2m"}, refs...)...); err != nil {
		_, _ = s.kubectl(30*time.Second, "get", "evkv,evos", "-n", samplesNS, "-o",
			`jsonpath={range .items[*]}{.kind}/{.metadata.name}: {range .status.conditions[?(@.type=="Ready")]}{.status} {.reason}: {.message}{end}{"\n"}{end}`)
		return err
	}
	logf(s.t, s.start, "%s Ready after %s", strings.Join(refs, ", "), time.Since(begin).Round(time.Millisecond))

	// The buckets exist, owned by their resources.
	for _, b := range samples {
		if err := s.checkBucketOwned(ctx, b); err != nil {
			return err
		}
	}

	// A value and an object, written and read back with nats.go.
	for _, b := range samples {
		if err := s.putAndGet(ctx, b); err != nil {
			return err
		}
	}

	// kubectl get shows them once the operator has refreshed the status
	// (at its next resync of the resource: the chart's resyncInterval is
	// 1m, jittered by 10 %).
	for _, b := range samples {
		if err := s.checkBucketColumns(ctx, b, 100*time.Second); err != nil {
			return err
		}
	}
	_, _ = s.kubectl(30*time.Second, "get", "evkv,evos", "-n", samplesNS, "-o", "wide")

	// Deleted out of band, each bucket is recreated by the operator
	// (JetStream's STREAM.DELETED advisory, or the deletion audit).
	for _, b := range samples {
		if err := s.bucketRepaired(ctx, b); err != nil {
			return err
		}
	}

	// Deleted with deletionPolicy Delete, the resources take their buckets.
	for _, b := range samples {
		if b.policy != "Delete" {
			if _, err := s.kubectl(30*time.Second, "patch", b.short, b.name, "-n", samplesNS, "--type=merge",
				"-p", `{"spec":{"deletionPolicy":"Delete"}}`); err != nil {
				return err
			}
		}
		if _, err := s.kubectl(90*time.Second, "delete", b.short, b.name, "-n", samplesNS, "--timeout=60s"); err != nil {
			return err
		}
		// kubectl delete waited for the finalizer, which deletes the bucket first.
		if _, err := s.streamInfo(ctx, b.stream()); !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%s after kubectl delete (deletionPolicy Delete): want stream %s not found, got %v", b, b.stream(), err)
		}
		logf(s.t, s.start, "%s deleted with its bucket (policy %s in the sample)", b, b.policy)
	}
	// The streams are untouched.
	for _, want := range sampleStreams {
		if _, err := s.streamInfo(ctx, want.stream); err != nil {
			return fmt.Errorf("%s after deleting the bucket samples: %w", want.stream, err)
		}
	}
	return nil
}

// checkBucketOwned checks that b's stream exists and carries the owner
// marker of b's resource.
func (s *suite) checkBucketOwned(ctx context.Context, b bucketSample) error {
	info, err := s.streamInfo(ctx, b.stream())
	if err != nil {
		return fmt.Errorf("%s: stream %s: %w", b, b.stream(), err)
	}
	if got, want := info.Config.Metadata[ownerKey], samplesNS+"/"+b.name; got != want {
		return fmt.Errorf("%s: stream %s has %s=%q, want %q", b, b.stream(), ownerKey, got, want)
	}
	return nil
}

const (
	e2eKey    = "e2e.greeting"
	e2eObject = "e2e/hello.txt"
)

var e2eValue = []byte("hello from the end-to-end test")

// putAndGet writes one value (KeyValue) or one object (ObjectStore) into
// b's bucket and reads it back.
func (s *suite) putAndGet(ctx context.Context, b bucketSample) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if b.kind == "EventKeyValue" {
		kv, err := s.js.KeyValue(ctx, b.bucket)
		if err != nil {
			return fmt.Errorf("%s: opening the KeyValue bucket: %w", b, err)
		}
		rev, err := kv.Put(ctx, e2eKey, e2eValue)
		if err != nil {
			return fmt.Errorf("%s: put %s: %w", b, e2eKey, err)
		}
		e, err := kv.Get(ctx, e2eKey)
		if err != nil {
			return fmt.Errorf("%s: get %s: %w", b, e2eKey, err)
		}
		if !bytes.Equal(e.Value(), e2eValue) || e.Revision() != rev {
			return fmt.Errorf("%s: get %s gave %q (revision %d), put %q (revision %d)", b, e2eKey, e.Value(), e.Revision(), e2eValue, rev)
		}
		logf(s.t, s.start, "%s: put and got %s (revision %d)", b, e2eKey, rev)
		return nil
	}
	obs, err := s.js.ObjectStore(ctx, b.bucket)
	if err != nil {
		return fmt.Errorf("%s: opening the ObjectStore bucket: %w", b, err)
	}
	if _, err := obs.PutBytes(ctx, e2eObject, e2eValue); err != nil {
		return fmt.Errorf("%s: put %s: %w", b, e2eObject, err)
	}
	got, err := obs.GetBytes(ctx, e2eObject)
	if err != nil {
		return fmt.Errorf("%s: get %s: %w", b, e2eObject, err)
	}
	if !bytes.Equal(got, e2eValue) {
		return fmt.Errorf("%s: get %s gave %q, put %q", b, e2eObject, got, e2eValue)
	}
	logf(s.t, s.start, "%s: put and got object %s (%d bytes)", b, e2eObject, len(got))
	return nil
}

// checkBucketColumns polls kubectl get (the default columns) until b's
// Values (KeyValue) or Objects (ObjectStore) column says 1 and its Bytes
// column is positive.
func (s *suite) checkBucketColumns(ctx context.Context, b bucketSample, limit time.Duration) error {
	count := "VALUES"
	if b.kind == "EventObjectStore" {
		count = "OBJECTS"
	}
	begin := time.Now()
	var last string
	err := poll(ctx, limit, 2*time.Second, fmt.Sprintf("kubectl get %s to show 1 in %s and bytes", b, count), func() error {
		out, err := s.kubectlQuiet(30*time.Second, "get", b.short, b.name, "-n", samplesNS)
		if err != nil {
			return err
		}
		last = out
		cols, err := columns(out)
		if err != nil {
			return err
		}
		if cols["BUCKET"] != b.bucket {
			return fmt.Errorf("BUCKET is %q, want %q:\n%s", cols["BUCKET"], b.bucket, out)
		}
		if cols["READY"] != "True" {
			return fmt.Errorf("READY is %q:\n%s", cols["READY"], out)
		}
		if cols[count] != "1" {
			return fmt.Errorf("%s is %q, want 1:\n%s", count, cols[count], out)
		}
		if n, err := strconv.ParseInt(cols["BYTES"], 10, 64); err != nil || n <= 0 {
			return fmt.Errorf("BYTES is %q, want a positive number:\n%s", cols["BYTES"], out)
		}
		return nil
	})
	if err != nil {
		return err
	}
	logf(s.t, s.start, "kubectl get %s after %s:\n%s", b, time.Since(begin).Round(time.Millisecond), indent(last))
	return nil
}

// columns maps the header of kubectl get's table for one object to that
// object's values (no value of these kinds' default columns has a space).
func columns(out string) (map[string]string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		return nil, fmt.Errorf("want a header and one row, got:\n%s", out)
	}
	head, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	if len(head) != len(row) {
		return nil, fmt.Errorf("%d columns in the header, %d in the row:\n%s", len(head), len(row), out)
	}
	m := map[string]string{}
	for i, h := range head {
		m[h] = row[i]
	}
	return m, nil
}

// bucketRepaired deletes b's bucket with nats.go and waits until the
// operator has created it again (JetStream's STREAM.CREATED advisory for the
// bucket's stream, after the deletion), with b's owner marker, b Ready and
// the bucket usable.
//
// What the recreated bucket holds is not checked: nats-server 2.15.2, given
// a create of the same stream while it is still removing the deleted one's
// files, can bring the deleted messages back (seen once in this test, an
// ObjectStore back with its 2 messages, and reproduced about once in 30
// delete + immediate re-create cycles outside the operator). The count is
// logged.
func (s *suite) bucketRepaired(ctx context.Context, b bucketSample) error {
	created, err := s.nc.SubscribeSync("$JS.EVENT.ADVISORY.STREAM.CREATED." + b.stream())
	if err != nil {
		return err
	}
	defer func() { _ = created.Unsubscribe() }()
	if err := s.nc.Flush(); err != nil {
		return err
	}
	begin := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if b.kind == "EventKeyValue" {
		err = s.js.DeleteKeyValue(dctx, b.bucket)
	} else {
		err = s.js.DeleteObjectStore(dctx, b.bucket)
	}
	cancel()
	if err != nil {
		return fmt.Errorf("%s: deleting the bucket out of band: %w", b, err)
	}
	if _, err := created.NextMsg(30 * time.Second); err != nil {
		return fmt.Errorf("%s deleted out of band: no STREAM.CREATED advisory for %s within 30s: %w", b, b.stream(), err)
	}
	took := time.Since(begin)
	info, err := s.streamInfo(ctx, b.stream())
	if err != nil {
		return fmt.Errorf("%s: recreated %s: %w", b, b.stream(), err)
	}
	if got := info.Config.Metadata[ownerKey]; got != samplesNS+"/"+b.name {
		return fmt.Errorf("%s: recreated %s has %s=%q, want %q", b, b.stream(), ownerKey, got, samplesNS+"/"+b.name)
	}
	if _, err := s.kubectl(90*time.Second, "wait", "--for=condition=Ready", b.short+"/"+b.name, "-n", samplesNS, "--timeout=60s"); err != nil {
		return err
	}
	logf(s.t, s.start, "%s: bucket deleted out of band, recreated by the operator %s after the delete request (%d messages in it)",
		b, took.Round(time.Millisecond), info.State.Msgs)
	return s.putAndGet(ctx, b)
}
