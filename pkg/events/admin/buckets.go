package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/internal/shared"
)

// A KeyValue or ObjectStore bucket is a JetStream stream underneath: KV_<bucket>
// or OBJ_<bucket>, with a layout nats.go's CreateKeyValue/CreateObjectStore
// give it (subjects, rollups, direct gets, discard new). The functions here
// build exactly that stream configuration (KeyValueConfig.Stream,
// ObjectStoreConfig.Stream) and create, read and update the stream in one
// request each, so that the operator reads a bucket like any stream, and
// compare the managed settings, the layout included, so that a bucket
// changed outside is repaired.

const (
	// KeyValueStreamPrefix prefixes a KeyValue bucket's stream name.
	KeyValueStreamPrefix = "KV_"
	// ObjectStoreStreamPrefix prefixes an ObjectStore bucket's stream name.
	ObjectStoreStreamPrefix = "OBJ_"
	// KeyValueMaxHistory is the most values JetStream keeps per key.
	KeyValueMaxHistory = jetstream.KeyValueMaxHistory
	// bucketDuplicateWindow is the duplicate window nats.go gives a bucket's
	// stream (or its TTL, when shorter).
	bucketDuplicateWindow = 2 * time.Minute
)

var bucketNameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// ValidateBucketName checks a bucket name: letters, digits, '_' and '-'.
func ValidateBucketName(name string) error {
	if name == "" {
		return errors.New("must not be empty")
	}
	if !bucketNameRe.MatchString(name) {
		return fmt.Errorf("%q: a bucket name contains only letters, digits, '_' and '-'", name)
	}
	if len(name) > 255-len(ObjectStoreStreamPrefix) {
		return fmt.Errorf("must be at most %d bytes, got %d", 255-len(ObjectStoreStreamPrefix), len(name))
	}
	return nil
}

// KeyValueConfig is a JetStream KeyValue bucket as the operator declares it
// (an EventKeyValue). Start from NewKeyValueConfig for the house defaults.
type KeyValueConfig struct {
	Bucket       string
	Description  string
	History      uint8         // values kept per key, 1 to 64; 0: 1
	TTL          time.Duration // how long a value is kept; 0: until deleted
	MaxValueSize int32         // 0 or -1: unlimited
	MaxBytes     int64         // 0 or -1: unlimited
	Storage      jetstream.StorageType
	Replicas     int // 0: 1
	Placement    *jetstream.Placement
	Compression  bool
	RePublish    *jetstream.RePublish
	// Mirror names another bucket (by bucket name, or its KV_ stream).
	Mirror *events.StreamSource
	// Sources name other buckets (by bucket name, or their KV_ stream); a
	// source with SubjectTransforms is taken as it is, its Name the full
	// name of any stream, as nats.go does.
	Sources []events.StreamSource
	// LimitMarkerTTL, when positive, makes JetStream leave a delete marker,
	// kept that long, when a limit removes a key (nats-server 2.11+).
	LimitMarkerTTL time.Duration
	Metadata       map[string]string
}

// NewKeyValueConfig returns a bucket with the house defaults: file storage,
// one replica, history 1, 1 GiB, no TTL (a bucket is not an event log), no
// limit on a value's size.
func NewKeyValueConfig(bucket string) KeyValueConfig {
	return KeyValueConfig{
		Bucket:       bucket,
		History:      1,
		MaxValueSize: events.Unlimited,
		MaxBytes:     events.DefaultMaxBytes,
		Storage:      events.DefaultStorage,
		Replicas:     events.DefaultReplicas,
	}
}

// ObjectStoreConfig is a JetStream ObjectStore bucket as the operator
// declares it (an EventObjectStore). Start from NewObjectStoreConfig.
type ObjectStoreConfig struct {
	Bucket      string
	Description string
	TTL         time.Duration // how long an object is kept; 0: until deleted
	MaxBytes    int64         // 0 or -1: unlimited
	Storage     jetstream.StorageType
	Replicas    int // 0: 1
	Placement   *jetstream.Placement
	Compression bool
	Metadata    map[string]string
}

