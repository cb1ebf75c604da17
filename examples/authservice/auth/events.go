// Package auth is the event-publishing side of the example auth service: one
// method per event in the catalog, each building the event from an injected
// Clock and the service's organization and publishing it on
// auth.user.<action>.
package auth

import (
	"context"

	"github.com/giia/eventstream-operator/pkg/events"
)

// Source is the CloudEvents source of every event this service publishes.
const Source = "auth-service"

// Event types.
const (
	TypeUserCreated        = "user.created"
	TypeUserLoginSucceeded = "user.login.succeeded"
	TypeUserLoginFailed    = "user.login.failed"
	TypeUserRoleAssigned   = "user.role.assigned"
)

// Subjects (events.SubjectFor("auth", type)); all match auth.user.>.
var (
	SubjectUserCreated        = events.SubjectFor("auth", TypeUserCreated)
	SubjectUserLoginSucceeded = events.SubjectFor("auth", TypeUserLoginSucceeded)
	SubjectUserLoginFailed    = events.SubjectFor("auth", TypeUserLoginFailed)
	SubjectUserRoleAssigned   = events.SubjectFor("auth", TypeUserRoleAssigned)
)

// Reasons a login fails, carried in user.login.failed's "reason" field.
const (
	ReasonBadPassword = "bad_password"
	ReasonUnknownUser = "unknown_user"
	ReasonLocked      = "account_locked"
	ReasonMFARequired = "mfa_required"
)

// Publisher publishes the auth service's events. It depends on the
// EventPublisher interface so tests can use eventstest.Recorder.
type Publisher struct {
	pub   events.EventPublisher
	clock events.Clock
	org   string
}

// NewPublisher returns a Publisher for one organization (tenant).
func NewPublisher(pub events.EventPublisher, clock events.Clock, organizationID string) *Publisher {
	return &Publisher{pub: pub, clock: clock, org: organizationID}
}

func (p *Publisher) publish(ctx context.Context, subject, eventType, subjectOf string, data map[string]any) (*events.Event, error) {
	e, err := events.NewEvent(eventType, Source, p.org, p.clock.Now(), data)
	if err != nil {
		return nil, err
	}
	e.Subject = subjectOf
	if err := p.pub.Publish(ctx, subject, e); err != nil {
		return nil, err
	}
	return e, nil
}

// UserCreated: a user account was created.
func (p *Publisher) UserCreated(ctx context.Context, userID, email string) (*events.Event, error) {
	return p.publish(ctx, SubjectUserCreated, TypeUserCreated, userID, map[string]any{
		"userId": userID, "email": email,
	})
}

// LoginSucceeded: a user signed in.
func (p *Publisher) LoginSucceeded(ctx context.Context, userID, ip string) (*events.Event, error) {
	return p.publish(ctx, SubjectUserLoginSucceeded, TypeUserLoginSucceeded, userID, map[string]any{
		"userId": userID, "ip": ip,
	})
}

// LoginFailed: a sign-in was refused, with the reason (Reason* constants).
func (p *Publisher) LoginFailed(ctx context.Context, email, ip, reason string) (*events.Event, error) {
	return p.publish(ctx, SubjectUserLoginFailed, TypeUserLoginFailed, email, map[string]any{
		"email": email, "ip": ip, "reason": reason,
	})
}

// RoleAssigned: a role was granted to a user.
func (p *Publisher) RoleAssigned(ctx context.Context, userID, role, assignedBy string) (*events.Event, error) {
	return p.publish(ctx, SubjectUserRoleAssigned, TypeUserRoleAssigned, userID, map[string]any{
		"userId": userID, "role": role, "assignedBy": assignedBy,
	})
}
