package admin

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/internal/shared"
)

// managedStream is the part of a JetStream stream configuration the events
// package manages, normalised so that a configuration and the server's echo
// of it compare equal. Field names, with a lower-case first letter, are the
// ones the operator's CRD uses; DiffStream reports them that way.
type managedStream struct {
	Description       string
	Subjects          []string
	Retention         jetstream.RetentionPolicy
	MaxAge            time.Duration
	MaxBytes          int64
	MaxMsgs           int64
	MaxMsgSize        int64
	MaxMsgsPerSubject int64
	DuplicateWindow   time.Duration
	Storage           jetstream.StorageType
	Discard           jetstream.DiscardPolicy
	Replicas          int
	Placement         jetstream.Placement
	Compression       jetstream.StoreCompression
	AllowDirect       bool
	DenyDelete        bool
	DenyPurge         bool
	Mirror            jetstream.StreamSource
	Sources           []jetstream.StreamSource
	Metadata          map[string]string
}

func normaliseStream(c jetstream.StreamConfig) managedStream {
	m := managedStream{
		Description:       c.Description,
		Subjects:          c.Subjects,
		Retention:         c.Retention,
		MaxAge:            c.MaxAge,
		MaxBytes:          limit(c.MaxBytes),
		MaxMsgs:           limit(c.MaxMsgs),
		MaxMsgSize:        limit(int64(c.MaxMsgSize)),
		MaxMsgsPerSubject: limit(c.MaxMsgsPerSubject),
		DuplicateWindow:   c.Duplicates,
		Storage:           c.Storage,
		Discard:           c.Discard,
		Replicas:          max(c.Replicas, 1),
		Compression:       c.Compression,
		AllowDirect:       c.AllowDirect,
		DenyDelete:        c.DenyDelete,
		DenyPurge:         c.DenyPurge,
		Metadata:          userMetadata(c.Metadata),
	}
	if len(m.Subjects) == 0 {
		m.Subjects = nil
	}
	if c.Placement != nil {
		m.Placement = jetstream.Placement{Cluster: c.Placement.Cluster, Tags: nilIfEmpty(c.Placement.Tags)}
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

// normaliseSource keeps what a mirror or source declares, in the form the
// server echoes it (times in UTC to the microsecond, empty lists nil, an
// empty External none).
func normaliseSource(s jetstream.StreamSource) jetstream.StreamSource {
	out := jetstream.StreamSource{Name: s.Name, FilterSubject: s.FilterSubject, OptStartSeq: s.OptStartSeq}
	if s.OptStartTime != nil {
		t := s.OptStartTime.UTC().Truncate(time.Microsecond)
		out.OptStartTime = &t
	}
	if len(s.SubjectTransforms) > 0 {
		out.SubjectTransforms = s.SubjectTransforms
	}
	if s.External != nil && (s.External.APIPrefix != "" || s.External.DeliverPrefix != "") {
		e := *s.External
		out.External = &e
	}
	return out
}

func limit(v int64) int64 {
	if v <= 0 {
		return events.Unlimited
	}
	return v
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// userMetadata drops the keys the server adds itself ("_nats.*").
func userMetadata(md map[string]string) map[string]string {
	var out map[string]string
	for k, v := range md {
		if strings.HasPrefix(k, "_nats.") {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}

// DiffStream compares the desired configuration with the one the server has
// (StreamInfo.Config) over every managed field, after normalising the values
// the server fills in itself (unlimited limits, replicas, its own metadata).
// It returns the names of the fields that differ, in a stable order; nil means
// the stream is in sync and no update is needed.
func DiffStream(desired events.StreamConfig, actual jetstream.StreamConfig) []string {
	return diffFields(normaliseStream(desired.JetStream()), normaliseStream(actual))
}

// CheckStreamUpdate returns an *events.ImmutableFieldError when JetStream
// cannot change the stream from actual to desired in place: its storage
// type, a retention change to or from WorkQueue, or its mirror.
func CheckStreamUpdate(desired events.StreamConfig, actual jetstream.StreamConfig) error {
	immutable := func(field, reason string) error {
		return &events.ImmutableFieldError{Kind: "stream", Name: desired.Name, Field: field, Reason: reason}
	}
	if desired.Storage != actual.Storage {
		return immutable("storage", fmt.Sprintf("the stream stores to %s; the storage type cannot change after creation", actual.Storage))
	}
	if desired.Retention != actual.Retention &&
		(desired.Retention == jetstream.WorkQueuePolicy || actual.Retention == jetstream.WorkQueuePolicy) {
		return immutable("retention", fmt.Sprintf("retention cannot change to or from WorkQueue (stream has %s)", actual.Retention))
	}
	var wantMirror, haveMirror jetstream.StreamSource
	if m := desired.JetStream().Mirror; m != nil {
		wantMirror = normaliseSource(*m)
	}
	if actual.Mirror != nil {
		haveMirror = normaliseSource(*actual.Mirror)
	}
	if !reflect.DeepEqual(wantMirror, haveMirror) {
		return immutable("mirror", "a stream's mirror cannot change after creation")
	}
	return nil
}

// UpdateStreamMetadata sets the keys of set and deletes the keys of remove in
// the stream's metadata, and changes nothing else (the operator uses it to
// replace its ownership marker by a release marker on a stream it retains).
// It makes no write when the metadata already reads so.
func UpdateStreamMetadata(ctx context.Context, js jetstream.StreamManager, name string, set map[string]string, remove ...string) error {
	info, err := events.GetStreamInfo(ctx, js, name)
	if err != nil {
		return err
	}
	cfg := info.Config
	md, changed := editMetadata(cfg.Metadata, set, remove)
	if !changed {
		return nil
	}
	cfg.Metadata = md
	_, err = js.UpdateStream(ctx, cfg)
	return shared.Wrap("update stream", name, err)
}

// editMetadata returns the user metadata (without the server's "_nats." keys)
// with set applied and remove deleted, and whether that changed anything.
func editMetadata(md map[string]string, set map[string]string, remove []string) (map[string]string, bool) {
	out := userMetadata(md)
	if out == nil {
		out = map[string]string{}
	}
	changed := false
	for _, k := range remove {
		if _, ok := out[k]; ok {
			delete(out, k)
			changed = true
		}
	}
	for k, v := range set {
		if old, ok := out[k]; !ok || old != v {
			out[k] = v
			changed = true
		}
	}
	return out, changed
}

// diffFields lists the fields of two values of the same struct type that
// differ, with their first letter (or leading acronym: TTL) lower-cased.
func diffFields(want, have any) []string {
	var diff []string
	wv, hv := reflect.ValueOf(want), reflect.ValueOf(have)
	t := wv.Type()
	for i := range t.NumField() {
		if !reflect.DeepEqual(wv.Field(i).Interface(), hv.Field(i).Interface()) {
			diff = append(diff, lowerFirst(t.Field(i).Name))
		}
	}
	return diff
}

// lowerFirst lower-cases a Go field name's first word: MaxAge → maxAge, TTL
// → ttl, LimitMarkerTTL → limitMarkerTTL.
func lowerFirst(n string) string {
	i := 0
	for i < len(n) && n[i] >= 'A' && n[i] <= 'Z' {
		i++
	}
	if i > 1 && i < len(n) {
		i-- // the last capital starts the next word: URLPath → urlPath
	}
	return strings.ToLower(n[:i]) + n[i:]
}