// NewObjectStoreConfig returns a bucket with the house defaults: file
// storage, one replica, 1 GiB, no TTL.
func NewObjectStoreConfig(bucket string) ObjectStoreConfig {
	return ObjectStoreConfig{
		Bucket:   bucket,
		MaxBytes: events.DefaultMaxBytes,
		Storage:  events.DefaultStorage,
		Replicas: events.DefaultReplicas,
	}
}

func invalidField(field, format string, args ...any) error {
	return &events.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// validateBucketCommon checks what both bucket kinds share.
func validateBucketCommon(bucket string, ttl time.Duration, maxBytes int64, storage jetstream.StorageType, replicas int) error {
	if err := ValidateBucketName(bucket); err != nil {
		return invalidField("bucket", "%v", err)
	}
	if ttl < 0 {
		return invalidField("ttl", "must not be negative")
	}
	if maxBytes < events.Unlimited {
		return invalidField("maxBytes", "must be -1 (unlimited) or more, got %d", maxBytes)
	}
	switch storage {
	case jetstream.FileStorage, jetstream.MemoryStorage:
	default:
		return invalidField("storage", "unknown storage type %d", storage)
	}
	if replicas < 0 || replicas > events.MaxReplicas {
		return invalidField("replicas", "must be between 1 and %d, got %d", events.MaxReplicas, replicas)
	}
	return nil
}

// Validate checks the configuration before anything is sent to JetStream;
// the error is an *events.ValidationError naming the field.
func (c KeyValueConfig) Validate() error {
	if err := validateBucketCommon(c.Bucket, c.TTL, c.MaxBytes, c.Storage, c.Replicas); err != nil {
		return err
	}
	if c.History > KeyValueMaxHistory {
		return invalidField("history", "must be between 1 and %d, got %d", KeyValueMaxHistory, c.History)
	}
	if c.MaxValueSize < events.Unlimited {
		return invalidField("maxValueSize", "must be -1 (unlimited) or more, got %d", c.MaxValueSize)
	}
	if c.LimitMarkerTTL < 0 {
		return invalidField("limitMarkerTTL", "must not be negative")
	}
	if c.LimitMarkerTTL > 0 && c.LimitMarkerTTL < time.Second {
		return invalidField("limitMarkerTTL", "must be at least 1s (JetStream's minimum), got %s", c.LimitMarkerTTL)
	}
	if c.RePublish != nil {
		if err := shared.ValidateSubject(c.RePublish.Destination, true); err != nil {
			return invalidField("republish.destination", "%v", err)
		}
		if c.RePublish.Source != "" {
			if err := shared.ValidateSubject(c.RePublish.Source, true); err != nil {
				return invalidField("republish.source", "%v", err)
			}
		}
	}
	if c.Mirror != nil && len(c.Sources) > 0 {
		return invalidField("sources", "a mirror bucket cannot also have sources")
	}
	if c.Mirror != nil {
		if err := validateBucketSource(*c.Mirror); err != nil {
			return invalidField("mirror.name", "%v", err)
		}
	}
	for i, s := range c.Sources {
		if err := validateBucketSource(s); err != nil {
			return invalidField(fmt.Sprintf("sources[%d].name", i), "%v", err)
		}
		if s.FilterSubject != "" {
			if err := shared.ValidateSubject(s.FilterSubject, true); err != nil {
				return invalidField(fmt.Sprintf("sources[%d].filterSubject", i), "%v", err)
			}
		}
	}
	return nil
}

func validateBucketSource(s events.StreamSource) error {
	if len(s.SubjectTransforms) > 0 {
		return events.ValidateName(s.Name) // a stream's full name
	}
	return ValidateBucketName(strings.TrimPrefix(s.Name, KeyValueStreamPrefix))
}

// Validate checks the configuration before anything is sent to JetStream;
// the error is an *events.ValidationError naming the field.
func (c ObjectStoreConfig) Validate() error {
	return validateBucketCommon(c.Bucket, c.TTL, c.MaxBytes, c.Storage, c.Replicas)
}

// JetStream translates the configuration to nats.go's (for
// js.CreateKeyValue and friends).
func (c KeyValueConfig) JetStream() jetstream.KeyValueConfig {
	cfg := jetstream.KeyValueConfig{
		Bucket:         c.Bucket,
		Description:    c.Description,
		MaxValueSize:   c.MaxValueSize,
		History:        c.History,
		TTL:            c.TTL,
		MaxBytes:       c.MaxBytes,
		Storage:        c.Storage,
		Replicas:       c.Replicas,
		Placement:      clonePlacement(c.Placement),
		Compression:    c.Compression,
		LimitMarkerTTL: c.LimitMarkerTTL,
		Metadata:       maps.Clone(c.Metadata),
	}
	if c.RePublish != nil {
		r := *c.RePublish
		cfg.RePublish = &r
	}
	if c.Mirror != nil {
		cfg.Mirror = c.Mirror.JetStream()
	}
	for _, s := range c.Sources {
		cfg.Sources = append(cfg.Sources, s.JetStream())
	}
	return cfg
}

// JetStream translates the configuration to nats.go's (for
// js.CreateObjectStore and friends).
func (c ObjectStoreConfig) JetStream() jetstream.ObjectStoreConfig {
	return jetstream.ObjectStoreConfig{
		Bucket:      c.Bucket,
		Description: c.Description,
		TTL:         c.TTL,
		MaxBytes:    c.MaxBytes,
		Storage:     c.Storage,
		Replicas:    c.Replicas,
		Placement:   clonePlacement(c.Placement),
		Compression: c.Compression,
		Metadata:    maps.Clone(c.Metadata),
	}
}

func clonePlacement(p *jetstream.Placement) *jetstream.Placement {
	if p == nil {
		return nil
	}
	out := *p
	out.Tags = slices.Clone(p.Tags)
	return &out
}

// Stream is the configuration of the bucket's stream, exactly as nats.go's
// CreateKeyValue builds it (the tests compare the two on a server).
func (c KeyValueConfig) Stream() jetstream.StreamConfig {
	kv := c.JetStream()
	history := int64(1)
	if kv.History > 0 {
		history = int64(kv.History)
	}
	dup := bucketDuplicateWindow
	if kv.TTL > 0 && kv.TTL < dup {
		dup = kv.TTL
	}
	cfg := jetstream.StreamConfig{
		Name:              KeyValueStreamPrefix + c.Bucket,
		Description:       kv.Description,
		MaxMsgsPerSubject: history,
		MaxBytes:          orUnlimited(kv.MaxBytes),
		MaxAge:            kv.TTL,
		MaxMsgSize:        int32(orUnlimited(int64(kv.MaxValueSize))),
		Storage:           kv.Storage,
		Replicas:          max(kv.Replicas, 1),
		Placement:         kv.Placement,
		AllowRollup:       true,
		DenyDelete:        true,
		Duplicates:        dup,
		MaxMsgs:           events.Unlimited,
		MaxConsumers:      events.Unlimited,
		AllowDirect:       true,
		RePublish:         kv.RePublish,
		Discard:           jetstream.DiscardNew,
		Metadata:          kv.Metadata,
	}
	if kv.Compression {
		cfg.Compression = jetstream.S2Compression
	}
	if kv.LimitMarkerTTL > 0 {
		cfg.AllowMsgTTL = true
		cfg.SubjectDeleteMarkerTTL = kv.LimitMarkerTTL
	}
	subjects := []string{"$KV." + c.Bucket + ".>"}
	switch {
	case kv.Mirror != nil:
		m := *kv.Mirror
		if !strings.HasPrefix(m.Name, KeyValueStreamPrefix) {
			m.Name = KeyValueStreamPrefix + m.Name
		}
		cfg.Mirror = &m
		cfg.MirrorDirect = true
		subjects = nil
	case len(kv.Sources) > 0:
		for _, s := range kv.Sources {
			if len(s.SubjectTransforms) > 0 {
				cfg.Sources = append(cfg.Sources, s)
				continue
			}
			ss := *s
			from := strings.TrimPrefix(ss.Name, KeyValueStreamPrefix)
			ss.Name = KeyValueStreamPrefix + from
			if ss.External == nil || from != c.Bucket {
				ss.SubjectTransforms = []jetstream.SubjectTransformConfig{{Source: "$KV." + from + ".>", Destination: "$KV." + c.Bucket + ".>"}}
			}
			cfg.Sources = append(cfg.Sources, &ss)
		}
	}
	cfg.Subjects = subjects
	return cfg
}

// Stream is the configuration of the bucket's stream, exactly as nats.go's
// CreateObjectStore builds it.
func (c ObjectStoreConfig) Stream() jetstream.StreamConfig {
	o := c.JetStream()
	cfg := jetstream.StreamConfig{
		Name:        ObjectStoreStreamPrefix + c.Bucket,
		Description: o.Description,
		Subjects:    []string{"$O." + c.Bucket + ".C.>", "$O." + c.Bucket + ".M.>"},
		MaxAge:      o.TTL,
		MaxBytes:    orUnlimited(o.MaxBytes),
		Storage:     o.Storage,
		Replicas:    max(o.Replicas, 1),
		Placement:   o.Placement,
		Discard:     jetstream.DiscardNew,
		AllowRollup: true,
		AllowDirect: true,
		Metadata:    o.Metadata,
	}
	if o.Compression {
		cfg.Compression = jetstream.S2Compression
	}
	return cfg
}

func orUnlimited(v int64) int64 {
	if v == 0 {
		return events.Unlimited
	}
	return v
}

// managedKeyValue is the managed part of a KeyValue bucket's stream,
// normalised so that a configuration and the server's echo compare equal.
// Field names (lower-cased first letter) are the EventKeyValue's; the
// layout fields below Metadata are what makes the stream a bucket (nats.go
// sets them), reported by their stream names when changed outside.
type managedKeyValue struct {
	Description    string
	History        int64
	TTL            time.Duration
	MaxValueSize   int64
	MaxBytes       int64
	Storage        jetstream.StorageType
	Replicas       int
	Placement      jetstream.Placement
	Compression    jetstream.StoreCompression
	Republish      jetstream.RePublish
	Mirror         jetstream.StreamSource
	Sources        []jetstream.StreamSource
	LimitMarkerTTL time.Duration
	Metadata       map[string]string

	Subjects        []string
	AllowRollup     bool
	DenyDelete      bool
	DenyPurge       bool
	AllowDirect     bool
	MirrorDirect    bool
	Discard         jetstream.DiscardPolicy
	DuplicateWindow time.Duration
	MaxMsgs         int64
	AllowMsgTTL     bool
}

func normaliseKeyValue(c jetstream.StreamConfig) managedKeyValue {
	m := managedKeyValue{
		Description:     c.Description,
		History:         c.MaxMsgsPerSubject,
		TTL:             c.MaxAge,
		MaxValueSize:    limit(int64(c.MaxMsgSize)),
		MaxBytes:        limit(c.MaxBytes),
		Storage:         c.Storage,
		Replicas:        max(c.Replicas, 1),
		Compression:     c.Compression,
		LimitMarkerTTL:  c.SubjectDeleteMarkerTTL,
		Metadata:        userMetadata(c.Metadata),
		Subjects:        nilIfEmpty(c.Subjects),
		AllowRollup:     c.AllowRollup,
		DenyDelete:      c.DenyDelete,
		DenyPurge:       c.DenyPurge,
		AllowDirect:     c.AllowDirect,
		MirrorDirect:    c.MirrorDirect,
		Discard:         c.Discard,
		DuplicateWindow: c.Duplicates,
		MaxMsgs:         limit(c.MaxMsgs),
		AllowMsgTTL:     c.AllowMsgTTL,
	}
	if c.Placement != nil {
		m.Placement = jetstream.Placement{Cluster: c.Placement.Cluster, Tags: nilIfEmpty(c.Placement.Tags)}
	}
	if c.RePublish != nil {
		m.Republish = *c.RePublish
		if m.Republish.Source == "" {
			m.Republish.Source = ">" // the server's echo of "all"
		}
	}
	if c.Mirror != nil {
		m.Mirror = normaliseSource(*c.Mirror)
	}
	for _, s := range c.Sources {
		if s != nil {
			m.Sources = append(m.Sources, normaliseSource(*s))
		}
	}
	return m
}

// managedObjectStore is the managed part of an ObjectStore bucket's stream,
// normalised; field names are the EventObjectStore's, then the layout.
// Sealed is not managed: a sealed bucket stays sealed (status shows it).
type managedObjectStore struct {
	Description string
	TTL         time.Duration
	MaxBytes    int64
	Storage     jetstream.StorageType
	Replicas    int
	Placement   jetstream.Placement
	Compression jetstream.StoreCompression
	Metadata    map[string]string

	Subjects    []string
	AllowRollup bool
	AllowDirect bool
	DenyDelete  bool
	DenyPurge   bool
	Discard     jetstream.DiscardPolicy
	MaxMsgs     int64
}

func normaliseObjectStore(c jetstream.StreamConfig) managedObjectStore {
	m := managedObjectStore{
		Description: c.Description,
		TTL:         c.MaxAge,
		MaxBytes:    limit(c.MaxBytes),
		Storage:     c.Storage,
		Replicas:    max(c.Replicas, 1),
		Compression: c.Compression,
		Metadata:    userMetadata(c.Metadata),
		Subjects:    nilIfEmpty(c.Subjects),
		AllowRollup: c.AllowRollup,
		AllowDirect: c.AllowDirect,
		DenyDelete:  c.DenyDelete,
		DenyPurge:   c.DenyPurge,
		Discard:     c.Discard,
		MaxMsgs:     limit(c.MaxMsgs),
	}
	if c.Placement != nil {
		m.Placement = jetstream.Placement{Cluster: c.Placement.Cluster, Tags: nilIfEmpty(c.Placement.Tags)}
	}
	return m
}

// DiffKeyValue compares the desired bucket with its stream's configuration
// as the server has it (StreamInfo.Config) over every managed field and the
// bucket layout, and returns the names of the fields that differ (nil: in
// sync).
func DiffKeyValue(desired KeyValueConfig, actual jetstream.StreamConfig) []string {
	return diffFields(normaliseKeyValue(desired.Stream()), normaliseKeyValue(actual))
}

// DiffObjectStore compares the desired bucket with its stream's
// configuration (StreamInfo.Config) and returns the names of the fields that
// differ (nil: in sync).
func DiffObjectStore(desired ObjectStoreConfig, actual jetstream.StreamConfig) []string {
	return diffFields(normaliseObjectStore(desired.Stream()), normaliseObjectStore(actual))
}

// CheckKeyValueUpdate returns an *events.ImmutableFieldError when JetStream
// cannot change the bucket from actual to desired in place: its storage
// type, its mirror (or becoming or ceasing to be a mirror), or turning
// limit markers off (JetStream cannot disable per-message TTLs once on).
func CheckKeyValueUpdate(desired KeyValueConfig, actual jetstream.StreamConfig) error {
	immutable := func(field, reason string) error {
		return &events.ImmutableFieldError{Kind: "KeyValue bucket", Name: desired.Bucket, Field: field, Reason: reason}
	}
	want, have := normaliseKeyValue(desired.Stream()), normaliseKeyValue(actual)
	if want.Storage != have.Storage {
		return immutable("storage", fmt.Sprintf("the bucket stores to %s; the storage type cannot change after creation", have.Storage))
	}
	if !reflect.DeepEqual(want.Mirror, have.Mirror) {
		return immutable("mirror", "a bucket's mirror cannot change after creation")
	}
	if have.AllowMsgTTL && !want.AllowMsgTTL {
		return immutable("limitMarkerTTL", "limit markers cannot be turned off once on: JetStream cannot disable per-message TTLs of a stream")
	}
	return nil
}

// CheckObjectStoreUpdate returns an *events.ImmutableFieldError when
// JetStream cannot change the bucket from actual to desired in place: its
// storage type, or any change of a sealed bucket.
func CheckObjectStoreUpdate(desired ObjectStoreConfig, actual jetstream.StreamConfig) error {
	immutable := func(field, reason string) error {
		return &events.ImmutableFieldError{Kind: "ObjectStore bucket", Name: desired.Bucket, Field: field, Reason: reason}
	}
	if desired.Storage != actual.Storage {
		return immutable("storage", fmt.Sprintf("the bucket stores to %s; the storage type cannot change after creation", actual.Storage))
	}
	if actual.Sealed {
		return immutable("", "the bucket is sealed: a sealed bucket's configuration cannot change")
	}
	return nil
}

// GetKeyValueInfo returns the bucket's stream configuration and state (one
// JetStream request). A missing bucket is ErrNotFound.
func GetKeyValueInfo(ctx context.Context, js jetstream.StreamManager, bucket string) (*jetstream.StreamInfo, error) {
	return getBucketStream(ctx, js, "get KeyValue bucket", bucket, KeyValueStreamPrefix)
}

// GetObjectStoreInfo returns the bucket's stream configuration and state
// (one JetStream request). A missing bucket is ErrNotFound.
func GetObjectStoreInfo(ctx context.Context, js jetstream.StreamManager, bucket string) (*jetstream.StreamInfo, error) {
	return getBucketStream(ctx, js, "get ObjectStore bucket", bucket, ObjectStoreStreamPrefix)
}

func getBucketStream(ctx context.Context, js jetstream.StreamManager, op, bucket, prefix string) (*jetstream.StreamInfo, error) {
	if err := ValidateBucketName(bucket); err != nil {
		return nil, invalidField("bucket", "%v", err)
	}
	s, err := js.Stream(ctx, prefix+bucket)
	if err != nil {
		return nil, shared.Wrap(op, bucket, err)
	}
	return s.CachedInfo(), nil
}

// CreateKeyValue validates cfg and creates the bucket (its stream, as
// nats.go's CreateKeyValue would, in one request). A bucket of that name
// with another configuration is ErrExists.
func CreateKeyValue(ctx context.Context, js jetstream.StreamManager, cfg KeyValueConfig) (*jetstream.StreamInfo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return createBucketStream(ctx, js, "create KeyValue bucket", cfg.Bucket, cfg.Stream())
}

// CreateObjectStore validates cfg and creates the bucket (its stream, as
// nats.go's CreateObjectStore would, in one request). A bucket of that name
// with another configuration is ErrExists.
func CreateObjectStore(ctx context.Context, js jetstream.StreamManager, cfg ObjectStoreConfig) (*jetstream.StreamInfo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return createBucketStream(ctx, js, "create ObjectStore bucket", cfg.Bucket, cfg.Stream())
}

func createBucketStream(ctx context.Context, js jetstream.StreamManager, op, bucket string, cfg jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	s, err := shared.CreateStream(ctx, js, cfg)
	if err != nil {
		return nil, shared.Wrap(op, bucket, err)
	}
	return s.CachedInfo(), nil
}

// UpdateKeyValue validates cfg and applies it to the existing bucket; a
// change JetStream refuses in place is an *events.ImmutableFieldError, a
// missing bucket ErrNotFound.
func UpdateKeyValue(ctx context.Context, js jetstream.StreamManager, cfg KeyValueConfig) (*jetstream.StreamInfo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return updateBucketStream(ctx, js, "KeyValue bucket", cfg.Bucket, cfg.Stream())
}

// UpdateObjectStore validates cfg and applies it to the existing bucket; a
// change JetStream refuses in place is an *events.ImmutableFieldError, a
// missing bucket ErrNotFound.
func UpdateObjectStore(ctx context.Context, js jetstream.StreamManager, cfg ObjectStoreConfig) (*jetstream.StreamInfo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return updateBucketStream(ctx, js, "ObjectStore bucket", cfg.Bucket, cfg.Stream())
}

// codeStreamInvalidConfig is JetStream's JSStreamInvalidConfigF, the error
// of a change it cannot make in place.
const codeStreamInvalidConfig = 10052

func updateBucketStream(ctx context.Context, js jetstream.StreamManager, kind, bucket string, cfg jetstream.StreamConfig) (*jetstream.StreamInfo, error) {
	s, err := js.UpdateStream(ctx, cfg)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == codeStreamInvalidConfig {
			m := strings.ToLower(apiErr.Description)
			if strings.Contains(m, "can not") || strings.Contains(m, "cannot") {
				return nil, &events.ImmutableFieldError{Kind: kind, Name: bucket, Reason: apiErr.Description}
			}
		}
		return nil, shared.Wrap("update "+kind, bucket, err)
	}
	return s.CachedInfo(), nil
}

