// Package audit is the example subscriber's logic: it consumes the auth
// service's events (auth.user.>) with one events.Typed handler per catalog
// event, logs them and keeps them in an in-memory trail.
package audit

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/giia/eventstream-operator/examples/authservice/auth"
	"github.com/giia/eventstream-operator/examples/subscriber/router"
	"github.com/giia/eventstream-operator/pkg/events"
)

// FilterSubject is what the subscriber consumes: every auth-service user
// event.
const FilterSubject = "auth.user.>"

// Entry is one event the trail handled.
type Entry struct {
	ID             string
	Type           string
	OrganizationID string
	// Data is the decoded payload: auth.UserCreated, auth.UserLoginSucceeded,
	// auth.UserLoginFailed or auth.UserRoleAssigned.
	Data any
}

// Trail handles the auth catalog. Its handlers are idempotent: an event
// delivered again (same ID) is recorded once.
type Trail struct {
	log     *slog.Logger
	mu      sync.Mutex
	seen    map[string]bool
	entries []Entry
	changed chan struct{} // closed and replaced on every new entry
}

// New returns an empty Trail logging to log (nil: discard).
func New(log *slog.Logger) *Trail {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Trail{log: log, seen: map[string]bool{}, changed: make(chan struct{})}
}

// Router returns the handler to pass to events.SubscribeDurable: a Router
// with one typed handler per catalog event type. Data that does not decode
// into the type's struct is a permanent failure (events.Typed), so the event
// is dead-lettered at once; so is a login failure whose reason is not in the
// catalog.
func (t *Trail) Router() *router.Router {
	r := router.New(t.log)
	r.Handle(auth.TypeUserCreated, events.Typed(func(ctx context.Context, e *events.Event, d auth.UserCreated) error {
		t.log.Info("user created", "user", d.UserID, "email", d.Email, "status", d.Status, "org", e.OrganizationID, "id", e.ID)
		t.add(e, d)
		return nil
	}))
	r.Handle(auth.TypeUserLoginSucceeded, events.Typed(func(ctx context.Context, e *events.Event, d auth.UserLoginSucceeded) error {
		t.log.Info("login", "user", d.UserID, "email", d.Email, "id", e.ID)
		t.add(e, d)
		return nil
	}))
	r.Handle(auth.TypeUserLoginFailed, events.Typed(func(ctx context.Context, e *events.Event, d auth.UserLoginFailed) error {
		if err := d.Validate(); err != nil {
			// Retrying will not change the reason: dead-letter it now.
			return events.Permanent(err)
		}
		t.log.Info("failed login", "email", d.Email, "reason", d.Reason, "id", e.ID)
		t.add(e, d)
		return nil
	}))
	r.Handle(auth.TypeUserRoleAssigned, events.Typed(func(ctx context.Context, e *events.Event, d auth.UserRoleAssigned) error {
		t.log.Info("role assigned", "user", d.UserID, "role", d.RoleName, "id", e.ID)
		t.add(e, d)
		return nil
	}))
	return r
}

func (t *Trail) add(e *events.Event, data any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[e.ID] {
		return
	}
	t.seen[e.ID] = true
	t.entries = append(t.entries, Entry{ID: e.ID, Type: e.Type, OrganizationID: e.OrganizationID, Data: data})
	close(t.changed)
	t.changed = make(chan struct{})
}

// Entries returns what the trail handled, in order.
func (t *Trail) Entries() []Entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Entry(nil), t.entries...)
}

// ErrNotEnough is returned by WaitFor when ctx ends first.
var ErrNotEnough = errors.New("audit: fewer entries than awaited")

// WaitFor waits until the trail holds at least n entries or ctx ends, and
// returns the entries it holds.
func (t *Trail) WaitFor(ctx context.Context, n int) ([]Entry, error) {
	for {
		t.mu.Lock()
		entries, changed := append([]Entry(nil), t.entries...), t.changed
		t.mu.Unlock()
		if len(entries) >= n {
			return entries, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return entries, errors.Join(ErrNotEnough, ctx.Err())
		}
	}
}
