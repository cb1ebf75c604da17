package events

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
)

// House defaults for streams. The operator's CRD defaults and the Helm chart
// refer to these values; change them here.
const (
	DefaultMaxAge          = 7 * 24 * time.Hour
	DefaultMaxBytes        = int64(1 << 30) // 1 GiB
	DefaultDuplicateWindow = 2 * time.Minute
	DefaultReplicas        = 1
	DefaultStorage         = jetstream.FileStorage
	DefaultRetention       = jetstream.LimitsPolicy
	DefaultDiscard         = jetstream.DiscardOld
	// MaxReplicas is the most replicas JetStream allows for a stream.
	MaxReplicas = 5
	// Unlimited is the value JetStream uses for "no limit" on MaxMsgs,
	// MaxBytes, MaxMsgSize and MaxMsgsPerSubject.
	Unlimited = -1
)

// StreamSource names another stream a stream mirrors or sources from. Domain
// is a shorthand for External with APIPrefix "$JS.<domain>.API"; set one or
// the other.
type StreamSource struct {
	Name              string
	FilterSubject     string
	OptStartSeq       uint64
	OptStartTime      *time.Time
	SubjectTransforms []jetstream.SubjectTransformConfig
	Domain            string
	External          *jetstream.ExternalStream
}

// StreamConfig is a JetStream stream as this project declares it. Start from
// NewStreamConfig, which fills in the house defaults; a zero limit means what
// it means to JetStream (no limit), so the defaults are applied only there.
type StreamConfig struct {
	Name              string
	Description       string
	Subjects          []string
	Retention         jetstream.RetentionPolicy
	MaxAge            time.Duration // 0: no limit
	MaxBytes          int64         // 0 or -1: no limit
	MaxMsgs           int64         // 0 or -1: no limit
	MaxMsgSize        int32         // 0 or -1: no limit
	MaxMsgsPerSubject int64         // 0 or -1: no limit
	DuplicateWindow   time.Duration // 0: JetStream's default (2m, or MaxAge if shorter)
	Storage           jetstream.StorageType
	Discard           jetstream.DiscardPolicy
	Replicas          int
	Placement         *jetstream.Placement
	Compression       jetstream.StoreCompression
	AllowDirect       bool
	DenyDelete        bool
	DenyPurge         bool
	Mirror            *StreamSource
	Sources           []StreamSource
	Metadata          map[string]string

	// SubjectTransform rewrites the subjects of incoming messages before
	// they are stored.
	SubjectTransform *jetstream.SubjectTransformConfig
	// RePublish publishes a copy of every stored message on another subject.
	// An empty Source means every subject (">"), as the server stores it.
	RePublish *jetstream.RePublish
	// Sealed stops the stream for good: no message in or out, no delete, no
	// purge, no expiry. JetStream cannot create a sealed stream, so
	// CreateStream creates it and seals it in a second request; it cannot be
	// unsealed. A sealed stream reads as maxAge 0, discard New, denyDelete
	// and denyPurge, no allowRollup (JetStream stores it so).
	Sealed bool
	// AllowRollup lets publishers replace a subject's (or the stream's)
	// messages with the Nats-Rollup header; not with DenyPurge.
	AllowRollup bool
	// DiscardNewPerSubject refuses a new message on a subject that has
	// MaxMsgsPerSubject messages (needs Discard New).
	DiscardNewPerSubject bool
	// FirstSequence is the sequence of the first message; only at creation.
	FirstSequence uint64
	// AllowMsgTTL lets publishers set a per-message TTL (Nats-TTL header);
	// it cannot be turned off again.
	AllowMsgTTL bool
	// SubjectDeleteMarkerTTL leaves a delete marker with this TTL when
	// MaxAge removes a subject's last message (at least 1s; needs
	// AllowMsgTTL and AllowRollup).
	SubjectDeleteMarkerTTL time.Duration
	// ConsumerLimits are the defaults and maximums for the stream's
	// consumers (inactive threshold, max ack pending).
	ConsumerLimits jetstream.StreamConsumerLimits
	// NoAck: publishes are not acknowledged.
	NoAck bool
	// MaxConsumers is the most consumers the stream takes; 0 or -1: no
	// limit.
	MaxConsumers int
	// AllowMsgCounter makes the stream a counter stream (Nats-Incr
	// header); fixed at creation.
	AllowMsgCounter bool
	// AllowAtomicPublish allows atomic batch publishing.
	AllowAtomicPublish bool
	// AllowMsgSchedules allows scheduled messages (Nats-Schedule header);
	// it cannot be turned off again and needs AllowRollup.
	AllowMsgSchedules bool
	// AllowBatchPublish allows fast (non-atomic) batch publishing.
	AllowBatchPublish bool
	// PersistMode Async acknowledges a publish before it is flushed to
	// disk (file storage, one replica, no atomic publish); fixed at
	// creation.
	PersistMode jetstream.PersistModeType
}

