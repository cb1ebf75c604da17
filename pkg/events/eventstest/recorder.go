package eventstest

import (
	"context"
	"sync"
	"time"

	"github.com/giia/eventstream-operator/pkg/events"
)

// Recorded is one publish the Recorder accepted.
type Recorded struct {
	Subject string
	Event   *events.Event
	Async   bool
}

// Recorder is an in-memory events.EventPublisher for unit tests: it
// validates events as the real publisher does (an invalid event is an error
// and is not recorded) and remembers what was published, in order.
type Recorder struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	records []Recorded
	fail    error
	closed  bool
}

var _ events.EventPublisher = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{changed: make(chan struct{})} }

// Publish validates and records e.
func (r *Recorder) Publish(ctx context.Context, subject string, e *events.Event) error {
	return r.record(ctx, subject, e, false)
}

// PublishAsync validates and records e.
func (r *Recorder) PublishAsync(ctx context.Context, subject string, e *events.Event) error {
	return r.record(ctx, subject, e, true)
}

func (r *Recorder) record(ctx context.Context, subject string, e *events.Event, async bool) error {
	if err := events.ValidateSubject(subject); err != nil {
		return err
	}
	if err := e.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &events.OpError{Op: "publish", Name: subject, Kind: events.ErrTimeout, Err: err}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return &events.OpError{Op: "publish", Name: subject, Kind: events.ErrPublish, Err: events.ErrClosed}
	}
	if r.fail != nil {
		return r.fail
	}
	cp := *e
	r.records = append(r.records, Recorded{Subject: subject, Event: &cp, Async: async})
	close(r.changed)
	r.changed = make(chan struct{})
	return nil
}

// FailWith makes every later publish return err (nil: succeed again), to
// test how a service reacts to publish failures.
func (r *Recorder) FailWith(err error) {
	r.mu.Lock()
	r.fail = err
	r.mu.Unlock()
}

// Flush returns at once: recording is synchronous.
func (r *Recorder) Flush(context.Context) error { return nil }

// Close refuses later publishes.
func (r *Recorder) Close() error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return nil
}

// Events returns everything recorded, oldest first.
func (r *Recorder) Events() []Recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Recorded(nil), r.records...)
}

// BySubject returns the events published on subject, oldest first.
func (r *Recorder) BySubject(subject string) []*events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*events.Event
	for _, rec := range r.records {
		if rec.Subject == subject {
			out = append(out, rec.Event)
		}
	}
	return out
}

// ByType returns the events of the given type, oldest first.
func (r *Recorder) ByType(eventType string) []*events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*events.Event
	for _, rec := range r.records {
		if rec.Event.Type == eventType {
			out = append(out, rec.Event)
		}
	}
	return out
}

// Len returns how many events were recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.records)
}

// Reset forgets everything recorded and any FailWith error, and reopens
// a closed recorder.
func (r *Recorder) Reset() {
	r.mu.Lock()
	r.records, r.fail, r.closed = nil, nil, false
	r.mu.Unlock()
}

// WaitFor waits until at least n events are recorded and returns them; ok
// is false if that did not happen within timeout (events then holds what
// was recorded).
func (r *Recorder) WaitFor(n int, timeout time.Duration) (recorded []Recorded, ok bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		r.mu.Lock()
		if len(r.records) >= n {
			out := append([]Recorded(nil), r.records...)
			r.mu.Unlock()
			return out, true
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return r.Events(), false
		}
	}
}
