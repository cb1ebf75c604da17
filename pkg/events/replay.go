package events

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
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
	// EndSequence is the last source sequence of the range, fixed when
	// the replay first starts: a replay resumed from this progress never
	// goes past it, even when its range has an open end and the stream
	// grew meanwhile (a replay into its own stream, say).
	EndSequence uint64
	// Done is true once every message in the range was dealt with.
	Done bool
}

// ReplayMsgID is the Nats-Msg-Id of the republished copy of source
// message seq in replay id.
func ReplayMsgID(id string, seq uint64) string {
	return "replay-" + id + "-" + strconv.FormatUint(seq, 10)
}

// Replay republishes the messages of spec.Stream in the range spec gives,
// in source order, each exactly once, and returns how far it got. (Order
// has one exception: when the connection to the target breaks in the
// middle of a batch, a copy nats.go queued as it broke may be stored after
// the reconnect, ahead of earlier copies of its batch lost with the
// connection; exactly once holds regardless.) It
// returns when the range is done (Done set), when ctx ends (with the
// progress acknowledged so far and an error matching ErrTimeout: call it
// again with that progress as Checkpoint to resume) or when an error
// stops it.
//
// Exactly once does not rest on the target's duplicate window: every copy
// carries Nats-Msg-Id ReplayMsgID(ID, seq) and the headers
// HeaderReplayID and HeaderReplaySequence, and on every start Replay reads
// the target stream after Checkpoint.TargetSequence for copies carrying
// its ID and does not publish those again. All copies of one replay must
// therefore land in one stream (the one that captures the first target
// subject); a copy that another stream would capture is refused. With
// Target.Original (a redrive) the range's headers are read once before
// anything is published, so that such a replay is refused before it
// starts rather than half-way.
//
// The source is read with an ordered consumer that Replay deletes when it
// returns. The end of an open range is the stream's last message when
// Replay starts.
//
// Errors: an invalid spec is a *ValidationError naming the field; a
// missing source stream matches ErrNotFound; a target subject that no
// stream captures, or that another stream than the replay's target
// captures, is an *OpError matching ErrPermanent and naming the subject;
// connection problems that outlast a few retries match ErrConnection or
// ErrTimeout (IsTransient).
func Replay(ctx context.Context, js jetstream.JetStream, spec ReplaySpec) (ReplayProgress, error) {
	if js == nil {
		return spec.Checkpoint, &ValidationError{Field: "js", Reason: "must not be nil"}
	}
	if err := spec.validate(); err != nil {
		return spec.Checkpoint, err
	}
	r := &replayer{spec: spec, js: js, tjs: spec.TargetJetStream, progress: spec.Checkpoint}
	if r.tjs == nil {
		r.tjs = js
	}
	r.progress.Done = false
	r.batch = spec.BatchSize
	if r.batch == 0 {
		r.batch = DefaultReplayBatchSize
	}
	if spec.RateLimit > 0 {
		r.limiter = newTokenBucket(float64(spec.RateLimit), min(r.batch, spec.RateLimit))
	}
	err := r.run(ctx)
	return r.progress, err
}