// NewStreamConfig returns a stream with the house defaults: file storage,
// limits retention, 7 days max age, 1 GiB max bytes, discard old, a 2-minute
// duplicate window and one replica.
func NewStreamConfig(name string, subjects ...string) StreamConfig {
	return StreamConfig{
		Name:              name,
		Subjects:          subjects,
		Retention:         DefaultRetention,
		MaxAge:            DefaultMaxAge,
		MaxBytes:          DefaultMaxBytes,
		MaxMsgs:           Unlimited,
		MaxMsgSize:        Unlimited,
		MaxMsgsPerSubject: Unlimited,
		DuplicateWindow:   DefaultDuplicateWindow,
		Storage:           DefaultStorage,
		Discard:           DefaultDiscard,
		Replicas:          DefaultReplicas,
	}
}

// The streams every environment gets: one per service, and the dead-letter
// stream.
const (
	StreamAuth      = "AUTH_EVENTS"
	StreamCatalog   = "CATALOG_EVENTS"
	StreamDDMRP     = "DDMRP_EVENTS"
	StreamExecution = "EXECUTION_EVENTS"
	StreamAnalytics = "ANALYTICS_EVENTS"
	StreamAIAgent   = "AI_AGENT_EVENTS"
	StreamDLQ       = "DLQ_EVENTS"
)

// DefaultStreams returns the seven standard streams with the house defaults.
func DefaultStreams() []StreamConfig {
	def := func(name, subject, description string) StreamConfig {
		c := NewStreamConfig(name, subject)
		c.Description = description
		return c
	}
	return []StreamConfig{
		def(StreamAuth, "auth.>", "Authentication and user events"),
		def(StreamCatalog, "catalog.>", "Product catalog events"),
		def(StreamDDMRP, "ddmrp.>", "DDMRP buffer and planning events"),
		def(StreamExecution, "execution.>", "Order execution events"),
		def(StreamAnalytics, "analytics.>", "Analytics events"),
		def(StreamAIAgent, "ai_agent.>", "AI agent events"),
		def(StreamDLQ, "dlq.>", "Dead-lettered events from every stream"),
	}
}

