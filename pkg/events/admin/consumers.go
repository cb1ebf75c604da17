package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/internal/shared"
)

// JetStream's own defaults for consumer fields left at zero; the normalisation
// below uses them so that "unset" and the server's echo compare equal.
const (
	serverDefaultAckWait       = 30 * time.Second
	serverDefaultMaxAckPending = 1000
	serverDefaultMaxWaiting    = 512
	serverDefaultPinnedTTL     = 2 * time.Minute
	minIdleHeartbeat           = 100 * time.Millisecond
	minMaxRequestExpires       = time.Millisecond
)

// priorityGroupName is JetStream's rule for priority group names.
var priorityGroupName = regexp.MustCompile(`^[a-zA-Z0-9/_=-]{1,16}$`)

// sampleFrequency is a percentage, 1–100, with or without "%".
var sampleFrequency = regexp.MustCompile(`^(100|[1-9][0-9]?)%?$`)

// ConsumerConfig is a durable consumer as the operator declares it (an
// EventConsumer): a pull consumer, or a push consumer when DeliverSubject is
// set. Start from NewConsumerConfig for the house defaults (explicit acks,
// AckWait 10s, MaxDeliver 3, instant replay).
type ConsumerConfig struct {
	Durable           string
	Description       string
	FilterSubjects    []string
	DeliverPolicy     jetstream.DeliverPolicy
	OptStartSeq       uint64
	OptStartTime      *time.Time
	AckPolicy         jetstream.AckPolicy
	AckWait           time.Duration   // 0: JetStream's default (30s)
	MaxDeliver        int             // 0 or -1: unlimited
	BackOff           []time.Duration // redelivery delays; at most MaxDeliver entries; the first replaces AckWait
	MaxAckPending     int             // 0: JetStream's default (1000); -1: unlimited
	MaxWaiting        int             // 0: JetStream's default (512)
	Replicas          int             // 0: the stream's
	MemoryStorage     bool
	InactiveThreshold time.Duration
	Metadata          map[string]string

	ReplayPolicy    jetstream.ReplayPolicy // zero: instant
	HeadersOnly     bool                   // deliver headers only, the body's size in Nats-Msg-Size
	SampleFrequency string                 // "" or 1–100, optionally with "%": the share of acks sampled into advisories

	// Push consumers: JetStream delivers to DeliverSubject; empty is a pull consumer.
	DeliverSubject string
	DeliverGroup   string        // queue group of the subscribers on DeliverSubject
	FlowControl    bool          // needs IdleHeartbeat
	IdleHeartbeat  time.Duration // 0 or at least 100ms
	RateLimitBps   uint64        // 0: unlimited

	// Pull consumers only.
	MaxRequestBatch    int           // 0: unlimited
	MaxRequestExpires  time.Duration // 0: unlimited, else at least 1ms
	MaxRequestMaxBytes int           // 0: unlimited
	PriorityPolicy     jetstream.PriorityPolicy
	PriorityGroups     []string      // required with a priority policy
	PinnedTTL          time.Duration // PriorityPolicyPinned only; 0: JetStream's (2m)

	// PauseUntil pauses deliveries until then; nil or a time not in the
	// future: not paused.
	PauseUntil *time.Time
}

// NewConsumerConfig returns a durable pull consumer with the house defaults.
func NewConsumerConfig(durable string, filterSubjects ...string) ConsumerConfig {
	return ConsumerConfig{
		Durable:        durable,
		FilterSubjects: filterSubjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        events.DefaultAckWait,
		MaxDeliver:     events.DefaultMaxDeliver,
	}
}

