package events

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ConnectOption configures Connect.
type ConnectOption func(*connectOptions) error

type connectOptions struct {
	nats []nats.Option
	tls  *tlsFiles
}

type tlsFiles struct{ ca, cert, key string }

// WithName sets the connection name the server shows in its monitoring.
func WithName(name string) ConnectOption {
	return natsOption(nats.Name(name))
}

// WithCredsFile authenticates with a NATS credentials file (JWT + nkey seed).
// The file is read at each (re)connection, so a rotated file is used from
// the next reconnection on.
func WithCredsFile(path string) ConnectOption {
	return func(o *connectOptions) error {
		if _, err := os.Stat(path); err != nil {
			return &ValidationError{Field: "credsFile", Reason: err.Error()}
		}
		o.nats = append(o.nats, nats.UserCredentials(path))
		return nil
	}
}

// WithCredentials authenticates with the content of a NATS credentials file
// (for credentials that come from memory, e.g. a Kubernetes Secret, rather
// than from a file).
func WithCredentials(creds []byte) ConnectOption {
	return func(o *connectOptions) error {
		userJWT, err := nkeys.ParseDecoratedJWT(creds)
		if err != nil {
			return &ValidationError{Field: "creds", Reason: "not a credentials file: " + err.Error()}
		}
		kp, err := nkeys.ParseDecoratedUserNKey(creds)
		if err != nil {
			return &ValidationError{Field: "creds", Reason: "no user seed in the credentials: " + err.Error()}
		}
		o.nats = append(o.nats, nats.UserJWT(
			func() (string, error) { return userJWT, nil },
			func(nonce []byte) ([]byte, error) { return kp.Sign(nonce) },
		))
		return nil
	}
}

// WithNKeySeed authenticates with an nkey seed held in memory.
func WithNKeySeed(seed []byte) ConnectOption {
	return func(o *connectOptions) error {
		kp, err := nkeys.FromSeed(bytes.TrimSpace(seed))
		if err != nil {
			return &ValidationError{Field: "nkey", Reason: "not an nkey seed: " + err.Error()}
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return &ValidationError{Field: "nkey", Reason: err.Error()}
		}
		o.nats = append(o.nats, nats.Nkey(pub, kp.Sign))
		return nil
	}
}

// WithTLSPEM enables TLS from PEM data held in memory: caPEM verifies the
// server (empty: the system roots); certPEM and keyPEM, when both are set,
// are the client certificate.
func WithTLSPEM(caPEM, certPEM, keyPEM []byte) ConnectOption {
	return func(o *connectOptions) error {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if len(caPEM) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(caPEM) {
				return &ValidationError{Field: "tls.ca", Reason: "no PEM certificate"}
			}
			cfg.RootCAs = pool
		}
		if (len(certPEM) == 0) != (len(keyPEM) == 0) {
			return &ValidationError{Field: "tls", Reason: "a client certificate needs both a certificate and a key"}
		}
		if len(certPEM) > 0 {
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return &ValidationError{Field: "tls.cert", Reason: err.Error()}
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		o.nats = append(o.nats, nats.Secure(cfg))
		return nil
	}
}

// WithNKeyFile authenticates with an nkey seed file.
func WithNKeyFile(path string) ConnectOption {
	return func(o *connectOptions) error {
		opt, err := nats.NkeyOptionFromSeed(path)
		if err != nil {
			return &ValidationError{Field: "nkeyFile", Reason: err.Error()}
		}
		o.nats = append(o.nats, opt)
		return nil
	}
}

// WithUserPassword authenticates with a user name and password.
func WithUserPassword(user, password string) ConnectOption {
	return natsOption(nats.UserInfo(user, password))
}

// WithToken authenticates with a token.
func WithToken(token string) ConnectOption {
	return natsOption(nats.Token(token))
}