// validate checks the spec; field names are those of the EventReplay
// resource where one exists.
func (s *ReplaySpec) validate() error {
	switch {
	case s.ID == "":
		return &ValidationError{Field: "id", Reason: "must not be empty"}
	case len(s.ID) > 128:
		return &ValidationError{Field: "id", Reason: "must be at most 128 bytes"}
	case strings.IndexFunc(s.ID, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return &ValidationError{Field: "id", Reason: "must not contain whitespace or control characters"}
	}
	if err := ValidateName(s.Stream); err != nil {
		return &ValidationError{Field: "source.streamRef", Reason: err.Error()}
	}
	for i, f := range s.FilterSubjects {
		if err := validateSubject(f, true); err != nil {
			return &ValidationError{Field: fmt.Sprintf("source.filterSubjects[%d]", i), Reason: err.Error()}
		}
	}
	if s.FromSequence > 0 && !s.FromTime.IsZero() {
		return &ValidationError{Field: "source.from", Reason: "give a sequence or a time, not both"}
	}
	if s.ToSequence > 0 && !s.ToTime.IsZero() {
		return &ValidationError{Field: "source.to", Reason: "give a sequence or a time, not both"}
	}
	if s.ToSequence > 0 && s.FromSequence > s.ToSequence {
		return &ValidationError{Field: "source.to", Reason: fmt.Sprintf("sequence %d is before from sequence %d", s.ToSequence, s.FromSequence)}
	}
	if !s.ToTime.IsZero() && s.ToTime.Before(s.FromTime) {
		return &ValidationError{Field: "source.to", Reason: "time is before from time"}
	}
	n := 0
	if s.Target.Subject != "" {
		n++
		if err := validateSubject(s.Target.Subject, false); err != nil {
			return &ValidationError{Field: "target.subject", Reason: err.Error()}
		}
	}
	if s.Target.SubjectPrefix != "" {
		n++
		p := s.Target.SubjectPrefix
		if !strings.HasSuffix(p, ".") {
			return &ValidationError{Field: "target.subjectPrefix", Reason: fmt.Sprintf("%q must end with '.'", p)}
		}
		if err := validateSubject(strings.TrimSuffix(p, "."), false); err != nil {
			return &ValidationError{Field: "target.subjectPrefix", Reason: err.Error()}
		}
	}
	if s.Target.Original {
		n++
	}
	if n != 1 {
		return &ValidationError{Field: "target", Reason: fmt.Sprintf("set exactly one of subject, subjectPrefix and original (%d set)", n)}
	}
	if s.Redrive && !s.Target.Original {
		return &ValidationError{Field: "redrive", Reason: "a redrive sends dead letters back to their original subjects: the target must be original"}
	}
	if s.DeleteRedriven && !s.Redrive {
		return &ValidationError{Field: "redrive.deleteRedriven", Reason: "only dead letters that are redriven can be deleted: set redrive"}
	}
	if s.RateLimit < 0 {
		return &ValidationError{Field: "rateLimit", Reason: "must not be negative"}
	}
	if s.BatchSize < 0 {
		return &ValidationError{Field: "batchSize", Reason: "must not be negative"}
	}
	return nil
}

// Tunables of the replay loop.
const (
	replayIdleWait     = 2 * time.Second // a read that waits this long re-checks whether anything is left
	replayRetries      = 5               // attempts of a batch's publishes on transient errors
	replayRetryBackoff = 200 * time.Millisecond
	replayAckWait      = 30 * time.Second // for the acks of a batch once it is sent
	replayProbeTTL     = 30 * time.Second // inactive threshold of probe and read consumers
)

type replayer struct {
	spec     ReplaySpec
	js, tjs  jetstream.JetStream
	stream   jetstream.Stream
	batch    int
	limiter  *tokenBucket
	progress ReplayProgress

	end          uint64 // last source sequence in the range
	targetStream string // "" until the first copy's subject is resolved
	// found maps the source sequences the target already holds copies of
	// (published by an earlier run after its checkpoint) to the copies'
	// target sequences; foundSeqs are its keys in order, and
	// foundSeqs[:counted] are counted in progress.
	found     map[uint64]uint64
	foundSeqs []uint64
	counted   int
}

type replayItem struct {
	seq     uint64
	msg     *nats.Msg // nil: skipped
	already bool      // the target holds its copy already
	acked   bool
	target  uint64 // target stream sequence of the acknowledged copy
}

func (r *replayer) run(ctx context.Context) error {
	var err error
	r.stream, err = r.js.Stream(ctx, r.spec.Stream)
	if err != nil {
		return wrap("replay: get stream", r.spec.Stream, err)
	}
	last := r.stream.CachedInfo().State.LastSeq
	start, end := max(r.spec.FromSequence, 1), last
	if r.spec.ToSequence > 0 {
		end = min(end, r.spec.ToSequence)
	}
	if !r.spec.FromTime.IsZero() {
		if start, err = r.seqAtTime(ctx, r.spec.FromTime); err != nil {
			return err
		}
	}
	if !r.spec.ToTime.IsZero() {
		after, err := r.seqAtTime(ctx, r.spec.ToTime.Add(time.Nanosecond))
		if err != nil {
			return err
		}
		end = min(end, after-1)
	}
	if r.progress.EndSequence > 0 {
		end = min(end, r.progress.EndSequence)
	}
	r.end = end
	from := start
	if r.progress.LastSequence >= from {
		from = r.progress.LastSequence + 1
	}
	remaining := uint64(0)
	if from <= end {
		if remaining, err = r.count(ctx, from, end); err != nil {
			return err
		}
	}
	if r.progress == (ReplayProgress{}) {
		r.progress.Total = remaining
		r.progress.EndSequence = end
	}
	if r.spec.Target.Subject != "" && remaining > 0 {
		if err := r.resolveTarget(ctx, r.spec.Target.Subject); err != nil {
			return err
		}
	}
	if r.spec.Target.Original && remaining > 0 {
		if err := r.checkOneTarget(ctx, from); err != nil {
			return err
		}
	}
	if remaining > 0 {
		if err := r.replay(ctx, from); err != nil {
			return err
		}
	}
	for ; r.counted < len(r.foundSeqs); r.counted++ { // their sources are gone
		r.progress.Replayed++
		r.progress.TargetSequence = max(r.progress.TargetSequence, r.found[r.foundSeqs[r.counted]])
	}
	r.progress.Done = true
	r.progress.Total = r.progress.Replayed + r.progress.Skipped
	if r.spec.OnProgress != nil {
		r.spec.OnProgress(r.progress)
	}
	return nil
}

// replay reads the source from sequence from to r.end and republishes it
// batch by batch.
func (r *replayer) replay(ctx context.Context, from uint64) error {
	cons, err := r.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    r.spec.FilterSubjects,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		InactiveThreshold: replayProbeTTL,
	})
	if err != nil {
		return wrap("replay: read stream", r.spec.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * r.batch))
	if err != nil {
		return wrap("replay: read stream", r.spec.Stream, err)
	}
	defer r.closeConsumer(ctx, r.js, r.spec.Stream, cons, it)
	defer context.AfterFunc(ctx, it.Stop)() // Next returns at once when ctx ends
	// A watchdog instead of a timeout on every Next (a timer per message
	// costs throughput): if Next waits a whole idle period without a
	// message, the rest of the range may have been deleted meanwhile; it
	// stops the iterator when nothing is left.
	var lastSeen atomic.Uint64
	var waiting, drained atomic.Bool
	lastSeen.Store(from - 1)
	stopWatch := make(chan struct{})
	var watching sync.WaitGroup
	defer watching.Wait() // no probe consumer outlives Replay
	defer close(stopWatch)
	watching.Add(1)
	go func() {
		defer watching.Done()
		tick := time.NewTicker(replayIdleWait)
		defer tick.Stop()
		prev := lastSeen.Load()
		for {
			select {
			case <-stopWatch:
				return
			case <-tick.C:
			}
			seen := lastSeen.Load()
			if waiting.Load() && seen == prev {
				if left, err := r.count(ctx, seen+1, r.end); err == nil && left == 0 || seen >= r.end {
					drained.Store(true)
					it.Stop()
					return
				}
			}
			prev = seen
		}
	}()

	batch := make([]replayItem, 0, r.batch)
	for done := false; !done; {
		batch = batch[:0]
		for len(batch) < r.batch {
			waiting.Store(true)
			m, err := it.Next()
			waiting.Store(false)
			if err != nil {
				if ctx.Err() != nil {
					return wrap("replay", r.spec.Stream, ctx.Err())
				}
				if drained.Load() {
					done = true
					break
				}
				return wrap("replay: read stream", r.spec.Stream, err)
			}
			meta, err := m.Metadata()
			if err != nil {
				return wrap("replay: read stream", r.spec.Stream, err)
			}
			seq := meta.Sequence.Stream
			lastSeen.Store(seq)
			if seq > r.end {
				done = true
				break
			}
			batch = append(batch, r.prepare(m, seq))
			if seq >= r.end || meta.NumPending == 0 {
				done = true
			}
			if done {
				break
			}
		}
		if len(batch) > 0 {
			if err := r.flush(ctx, batch); err != nil {
				return err
			}
		}
	}
	return nil
}