// Validate checks the configuration before anything is sent to JetStream.
func (c ConsumerConfig) Validate() error {
	invalid := func(field, format string, args ...any) error {
		return &events.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if err := events.ValidateName(c.Durable); err != nil {
		return invalid("durableName", "%v", err)
	}
	for i, s := range c.FilterSubjects {
		if err := shared.ValidateSubject(s, true); err != nil {
			return invalid(fmt.Sprintf("filterSubjects[%d]", i), "%v", err)
		}
	}
	switch c.DeliverPolicy {
	case jetstream.DeliverByStartSequencePolicy:
		if c.OptStartSeq == 0 {
			return invalid("optStartSeq", "is required with deliver policy ByStartSequence")
		}
	case jetstream.DeliverByStartTimePolicy:
		if c.OptStartTime == nil {
			return invalid("optStartTime", "is required with deliver policy ByStartTime")
		}
	}
	if c.DeliverPolicy != jetstream.DeliverByStartSequencePolicy && c.OptStartSeq != 0 {
		return invalid("optStartSeq", "is only allowed with deliver policy ByStartSequence")
	}
	if c.DeliverPolicy != jetstream.DeliverByStartTimePolicy && c.OptStartTime != nil {
		return invalid("optStartTime", "is only allowed with deliver policy ByStartTime")
	}
	if c.AckWait < 0 {
		return invalid("ackWait", "must not be negative")
	}
	if c.MaxDeliver < -1 {
		return invalid("maxDeliver", "must be -1 (unlimited) or positive")
	}
	if len(c.BackOff) > 0 {
		if c.AckPolicy == jetstream.AckNonePolicy {
			return invalid("backoff", "needs acknowledgements (ack policy None has no redeliveries)")
		}
		if c.MaxDeliver > 0 && len(c.BackOff) > c.MaxDeliver {
			return invalid("backoff", "has %d entries, more than maxDeliver %d", len(c.BackOff), c.MaxDeliver)
		}
		for i, b := range c.BackOff {
			if b <= 0 {
				return invalid(fmt.Sprintf("backoff[%d]", i), "must be positive")
			}
		}
	}
	if c.Replicas < 0 || c.Replicas > events.MaxReplicas {
		return invalid("replicas", "must be between 0 (the stream's) and %d", events.MaxReplicas)
	}
	if c.MaxAckPending < events.Unlimited {
		return invalid("maxAckPending", "must be -1 (unlimited), 0 (JetStream's default) or positive")
	}
	if c.MaxWaiting < 0 {
		return invalid("maxWaiting", "must not be negative")
	}
	if c.InactiveThreshold < 0 {
		return invalid("inactiveThreshold", "must not be negative")
	}
	return c.validateDelivery(invalid)
}

// validateDelivery checks the push, pull and priority settings, refusing
// before JetStream does what it would refuse (or silently ignore).
func (c ConsumerConfig) validateDelivery(invalid func(field, format string, args ...any) error) error {
	switch c.ReplayPolicy {
	case jetstream.ReplayInstantPolicy, jetstream.ReplayOriginalPolicy:
	default:
		return invalid("replayPolicy", "must be Instant or Original")
	}
	if c.SampleFrequency != "" && !sampleFrequency.MatchString(c.SampleFrequency) {
		return invalid("sampleFrequency", "%q must be a percentage from 1 to 100, such as 50 or 50%%", c.SampleFrequency)
	}
	push := c.DeliverSubject != ""
	if push {
		if err := shared.ValidateSubject(c.DeliverSubject, false); err != nil {
			return invalid("deliverSubject", "%v", err)
		}
		pullOnly := map[string]bool{
			"maxWaiting": c.MaxWaiting != 0, "maxRequestBatch": c.MaxRequestBatch != 0,
			"maxRequestExpires": c.MaxRequestExpires != 0, "maxRequestMaxBytes": c.MaxRequestMaxBytes != 0,
			"priorityPolicy": c.PriorityPolicy != jetstream.PriorityPolicyNone,
		}
		for _, f := range []string{"maxWaiting", "maxRequestBatch", "maxRequestExpires", "maxRequestMaxBytes", "priorityPolicy"} {
			if pullOnly[f] {
				return invalid(f, "is for pull consumers only; this one is a push consumer (deliverSubject is set)")
			}
		}
		if c.AckPolicy == jetstream.AckNonePolicy && c.MaxAckPending > 0 {
			return invalid("maxAckPending", "needs acknowledgements on a push consumer (ack policy None)")
		}
	} else {
		pushOnly := map[string]bool{
			"deliverGroup": c.DeliverGroup != "", "flowControl": c.FlowControl,
			"idleHeartbeat": c.IdleHeartbeat != 0, "rateLimitBps": c.RateLimitBps != 0,
		}
		for _, f := range []string{"deliverGroup", "flowControl", "idleHeartbeat", "rateLimitBps"} {
			if pushOnly[f] {
				return invalid(f, "is for push consumers only: set deliverSubject")
			}
		}
	}
	if c.DeliverGroup != "" {
		if err := events.ValidateName(c.DeliverGroup); err != nil {
			return invalid("deliverGroup", "%v", err)
		}
	}
	if c.IdleHeartbeat != 0 && c.IdleHeartbeat < minIdleHeartbeat {
		return invalid("idleHeartbeat", "must be at least %v", minIdleHeartbeat)
	}
	if c.FlowControl && c.IdleHeartbeat == 0 {
		return invalid("flowControl", "needs idleHeartbeat (JetStream detects stalled flow control by heartbeats)")
	}
	if c.MaxRequestBatch < 0 {
		return invalid("maxRequestBatch", "must not be negative")
	}
	if c.MaxRequestExpires < 0 || (c.MaxRequestExpires != 0 && c.MaxRequestExpires < minMaxRequestExpires) {
		return invalid("maxRequestExpires", "must be 0 (unlimited) or at least %v", minMaxRequestExpires)
	}
	if c.MaxRequestMaxBytes < 0 {
		return invalid("maxRequestMaxBytes", "must not be negative")
	}
	switch c.PriorityPolicy {
	case jetstream.PriorityPolicyNone:
		if len(c.PriorityGroups) > 0 {
			return invalid("priorityGroups", "needs a priorityPolicy (Overflow, Pinned or Prioritized)")
		}
	case jetstream.PriorityPolicyOverflow, jetstream.PriorityPolicyPinned, jetstream.PriorityPolicyPrioritized:
		if len(c.PriorityGroups) == 0 {
			return invalid("priorityGroups", "are required with a priorityPolicy")
		}
	default:
		return invalid("priorityPolicy", "must be None, Overflow, Pinned or Prioritized")
	}
	for i, g := range c.PriorityGroups {
		if !priorityGroupName.MatchString(g) {
			return invalid(fmt.Sprintf("priorityGroups[%d]", i), "%q must be 1 to 16 letters, digits, '-', '_', '/' or '='", g)
		}
		if slices.Contains(c.PriorityGroups[:i], g) {
			return invalid(fmt.Sprintf("priorityGroups[%d]", i), "%q is listed twice", g)
		}
	}
	if c.PinnedTTL < 0 {
		return invalid("pinnedTTL", "must not be negative")
	}
	if c.PinnedTTL != 0 && c.PriorityPolicy != jetstream.PriorityPolicyPinned {
		return invalid("pinnedTTL", "is only allowed with priorityPolicy Pinned")
	}
	return nil
}

// JetStream translates the configuration to nats.go's.
func (c ConsumerConfig) JetStream() jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:           c.Durable,
		Description:       c.Description,
		DeliverPolicy:     c.DeliverPolicy,
		OptStartSeq:       c.OptStartSeq,
		OptStartTime:      c.OptStartTime,
		AckPolicy:         c.AckPolicy,
		AckWait:           c.AckWait,
		MaxDeliver:        c.MaxDeliver,
		BackOff:           slices.Clone(c.BackOff),
		MaxAckPending:     c.MaxAckPending,
		MaxWaiting:        c.MaxWaiting,
		Replicas:          c.Replicas,
		MemoryStorage:     c.MemoryStorage,
		InactiveThreshold: c.InactiveThreshold,
		Metadata:          maps.Clone(c.Metadata),

		ReplayPolicy:       c.ReplayPolicy,
		HeadersOnly:        c.HeadersOnly,
		SampleFrequency:    c.SampleFrequency,
		DeliverSubject:     c.DeliverSubject,
		DeliverGroup:       c.DeliverGroup,
		FlowControl:        c.FlowControl,
		IdleHeartbeat:      c.IdleHeartbeat,
		RateLimit:          c.RateLimitBps,
		MaxRequestBatch:    c.MaxRequestBatch,
		MaxRequestExpires:  c.MaxRequestExpires,
		MaxRequestMaxBytes: c.MaxRequestMaxBytes,
		PriorityPolicy:     c.PriorityPolicy,
		PriorityGroups:     slices.Clone(c.PriorityGroups),
		PinnedTTL:          c.PinnedTTL,
	}
	if c.PauseUntil != nil {
		t := c.PauseUntil.UTC()
		cfg.PauseUntil = &t
	}
	switch len(c.FilterSubjects) {
	case 0:
	case 1:
		cfg.FilterSubject = c.FilterSubjects[0]
	default:
		cfg.FilterSubjects = slices.Clone(c.FilterSubjects)
	}
	if c.MaxDeliver == 0 {
		cfg.MaxDeliver = events.Unlimited
	}
	return cfg
}

