// Package router dispatches events to handlers by event type, the usual
// shape of a subscriber that consumes a whole stream.
package router

import (
	"context"
	"log/slog"
	"sync"

	"github.com/giia/eventstream-operator/pkg/events"
)

// Router is an events.Handler that picks a handler by Event.Type. Events of
// a type nobody handles are acknowledged and logged: a new producer-side
// event must not jam the consumer.
type Router struct {
	mu       sync.RWMutex
	handlers map[string]events.Handler
	log      *slog.Logger
}

// New returns an empty Router logging to log (nil: discard).
func New(log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{handlers: map[string]events.Handler{}, log: log}
}

// Handle routes events of eventType to h.
func (r *Router) Handle(eventType string, h events.Handler) {
	r.mu.Lock()
	r.handlers[eventType] = h
	r.mu.Unlock()
}

// Handler returns the events.Handler to pass to events.SubscribeDurable.
func (r *Router) Handler() events.Handler { return r.Dispatch }

// Dispatch calls the handler for e.Type.
func (r *Router) Dispatch(ctx context.Context, e *events.Event) error {
	r.mu.RLock()
	h := r.handlers[e.Type]
	r.mu.RUnlock()
	if h == nil {
		r.log.Debug("no handler; skipping", "type", e.Type, "id", e.ID)
		return nil
	}
	return h(ctx, e)
}