// prepare builds the copy of source message m.
func (r *replayer) prepare(m jetstream.Msg, seq uint64) replayItem {
	h := m.Headers()
	subject := r.targetSubject(m.Subject(), h)
	if subject == "" {
		return replayItem{seq: seq}
	}
	out := make(nats.Header, len(h)+3)
	for k, vs := range h {
		if hasPrefixFold(k, "Nats-") || (r.spec.Redrive && hasPrefixFold(k, "Dlq-")) ||
			strings.EqualFold(k, HeaderReplayID) || strings.EqualFold(k, HeaderReplaySequence) {
			continue
		}
		out[k] = vs
	}
	seqText := strconv.FormatUint(seq, 10)
	out[HeaderReplayID] = []string{r.spec.ID}
	out[HeaderReplaySequence] = []string{seqText}
	out[HeaderMsgID] = []string{ReplayMsgID(r.spec.ID, seq)}
	return replayItem{seq: seq, msg: &nats.Msg{Subject: subject, Header: out, Data: m.Data()}}
}

// targetSubject is where the copy of a message on subject with headers h
// goes; "" means the message is skipped.
func (r *replayer) targetSubject(subject string, h nats.Header) string {
	switch t := r.spec.Target; {
	case t.Subject != "":
		return t.Subject
	case t.SubjectPrefix != "":
		return t.SubjectPrefix + subject
	}
	target := h.Get(HeaderDLQSubject)
	if target == "" && !r.spec.Redrive {
		target = subject
	}
	if target == "" || !isPublishSubject(target) {
		return ""
	}
	return target
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// flush publishes a batch's copies in order, waits for all their
// acknowledgements (retrying the unacknowledged rest, in order, with the
// same message IDs on transient errors), deletes redriven dead letters
// and reports progress.
func (r *replayer) flush(ctx context.Context, batch []replayItem) error {
	if r.targetStream == "" {
		for _, it := range batch {
			if it.msg != nil {
				if err := r.resolveTarget(ctx, it.msg.Subject); err != nil {
					return err
				}
				break
			}
		}
	}
	for i := range batch {
		if _, ok := r.found[batch[i].seq]; ok && batch[i].msg != nil {
			batch[i].already = true
		}
	}
	for attempt := 1; ; attempt++ {
		err := r.publish(ctx, batch)
		if err == nil {
			break
		}
		if !IsTransient(err) || attempt >= replayRetries || ctx.Err() != nil {
			if ctx.Err() != nil {
				return wrap("replay", r.spec.Stream, ctx.Err())
			}
			return err
		}
		select {
		case <-ctx.Done():
			return wrap("replay", r.spec.Stream, ctx.Err())
		case <-time.After(time.Duration(attempt) * replayRetryBackoff):
		}
		// A copy whose ack was lost may be stored: read the target
		// again rather than trust its duplicate window.
		if found, err := r.scanTarget(ctx, r.progress.TargetSequence+1); err == nil {
			for i := range batch {
				it := &batch[i]
				if t, ok := found[it.seq]; ok && it.msg != nil && !it.already && !it.acked {
					it.acked, it.target = true, t
				}
			}
		}
	}
	p := r.progress
	for _, it := range batch {
		switch {
		case it.msg == nil:
			p.Skipped++
		case it.already: // counted with r.foundSeqs below
		default:
			p.Replayed++
			p.TargetSequence = max(p.TargetSequence, it.target)
		}
		if r.spec.DeleteRedriven && it.msg != nil {
			if err := r.stream.DeleteMsg(ctx, it.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return wrap("replay: delete redriven message", r.spec.Stream, err)
			}
		}
	}
	p.LastSequence = batch[len(batch)-1].seq
	// Copies an earlier run published count once their source position is
	// passed (also when their dead letters are deleted already).
	for ; r.counted < len(r.foundSeqs) && r.foundSeqs[r.counted] <= p.LastSequence; r.counted++ {
		p.Replayed++
		p.TargetSequence = max(p.TargetSequence, r.found[r.foundSeqs[r.counted]])
	}
	r.progress = p
	if r.spec.OnProgress != nil {
		r.spec.OnProgress(r.progress)
	}
	return nil
}

// publish sends the batch's copies that are not acknowledged yet and
// waits for their acknowledgements.
func (r *replayer) publish(ctx context.Context, batch []replayItem) error {
	type sent struct {
		i int
		f jetstream.PubAckFuture
	}
	futures := make([]sent, 0, len(batch))
	resolved := 0 // futures[:resolved] have their outcome recorded
	var firstErr error
	// resolve waits for the next outstanding acknowledgement, or until
	// deadline (nil: no deadline).
	resolve := func(deadline <-chan time.Time) error {
		s := futures[resolved]
		resolved++
		it := &batch[s.i]
		select {
		case ack := <-s.f.Ok():
			it.acked, it.target = true, ack.Sequence
		case err := <-s.f.Err():
			if firstErr == nil {
				firstErr = r.publishError(ctx, it.msg.Subject, err)
			}
		case <-deadline:
			// An ack lost without a disconnect (nats.go resolves the
			// pending ones on a disconnect): retried, after a new scan of
			// the target.
			return &OpError{Op: "replay: publish", Name: r.targetStream, Kind: ErrTimeout,
				Err: fmt.Errorf("no acknowledgement within %s", replayAckWait)}
		case <-ctx.Done():
			return wrap("replay", r.spec.Stream, ctx.Err())
		}
		return nil
	}
	var sendErr error
	for i := range batch {
		it := &batch[i]
		if it.msg == nil || it.already || it.acked {
			continue
		}
		if r.limiter != nil {
			if err := r.limiter.wait(ctx); err != nil {
				sendErr = err
				break
			}
		}
		// Never hand a copy to nats.go's reconnect buffer: it would reach
		// the server after the reconnect, after earlier copies that were
		// lost with the connection, and out of order. Stop the batch
		// instead; its retry (after a scan of the target) sends the rest
		// in order.
		if nc := r.tjs.Conn(); nc != nil && nc.Status() != nats.CONNECTED {
			sendErr = nats.ErrConnectionReconnecting
			break
		}
		f, err := r.tjs.PublishMsgAsync(it.msg, jetstream.WithExpectStream(r.targetStream))
		// A batch larger than the connection's async window (nats.go's
		// PublishAsyncMaxPending): wait for the oldest ack and send again.
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) && resolved < len(futures) {
			if werr := resolve(nil); werr != nil {
				return werr
			}
			f, err = r.tjs.PublishMsgAsync(it.msg, jetstream.WithExpectStream(r.targetStream))
		}
		if err != nil {
			sendErr = err
			break
		}
		futures = append(futures, sent{i, f})
	}
	deadline := time.NewTimer(replayAckWait)
	defer deadline.Stop()
	for resolved < len(futures) {
		if err := resolve(deadline.C); err != nil {
			return err
		}
	}
	if firstErr != nil {
		return firstErr
	}
	if sendErr != nil {
		return wrap("replay: publish", r.targetStream, sendErr)
	}
	return nil
}