// WithTLS enables TLS. caFile verifies the server (empty: the system roots);
// certFile and keyFile, when both are set, are the client certificate. The
// files are read at Connect (an unreadable or invalid one is an
// ErrValidation naming it) and again at each TLS handshake, so certificates
// rotated on disk (cert-manager, a mounted Secret) are used from the next
// reconnection on, without restarting the process.
func WithTLS(caFile, certFile, keyFile string) ConnectOption {
	return func(o *connectOptions) error {
		if (certFile == "") != (keyFile == "") {
			return &ValidationError{Field: "tls", Reason: "a client certificate needs both a certificate and a key file"}
		}
		o.tls = &tlsFiles{ca: caFile, cert: certFile, key: keyFile}
		return nil
	}
}

// WithDisconnectHandler is called when the connection is lost.
func WithDisconnectHandler(fn func(nc *nats.Conn, err error)) ConnectOption {
	return natsOption(nats.DisconnectErrHandler(fn))
}

// WithReconnectHandler is called after the connection is re-established.
func WithReconnectHandler(fn func(nc *nats.Conn)) ConnectOption {
	return natsOption(nats.ReconnectHandler(fn))
}

// WithClosedHandler is called when the connection is closed for good.
func WithClosedHandler(fn func(nc *nats.Conn)) ConnectOption {
	return natsOption(nats.ClosedHandler(fn))
}

// WithMaxReconnects bounds reconnection attempts; the default, -1, reconnects
// forever.
func WithMaxReconnects(n int) ConnectOption {
	return natsOption(nats.MaxReconnects(n))
}

// WithReconnectWait sets the pause between reconnection attempts (default 2s,
// with jitter).
func WithReconnectWait(d time.Duration) ConnectOption {
	return natsOption(nats.ReconnectWait(d))
}

// WithNATSOptions passes options straight to nats.go, for what this package
// does not wrap.
func WithNATSOptions(opts ...nats.Option) ConnectOption {
	return func(o *connectOptions) error {
		o.nats = append(o.nats, opts...)
		return nil
	}
}

func natsOption(opt nats.Option) ConnectOption {
	return func(o *connectOptions) error {
		o.nats = append(o.nats, opt)
		return nil
	}
}

// Connect connects to NATS at url (a comma-separated list of servers is
// accepted). The initial connection is not retried, but
// once connected it reconnects forever, buffering what is published while
// disconnected. A connection failure is ErrConnection; a bad option is
// ErrValidation.
func Connect(url string, opts ...ConnectOption) (*nats.Conn, error) {
	o := connectOptions{nats: []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(2 * time.Second),
		nats.ReconnectJitter(500*time.Millisecond, 2*time.Second),
	}}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.tls != nil {
		o.nats = append(o.nats, o.tls.option())
	}
	nc, err := nats.Connect(url, o.nats...)
	if err != nil {
		var verr *ValidationError
		if errors.As(err, &verr) {
			return nil, err
		}
		return nil, &OpError{Op: "connect", Name: redactURL(url), Kind: ErrConnection, Err: err}
	}
	return nc, nil
}

// option reads the files at each TLS handshake (nats.go calls the callbacks
// then); ClientTLSConfig also calls them once when Connect applies it, so
// bad files fail Connect.
func (f *tlsFiles) option() nats.Option {
	var certCB nats.TLSCertHandler
	var rootCAsCB nats.RootCAsHandler
	if f.cert != "" {
		certCB = func() (tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(f.cert, f.key)
			if err != nil {
				return tls.Certificate{}, &ValidationError{Field: "tls.cert", Reason: err.Error()}
			}
			return cert, nil
		}
	}
	if f.ca != "" {
		rootCAsCB = func() (*x509.CertPool, error) {
			pem, err := os.ReadFile(f.ca)
			if err != nil {
				return nil, &ValidationError{Field: "tls.ca", Reason: err.Error()}
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, &ValidationError{Field: "tls.ca", Reason: fmt.Sprintf("no PEM certificate in %s", f.ca)}
			}
			return pool, nil
		}
	}
	if certCB == nil && rootCAsCB == nil {
		// TLS with the system roots and no client certificate.
		return nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	return nats.ClientTLSConfig(certCB, rootCAsCB) // its tls.Config has MinVersion TLS 1.2
}