// DeleteKeyValue deletes the bucket and its values; a missing bucket is
// ErrNotFound.
func DeleteKeyValue(ctx context.Context, js jetstream.StreamManager, bucket string) error {
	return deleteBucketStream(ctx, js, "delete KeyValue bucket", bucket, KeyValueStreamPrefix)
}

// DeleteObjectStore deletes the bucket and its objects; a missing bucket is
// ErrNotFound.
func DeleteObjectStore(ctx context.Context, js jetstream.StreamManager, bucket string) error {
	return deleteBucketStream(ctx, js, "delete ObjectStore bucket", bucket, ObjectStoreStreamPrefix)
}

func deleteBucketStream(ctx context.Context, js jetstream.StreamManager, op, bucket, prefix string) error {
	if err := ValidateBucketName(bucket); err != nil {
		return invalidField("bucket", "%v", err)
	}
	return shared.Wrap(op, bucket, js.DeleteStream(ctx, prefix+bucket))
}

// CountObjects returns how many objects the ObjectStore bucket holds, links
// included and deleted objects not. Each object name has one metadata entry
// in the bucket's stream (the last written; a deleted object's says so), so
// it reads those entries with one batched direct get (one more per 8 MiB of
// metadata, some 40,000 objects). The bucket's
// stream allows direct gets (AllowDirect, as every bucket's).
func CountObjects(ctx context.Context, js jetstream.JetStream, bucket string) (int64, error) {
	if err := ValidateBucketName(bucket); err != nil {
		return 0, invalidField("bucket", "%v", err)
	}
	nc := js.Conn()
	subject := apiPrefix(js) + "DIRECT.GET." + ObjectStoreStreamPrefix + bucket
	var count int64
	seq := uint64(1)
	for {
		n, last, more, err := countObjectsBatch(ctx, nc, subject, "$O."+bucket+".M.>", seq)
		if err != nil {
			return 0, shared.Wrap("count objects", bucket, err)
		}
		count += n
		if !more {
			return count, nil
		}
		seq = last + 1
	}
}

