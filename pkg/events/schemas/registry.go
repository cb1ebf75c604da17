package schemas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/giia/eventstream-operator/pkg/events"
)

// UnknownTypes is what a Registry does with an event whose (type, version)
// has no schema in the bucket.
type UnknownTypes int

const (
	// AllowUnknown lets such events through unvalidated (the default), so
	// that turning validation on does not stop a service whose events have
	// no schema yet.
	AllowUnknown UnknownTypes = iota
	// RejectUnknown refuses them: a *events.ValidationError for field
	// "schemaversion" naming the type and version that have no schema.
	RejectUnknown
)

// Option configures Open, Register and Unregister.
type Option func(*options) error

type options struct {
	bucket  string
	unknown UnknownTypes
	poll    time.Duration
}

func newOptions(opts []Option) (options, error) {
	o := options{bucket: DefaultBucket, poll: DefaultPollInterval}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// DefaultPollInterval is how often an open Registry looks for its bucket
// while the bucket does not exist.
const DefaultPollInterval = time.Second

// WithBucket names the KeyValue bucket of the registry (default
// DefaultBucket).
func WithBucket(name string) Option {
	return func(o *options) error {
		if err := events.ValidateName(name); err != nil {
			return &events.ValidationError{Field: "bucket", Reason: err.Error()}
		}
		o.bucket = name
		return nil
	}
}

// WithUnknownTypes sets what the registry does with events whose type and
// version have no schema (default AllowUnknown).
func WithUnknownTypes(policy UnknownTypes) Option {
	return func(o *options) error {
		if policy != AllowUnknown && policy != RejectUnknown {
			return &events.ValidationError{Field: "unknownTypes", Reason: fmt.Sprintf("unknown policy %d", policy)}
		}
		o.unknown = policy
		return nil
	}
}

// WithPollInterval sets how often an open Registry looks for a bucket that
// does not exist yet (default DefaultPollInterval).
func WithPollInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return &events.ValidationError{Field: "pollInterval", Reason: "must be positive"}
		}
		o.poll = d
		return nil
	}
}

// Registry is a cache of the registry bucket's schemas, compiled, kept up
// to date by watching the bucket: a schema put, changed or deleted applies
// to the next event validated, without a restart. It implements
// events.DataValidator, for events.WithDataValidator and
// events.SubscriberConfig.DataValidator. It is safe for concurrent use.
//
// A key whose value is not a Record, whose record does not match its key,
// or whose schema does not compile is kept as a broken schema: events of
// that type and version are refused with the reason, and no other type is
// affected.
type Registry struct {
	js   jetstream.JetStream
	opts options

	mu      sync.RWMutex
	entries map[typeVersion]*entry

	cancel context.CancelFunc
	done   chan struct{}
}

type typeVersion struct{ typ, version string }

// entry is one key of the bucket: a compiled schema, or why it is unusable.
type entry struct {
	uri    string
	schema *Schema
	broken string
}