// publishError classifies a failed publish of a copy to subject: a subject
// no stream (or another stream) captures is permanent.
func (r *replayer) publishError(ctx context.Context, subject string, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == codeStreamNotMatch {
		name, _ := r.tjs.StreamNameBySubject(ctx, subject)
		return &OpError{Op: "replay: publish", Name: subject, Kind: ErrPermanent,
			Err: fmt.Errorf("subject is captured by stream %q, not by the replay's target stream %q; split the replay with filterSubjects", name, r.targetStream)}
	}
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		if _, lerr := r.tjs.StreamNameBySubject(ctx, subject); errors.Is(lerr, jetstream.ErrStreamNotFound) {
			return noTargetStream(subject)
		}
	}
	return wrap("replay: publish", subject, err)
}

// maxCheckedSubjects bounds checkOneTarget's look-ups: a range whose
// copies go to more distinct subjects is checked copy by copy only (the
// publish of a copy another stream captures fails).
const maxCheckedSubjects = 1000

// checkOneTarget reads the headers of the range once, before anything is
// published, and refuses a replay to original subjects (a redrive: each
// dead letter's Dlq-Original-Subject) whose copies would land in more than
// one stream, or in none: better than stopping half-way, when a second
// replay would have to pick up exactly the rest.
func (r *replayer) checkOneTarget(ctx context.Context, from uint64) error {
	cons, err := r.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    r.spec.FilterSubjects,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		HeadersOnly:       true,
		InactiveThreshold: replayProbeTTL,
	})
	if err != nil {
		return wrap("replay: read stream", r.spec.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return wrap("replay: read stream", r.spec.Stream, err)
	}
	defer r.closeConsumer(ctx, r.js, r.spec.Stream, cons, it)
	defer context.AfterFunc(ctx, it.Stop)()
	streamOf := map[string]string{} // target subject → stream
	byStream := map[string]string{} // stream → a subject it captures
	for len(streamOf) < maxCheckedSubjects {
		m, err := it.Next(jetstream.NextMaxWait(replayIdleWait))
		if err != nil {
			if ctx.Err() != nil {
				return wrap("replay", r.spec.Stream, ctx.Err())
			}
			if errors.Is(err, nats.ErrTimeout) {
				break // the rest of the range was deleted meanwhile
			}
			return wrap("replay: read stream", r.spec.Stream, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return wrap("replay: read stream", r.spec.Stream, err)
		}
		if meta.Sequence.Stream > r.end {
			break
		}
		if subject := r.targetSubject(m.Subject(), m.Headers()); subject != "" {
			if _, seen := streamOf[subject]; !seen {
				name, err := r.tjs.StreamNameBySubject(ctx, subject)
				if errors.Is(err, jetstream.ErrStreamNotFound) {
					return noTargetStream(subject)
				}
				if err != nil {
					return wrap("replay: find target stream", subject, err)
				}
				streamOf[subject] = name
				if _, ok := byStream[name]; !ok {
					byStream[name] = subject
				}
				if len(byStream) > 1 {
					var parts []string
					for st, sub := range byStream {
						parts = append(parts, fmt.Sprintf("%s to stream %s", sub, st))
					}
					sort.Strings(parts)
					return &OpError{Op: "replay", Name: r.spec.Stream, Kind: ErrPermanent,
						Err: fmt.Errorf("the copies would land in more than one stream (%s): a replay writes to one stream; split it with filterSubjects", strings.Join(parts, ", "))}
				}
			}
		}
		if meta.Sequence.Stream >= r.end || meta.NumPending == 0 {
			break
		}
	}
	return nil
}

// codeStreamNotMatch is JSStreamNotMatchErr: the expected stream does not
// match (WithExpectStream).
const codeStreamNotMatch = 10060

func noTargetStream(subject string) error {
	return &OpError{Op: "replay: publish", Name: subject, Kind: ErrPermanent,
		Err: errors.New("no stream captures the target subject")}
}

// resolveTarget finds the stream that captures subject, the replay's
// target, and reads from it which copies an earlier run already published.
func (r *replayer) resolveTarget(ctx context.Context, subject string) error {
	name, err := r.tjs.StreamNameBySubject(ctx, subject)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return noTargetStream(subject)
		}
		return wrap("replay: find target stream", subject, err)
	}
	r.targetStream = name
	found, err := r.scanTarget(ctx, r.progress.TargetSequence+1)
	if err != nil {
		return err
	}
	r.found = found
	r.foundSeqs = slices.Sorted(maps.Keys(found))
	return nil
}