// managedConsumer is the normalised, managed part of a consumer's
// configuration; field names (lower-cased first letter) are the CRD's.
type managedConsumer struct {
	Description       string
	FilterSubjects    []string
	DeliverPolicy     jetstream.DeliverPolicy
	OptStartSeq       uint64
	OptStartTime      time.Time
	AckPolicy         jetstream.AckPolicy
	AckWait           time.Duration
	MaxDeliver        int
	Backoff           []time.Duration
	MaxAckPending     int
	MaxWaiting        int
	Replicas          int
	MemoryStorage     bool
	InactiveThreshold time.Duration
	Metadata          map[string]string

	ReplayPolicy       jetstream.ReplayPolicy
	HeadersOnly        bool
	SampleFrequency    string
	DeliverSubject     string
	DeliverGroup       string
	FlowControl        bool
	IdleHeartbeat      time.Duration
	RateLimitBps       uint64
	MaxRequestBatch    int
	MaxRequestExpires  time.Duration
	MaxRequestMaxBytes int
	PriorityPolicy     jetstream.PriorityPolicy
	PriorityGroups     []string
	PinnedTTL          time.Duration
	PauseUntil         time.Time // zero: not paused (nil, or a time already reached)
}

// normaliseConsumer is normaliseConsumerAt now.
func normaliseConsumer(c jetstream.ConsumerConfig) managedConsumer {
	return normaliseConsumerAt(c, time.Now())
}

