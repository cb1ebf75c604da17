// Package auth is the event-publishing side of the example auth service: the
// seed's auth-service event catalog as typed payloads, and a Publisher with
// one method per event, building the event from an injected Clock and the
// service's organization and publishing it on {service}.{type}
// (auth.user.created, auth.user.login.succeeded, ...).
//
//	type                  subject                    data
//	user.created          auth.user.created          user_id, email, first_name, last_name, status
//	user.login.succeeded  auth.user.login.succeeded  user_id, email
//	user.login.failed     auth.user.login.failed     email, reason (user_not_found, invalid_password, inactive_account)
//	user.role.assigned    auth.user.role.assigned    user_id, user_email, role_id, role_name
package auth

import (
	"context"
	"fmt"

	"github.com/giia/eventstream-operator/pkg/events"
)

// Service is the first token of every subject this service publishes on.
const Service = "auth"

// Source is the CloudEvents source of every event this service publishes.
const Source = "auth-service"

// Event types.
const (
	TypeUserCreated        = "user.created"
	TypeUserLoginSucceeded = "user.login.succeeded"
	TypeUserLoginFailed    = "user.login.failed"
	TypeUserRoleAssigned   = "user.role.assigned"
)

// Subjects: {service}.{type}, as events.SubjectFor(Service, type) builds
// them. All match auth.user.> (and the AUTH_EVENTS stream's auth.>).
const (
	SubjectUserCreated        = Service + "." + TypeUserCreated        // auth.user.created
	SubjectUserLoginSucceeded = Service + "." + TypeUserLoginSucceeded // auth.user.login.succeeded
	SubjectUserLoginFailed    = Service + "." + TypeUserLoginFailed    // auth.user.login.failed
	SubjectUserRoleAssigned   = Service + "." + TypeUserRoleAssigned   // auth.user.role.assigned
)

// Reasons a login fails, carried in user.login.failed's "reason" field.
const (
	ReasonUserNotFound    = "user_not_found"
	ReasonInvalidPassword = "invalid_password"
	ReasonInactiveAccount = "inactive_account"
)

// UserCreated is the data of user.created: a user account was created.
type UserCreated struct {
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Status    string `json:"status"`
}

// UserLoginSucceeded is the data of user.login.succeeded: a user signed in.
type UserLoginSucceeded struct {
	UserID string `json:"user_id"`
	Email  string `json:"email"`
}

// UserLoginFailed is the data of user.login.failed: a sign-in was refused.
// Reason is one of the Reason* constants.
type UserLoginFailed struct {
	Email  string `json:"email"`
	Reason string `json:"reason"`
}

// Validate refuses a reason outside the catalog, naming the field.
func (d UserLoginFailed) Validate() error {
	switch d.Reason {
	case ReasonUserNotFound, ReasonInvalidPassword, ReasonInactiveAccount:
		return nil
	}
	return &events.ValidationError{Field: "data.reason", Reason: fmt.Sprintf(
		"%q is not one of %s, %s, %s", d.Reason, ReasonUserNotFound, ReasonInvalidPassword, ReasonInactiveAccount)}
}

// UserRoleAssigned is the data of user.role.assigned: a role was granted to
// a user.
type UserRoleAssigned struct {
	UserID    string `json:"user_id"`
	UserEmail string `json:"user_email"`
	RoleID    string `json:"role_id"`
	RoleName  string `json:"role_name"`
}

// Publisher publishes the auth service's events. It depends on the
// events.EventPublisher interface (Publish, PublishAsync, Close), so tests
// can use eventstest.Recorder.
type Publisher struct {
	publisher events.EventPublisher
	clock     events.Clock
	org       string
}

// NewPublisher returns a Publisher for one organization (tenant).
func NewPublisher(publisher events.EventPublisher, clock events.Clock, organizationID string) *Publisher {
	return &Publisher{publisher: publisher, clock: clock, org: organizationID}
}

// publish builds the event (its CloudEvents subject is about, the user the
// event concerns), publishes it on subject and waits for the stream's ack.
func publish[T any](ctx context.Context, p *Publisher, eventType, subject, about string, data T) (*events.Event, error) {
	e, err := events.NewEvent(eventType, Source, p.org, p.clock.Now(), data)
	if err != nil {
		return nil, err
	}
	e.Subject = about
	if err := p.publisher.Publish(ctx, subject, e); err != nil {
		return nil, err
	}
	return e, nil
}

// UserCreated publishes user.created on auth.user.created.
func (p *Publisher) UserCreated(ctx context.Context, d UserCreated) (*events.Event, error) {
	return publish(ctx, p, TypeUserCreated, SubjectUserCreated, d.UserID, d)
}

// LoginSucceeded publishes user.login.succeeded on auth.user.login.succeeded.
func (p *Publisher) LoginSucceeded(ctx context.Context, d UserLoginSucceeded) (*events.Event, error) {
	return publish(ctx, p, TypeUserLoginSucceeded, SubjectUserLoginSucceeded, d.UserID, d)
}

// LoginFailed publishes user.login.failed on auth.user.login.failed. A
// reason outside the catalog is an *events.ValidationError naming
// data.reason, and nothing is published.
func (p *Publisher) LoginFailed(ctx context.Context, d UserLoginFailed) (*events.Event, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return publish(ctx, p, TypeUserLoginFailed, SubjectUserLoginFailed, d.Email, d)
}

// RoleAssigned publishes user.role.assigned on auth.user.role.assigned.
func (p *Publisher) RoleAssigned(ctx context.Context, d UserRoleAssigned) (*events.Event, error) {
	return publish(ctx, p, TypeUserRoleAssigned, SubjectUserRoleAssigned, d.UserID, d)
}
