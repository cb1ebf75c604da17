package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
)

// ConsumerConfig is a durable pull consumer as the operator declares it (an
// EventConsumer). Start from NewConsumerConfig for the house defaults
// (explicit acks, AckWait 10s, MaxDeliver 3).
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
		ReplayPolicy:      jetstream.ReplayInstantPolicy,
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
}

func normaliseConsumer(c jetstream.ConsumerConfig) managedConsumer {
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
	if m.MaxWaiting == 0 {
		m.MaxWaiting = serverDefaultMaxWaiting
	}
	return m
}

// DiffConsumer compares the desired consumer with the server's
// (ConsumerInfo.Config) over every managed field after normalising JetStream's
// defaults, and returns the names of the fields that differ (nil: in sync).
func DiffConsumer(desired ConsumerConfig, actual jetstream.ConsumerConfig) []string {
	return diffFields(normaliseConsumer(desired.JetStream()), normaliseConsumer(actual))
}

// CheckConsumerUpdate returns an *events.ImmutableFieldError when JetStream cannot
// change the consumer from actual to desired in place: its deliver policy,
// start sequence or time, ack policy or storage.
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
	}
	return nil
}

// GetConsumerInfo returns the consumer's configuration and state (one
// JetStream request). A missing stream or consumer is ErrNotFound.
func GetConsumerInfo(ctx context.Context, js jetstream.StreamConsumerManager, stream, name string) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		return nil, shared.Wrap("get consumer", stream+"/"+name, err)
	}
	return c.CachedInfo(), nil
}

// CreateConsumer validates cfg and creates the durable consumer on stream.
func CreateConsumer(ctx context.Context, js jetstream.StreamConsumerManager, stream string, cfg ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := js.CreateConsumer(ctx, stream, cfg.JetStream())
	if err != nil {
		return nil, shared.Wrap("create consumer", stream+"/"+cfg.Durable, err)
	}
	return c.CachedInfo(), nil
}

// UpdateConsumer validates cfg and applies it to the existing consumer; a
// change JetStream refuses in place is an *events.ImmutableFieldError.
func UpdateConsumer(ctx context.Context, js jetstream.StreamConsumerManager, stream string, cfg ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := js.UpdateConsumer(ctx, stream, cfg.JetStream())
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && strings.Contains(strings.ToLower(apiErr.Description), "can not be updated") {
			return nil, &events.ImmutableFieldError{Kind: "consumer", Name: cfg.Durable, Field: "", Reason: apiErr.Description}
		}
		return nil, shared.Wrap("update consumer", stream+"/"+cfg.Durable, err)
	}
	return c.CachedInfo(), nil
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
	_, err = js.UpdateConsumer(ctx, stream, cfg)
	return shared.Wrap("update consumer", stream+"/"+name, err)
}