// scanTarget reads the headers of the target stream from sequence from to
// its current end and returns the copies this replay published there for
// source messages after the checkpoint (source sequence → target
// sequence), so that they are neither published nor counted twice. It
// changes no progress: a scan that fails half-way must not move the
// checkpoint past copies whose source messages were not dealt with.
func (r *replayer) scanTarget(ctx context.Context, from uint64) (map[uint64]uint64, error) {
	found := map[uint64]uint64{}
	st, err := r.tjs.Stream(ctx, r.targetStream)
	if err != nil {
		return nil, wrap("replay: get target stream", r.targetStream, err)
	}
	state := st.CachedInfo().State
	from = max(from, state.FirstSeq)
	if from > state.LastSeq || state.Msgs == 0 {
		return found, nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		HeadersOnly:       true,
		InactiveThreshold: replayProbeTTL,
	})
	if err != nil {
		return nil, wrap("replay: read target stream", r.targetStream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return nil, wrap("replay: read target stream", r.targetStream, err)
	}
	defer r.closeConsumer(ctx, r.tjs, r.targetStream, cons, it)
	defer context.AfterFunc(ctx, it.Stop)()
	for {
		m, err := it.Next(jetstream.NextMaxWait(replayIdleWait))
		if err != nil {
			if ctx.Err() != nil {
				return nil, wrap("replay", r.spec.Stream, ctx.Err())
			}
			if errors.Is(err, nats.ErrTimeout) {
				return found, nil // the rest was deleted meanwhile
			}
			return nil, wrap("replay: read target stream", r.targetStream, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return nil, wrap("replay: read target stream", r.targetStream, err)
		}
		if meta.Sequence.Stream > state.LastSeq {
			return found, nil
		}
		h := m.Headers()
		if h.Get(HeaderReplayID) == r.spec.ID {
			seq, perr := strconv.ParseUint(h.Get(HeaderReplaySequence), 10, 64)
			if _, dup := found[seq]; perr == nil && seq > r.progress.LastSequence && seq <= r.end && !dup {
				found[seq] = meta.Sequence.Stream
			}
		}
		if meta.Sequence.Stream >= state.LastSeq || meta.NumPending == 0 {
			return found, nil
		}
	}
}

// closeConsumer stops reading and deletes the ordered consumer, also when
// ctx has ended.
func (r *replayer) closeConsumer(ctx context.Context, js jetstream.JetStream, stream string, cons jetstream.Consumer, it jetstream.MessagesContext) {
	it.Stop()
	if info := cons.CachedInfo(); info != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = js.DeleteConsumer(dctx, stream, info.Name)
	}
}