// normaliseConsumerAt normalises c as of now: a pause that has ended is no
// pause (JetStream drops a PauseUntil in the past on update, and keeps an
// ended one on the consumer, so either way they must compare equal).
func normaliseConsumerAt(c jetstream.ConsumerConfig, now time.Time) managedConsumer {
	m := managedConsumer{
		Description:       c.Description,
		DeliverPolicy:     c.DeliverPolicy,
		OptStartSeq:       c.OptStartSeq,
		AckPolicy:         c.AckPolicy,
		AckWait:           c.AckWait,
		MaxDeliver:        c.MaxDeliver,
		MaxAckPending:     c.MaxAckPending,
		MaxWaiting:        c.MaxWaiting,
		Replicas:          c.Replicas,
		MemoryStorage:     c.MemoryStorage,
		InactiveThreshold: c.InactiveThreshold,
		Metadata:          userMetadata(c.Metadata),

		ReplayPolicy:       c.ReplayPolicy,
		HeadersOnly:        c.HeadersOnly,
		SampleFrequency:    c.SampleFrequency,
		DeliverSubject:     c.DeliverSubject,
		DeliverGroup:       c.DeliverGroup,
		FlowControl:        c.FlowControl,
		IdleHeartbeat:      c.IdleHeartbeat,
		RateLimitBps:       c.RateLimit,
		MaxRequestBatch:    c.MaxRequestBatch,
		MaxRequestExpires:  c.MaxRequestExpires,
		MaxRequestMaxBytes: c.MaxRequestMaxBytes,
		PriorityPolicy:     c.PriorityPolicy,
		PinnedTTL:          c.PinnedTTL,
	}
	if len(c.PriorityGroups) > 0 {
		m.PriorityGroups = c.PriorityGroups
	}
	if m.PriorityPolicy == jetstream.PriorityPolicyPinned && m.PinnedTTL == 0 {
		m.PinnedTTL = serverDefaultPinnedTTL
	}
	if c.PauseUntil != nil && c.PauseUntil.After(now) {
		m.PauseUntil = c.PauseUntil.UTC().Truncate(time.Microsecond)
	}
	if c.FilterSubject != "" {
		m.FilterSubjects = append(m.FilterSubjects, c.FilterSubject)
	}
	m.FilterSubjects = append(m.FilterSubjects, c.FilterSubjects...)
	if len(m.FilterSubjects) == 0 {
		m.FilterSubjects = nil
	}
	if len(c.BackOff) > 0 {
		m.Backoff = c.BackOff
	}
	if c.OptStartTime != nil {
		m.OptStartTime = c.OptStartTime.UTC().Truncate(time.Microsecond)
	}
	if m.AckWait == 0 {
		m.AckWait = serverDefaultAckWait
	}
	if len(m.Backoff) > 0 {
		m.AckWait = m.Backoff[0] // JetStream uses the first backoff as the ack wait
	}
	if m.MaxDeliver <= 0 {
		m.MaxDeliver = events.Unlimited
	}
	if m.MaxAckPending == 0 && m.AckPolicy != jetstream.AckNonePolicy {
		m.MaxAckPending = serverDefaultMaxAckPending
	}
	if m.MaxWaiting == 0 && m.DeliverSubject == "" {
		m.MaxWaiting = serverDefaultMaxWaiting // pull consumers only
	}
	return m
}

