// Package natsconn owns the operator's default NATS connection: built from the
// manager's flags, connected in the background (the manager starts even while
// NATS is down), observed by the readiness probe, and announcing reconnects so
// that every resource is reconciled again at once.
package natsconn

import (
	"errors"
	"net/http"
	"sync"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/admin"
)

// Options are the connection settings; file paths come from mounted Secrets.
type Options struct {
	URL       string
	CredsFile string
	TLSCA     string
	TLSCert   string
	TLSKey    string
	Name      string
}

// Conn is a NATS connection with its JetStream contexts: the connection's
// own JetStream and, made on first use, one per JetStream domain asked for.
type Conn struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	log logr.Logger
	// domain is the JetStream domain a connection Secret named ("domain"
	// key); empty for the default connection.
	domain string

	mu          sync.Mutex
	onReconnect []func()
	domains     map[string]jetstream.JetStream
}

// Connect starts connecting to NATS and returns at once: if the server is
// unreachable the connection keeps retrying in the background (forever), and
// JetStream calls fail fast with events.ErrConnection until it is up.
func Connect(o Options, log logr.Logger) (*Conn, error) {
	c := &Conn{log: log}
	connected := func(nc *nats.Conn) {
		// RedactURL hides tokens too; nats.go's own redaction hides only
		// passwords.
		log.Info("connected to NATS", "server", admin.RedactURL(nc.ConnectedUrl()))
		c.mu.Lock()
		fns := append([]func(){}, c.onReconnect...)
		c.mu.Unlock()
		for _, fn := range fns {
			fn()
		}
	}
	opts := []events.ConnectOption{
		events.WithName(o.Name),
		// Connected in the background: ConnectHandler fires when the first
		// connection is made after a failed start, ReconnectHandler after each
		// reconnection.
		// IgnoreAuthErrorAbort: a refused login (credentials not set up yet)
		// is retried like any other failure instead of closing for good.
		events.WithNATSOptions(nats.RetryOnFailedConnect(true), nats.IgnoreAuthErrorAbort(), nats.ConnectHandler(connected), asyncErrors(log)),
		events.WithReconnectHandler(connected),
		events.WithDisconnectHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Info("disconnected from NATS", "error", err.Error())
			}
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, events.WithCredsFile(o.CredsFile))
	}
	if o.TLSCA != "" || o.TLSCert != "" {
		opts = append(opts, events.WithTLS(o.TLSCA, o.TLSCert, o.TLSKey))
	}
	nc, err := events.Connect(o.URL, opts...)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.nc, c.js = nc, js
	return c, nil
}

// asyncErrors logs what the server reports asynchronously (a permissions
// violation, a slow consumer) instead of nats.go's default print to stderr.
// The server's messages name subjects, never credentials.
func asyncErrors(log logr.Logger) nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		subject := ""
		if sub != nil {
			subject = sub.Subject
		}
		log.Info("NATS reported an error", "error", err.Error(), "subscription", subject)
	})
}

// NATS returns the underlying connection.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// JetStream returns the JetStream context, or an events.ErrConnection error
// when the connection is not up (so callers fail fast instead of waiting for
// a request timeout).
func (c *Conn) JetStream() (jetstream.JetStream, error) {
	if !c.nc.IsConnected() {
		msg := "not connected to NATS (" + c.nc.Status().String() + ")"
		if last := c.nc.LastError(); last != nil {
			msg += ": " + last.Error() // e.g. "nats: authorization violation"; never holds credentials
		}
		return nil, &events.OpError{Op: "connect", Name: admin.RedactURL(c.nc.Opts.Url), Kind: events.ErrConnection,
			Err: errors.New(msg)}
	}
	return c.js, nil
}

// JetStreamIn is JetStream for the JetStream domain domain (the API prefix
// $JS.<domain>.API, e.g. a leaf node's JetStream); an empty domain is the
// connection's own JetStream. The context is made once per domain and
// shared.
func (c *Conn) JetStreamIn(domain string) (jetstream.JetStream, error) {
	if domain == "" {
		return c.JetStream()
	}
	if _, err := c.JetStream(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if js, ok := c.domains[domain]; ok {
		return js, nil
	}
	js, err := jetstream.NewWithDomain(c.nc, domain)
	if err != nil {
		return nil, &events.ValidationError{Field: "domain", Reason: err.Error()}
	}
	if c.domains == nil {
		c.domains = map[string]jetstream.JetStream{}
	}
	c.domains[domain] = js
	return js, nil
}

// Domain is the JetStream domain the connection's Secret named (its
// "domain" key), which resources use when they name none; empty for the
// default connection and for Secrets without the key.
func (c *Conn) Domain() string { return c.domain }

// ValidDomain reports whether d is a JetStream domain name: letters,
// digits, '_' and '-' (the rule spec.domain is admitted with).
func ValidDomain(d string) bool {
	if d == "" {
		return false
	}
	for _, r := range d {
		letter := (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		digit := r >= '0' && r <= '9'
		if !letter && !digit && r != '_' && r != '-' {
			return false
		}
	}
	return true
}

// OnReconnect registers fn to run each time the connection is (re-)established,
// including the first connection made in the background.
func (c *Conn) OnReconnect(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onReconnect = append(c.onReconnect, fn)
}

// ReadyCheck is a healthz checker: not ready while NATS is unreachable.
func (c *Conn) ReadyCheck(_ *http.Request) error {
	if !c.nc.IsConnected() {
		return errors.New("NATS is not connected: " + c.nc.Status().String())
	}
	return nil
}

// ConnectedMetric is the name of the gauge Connected returns.
const ConnectedMetric = "eventstream_operator_nats_connected"

// Connected is a gauge, read at each scrape, that is 1 while the connection
// is up and 0 while NATS is unreachable (the "NATS unreachable" alert).
func (c *Conn) Connected() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: ConnectedMetric,
		Help: "1 while the operator's default NATS connection is connected, 0 while NATS is unreachable.",
	}, func() float64 {
		if c.nc.IsConnected() {
			return 1
		}
		return 0
	})
}

// Close closes the connection.
func (c *Conn) Close() { c.nc.Close() }