// probe creates a short-lived consumer to ask JetStream where a start
// position is and how many matching messages follow it.
func (r *replayer) probe(ctx context.Context, cfg jetstream.ConsumerConfig) (*jetstream.ConsumerInfo, error) {
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.InactiveThreshold = replayProbeTTL
	cfg.MemoryStorage = true
	cons, err := r.js.CreateConsumer(ctx, r.spec.Stream, cfg)
	if err != nil {
		return nil, wrap("replay: probe stream", r.spec.Stream, err)
	}
	info := cons.CachedInfo()
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = r.js.DeleteConsumer(dctx, r.spec.Stream, info.Name)
	return info, nil
}

// seqAtTime returns the sequence of the first message stored at or after
// t (the last sequence + 1 when there is none).
func (r *replayer) seqAtTime(ctx context.Context, t time.Time) (uint64, error) {
	info, err := r.probe(ctx, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t})
	if err != nil {
		return 0, err
	}
	return info.Delivered.Stream + 1, nil
}

// count returns how many messages matching the filter lie between from
// and to, both included.
func (r *replayer) count(ctx context.Context, from, to uint64) (uint64, error) {
	pending := func(seq uint64) (uint64, error) {
		info, err := r.probe(ctx, jetstream.ConsumerConfig{
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq, FilterSubjects: r.spec.FilterSubjects,
		})
		if err != nil {
			return 0, err
		}
		return info.NumPending, nil
	}
	tail, err := pending(to + 1)
	if err != nil {
		return 0, err
	}
	all, err := pending(from)
	if err != nil {
		return 0, err
	}
	if all < tail {
		return 0, nil
	}
	return all - tail, nil
}

// tokenBucket paces a replay: rate tokens a second, at most burst saved.
type tokenBucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(max(burst, 1)), tokens: 1, last: time.Now()}
}

// wait takes one token, sleeping until there is one.
func (b *tokenBucket) wait(ctx context.Context) error {
	now := time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	d := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	now = time.Now()
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate) - 1
	b.last = now
	return nil
}