// Validate checks the configuration before anything is sent to JetStream;
// the error is a *ValidationError naming the field.
func (c StreamConfig) Validate() error {
	invalid := func(field, format string, args ...any) error {
		return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if err := ValidateName(c.Name); err != nil {
		return invalid("name", "%v", err)
	}
	if c.Mirror != nil && len(c.Subjects) > 0 {
		return invalid("subjects", "a mirror cannot have subjects of its own")
	}
	if len(c.Subjects) == 0 && c.Mirror == nil && len(c.Sources) == 0 {
		return invalid("subjects", "at least one subject is required unless the stream is a mirror or has sources")
	}
	for i, s := range c.Subjects {
		if err := validateSubject(s, true); err != nil {
			return invalid(fmt.Sprintf("subjects[%d]", i), "%v", err)
		}
	}
	switch c.Retention {
	case jetstream.LimitsPolicy, jetstream.InterestPolicy, jetstream.WorkQueuePolicy:
	default:
		return invalid("retention", "unknown retention policy %d", c.Retention)
	}
	switch c.Storage {
	case jetstream.FileStorage, jetstream.MemoryStorage:
	default:
		return invalid("storage", "unknown storage type %d", c.Storage)
	}
	switch c.Discard {
	case jetstream.DiscardOld, jetstream.DiscardNew:
	default:
		return invalid("discard", "unknown discard policy %d", c.Discard)
	}
	if c.MaxAge < 0 {
		return invalid("maxAge", "must not be negative")
	}
	if c.DuplicateWindow < 0 {
		return invalid("duplicateWindow", "must not be negative")
	}
	if c.MaxAge > 0 && c.DuplicateWindow > c.MaxAge {
		return invalid("duplicateWindow", "%s is longer than maxAge %s", c.DuplicateWindow, c.MaxAge)
	}
	for field, v := range map[string]int64{"maxBytes": c.MaxBytes, "maxMsgs": c.MaxMsgs, "maxMsgSize": int64(c.MaxMsgSize), "maxMsgsPerSubject": c.MaxMsgsPerSubject} {
		if v < Unlimited {
			return invalid(field, "must be -1 (unlimited) or more, got %d", v)
		}
	}
	if c.Replicas < 0 || c.Replicas > MaxReplicas {
		return invalid("replicas", "must be between 1 and %d, got %d", MaxReplicas, c.Replicas)
	}
	if c.Mirror != nil {
		if err := ValidateName(c.Mirror.Name); err != nil {
			return invalid("mirror.name", "%v", err)
		}
		if f := c.Mirror.FilterSubject; f != "" {
			if err := validateSubject(f, true); err != nil {
				return invalid("mirror.filterSubject", "%v", err)
			}
		}
	}
	if err := c.validateFeatures(invalid); err != nil {
		return err
	}
	for i, s := range c.Sources {
		if err := ValidateName(s.Name); err != nil {
			return invalid(fmt.Sprintf("sources[%d].name", i), "%v", err)
		}
		if s.FilterSubject != "" {
			if err := validateSubject(s.FilterSubject, true); err != nil {
				return invalid(fmt.Sprintf("sources[%d].filterSubject", i), "%v", err)
			}
		}
	}
	return nil
}

// validateFeatures checks the settings beyond the limits, in the
// combinations JetStream refuses (nats-server's checkStreamCfg), so that the
// error names the field and says what to do instead.
func (c StreamConfig) validateFeatures(invalid func(field, format string, args ...any) error) error {
	if c.AllowRollup && c.DenyPurge {
		return invalid("allowRollup", "a roll-up purges the subject's older messages, so it cannot be allowed together with denyPurge; unset one of them")
	}
	if c.DiscardNewPerSubject {
		if c.Discard != jetstream.DiscardNew {
			return invalid("discardNewPerSubject", "needs discard New (the stream discards Old)")
		}
		if c.MaxMsgsPerSubject <= 0 {
			return invalid("discardNewPerSubject", "needs a maxMsgsPerSubject limit above 0")
		}
	}
	if c.SubjectDeleteMarkerTTL < 0 {
		return invalid("subjectDeleteMarkerTTL", "must not be negative")
	}
	if c.SubjectDeleteMarkerTTL > 0 {
		switch {
		case c.SubjectDeleteMarkerTTL < time.Second:
			return invalid("subjectDeleteMarkerTTL", "must be at least 1s, got %s", c.SubjectDeleteMarkerTTL)
		case !c.AllowMsgTTL:
			return invalid("subjectDeleteMarkerTTL", "delete markers carry a message TTL: set allowMsgTTL too")
		case !c.AllowRollup:
			return invalid("subjectDeleteMarkerTTL", "delete markers are roll-ups: set allowRollup too")
		case c.Mirror != nil:
			return invalid("subjectDeleteMarkerTTL", "a mirror cannot place delete markers; set it on the origin stream")
		}
	}
	if c.AllowMsgCounter {
		switch {
		case c.Discard == jetstream.DiscardNew:
			return invalid("allowMsgCounter", "a counter stream cannot use discard New")
		case c.AllowMsgTTL:
			return invalid("allowMsgCounter", "a counter stream cannot use message TTLs (allowMsgTTL)")
		case c.AllowMsgSchedules:
			return invalid("allowMsgCounter", "a counter stream cannot use message schedules (allowMsgSchedules)")
		case c.Retention != jetstream.LimitsPolicy:
			return invalid("allowMsgCounter", "a counter stream can only use Limits retention")
		}
	}
	if c.AllowMsgSchedules {
		switch {
		case c.Discard == jetstream.DiscardNew:
			return invalid("allowMsgSchedules", "message schedules cannot use discard New")
		case !c.AllowRollup:
			return invalid("allowMsgSchedules", "a schedule rolls up its subject: set allowRollup too")
		case len(c.Sources) > 0:
			return invalid("allowMsgSchedules", "a stream with sources cannot schedule messages")
		}
	}
	switch c.PersistMode {
	case jetstream.DefaultPersistMode:
	case jetstream.AsyncPersistMode:
		switch {
		case c.Storage != jetstream.FileStorage:
			return invalid("persistMode", "Async persistence needs file storage")
		case c.Replicas > 1:
			return invalid("persistMode", "Async persistence is not supported on replicated streams (replicas %d)", c.Replicas)
		case c.AllowAtomicPublish:
			return invalid("persistMode", "Async persistence cannot be combined with allowAtomicPublish")
		}
	default:
		return invalid("persistMode", "unknown persist mode %d", c.PersistMode)
	}
	if c.MaxConsumers < Unlimited {
		return invalid("maxConsumers", "must be -1 (unlimited) or more, got %d", c.MaxConsumers)
	}
	if c.ConsumerLimits.InactiveThreshold < 0 {
		return invalid("consumerLimits.inactiveThreshold", "must not be negative")
	}
	if c.ConsumerLimits.MaxAckPending < 0 {
		return invalid("consumerLimits.maxAckPending", "must not be negative (0: no limit)")
	}
	if c.Mirror != nil {
		for field, set := range map[string]bool{"firstSequence": c.FirstSequence > 0, "allowMsgCounter": c.AllowMsgCounter,
			"allowAtomicPublish": c.AllowAtomicPublish, "allowBatchPublish": c.AllowBatchPublish, "allowMsgSchedules": c.AllowMsgSchedules} {
			if set {
				return invalid(field, "a mirror cannot set it: it copies the origin stream's messages as they are")
			}
		}
	}
	if t := c.SubjectTransform; t != nil {
		if t.Source != "" {
			if err := validateSubject(t.Source, true); err != nil {
				return invalid("subjectTransform.source", "%v", err)
			}
		}
		if err := validateSubject(t.Destination, true); err != nil {
			return invalid("subjectTransform.destination", "%v", err)
		}
	}
	if r := c.RePublish; r != nil {
		if r.Source != "" {
			if err := validateSubject(r.Source, true); err != nil {
				return invalid("republish.source", "%v", err)
			}
		}
		if err := validateSubject(r.Destination, true); err != nil {
			return invalid("republish.destination", "%v", err)
		}
		for _, s := range c.Subjects {
			if subjectsCollide(r.Destination, s) {
				return invalid("republish.destination", "%q overlaps the stream's subject %q: republished messages would be stored again", r.Destination, s)
			}
		}
	}
	return nil
}

// subjectsCollide reports whether some subject matches both a and b
// (wildcards allowed).
func subjectsCollide(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		switch {
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] == "*" || bt[i] == "*" || at[i] == bt[i]:
		default:
			return false
		}
	}
	return len(at) == len(bt)
}