// Open reads the registry bucket into a cache and keeps watching it until
// Close. When the bucket does not exist, Open fails under RejectUnknown
// (every event would be refused: an error matching events.ErrNotFound);
// under AllowUnknown it returns an empty registry that looks for the bucket
// every poll interval and loads it when it appears. A bucket deleted while
// the registry watches it leaves the last schemas seen in force until it
// exists again; its contents then replace them (the registry checks that
// its bucket is still the same one every CheckIntervalFactor poll
// intervals). ctx bounds the initial read only.
func Open(ctx context.Context, js jetstream.JetStream, opts ...Option) (*Registry, error) {
	if js == nil {
		return nil, &events.ValidationError{Field: "jetstream", Reason: "is nil"}
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	r := &Registry{js: js, opts: o, entries: map[typeVersion]*entry{}, done: make(chan struct{})}
	kv, err := js.KeyValue(ctx, o.bucket)
	if err != nil && (!errors.Is(err, jetstream.ErrBucketNotFound) || o.unknown == RejectUnknown) {
		return nil, opError("open schema registry", o.bucket, err)
	}
	var w *watch
	if kv != nil {
		if w, err = r.load(ctx, kv); err != nil {
			return nil, opError("watch schema registry", o.bucket, err)
		}
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.run(runCtx, w)
	return r, nil
}

// CheckIntervalFactor: an open Registry checks, every this many poll
// intervals, that its bucket still exists and is the one it watches.
const CheckIntervalFactor = 5

// watch is a running watch of one incarnation of the bucket.
type watch struct {
	kv      jetstream.KeyValue
	w       jetstream.KeyWatcher
	created time.Time // the bucket stream's creation time
}

// load starts a watch of kv and applies its initial values, replacing the
// cache once they are all in.
func (r *Registry) load(ctx context.Context, kv jetstream.KeyValue) (*watch, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, err
	}
	created := bucketCreated(st)
	w, err := kv.WatchAll(context.Background())
	if err != nil {
		return nil, err
	}
	fresh := map[typeVersion]*entry{}
	for {
		select {
		case u, ok := <-w.Updates():
			if !ok {
				_ = w.Stop()
				return nil, errors.New("watcher stopped")
			}
			if u == nil { // initial values done
				r.mu.Lock()
				r.entries = fresh
				r.mu.Unlock()
				return &watch{kv: kv, w: w, created: created}, nil
			}
			if tv, e, ok := decodeEntry(u); ok && e != nil {
				fresh[tv] = e
			}
		case <-ctx.Done():
			_ = w.Stop()
			return nil, ctx.Err()
		}
	}
}

func bucketCreated(st jetstream.KeyValueStatus) time.Time {
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo() != nil {
		return bs.StreamInfo().Created
	}
	return time.Time{}
}

// run applies the watch's updates, and looks for the bucket while it has
// none.
func (r *Registry) run(ctx context.Context, w *watch) {
	defer close(r.done)
	for {
		if w == nil {
			w = r.waitForBucket(ctx)
			if w == nil {
				return // closed
			}
		}
		if !r.follow(ctx, w) {
			return
		}
		w = nil // the watch ended or the bucket changed: open it again
	}
}

// waitForBucket polls for the bucket until it exists (returning a loaded
// watch) or ctx ends (nil).
func (r *Registry) waitForBucket(ctx context.Context) *watch {
	t := time.NewTicker(r.opts.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, 10*r.opts.poll+5*time.Second)
		kv, err := r.js.KeyValue(lctx, r.opts.bucket)
		var w *watch
		if err == nil {
			w, err = r.load(lctx, kv)
		}
		cancel()
		if err == nil {
			return w
		}
	}
}

// follow applies w's updates until ctx ends (false), or w ends or its
// bucket is gone or replaced (true).
func (r *Registry) follow(ctx context.Context, w *watch) bool {
	defer func() { _ = w.w.Stop() }()
	check := time.NewTicker(CheckIntervalFactor * r.opts.poll)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-check.C:
			if !r.sameBucket(ctx, w) {
				return true
			}
		case u, ok := <-w.w.Updates():
			if !ok {
				return true
			}
			if u == nil {
				continue
			}
			tv, e, ok := decodeEntry(u)
			if !ok {
				continue
			}
			r.mu.Lock()
			if e == nil {
				delete(r.entries, tv)
			} else {
				r.entries[tv] = e
			}
			r.mu.Unlock()
		}
	}
}

// sameBucket reports whether w's bucket still exists and was not created
// again since w started; a failure to ask (a disconnection) counts as yes.
func (r *Registry) sameBucket(ctx context.Context, w *watch) bool {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := w.kv.Status(cctx)
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return false
	case err != nil:
		return true
	}
	return bucketCreated(st).Equal(w.created)
}

// decodeEntry turns a watch update into a cache entry: nil for a deleted
// key; ok false for a key that is not Key(type, version) of any pair.
func decodeEntry(u jetstream.KeyValueEntry) (typeVersion, *entry, bool) {
	typ, version, ok := parseKey(u.Key())
	if !ok {
		return typeVersion{}, nil, false
	}
	tv := typeVersion{typ, version}
	if u.Operation() != jetstream.KeyValuePut {
		return tv, nil, true
	}
	return tv, compileEntry(u.Key(), typ, version, u.Value()), true
}