// apiPrefix is the JetStream API prefix js uses ("$JS.API." by default).
func apiPrefix(js jetstream.JetStream) string {
	o := js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return "$JS.API."
}

// countObjectsBatch reads the metadata entries from sequence seq on, in one
// batched direct get, and counts those of live objects. It returns the last
// sequence read and whether entries remain.
func countObjectsBatch(ctx context.Context, nc *nats.Conn, subject, filter string, seq uint64) (count int64, last uint64, more bool, err error) {
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, 0, false, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, _ := json.Marshal(map[string]any{"seq": seq, "next_by_subj": filter, "batch": 1 << 30, "max_bytes": 8 << 20})
	if err := nc.PublishRequest(subject, inbox, req); err != nil {
		return 0, 0, false, err
	}
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return 0, 0, false, err
		}
		switch status := msg.Header.Get("Status"); status {
		case "":
		case "404": // no (more) entries
			return count, last, false, nil
		case "204": // end of batch
			pending, _ := strconv.ParseUint(msg.Header.Get("Nats-Num-Pending"), 10, 64)
			return count, last, pending > 0, nil
		case "503":
			return 0, 0, false, nats.ErrNoResponders
		default:
			return 0, 0, false, fmt.Errorf("direct get: status %s %s", status, msg.Header.Get("Description"))
		}
		last, _ = strconv.ParseUint(msg.Header.Get("Nats-Sequence"), 10, 64)
		var meta struct {
			Deleted bool `json:"deleted"`
		}
		if json.Unmarshal(msg.Data, &meta) == nil && !meta.Deleted {
			count++
		}
	}
}