// ValidateName checks a stream or consumer name against JetStream's rules:
// not empty, at most 255 bytes, no whitespace, '.', '*', '>', path separators
// or non-printable characters.
func ValidateName(name string) error {
	if name == "" {
		return errors.New("must not be empty")
	}
	if len(name) > 255 {
		return fmt.Errorf("must be at most 255 bytes, got %d", len(name))
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || strings.ContainsRune(".*>/\\", r) {
			return fmt.Errorf("%q contains %q; names cannot contain whitespace, '.', '*', '>', '/', '\\' or control characters", name, r)
		}
	}
	return nil
}

// validateSubject checks a NATS subject (with wildcards when allowed).
func validateSubject(subject string, wildcards bool) error {
	if subject == "" {
		return errors.New("must not be empty")
	}
	tokens := strings.Split(subject, ".")
	for i, t := range tokens {
		if t == "" {
			return fmt.Errorf("%q has an empty token", subject)
		}
		if strings.IndexFunc(t, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return fmt.Errorf("%q contains whitespace or a control character", subject)
		}
		if !wildcards && (t == "*" || t == ">") {
			return fmt.Errorf("%q contains a wildcard", subject)
		}
		if t == ">" && i != len(tokens)-1 {
			return fmt.Errorf("%q: '>' must be the last token", subject)
		}
	}
	return nil
}

