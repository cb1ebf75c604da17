package events_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// stored is a message as a stream holds it.
type stored struct {
	seq     uint64
	subject string
	header  nats.Header
	data    string
	time    time.Time
}

// streamMsgs returns every message stream holds, in order.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get %s/%d: %v", stream, seq, err)
		}
		out = append(out, stored{seq: m.Sequence, subject: m.Subject, header: m.Header, data: string(m.Data), time: m.Time})
	}
	return out
}

// publishN publishes n messages whose data is "<i>" on subjectOf(i), i
// from 1, each with a ce-id header; stream sequences are 1..n on a fresh
// stream.
func publishN(t *testing.T, js jetstream.JetStream, n int, subjectOf func(i int) string) {
	t.Helper()
	for i := 1; i <= n; i++ {
		msg := &nats.Msg{Subject: subjectOf(i), Header: nats.Header{"ce-id": {"id-" + strconv.Itoa(i)}}, Data: []byte(strconv.Itoa(i))}
		if _, err := js.PublishMsgAsync(msg, jetstream.WithMsgID("orig-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishes not acknowledged")
	}
}

// replaySeqs returns the Events-Replay-Sequence of each message, checking
// that every one carries replay id, and its Nats-Msg-Id.
func replaySeqs(t *testing.T, msgs []stored, id string) []uint64 {
	t.Helper()
	out := make([]uint64, 0, len(msgs))
	for _, m := range msgs {
		if got := m.header.Get(events.HeaderReplayID); got != id {
			t.Fatalf("target seq %d: %s = %q, want %q", m.seq, events.HeaderReplayID, got, id)
		}
		seq, err := strconv.ParseUint(m.header.Get(events.HeaderReplaySequence), 10, 64)
		if err != nil {
			t.Fatalf("target seq %d: %s: %v", m.seq, events.HeaderReplaySequence, err)
		}
		if got, want := m.header.Get(events.HeaderMsgID), events.ReplayMsgID(id, seq); got != want {
			t.Fatalf("target seq %d: Nats-Msg-Id %q, want %q", m.seq, got, want)
		}
		if m.data != strconv.FormatUint(seq, 10) {
			t.Fatalf("target seq %d: data %q is not source message %d's", m.seq, m.data, seq)
		}
		out = append(out, seq)
	}
	return out
}

func seqRange(from, to, step uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s += step {
		out = append(out, s)
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustReplay(t *testing.T, js jetstream.JetStream, spec events.ReplaySpec) events.ReplayProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := events.Replay(ctx, js, spec)
	if err != nil {
		t.Fatalf("Replay: %v (progress %+v)", err, p)
	}
	if !p.Done {
		t.Fatalf("Replay returned without error but not done: %+v", p)
	}
	return p
}

// assertNoConsumers checks that Replay left no consumer on the stream.
func assertNoConsumers(t *testing.T, js jetstream.JetStream, stream string) {
	t.Helper()
	st, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("stream %s has %d consumers after Replay returned", stream, info.State.Consumers)
	}
}

func TestReplayRangeBySequence(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, "SRC", []string{"src.>"})
	// Odd sequences on src.a, even on src.b.
	publishN(t, js, 100, func(i int) string { return map[bool]string{true: "src.a", false: "src.b"}[i%2 == 1] })

	tests := []struct {
		name     string
		from, to uint64
		filter   []string
		want     []uint64
	}{
		{"a closed range holds both ends", 10, 30, nil, seqRange(10, 30, 1)},
		{"an open start begins at the first message", 0, 5, nil, seqRange(1, 5, 1)},
		{"an open end stops at the last message at start", 95, 0, nil, seqRange(95, 100, 1)},
		{"filter subjects keep only matching messages", 10, 30, []string{"src.a"}, seqRange(11, 29, 2)},
		{"a range past the end is empty and done", 101, 0, nil, nil},
	}
	eventstest.CreateStream(t, js, "TGT", []string{"tgt.>"})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject := fmt.Sprintf("tgt.%d", i)
			var reports []events.ReplayProgress
			p := mustReplay(t, js, events.ReplaySpec{
				ID: "r" + strconv.Itoa(i), Stream: "SRC", FromSequence: tt.from, ToSequence: tt.to, FilterSubjects: tt.filter,
				Target: events.ReplayTarget{Subject: subject}, BatchSize: 4,
				OnProgress: func(p events.ReplayProgress) { reports = append(reports, p) },
			})
			var got []stored
			for _, m := range streamMsgs(t, js, "TGT") {
				if m.subject == subject {
					got = append(got, m)
				}
			}
			if seqs := replaySeqs(t, got, "r"+strconv.Itoa(i)); !equalSeqs(seqs, tt.want) {
				t.Fatalf("target holds source sequences %v, want %v", seqs, tt.want)
			}
			for _, m := range got {
				if m.subject != subject {
					t.Fatalf("copy on %q, want %q", m.subject, subject)
				}
				if m.header.Get("ce-id") == "" {
					t.Fatalf("copy lost its ce-id header: %v", m.header)
				}
			}
			n := uint64(len(tt.want))
			if p.Total != n || p.Replayed != n || p.Skipped != 0 {
				t.Fatalf("progress %+v, want total = replayed = %d", p, n)
			}
			if n > 0 && (p.LastSequence != tt.want[n-1] || p.TargetSequence != got[n-1].seq) {
				t.Fatalf("progress %+v: last sequence want %d, target sequence %d", p, tt.want[n-1], got[n-1].seq)
			}
			if len(reports) == 0 || reports[len(reports)-1] != p {
				t.Fatalf("last OnProgress report %+v, want the returned %+v", reports, p)
			}
			if want := (int(n)+3)/4 + 1; len(reports) != want {
				t.Fatalf("%d OnProgress reports, want one per batch of 4 and one at the end: %d", len(reports), want)
			}
			assertNoConsumers(t, js, "SRC")
			assertNoConsumers(t, js, "TGT")
		})
	}
}