func compileEntry(key, typ, version string, value []byte) *entry {
	e := &entry{uri: URI(typ, version)}
	var rec Record
	if err := json.Unmarshal(value, &rec); err != nil {
		e.broken = fmt.Sprintf("the value under key %q is not a schema record: %v", key, err)
		return e
	}
	if rec.Type != typ || rec.Version != version {
		e.broken = fmt.Sprintf("the record under key %q is for type %q version %q", key, rec.Type, rec.Version)
		return e
	}
	s, err := Compile(rec.Schema)
	if err != nil {
		e.broken = "the schema does not compile: " + err.Error()
		return e
	}
	e.schema = s
	return e
}

// parseKey inverts Key: the last two tokens are the version, the rest the
// escaped type. A key Key would not produce is refused.
func parseKey(key string) (typ, version string, ok bool) {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return "", "", false
	}
	j := strings.LastIndexByte(key[:i], '.')
	if j <= 0 {
		return "", "", false
	}
	typ, ok = unescape(key[:j])
	if !ok {
		return "", "", false
	}
	version, ok = unescape(key[j+1:])
	if !ok || Key(typ, version) != key {
		return "", "", false
	}
	return typ, version, true
}

func unescape(s string) (string, bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), true
}

// Close stops watching the bucket. The cache stays as it was: a registry
// used after Close validates against the schemas it last saw.
func (r *Registry) Close() {
	r.cancel()
	<-r.done
}

// Bucket returns the name of the registry's bucket.
func (r *Registry) Bucket() string { return r.opts.bucket }

// printer renders the validator's messages in English, as its Error does.
var printer = message.NewPrinter(language.English)

// ValidateData implements events.DataValidator: it validates e's data
// against the schema of (e.Type, e.SchemaVersion). See the package
// documentation of events.DataValidator for the results. Data is decoded
// once, into the value the validator walks; an event without data is
// validated as JSON null.
func (r *Registry) ValidateData(e *events.Event) (string, error) {
	if e == nil {
		return "", &events.ValidationError{Field: "event", Reason: "is nil"}
	}
	r.mu.RLock()
	en := r.entries[typeVersion{e.Type, e.SchemaVersion}]
	r.mu.RUnlock()
	if en == nil {
		if r.opts.unknown == RejectUnknown {
			return "", &events.ValidationError{Field: "schemaversion", Reason: fmt.Sprintf("no schema for type %q version %q in registry %s", e.Type, e.SchemaVersion, r.opts.bucket)}
		}
		return "", nil
	}
	if en.broken != "" {
		return en.uri, &events.ValidationError{Field: "dataschema", Reason: fmt.Sprintf("schema %s is unusable: %s", en.uri, en.broken)}
	}
	if !isJSON(e.DataContentType) {
		return en.uri, &events.ValidationError{Field: "datacontenttype", Reason: fmt.Sprintf("%q is not JSON but type %q version %q has a JSON schema", e.DataContentType, e.Type, e.SchemaVersion)}
	}
	var v any
	if len(e.Data) > 0 {
		var err error
		if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(e.Data)); err != nil {
			return en.uri, &events.ValidationError{Field: "data", Reason: "not valid JSON: " + err.Error()}
		}
	}
	if err := en.schema.Validate(v); err != nil {
		return en.uri, validationError(err)
	}
	return en.uri, nil
}

func isJSON(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, _ := strings.Cut(strings.ToLower(ct), ";")
	mt = strings.TrimSpace(mt)
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// validationError turns the validator's error tree into its failing
// leaves: the first one's instance location as the JSON pointer and its
// message as the reason, followed by up to maxLeaves-1 others ("; at
// /email: got number, want string") and how many more failed.
func validationError(err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &events.ValidationError{Field: "data", Reason: err.Error()}
	}
	var tree []*jsonschema.ValidationError
	collectLeaves(ve, &tree)
	// The validator walks objects in map order: sort, so that the same
	// data always gets the same message.
	leaves := make([]leaf, len(tree))
	for i, l := range tree {
		leaves[i] = leaf{pointer(l.InstanceLocation), l.ErrorKind.LocalizedString(printer)}
	}
	slices.SortFunc(leaves, func(a, b leaf) int {
		if c := strings.Compare(a.pointer, b.pointer); c != 0 {
			return c
		}
		return strings.Compare(a.reason, b.reason)
	})
	var b strings.Builder
	b.WriteString(leaves[0].reason)
	for i, l := range leaves[1:] {
		if i+1 >= maxLeaves {
			fmt.Fprintf(&b, " (and %d more)", len(leaves)-maxLeaves)
			break
		}
		b.WriteString("; ")
		if l.pointer != "" {
			b.WriteString("at " + l.pointer + ": ")
		}
		b.WriteString(l.reason)
	}
	return &events.ValidationError{Field: "data", Pointer: leaves[0].pointer, Reason: b.String()}
}