// DiffConsumer compares the desired consumer with the server's
// (ConsumerInfo.Config) over every managed field after normalising JetStream's
// defaults, and returns the names of the fields that differ (nil: in sync).
func DiffConsumer(desired ConsumerConfig, actual jetstream.ConsumerConfig) []string {
	now := time.Now()
	return diffFields(normaliseConsumerAt(desired.JetStream(), now), normaliseConsumerAt(actual, now))
}

// CheckConsumerUpdate returns an *events.ImmutableFieldError when JetStream cannot
// change the consumer from actual to desired in place: its deliver policy,
// start sequence or time, ack or replay policy, storage, flow control, idle
// heartbeat, max waiting, or the kind (pull or push).
func CheckConsumerUpdate(desired ConsumerConfig, actual jetstream.ConsumerConfig) error {
	want, have := normaliseConsumer(desired.JetStream()), normaliseConsumer(actual)
	immutable := func(field string) error {
		return &events.ImmutableFieldError{Kind: "consumer", Name: desired.Durable, Field: field,
			Reason: "JetStream cannot change " + field + " after a consumer is created"}
	}
	switch {
	case want.DeliverPolicy != have.DeliverPolicy:
		return immutable("deliverPolicy")
	case want.OptStartSeq != have.OptStartSeq:
		return immutable("optStartSeq")
	case !want.OptStartTime.Equal(have.OptStartTime):
		return immutable("optStartTime")
	case want.AckPolicy != have.AckPolicy:
		return immutable("ackPolicy")
	case want.MemoryStorage != have.MemoryStorage:
		return immutable("memoryStorage")
	case want.ReplayPolicy != have.ReplayPolicy:
		return immutable("replayPolicy")
	case (want.DeliverSubject == "") != (have.DeliverSubject == ""):
		return &events.ImmutableFieldError{Kind: "consumer", Name: desired.Durable, Field: "deliverSubject",
			Reason: "JetStream cannot turn a pull consumer into a push consumer or back (deliverSubject set or unset); delete and recreate it"}
	case want.FlowControl != have.FlowControl:
		return immutable("flowControl")
	case want.IdleHeartbeat != have.IdleHeartbeat:
		return immutable("idleHeartbeat")
	case want.MaxWaiting != have.MaxWaiting:
		return immutable("maxWaiting")
	}
	return nil
}

// GetConsumerInfo returns the consumer's configuration and state (one
// JetStream request; two for a push consumer). A missing stream or consumer
// is ErrNotFound.
func GetConsumerInfo(ctx context.Context, js jetstream.StreamConsumerManager, stream, name string) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, stream, name)
	if errors.Is(err, jetstream.ErrNotPullConsumer) {
		p, perr := js.PushConsumer(ctx, stream, name)
		if perr != nil {
			return nil, shared.Wrap("get consumer", stream+"/"+name, perr)
		}
		return p.CachedInfo(), nil
	}
	if err != nil {
		return nil, shared.Wrap("get consumer", stream+"/"+name, err)
	}
	return c.CachedInfo(), nil
}