// JetStream translates the configuration to nats.go's. Managed limits that
// are zero become JetStream's "unlimited" (-1) so that what is sent is what
// the server stores back.
func (c StreamConfig) JetStream() jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:              c.Name,
		Description:       c.Description,
		Subjects:          slices.Clone(c.Subjects),
		Retention:         c.Retention,
		MaxMsgs:           orUnlimited(c.MaxMsgs),
		MaxBytes:          orUnlimited(c.MaxBytes),
		Discard:           c.Discard,
		MaxAge:            c.MaxAge,
		MaxMsgsPerSubject: orUnlimited(c.MaxMsgsPerSubject),
		MaxMsgSize:        int32(orUnlimited(int64(c.MaxMsgSize))),
		Storage:           c.Storage,
		Replicas:          max(c.Replicas, 1),
		Duplicates:        c.DuplicateWindow,
		Compression:       c.Compression,
		AllowDirect:       c.AllowDirect,
		DenyDelete:        c.DenyDelete,
		DenyPurge:         c.DenyPurge,
		Metadata:          maps.Clone(c.Metadata),

		MaxConsumers:           int(orUnlimited(int64(c.MaxConsumers))),
		Sealed:                 c.Sealed,
		AllowRollup:            c.AllowRollup,
		DiscardNewPerSubject:   c.DiscardNewPerSubject,
		FirstSeq:               c.FirstSequence,
		AllowMsgTTL:            c.AllowMsgTTL,
		SubjectDeleteMarkerTTL: c.SubjectDeleteMarkerTTL,
		ConsumerLimits:         c.ConsumerLimits,
		NoAck:                  c.NoAck,
		AllowMsgCounter:        c.AllowMsgCounter,
		AllowAtomicPublish:     c.AllowAtomicPublish,
		AllowMsgSchedules:      c.AllowMsgSchedules,
		AllowBatchPublish:      c.AllowBatchPublish,
		PersistMode:            c.PersistMode,
	}
	if c.SubjectTransform != nil {
		t := *c.SubjectTransform
		cfg.SubjectTransform = &t
	}
	if c.RePublish != nil {
		r := *c.RePublish
		if r.Source == "" {
			r.Source = ">" // as the server stores it
		}
		cfg.RePublish = &r
	}
	if c.Sealed {
		// What JetStream makes of a sealed stream (configUpdateCheck).
		cfg.MaxAge, cfg.Discard = 0, jetstream.DiscardNew
		cfg.DenyDelete, cfg.DenyPurge, cfg.AllowRollup = true, true, false
	}
	if cfg.Duplicates == 0 {
		cfg.Duplicates = DefaultDuplicateWindow
		if c.MaxAge > 0 && c.MaxAge < cfg.Duplicates {
			cfg.Duplicates = c.MaxAge
		}
	}
	if c.Placement != nil {
		p := *c.Placement
		p.Tags = slices.Clone(p.Tags)
		cfg.Placement = &p
	}
	if c.Mirror != nil {
		cfg.Mirror = c.Mirror.JetStream()
	}
	for _, s := range c.Sources {
		cfg.Sources = append(cfg.Sources, s.JetStream())
	}
	return cfg
}

// JetStream translates the source to nats.go's, Domain resolved into
// External as the server stores it.
func (s StreamSource) JetStream() *jetstream.StreamSource {
	out := &jetstream.StreamSource{Name: s.Name, FilterSubject: s.FilterSubject, OptStartSeq: s.OptStartSeq,
		SubjectTransforms: slices.Clone(s.SubjectTransforms)}
	if s.OptStartTime != nil {
		t := s.OptStartTime.UTC()
		out.OptStartTime = &t
	}
	switch {
	case s.External != nil:
		e := *s.External
		out.External = &e
	case s.Domain != "":
		out.External = &jetstream.ExternalStream{APIPrefix: "$JS." + s.Domain + ".API"}
	}
	return out
}

func orUnlimited(v int64) int64 {
	if v == 0 {
		return Unlimited
	}
	return v
}

// GetStreamInfo returns the stream's configuration and state (one JetStream
// request). A missing stream is ErrNotFound.
func GetStreamInfo(ctx context.Context, js jetstream.StreamManager, name string) (*jetstream.StreamInfo, error) {
	if err := ValidateName(name); err != nil {
		return nil, &ValidationError{Field: "name", Reason: err.Error()}
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, wrap("get stream", name, err)
	}
	return s.CachedInfo(), nil
}

// CreateStream validates cfg and creates the stream. A stream of that name
// with another configuration is ErrConflict; subjects that overlap another
// stream's are ErrConflict; no room on the server is ErrInsufficientResources.
func CreateStream(ctx context.Context, js jetstream.StreamManager, cfg StreamConfig) (*jetstream.StreamInfo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	jcfg := cfg.JetStream()
	if cfg.Sealed {
		// JetStream cannot create a sealed stream: create it open, then seal it.
		open := cfg
		open.Sealed = false
		jcfg = open.JetStream()
	}
	s, err := createStreamRequest(ctx, js, jcfg)
	if err != nil {
		return nil, wrap("create stream", cfg.Name, err)
	}
	if cfg.Sealed {
		return UpdateStream(ctx, js, cfg)
	}
	return s.CachedInfo(), nil
}