type leaf struct{ pointer, reason string }

// maxLeaves bounds how many failures a reason lists.
const maxLeaves = 3

func collectLeaves(ve *jsonschema.ValidationError, out *[]*jsonschema.ValidationError) {
	if len(ve.Causes) == 0 {
		*out = append(*out, ve)
		return
	}
	for _, c := range ve.Causes {
		collectLeaves(c, out)
	}
}

// pointer is the RFC 6901 JSON pointer of a token path.
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// Register stores rec in the registry bucket (creating the bucket if it is
// missing), for services and tests that fill the registry without
// Kubernetes. The record is checked first: a type, a "major.minor" version,
// a known compatibility (empty means Backward), a schema that compiles; a
// bad record is a *events.ValidationError naming the field. Register does
// not check compatibility against other minors: the operator does that for
// EventSchema resources. A running Registry sees the change within a
// second.
func Register(ctx context.Context, js jetstream.JetStream, rec Record, opts ...Option) error {
	o, err := newOptions(opts)
	if err != nil {
		return err
	}
	if err := checkRecord(&rec); err != nil {
		return err
	}
	kv, err := js.KeyValue(ctx, o.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: o.bucket, Description: "event schema registry: JSON Schemas of event data by type and version"})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, o.bucket)
		}
	}
	if err != nil {
		return opError("open schema registry", o.bucket, err)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return &events.ValidationError{Field: "record", Reason: err.Error()}
	}
	if _, err := kv.Put(ctx, Key(rec.Type, rec.Version), b); err != nil {
		return opError("register schema", Key(rec.Type, rec.Version), err)
	}
	return nil
}

func checkRecord(rec *Record) error {
	invalid := func(field, reason string) error { return &events.ValidationError{Field: field, Reason: reason} }
	if rec.Type == "" {
		return invalid("type", "must not be empty")
	}
	if _, _, err := ParseVersion(rec.Version); err != nil {
		return invalid("version", err.Error())
	}
	switch rec.Compatibility {
	case "":
		rec.Compatibility = Backward
	case Backward, None:
	default:
		return invalid("compatibility", fmt.Sprintf("%q is not %s or %s", rec.Compatibility, Backward, None))
	}
	if len(rec.Schema) == 0 {
		return invalid("schema", "must not be empty")
	}
	if _, err := Compile(rec.Schema); err != nil {
		return invalid("schema", err.Error())
	}
	return nil
}

// Unregister deletes the schema of (eventType, version) from the registry
// bucket. A schema or bucket that does not exist is not an error.
func Unregister(ctx context.Context, js jetstream.JetStream, eventType, version string, opts ...Option) error {
	o, err := newOptions(opts)
	if err != nil {
		return err
	}
	kv, err := js.KeyValue(ctx, o.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return opError("open schema registry", o.bucket, err)
	}
	if err := kv.Delete(ctx, Key(eventType, version)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return opError("unregister schema", Key(eventType, version), err)
	}
	return nil
}

// opError classifies a registry failure with the events sentinels.
func opError(op, name string, err error) error {
	kind := events.ErrPermanent
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kind = events.ErrNotFound
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		kind = events.ErrTimeout
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrConnectionClosed):
		kind = events.ErrConnection
	}
	return &events.OpError{Op: op, Name: name, Kind: kind, Err: err}
}

var _ events.DataValidator = (*Registry)(nil)