func TestReplayRangeByTime(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, "SRC", []string{"src.>"})
	eventstest.CreateStream(t, js, "TGT", []string{"tgt.>"})
	publishN(t, js, 10, func(int) string { return "src.a" })
	time.Sleep(20 * time.Millisecond)
	t1 := time.Now()
	time.Sleep(20 * time.Millisecond)
	ctx := context.Background()
	for i := 11; i <= 20; i++ {
		if _, err := js.Publish(ctx, "src.a", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	all := streamMsgs(t, js, "SRC")
	t2 := all[19].time // the 20th message's own time: an inclusive bound
	time.Sleep(20 * time.Millisecond)
	for i := 21; i <= 30; i++ {
		if _, err := js.Publish(ctx, "src.a", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name     string
		from, to time.Time
		want     []uint64
	}{
		{"a closed time range; the end's own message is in", t1, t2, seqRange(11, 20, 1)},
		{"an open start", time.Time{}, t1, seqRange(1, 10, 1)},
		{"an open end", t1, time.Time{}, seqRange(11, 30, 1)},
		{"a start after the last message is empty", time.Now().Add(time.Hour), time.Time{}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "time" + strconv.Itoa(i)
			before := len(streamMsgs(t, js, "TGT"))
			p := mustReplay(t, js, events.ReplaySpec{ID: id, Stream: "SRC", FromTime: tt.from, ToTime: tt.to,
				Target: events.ReplayTarget{SubjectPrefix: "tgt."}})
			got := streamMsgs(t, js, "TGT")[before:]
			if seqs := replaySeqs(t, got, id); !equalSeqs(seqs, tt.want) {
				t.Fatalf("target holds source sequences %v, want %v", seqs, tt.want)
			}
			if p.Total != uint64(len(tt.want)) || p.Replayed != p.Total {
				t.Fatalf("progress %+v, want %d", p, len(tt.want))
			}
		})
	}
}

func TestReplayTargetModes(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, "SRC", []string{"src.>"})
	eventstest.CreateStream(t, js, "REPLAY", []string{"replay.>"})
	publishN(t, js, 6, func(i int) string { return "src." + strconv.Itoa(i) + ".x" })

	t.Run("a subject prefix is prepended to each original subject", func(t *testing.T) {
		mustReplay(t, js, events.ReplaySpec{ID: "prefix", Stream: "SRC", Target: events.ReplayTarget{SubjectPrefix: "replay."}})
		got := streamMsgs(t, js, "REPLAY")
		if len(got) != 6 {
			t.Fatalf("REPLAY holds %d messages, want 6", len(got))
		}
		for i, m := range got {
			if want := "replay.src." + strconv.Itoa(i+1) + ".x"; m.subject != want {
				t.Fatalf("copy %d on %q, want %q", i, m.subject, want)
			}
		}
	})
	t.Run("original sends each message back to its own subject, into the same stream", func(t *testing.T) {
		p := mustReplay(t, js, events.ReplaySpec{ID: "orig", Stream: "SRC", Target: events.ReplayTarget{Original: true}, BatchSize: 2})
		got := streamMsgs(t, js, "SRC")
		if len(got) != 12 || p.Replayed != 6 {
			t.Fatalf("SRC holds %d messages after replaying into itself (progress %+v), want 12", len(got), p)
		}
		seqs := replaySeqs(t, got[6:], "orig")
		if !equalSeqs(seqs, seqRange(1, 6, 1)) {
			t.Fatalf("copies of %v, want 1..6 once each", seqs)
		}
		for i, m := range got[6:] {
			if m.subject != got[i].subject || m.header.Get("ce-id") != got[i].header.Get("ce-id") {
				t.Fatalf("copy %d on %q with %v, want the original's subject %q and headers", i, m.subject, m.header, got[i].subject)
			}
		}
	})
}