// createStreamRequest sends the create request. nats-server (2.15) removes
// an account's stream directories when its last stream is deleted, and a
// create arriving meanwhile fails with error 10049 ("error creating store
// for stream"; its log says "could not create storage directory … no such
// file or directory"): that lasts milliseconds, so it is retried a few
// times, 50 ms apart, rather than reported as a failure that an instant
// later would not have happened.
func createStreamRequest(ctx context.Context, js jetstream.StreamManager, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	for attempt := 0; ; attempt++ {
		s, err := js.CreateStream(ctx, cfg)
		var apiErr *jetstream.APIError
		if err == nil || attempt == 4 || !errors.As(err, &apiErr) || apiErr.ErrorCode != codeStreamStoreFailed {
			return s, err
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return s, err
		}
	}
}

// UpdateStream validates cfg and applies it to the existing stream. A change
// JetStream cannot make in place comes back as an *ImmutableFieldError naming
// the field; a missing stream is ErrNotFound.
func UpdateStream(ctx context.Context, js jetstream.StreamManager, cfg StreamConfig) (*jetstream.StreamInfo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := js.UpdateStream(ctx, cfg.JetStream())
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == codeStreamInvalidConfig {
			if field := immutableFieldFromMessage(apiErr.Description); field != "" {
				return nil, &ImmutableFieldError{Kind: "stream", Name: cfg.Name, Field: field, Reason: apiErr.Description}
			}
		}
		if errors.As(err, &apiErr) && apiErr.ErrorCode == codeStreamUpdate && strings.Contains(apiErr.Description, "violates consumers") {
			return nil, &ValidationError{Field: "consumerLimits", Reason: apiErr.Description +
				" (their inactiveThreshold or maxAckPending is above the new limit: lower theirs first, or keep the limit)"}
		}
		return nil, wrap("update stream", cfg.Name, err)
	}
	return s.CachedInfo(), nil
}

// immutableFieldFromMessage recognises JetStream's "can not change" messages
// (error 10052 carries the reason only in its text).
func immutableFieldFromMessage(msg string) string {
	m := strings.ToLower(msg)
	if !strings.Contains(m, "can not change") && !strings.Contains(m, "cannot change") &&
		!strings.Contains(m, "can not be changed") && !strings.Contains(m, "can not be updated") &&
		!strings.Contains(m, "can not unseal") && !strings.Contains(m, "can not cancel") &&
		!strings.Contains(m, "can not be disabled") {
		return ""
	}
	for _, f := range []struct{ needle, field string }{
		{"unseal", "sealed"},
		{"deny message delete", "denyDelete"},
		{"message ttl", "allowMsgTTL"},
		{"message counter", "allowMsgCounter"},
		{"message schedules", "allowMsgSchedules"},
		{"persist mode", "persistMode"},
		{"storage", "storage"},
		{"retention", "retention"},
		{"mirror", "mirror"},
		{"deny delete", "denyDelete"},
		{"deny purge", "denyPurge"},
		{"max consumers", "maxConsumers"},
		{"sealed", "sealed"},
		{"subject", "subjects"},
		{"replicas", "replicas"},
		{"name", "name"},
	} {
		if strings.Contains(m, f.needle) {
			return f.field
		}
	}
	return "unknown"
}

// DeleteStream deletes the stream; a missing stream is ErrNotFound.
func DeleteStream(ctx context.Context, js jetstream.StreamManager, name string) error {
	if err := ValidateName(name); err != nil {
		return &ValidationError{Field: "name", Reason: err.Error()}
	}
	return wrap("delete stream", name, js.DeleteStream(ctx, name))
}

// CreateDefaultStreams makes sure the DefaultStreams exist with the house
// defaults. Each is created; one that exists with the same configuration is
// left alone (JetStream answers an identical create without a write), and
// one that exists with another configuration (ErrExists) is updated to the
// defaults with UpdateStream. Every failure is returned, joined.
func CreateDefaultStreams(ctx context.Context, js jetstream.StreamManager) error {
	var errs []error
	for _, cfg := range DefaultStreams() {
		_, err := CreateStream(ctx, js, cfg)
		if errors.Is(err, ErrExists) {
			_, err = UpdateStream(ctx, js, cfg)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
