package natsconn

import (
	"errors"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// Secret keys of a per-resource connection (see api/v1alpha1 ConnectionSpec).
const (
	KeyURL      = "url"
	KeyCreds    = "creds"
	KeyNKey     = "nkey"
	KeyUser     = "user"
	KeyPassword = "password"
	KeyToken    = "token"
	KeyCA       = "ca.crt"
	KeyCert     = "tls.crt"
	KeyKey      = "tls.key"
	KeyDomain   = "domain"
)

// Pool holds the connections to NATS servers that resources name through a
// Secret (spec.connection). A connection is built only from its Secret's
// data — never from the operator's own credentials — and only to servers the
// pool's HostPatterns allow; it is shared by every resource that names the
// same Secret, rebuilt when the Secret changes (a new resourceVersion) and
// closed when no resource uses it any more.
type Pool struct {
	log       logr.Logger
	onConnect func(*nats.Conn) (stop func())
	allowed   *HostPatterns

	mu    sync.Mutex
	conns map[string]*pooled // by "namespace/secret"
}

type pooled struct {
	conn    *Conn
	version string // the Secret's resourceVersion
	users   map[string]bool
	stop    func()
}

// NewPool returns an empty pool. onConnect, if set, is called with each new
// connection (the operator subscribes to its advisories there); the function
// it returns is called when the connection is closed. allowed restricts the
// servers the pool dials (nil: any).
func NewPool(log logr.Logger, onConnect func(*nats.Conn) (stop func()), allowed *HostPatterns) *Pool {
	return &Pool{log: log, onConnect: onConnect, allowed: allowed, conns: map[string]*pooled{}}
}

// Get returns the connection for the Secret key ("namespace/name") at version
// for user (a resource key), connecting from data when there is none yet or
// the Secret changed. Bad data is an events.ErrValidation naming the key; a
// URL the pool's HostPatterns refuse is a *URLNotAllowedError, returned
// before anything is dialled.
func (p *Pool) Get(key, version string, data map[string][]byte, user string) (*Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc, ok := p.conns[key]; ok {
		if pc.version == version {
			pc.users[user] = true
			return pc.conn, nil
		}
		p.closeLocked(key)
	}
	conn, err := p.connectFromSecret(data, p.log.WithValues("secret", key))
	if err != nil {
		return nil, err
	}
	pc := &pooled{conn: conn, version: version, users: map[string]bool{user: true}}
	if p.onConnect != nil {
		pc.stop = p.onConnect(conn.NATS())
	}
	p.conns[key] = pc
	return conn, nil
}

// Release records that user no longer uses any pooled connection; a
// connection left without users is closed.
func (p *Pool) Release(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, pc := range p.conns {
		delete(pc.users, user)
		if len(pc.users) == 0 {
			p.closeLocked(key)
		}
	}
}

// Lookup returns the open connection for the Secret key ("namespace/name"),
// or nil; unlike Get it neither connects nor records a user.
func (p *Pool) Lookup(key string) *Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc, ok := p.conns[key]; ok {
		return pc.conn
	}
	return nil
}

// Len is the number of open pooled connections.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close closes every pooled connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key := range p.conns {
		p.closeLocked(key)
	}
}

func (p *Pool) closeLocked(key string) {
	pc := p.conns[key]
	delete(p.conns, key)
	if pc.stop != nil {
		pc.stop()
	}
	pc.conn.Close()
}

// connectFromSecret connects with the URL and credentials of a Secret, and
// nothing else, if the pool allows the URL.
func (p *Pool) connectFromSecret(data map[string][]byte, log logr.Logger) (*Conn, error) {
	url := strings.TrimSpace(string(data[KeyURL]))
	if url == "" {
		return nil, &events.ValidationError{Field: "connection.secretRef", Reason: "the Secret has no \"url\" key"}
	}
	if err := p.allowed.Check(url); err != nil {
		return nil, err
	}
	domain := strings.TrimSpace(string(data[KeyDomain]))
	if _, set := data[KeyDomain]; set && !ValidDomain(domain) {
		return nil, &events.ValidationError{Field: "connection.secretRef: domain",
			Reason: "the Secret's \"domain\" key must be a JetStream domain name: only letters, digits, '_' and '-'"}
	}
	natsOpts := []nats.Option{nats.RetryOnFailedConnect(true), nats.IgnoreAuthErrorAbort(), asyncErrors(log)}
	if p.allowed.Restricted() {
		// A server announces the other servers of its cluster, and nats.go
		// would reconnect to them: only the checked URLs may be dialled.
		natsOpts = append(natsOpts, nats.IgnoreDiscoveredServers())
	}
	opts := []events.ConnectOption{
		events.WithName("eventstream-operator"),
		events.WithNATSOptions(natsOpts...),
	}
	switch {
	case len(data[KeyCreds]) > 0:
		opts = append(opts, events.WithCredentials(data[KeyCreds]))
	case len(data[KeyNKey]) > 0:
		opts = append(opts, events.WithNKeySeed(data[KeyNKey]))
	case len(data[KeyUser]) > 0:
		opts = append(opts, events.WithUserPassword(string(data[KeyUser]), string(data[KeyPassword])))
	case len(data[KeyToken]) > 0:
		opts = append(opts, events.WithToken(strings.TrimSpace(string(data[KeyToken]))))
	}
	if len(data[KeyCA]) > 0 || len(data[KeyCert]) > 0 {
		opts = append(opts, events.WithTLSPEM(data[KeyCA], data[KeyCert], data[KeyKey]))
	}
	nc, err := events.Connect(url, opts...)
	if err != nil {
		var verr *events.ValidationError
		if errors.As(err, &verr) {
			verr.Field = "connection.secretRef: " + verr.Field
		}
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	log.Info("connecting to a per-resource NATS server", "url", admin.RedactURL(url))
	return &Conn{nc: nc, js: js, log: log, domain: domain}, nil
}
