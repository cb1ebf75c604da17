package events

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// DataValidator checks an event's data against the schema declared for its
// type and schema version. *schemas.Registry (package events/schemas, the
// registry the operator fills from EventSchema resources) implements it; a
// publisher uses one through WithDataValidator, a subscription through
// SubscriberConfig.DataValidator.
//
// ValidateData returns the URI of the schema the data was checked against
// ("" when no schema applies and the validator lets such events through),
// with the error too when that schema refused the data. An event it refuses is a *ValidationError: Field "data" with the
// validator's Pointer and Reason when the data does not match, or another
// field (the type, the schema) saying why no schema could be applied.
// ValidateData must be safe for concurrent use and must not modify e.
type DataValidator interface {
	ValidateData(e *Event) (schemaURI string, err error)
}

// MajorPolicy says what a subscription does with an event whose schema
// major version is not one of SubscriberConfig.AcceptMajors.
type MajorPolicy int

const (
	// DeadLetterOtherMajors dead-letters it at once (the default): a
	// producer sending a major nobody handles is a mistake to look at.
	DeadLetterOtherMajors MajorPolicy = iota
	// SkipOtherMajors acknowledges it without calling the handler and
	// counts it in SubscriptionStats.Skipped: for consumers that
	// deliberately ignore a major other consumers of the stream handle.
	SkipOtherMajors
)

// SchemaMajor returns the major version of a "major.minor" schema version.
func SchemaMajor(schemaVersion string) (int, error) {
	maj, _, ok := strings.Cut(schemaVersion, ".")
	if !ok || !isMajorMinor(schemaVersion) || len(maj) > 9 {
		return 0, &ValidationError{Field: "schemaversion", Reason: fmt.Sprintf("%q is not major.minor, e.g. \"1.0\"", schemaVersion)}
	}
	return strconv.Atoi(maj)
}

// acceptsMajor checks e's major version against the accepted ones.
func acceptsMajor(e *Event, accept []int) error {
	major, err := SchemaMajor(e.SchemaVersion)
	if err != nil {
		return fmt.Errorf("%w; this consumer accepts majors %s", err, formatMajors(accept))
	}
	if !slices.Contains(accept, major) {
		return &ValidationError{Field: "schemaversion", Reason: fmt.Sprintf("major version %d (%s) is not one this consumer accepts (%s)", major, e.SchemaVersion, formatMajors(accept))}
	}
	return nil
}

func formatMajors(ms []int) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = strconv.Itoa(m)
	}
	return strings.Join(s, ", ")
}

// VersionDecoder turns the data of events of one schema major version into
// the handler's current type T. Build one with Current (the data already
// has T's layout) or Upgrade (it has an older layout that a function
// converts).
type VersionDecoder[T any] struct {
	// Major is the schema major version this decoder reads.
	Major int
	// Decode reads e's data (of major Major) as a T.
	Decode func(e *Event) (T, error)
}

// Current is the decoder for the major whose data decodes straight into T
// (DataAs).
func Current[T any](major int) VersionDecoder[T] {
	return VersionDecoder[T]{Major: major, Decode: DataAs[T]}
}

// Upgrade is the decoder for an older major: its data is decoded into Old
// (DataAs), then upgrade converts it to the current T. An error from
// upgrade is a permanent failure.
func Upgrade[Old, T any](major int, upgrade func(old Old) (T, error)) VersionDecoder[T] {
	return VersionDecoder[T]{Major: major, Decode: func(e *Event) (T, error) {
		old, err := DataAs[Old](e)
		if err != nil {
			var zero T
			return zero, err
		}
		return upgrade(old)
	}}
}

// Versioned adapts a handler of T-typed data to a Handler over several
// schema major versions: the event's schemaversion picks the decoder for
// its major, which produces a T (upgrading an old payload if need be)
// before fn runs. An event of a major no decoder reads, without a valid
// schemaversion, or whose data does not decode, is a permanent failure:
// dead-lettered without calling fn. Minor versions need no decoder of their
// own: within a major a new minor only adds optional properties, which an
// older T ignores and a newer T sees as zero values. Versioned panics when
// two decoders claim the same major or none is given (a programming error).
func Versioned[T any](fn func(ctx context.Context, e *Event, data T) error, decoders ...VersionDecoder[T]) Handler {
	if len(decoders) == 0 {
		panic("events.Versioned: no decoder")
	}
	byMajor := make(map[int]func(*Event) (T, error), len(decoders))
	majors := make([]int, 0, len(decoders))
	for _, d := range decoders {
		if _, dup := byMajor[d.Major]; dup || d.Decode == nil {
			panic(fmt.Sprintf("events.Versioned: major %d has a duplicate or nil decoder", d.Major))
		}
		byMajor[d.Major] = d.Decode
		majors = append(majors, d.Major)
	}
	slices.Sort(majors)
	return func(ctx context.Context, e *Event) error {
		major, err := SchemaMajor(e.SchemaVersion)
		if err != nil {
			return Permanent(err)
		}
		decode, ok := byMajor[major]
		if !ok {
			return &ValidationError{Field: "schemaversion", Reason: fmt.Sprintf("no decoder for major version %d (%s); the handler reads majors %s", major, e.SchemaVersion, formatMajors(majors))}
		}
		data, err := decode(e)
		if err != nil {
			return Permanent(err)
		}
		return fn(ctx, e, data)
	}
}