// upsertConsumer creates (update false) or updates the consumer with nats.go's
// pull or push call, as cfg.DeliverSubject says.
func upsertConsumer(ctx context.Context, js jetstream.StreamConsumerManager, stream string, cfg jetstream.ConsumerConfig, update bool) (*jetstream.ConsumerInfo, error) {
	if cfg.DeliverSubject != "" {
		call := js.CreatePushConsumer
		if update {
			call = js.UpdatePushConsumer
		}
		c, err := call(ctx, stream, cfg)
		if err != nil {
			return nil, err
		}
		return c.CachedInfo(), nil
	}
	call := js.CreateConsumer
	if update {
		call = js.UpdateConsumer
	}
	c, err := call(ctx, stream, cfg)
	if err != nil {
		return nil, err
	}
	return c.CachedInfo(), nil
}

// CreateConsumer validates cfg and creates the durable consumer on stream.
func CreateConsumer(ctx context.Context, js jetstream.StreamConsumerManager, stream string, cfg ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		info, err := upsertConsumer(ctx, js, stream, cfg.JetStream(), false)
		// nats-server (2.15) can answer a create of a consumer it is still
		// deleting with 10149 "consumer does not exist": that lasts
		// milliseconds, so it is retried a few times, 50 ms apart.
		var apiErr *jetstream.APIError
		if err != nil && attempt < 4 && errors.As(err, &apiErr) && apiErr.ErrorCode == 10149 {
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-ctx.Done():
			}
		}
		if err != nil {
			return nil, shared.Wrap("create consumer", stream+"/"+cfg.Durable, err)
		}
		return info, nil
	}
}

// UpdateConsumer validates cfg and applies it to the existing consumer; a
// change JetStream refuses in place is an *events.ImmutableFieldError.
//
// JetStream's immutables are: deliver policy, start sequence or time, ack
// and replay policy, storage, flow control and idle heartbeat, max waiting,
// and the kind (pull or push: deliverSubject set or not).
func UpdateConsumer(ctx context.Context, js jetstream.StreamConsumerManager, stream string, cfg ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	info, err := upsertConsumer(ctx, js, stream, cfg.JetStream(), true)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && strings.Contains(strings.ToLower(apiErr.Description), "can not be updated") {
			return nil, &events.ImmutableFieldError{Kind: "consumer", Name: cfg.Durable, Field: "", Reason: apiErr.Description}
		}
		return nil, shared.Wrap("update consumer", stream+"/"+cfg.Durable, err)
	}
	return applyPause(ctx, js, stream, cfg, info)
}

// applyPause pauses or resumes the consumer when its pause differs from
// cfg.PauseUntil: JetStream keeps the pause it has on an update, and changes
// it only through its pause API.
func applyPause(ctx context.Context, js jetstream.StreamConsumerManager, stream string, cfg ConsumerConfig, info *jetstream.ConsumerInfo) (*jetstream.ConsumerInfo, error) {
	now := time.Now()
	want, have := normaliseConsumerAt(cfg.JetStream(), now).PauseUntil, normaliseConsumerAt(info.Config, now).PauseUntil
	if want.Equal(have) {
		return info, nil
	}
	var err error
	if want.IsZero() {
		_, err = js.ResumeConsumer(ctx, stream, cfg.Durable)
	} else {
		_, err = js.PauseConsumer(ctx, stream, cfg.Durable, *cfg.PauseUntil)
	}
	if err != nil {
		return nil, shared.Wrap("pause consumer", stream+"/"+cfg.Durable, err)
	}
	return GetConsumerInfo(ctx, js, stream, cfg.Durable)
}

// DeleteConsumer deletes the consumer; a missing one is ErrNotFound.
func DeleteConsumer(ctx context.Context, js jetstream.StreamConsumerManager, stream, name string) error {
	return shared.Wrap("delete consumer", stream+"/"+name, js.DeleteConsumer(ctx, stream, name))
}

// UpdateConsumerMetadata sets the keys of set and deletes the keys of remove
// in the consumer's metadata, and changes nothing else. It makes no write
// when the metadata already reads so.
func UpdateConsumerMetadata(ctx context.Context, js jetstream.StreamConsumerManager, stream, name string, set map[string]string, remove ...string) error {
	info, err := GetConsumerInfo(ctx, js, stream, name)
	if err != nil {
		return err
	}
	cfg := info.Config
	md, changed := editMetadata(cfg.Metadata, set, remove)
	if !changed {
		return nil
	}
	cfg.Metadata = md
	_, err = upsertConsumer(ctx, js, stream, cfg, true)
	return shared.Wrap("update consumer", stream+"/"+name, err)
}
