package events

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Headers every message Replay republishes carries, besides its
// Nats-Msg-Id (ReplayMsgID). On a restart Replay reads them back from the
// target stream to find what it already published, so that a replay
// resumes without duplicates however long it was interrupted — it does
// not rely on the target's duplicate window.
const (
	HeaderReplayID       = "Events-Replay-Id"
	HeaderReplaySequence = "Events-Replay-Sequence"
)

// ReplayTarget says where Replay republishes each message: exactly one of
// the three must be set.
type ReplayTarget struct {
	// Subject: every message goes to this one subject.
	Subject string
	// SubjectPrefix is prepended to each message's subject ("replay."
	// sends auth.user.created to replay.auth.user.created). It must end
	// with ".".
	SubjectPrefix string
	// Original: each message goes back to its own subject; a dead letter
	// (a message with a Dlq-Original-Subject header) goes to the subject
	// in that header.
	Original bool
}

// ReplaySpec describes one replay: which messages of which stream, where
// they go, and how fast. The zero values of the optional fields mean
// "open", "unlimited" or "default".
type ReplaySpec struct {
	// ID is the replay's identity (required). The operator passes the
	// EventReplay's UID. Republished messages carry it, and a replay
	// restarted with the same ID resumes where it stopped.
	ID string
	// Stream is the source stream (required).
	Stream string
	// FilterSubjects restricts the replay to messages on these subjects
	// (wildcards allowed); empty means every message in the range.
	FilterSubjects []string
	// FromSequence and ToSequence bound the range by stream sequence,
	// both ends included; 0 leaves that end open.
	FromSequence, ToSequence uint64
	// FromTime and ToTime bound the range by the time JetStream stored
	// the message, both ends included; the zero time leaves that end
	// open. A sequence and a time bound on the same end are an error.
	// An open end is the stream's last message when the replay starts:
	// a replay finishes, it does not follow new messages.
	FromTime, ToTime time.Time
	// Target says where the messages go.
	Target ReplayTarget
	// Redrive treats the source as a dead-letter stream (Target must be
	// Original): each dead letter goes back to its Dlq-Original-Subject
	// with the Dlq-* headers removed and the original headers (the ce-*
	// attributes) kept. A dead letter without Dlq-Original-Subject is
	// skipped and counted in ReplayProgress.Skipped.
	Redrive bool
	// DeleteRedriven deletes each dead letter from the source once its
	// republish is acknowledged (Redrive only).
	DeleteRedriven bool
	// TargetJetStream publishes to another connection (another account
	// or cluster); nil publishes with the js given to Replay.
	TargetJetStream jetstream.JetStream
	// RateLimit caps the replay at this many messages per second; 0 is
	// unlimited. Bursts never exceed one batch.
	RateLimit int
	// BatchSize is how many messages are published before waiting for
	// their acknowledgements and reporting progress; 0 means
	// DefaultReplayBatchSize.
	BatchSize int
	// Checkpoint is the progress of an earlier run of this replay (the
	// last one OnProgress reported, or Replay returned) to resume from;
	// the zero value starts from the beginning. It only bounds the work
	// on restart: what was published is read back from the target.
	Checkpoint ReplayProgress
	// OnProgress, if set, is called after every batch whose
	// acknowledgements all arrived, and once more when the replay is
	// done. It runs on Replay's goroutine: a slow OnProgress slows the
	// replay.
	OnProgress func(ReplayProgress)
}

// DefaultReplayBatchSize is the batch size of a ReplaySpec that names none.
const DefaultReplayBatchSize = 256

// ReplayProgress is how far a replay got.
type ReplayProgress struct {
	// Total is the number of messages in the range when the replay
	// started (matching FilterSubjects); exact once Done.
	Total uint64
	// Replayed is the number of messages republished and acknowledged.
	Replayed uint64
	// Skipped is the number of messages not republished (dead letters
	// without Dlq-Original-Subject in redrive mode).
	Skipped uint64
	// LastSequence is the source stream sequence of the last message
	// dealt with (replayed or skipped).
	LastSequence uint64
	// TargetSequence is the target stream sequence of the last replayed
	// message.
	TargetSequence uint64
	// Done is true once every message in the range was dealt with.
	Done bool
}

// ReplayMsgID is the Nats-Msg-Id of the republished copy of source
// message seq in replay id.
func ReplayMsgID(id string, seq uint64) string {
	return "replay-" + id + "-" + strconv.FormatUint(seq, 10)
}

// Replay republishes the messages of spec.Stream in the range spec gives,
// in source order, each exactly once, and returns how far it got. It
// returns when the range is done, ctx ends (with the progress made so
// far: call it again with that progress as Checkpoint to resume) or a
// permanent error stops it.
//
// Errors: an invalid spec is a *ValidationError naming the field; a
// missing source stream matches ErrNotFound; a target subject that no
// stream captures (or that another stream than the replay's target
// captures) is a permanent error naming the subject.
func Replay(ctx context.Context, js jetstream.JetStream, spec ReplaySpec) (ReplayProgress, error) {
	return spec.Checkpoint, errors.New("events: Replay: not implemented yet")
}

var _ = time.Second