// deadLetter builds a dead letter of an event as the library's subscriber
// writes it.
func deadLetter(t *testing.T, originalSubject string, seq uint64) *nats.Msg {
	t.Helper()
	e, err := events.NewEvent("order.placed", "orders", "org-1", time.Now(), map[string]any{"n": seq})
	if err != nil {
		t.Fatal(err)
	}
	orig, err := events.Encode(e, events.ModeBinary)
	if err != nil {
		t.Fatal(err)
	}
	orig.Header.Set(events.HeaderMsgID, "orig-"+strconv.FormatUint(seq, 10))
	return events.NewDeadLetterMsg(events.DeadLetterSubject(originalSubject), orig.Header, orig.Data, events.DeadLetterInfo{
		Stream: "ORDERS", Consumer: "billing", Subject: originalSubject, Sequence: seq, Deliveries: 5, Reason: "handler failed", Time: time.Now(),
	})
}

func TestReplayRedrive(t *testing.T) {
	for _, deleteRedriven := range []bool{false, true} {
		t.Run(fmt.Sprintf("deleteRedriven=%v", deleteRedriven), func(t *testing.T) {
			srv := eventstest.RunJetStream(t)
			js := srv.JetStream(t)
			ctx := context.Background()
			eventstest.CreateStream(t, js, "ORDERS", []string{"orders.>"})
			eventstest.CreateStream(t, js, "DLQ", []string{"dlq.>"})
			var letters []*nats.Msg
			for i := uint64(1); i <= 7; i++ {
				m := deadLetter(t, "orders.placed."+strconv.FormatUint(i, 10), i)
				letters = append(letters, m)
				if i == 4 { // a dead letter that lost its origin
					m.Header.Del(events.HeaderDLQSubject)
				}
				if _, err := js.PublishMsg(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			p := mustReplay(t, js, events.ReplaySpec{ID: "redrive", Stream: "DLQ", Target: events.ReplayTarget{Original: true},
				Redrive: true, DeleteRedriven: deleteRedriven, BatchSize: 3})
			if p.Replayed != 6 || p.Skipped != 1 || p.Total != 7 || p.LastSequence != 7 {
				t.Fatalf("progress %+v, want 6 replayed, 1 skipped of 7", p)
			}
			got := streamMsgs(t, js, "ORDERS")
			if len(got) != 6 {
				t.Fatalf("ORDERS holds %d messages, want 6", len(got))
			}
			j := 0
			for i, l := range letters {
				if i == 3 {
					continue
				}
				m := got[j]
				j++
				if want := "orders.placed." + strconv.Itoa(i+1); m.subject != want {
					t.Fatalf("redriven to %q, want %q", m.subject, want)
				}
				for k := range m.header {
					if strings.HasPrefix(strings.ToLower(k), "dlq-") {
						t.Fatalf("redriven message keeps %s: %v", k, m.header)
					}
				}
				for k, vs := range l.Header {
					if strings.HasPrefix(k, events.HeaderPrefix) && m.header.Get(k) != vs[0] {
						t.Fatalf("redriven message has %s = %q, want %q", k, m.header.Get(k), vs[0])
					}
				}
				if m.data != string(l.Data) {
					t.Fatalf("redriven data %q, want %q", m.data, l.Data)
				}
				e, err := events.DecodeParts(m.header, []byte(m.data))
				if err != nil || e.Type != "order.placed" {
					t.Fatalf("redriven message does not decode as the original event: %v", err)
				}
			}
			dlq := streamMsgs(t, js, "DLQ")
			if deleteRedriven {
				if len(dlq) != 1 || dlq[0].seq != 4 {
					t.Fatalf("DLQ holds %d messages, want only the skipped one (seq 4): %+v", len(dlq), dlq)
				}
			} else if len(dlq) != 7 {
				t.Fatalf("DLQ holds %d messages, want all 7 kept", len(dlq))
			}
			// Run again: done, nothing republished twice, deletions idempotent.
			p2 := mustReplay(t, js, events.ReplaySpec{ID: "redrive", Stream: "DLQ", Target: events.ReplayTarget{Original: true},
				Redrive: true, DeleteRedriven: deleteRedriven, BatchSize: 3, Checkpoint: p})
			if n := len(streamMsgs(t, js, "ORDERS")); n != 6 || p2.Replayed != 6 {
				t.Fatalf("a second run republished: ORDERS holds %d, progress %+v", n, p2)
			}
		})
	}
}

// TestReplayResumesExactlyOnce interrupts a replay and resumes it after the
// target's duplicate window (1 s) has passed: the target must hold every
// message once, in source order, so exactly-once cannot come from
// JetStream's deduplication.
func TestReplayResumesExactlyOnce(t *testing.T) {
	const n = 3000
	tests := []struct {
		name string
		// stop returns a context cancelled at some point of the first
		// run and the checkpoint to resume from, given the reports.
		interrupt func(t *testing.T, js jetstream.JetStream) (ctx context.Context, onProgress func(events.ReplayProgress), checkpoint func(returned events.ReplayProgress) events.ReplayProgress)
	}{
		{"cancelled while a batch is in flight, resumed from the returned progress", func(t *testing.T, js jetstream.JetStream) (context.Context, func(events.ReplayProgress), func(events.ReplayProgress) events.ReplayProgress) {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			go func() { // cancel once the target holds 1234 copies, mid-batch
				defer cancel()
				for ctx.Err() == nil {
					st, err := js.Stream(ctx, "TGT")
					if err == nil && st.CachedInfo().State.Msgs >= 1234 {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}()
			return ctx, nil, func(p events.ReplayProgress) events.ReplayProgress { return p }
		}},
		{"checkpointed before the last batches' acknowledgements were known", func(t *testing.T, js jetstream.JetStream) (context.Context, func(events.ReplayProgress), func(events.ReplayProgress) events.ReplayProgress) {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			var mu sync.Mutex
			var reports []events.ReplayProgress
			return ctx, func(p events.ReplayProgress) {
					mu.Lock()
					defer mu.Unlock()
					reports = append(reports, p)
					if len(reports) == 20 {
						cancel()
					}
				}, func(events.ReplayProgress) events.ReplayProgress {
					mu.Lock()
					defer mu.Unlock()
					return reports[4] // the controller wrote this one; later ones were lost
				}
		}},
		{"no checkpoint was ever written: resumed from zero", func(t *testing.T, js jetstream.JetStream) (context.Context, func(events.ReplayProgress), func(events.ReplayProgress) events.ReplayProgress) {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			n := 0
			return ctx, func(events.ReplayProgress) {
					if n++; n == 30 {
						cancel()
					}
				}, func(events.ReplayProgress) events.ReplayProgress {
					return events.ReplayProgress{}
				}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := eventstest.RunJetStream(t)
			js := srv.JetStream(t)
			eventstest.CreateStream(t, js, "SRC", []string{"src.>"})
			eventstest.CreateStream(t, js, "TGT", []string{"tgt.>"}, func(c *events.StreamConfig) { c.DuplicateWindow = time.Second })
			publishN(t, js, n, func(i int) string { return "src." + strconv.Itoa(i%7) })
			spec := events.ReplaySpec{ID: "resume", Stream: "SRC", Target: events.ReplayTarget{SubjectPrefix: "tgt."}, BatchSize: 50}

			ctx, onProgress, checkpoint := tt.interrupt(t, js)
			first := spec
			first.OnProgress = onProgress
			p, err := events.Replay(ctx, js, first)
			if !errors.Is(err, events.ErrTimeout) || p.Done {
				t.Fatalf("interrupted replay: progress %+v, error %v; want not done and ErrTimeout", p, err)
			}
			published := len(streamMsgs(t, js, "TGT"))
			if published == 0 || published >= n {
				t.Fatalf("the interruption came at %d of %d copies: not mid-way", published, n)
			}
			cp := checkpoint(p)
			t.Logf("interrupted with %d copies in the target; resuming from %+v", published, cp)
			assertNoConsumers(t, js, "SRC")

			time.Sleep(1200 * time.Millisecond) // past the target's duplicate window
			resumed := spec
			resumed.Checkpoint = cp
			final := mustReplay(t, js, resumed)

			got := streamMsgs(t, js, "TGT")
			if seqs := replaySeqs(t, got, "resume"); !equalSeqs(seqs, seqRange(1, n, 1)) {
				t.Fatalf("target holds %d copies, want source messages 1..%d once each in order", len(seqs), n)
			}
			if final.Replayed != n || final.Total != n || final.LastSequence != n || final.TargetSequence != got[n-1].seq {
				t.Fatalf("final progress %+v, want %d replayed, target sequence %d", final, n, got[n-1].seq)
			}
			assertNoConsumers(t, js, "SRC")
		})
	}
}

// TestReplayRateLimit counts the copies in every one-second window of
// their JetStream timestamps: at 200 msg/s with batches of 20, no window
// may hold more than 200 + 20.
func TestReplayRateLimit(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, "SRC", []string{"src.>"})
	eventstest.CreateStream(t, js, "TGT", []string{"tgt.>"})
	const n, rate, batch = 700, 200, 20
	publishN(t, js, n, func(int) string { return "src.a" })
	mustReplay(t, js, events.ReplaySpec{ID: "rate", Stream: "SRC", Target: events.ReplayTarget{Subject: "tgt.a"}, RateLimit: rate, BatchSize: batch})
	got := streamMsgs(t, js, "TGT")
	if len(got) != n {
		t.Fatalf("target holds %d, want %d", len(got), n)
	}
	worst := 0
	j := 0
	for i := range got {
		for j < len(got) && got[j].time.Sub(got[i].time) < time.Second {
			j++
		}
		worst = max(worst, j-i)
	}
	t.Logf("most copies in one second: %d", worst)
	if worst > rate+batch {
		t.Fatalf("a one-second window holds %d copies, above the rate %d + one batch %d", worst, rate, batch)
	}
	// Unpaced, the same copy runs far faster than 200/s: the limit is
	// what held it back (a window at least half full shows it ran).
	if worst < rate/2 {
		t.Fatalf("the busiest second holds only %d copies at a limit of %d", worst, rate)
	}
}

func TestReplayErrors(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, "SRC", []string{"src.>"})
	eventstest.CreateStream(t, js, "OTHER", []string{"other.>"})
	eventstest.CreateStream(t, js, "DLQ", []string{"dlq.>"})
	publishN(t, js, 2, func(int) string { return "src.a" })
	// Two dead letters whose originals are in different streams.
	ctx := context.Background()
	for i, orig := range []string{"src.a", "other.b"} {
		if _, err := js.PublishMsg(ctx, deadLetter(t, orig, uint64(i+1))); err != nil {
			t.Fatal(err)
		}
	}

	ok := events.ReplaySpec{ID: "x", Stream: "SRC", Target: events.ReplayTarget{Subject: "src.copy"}}
	invalid := []struct {
		field string
		mod   func(*events.ReplaySpec)
	}{
		{"id", func(s *events.ReplaySpec) { s.ID = "" }},
		{"id", func(s *events.ReplaySpec) { s.ID = "a b" }},
		{"source.streamRef", func(s *events.ReplaySpec) { s.Stream = "" }},
		{"source.filterSubjects[1]", func(s *events.ReplaySpec) { s.FilterSubjects = []string{"src.a", "src..b"} }},
		{"source.from", func(s *events.ReplaySpec) { s.FromSequence, s.FromTime = 1, time.Now() }},
		{"source.to", func(s *events.ReplaySpec) { s.ToSequence, s.ToTime = 1, time.Now() }},
		{"source.to", func(s *events.ReplaySpec) { s.FromSequence, s.ToSequence = 5, 4 }},
		{"source.to", func(s *events.ReplaySpec) { s.FromTime, s.ToTime = time.Now(), time.Now().Add(-time.Hour) }},
		{"target", func(s *events.ReplaySpec) { s.Target = events.ReplayTarget{} }},
		{"target", func(s *events.ReplaySpec) { s.Target.Original = true }},
		{"target.subject", func(s *events.ReplaySpec) { s.Target.Subject = "a.*" }},
		{"target.subjectPrefix", func(s *events.ReplaySpec) { s.Target = events.ReplayTarget{SubjectPrefix: "replay"} }},
		{"redrive", func(s *events.ReplaySpec) { s.Redrive = true }},
		{"redrive.deleteRedriven", func(s *events.ReplaySpec) { s.DeleteRedriven = true }},
		{"rateLimit", func(s *events.ReplaySpec) { s.RateLimit = -1 }},
		{"batchSize", func(s *events.ReplaySpec) { s.BatchSize = -1 }},
	}
	for _, tt := range invalid {
		spec := ok
		tt.mod(&spec)
		_, err := events.Replay(ctx, js, spec)
		var verr *events.ValidationError
		if !errors.As(err, &verr) || verr.Field != tt.field || !errors.Is(err, events.ErrPermanent) {
			t.Errorf("spec %+v: error %v, want a ValidationError for %s", spec, err, tt.field)
		}
	}

	t.Run("a missing source stream is not found", func(t *testing.T) {
		spec := ok
		spec.Stream = "NOPE"
		if _, err := events.Replay(ctx, js, spec); !errors.Is(err, events.ErrNotFound) || !strings.Contains(err.Error(), "NOPE") {
			t.Fatalf("error %v, want ErrNotFound naming NOPE", err)
		}
	})
	t.Run("a target subject no stream captures is permanent and named", func(t *testing.T) {
		spec := ok
		spec.Target.Subject = "nowhere.x"
		start := time.Now()
		p, err := events.Replay(ctx, js, spec)
		if !errors.Is(err, events.ErrPermanent) || events.IsTransient(err) || !strings.Contains(err.Error(), "nowhere.x") || p.Replayed != 0 {
			t.Fatalf("error %v (progress %+v), want a permanent error naming nowhere.x", err, p)
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("took %s: retried a permanent failure", time.Since(start))
		}
		assertNoConsumers(t, js, "SRC")
	})
	t.Run("a prefix whose copies no stream captures is permanent and named", func(t *testing.T) {
		spec := ok
		spec.Target = events.ReplayTarget{SubjectPrefix: "lost."}
		if _, err := events.Replay(ctx, js, spec); !errors.Is(err, events.ErrPermanent) || !strings.Contains(err.Error(), "lost.src.a") {
			t.Fatalf("error %v, want a permanent error naming lost.src.a", err)
		}
	})
	t.Run("a redrive whose copies would land in two streams is refused before it starts", func(t *testing.T) {
		// The dead letters point at src.a (SRC) and other.b (OTHER).
		spec := events.ReplaySpec{ID: "split", Stream: "DLQ", Target: events.ReplayTarget{Original: true}, Redrive: true}
		_, err := events.Replay(ctx, js, spec)
		if !errors.Is(err, events.ErrPermanent) || !strings.Contains(err.Error(), "other.b") || !strings.Contains(err.Error(), "OTHER") {
			t.Fatalf("error %v, want a permanent error naming other.b and OTHER", err)
		}
		// Refused before anything was published, not half-way.
		if src, other := eventstest.StreamMsgs(t, js, "SRC"), eventstest.StreamMsgs(t, js, "OTHER"); src != 2 || other != 0 {
			t.Fatalf("SRC holds %d (want its 2), OTHER %d (want 0): copies were published", src, other)
		}
		assertNoConsumers(t, js, "DLQ")
	})
}

// TestReplayFinishesWhenTheRangeShrinks deletes the rest of the range
// while the replay reads it: the replay must finish (with what was read),
// not wait for messages that will never come. The messages the consumer
// had prefetched (2 batches) carry a pending count from before the
// deletion, so the end is found by the idle watchdog, not by the count.
func TestReplayFinishesWhenTheRangeShrinks(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	src := eventstest.CreateStream(t, js, "SRC", []string{"src.>"})
	eventstest.CreateStream(t, js, "TGT", []string{"tgt.>"})
	publishN(t, js, 300, func(int) string { return "src.a" })
	deleted := false
	start := time.Now()
	p := mustReplay(t, js, events.ReplaySpec{ID: "shrink", Stream: "SRC", Target: events.ReplayTarget{Subject: "tgt.a"}, BatchSize: 10,
		OnProgress: func(events.ReplayProgress) {
			if deleted {
				return
			}
			deleted = true
			for seq := uint64(21); seq <= 300; seq++ {
				if err := src.DeleteMsg(context.Background(), seq); err != nil {
					t.Error(err)
				}
			}
		}})
	got := replaySeqs(t, streamMsgs(t, js, "TGT"), "shrink")
	if len(got) < 10 || len(got) > 20 || !equalSeqs(got, seqRange(1, uint64(len(got)), 1)) || p.Replayed != uint64(len(got)) {
		t.Fatalf("replayed %v (progress %+v), want 1..k, k ≤ 20, the messages read before the deletion", got, p)
	}
	t.Logf("replayed %d of 300 after 21..300 were deleted, in %s", len(got), time.Since(start))
	assertNoConsumers(t, js, "SRC")
}

// TestReplayIntoItsOwnStreamResumes interrupts a replay whose copies go
// back into the stream it reads, with an open end: resumed, it must stop
// at the end of the first start (ReplayProgress.EndSequence), not replay
// its own copies.
func TestReplayIntoItsOwnStreamResumes(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	eventstest.CreateStream(t, js, "SRC", []string{"src.>"})
	publishN(t, js, 500, func(i int) string { return "src." + strconv.Itoa(i%3) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports := 0
	spec := events.ReplaySpec{ID: "self", Stream: "SRC", Target: events.ReplayTarget{Original: true}, BatchSize: 50}
	first := spec
	first.OnProgress = func(events.ReplayProgress) {
		if reports++; reports == 3 {
			cancel()
		}
	}
	p, err := events.Replay(ctx, js, first)
	if !errors.Is(err, events.ErrTimeout) || p.EndSequence != 500 {
		t.Fatalf("interrupted: progress %+v, error %v; want ErrTimeout and end sequence 500", p, err)
	}
	spec.Checkpoint = p
	final := mustReplay(t, js, spec)
	got := streamMsgs(t, js, "SRC")
	if len(got) != 1000 || !equalSeqs(replaySeqs(t, got[500:], "self"), seqRange(1, 500, 1)) || final.Replayed != 500 {
		t.Fatalf("SRC holds %d messages (progress %+v), want 500 originals and one copy of each", len(got), final)
	}
}

// TestReplayBatchLargerThanTheAsyncWindow replays with batches larger than
// the target connection's async publish window (64). nats.go first waits
// up to its stall wait for acks to free the window (on this server they
// always do); should the window stay full, Replay waits for the oldest ack
// itself rather than fail on ErrTooManyStalledMsgs — a path this test
// cannot force.
func TestReplayBatchLargerThanTheAsyncWindow(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	js := srv.JetStream(t)
	small, err := jetstream.New(srv.Conn(t), jetstream.WithPublishAsyncMaxPending(64))
	if err != nil {
		t.Fatal(err)
	}
	eventstest.CreateStream(t, js, "SRC", []string{"src.>"})
	eventstest.CreateStream(t, js, "TGT", []string{"tgt.>"})
	publishN(t, js, 2000, func(int) string { return "src.a" })
	p := mustReplay(t, js, events.ReplaySpec{ID: "window", Stream: "SRC", Target: events.ReplayTarget{SubjectPrefix: "tgt."},
		BatchSize: 1000, TargetJetStream: small})
	if got := replaySeqs(t, streamMsgs(t, js, "TGT"), "window"); !equalSeqs(got, seqRange(1, 2000, 1)) || p.Replayed != 2000 {
		t.Fatalf("target holds %d copies (progress %+v), want 1..2000", len(got), p)
	}
}
