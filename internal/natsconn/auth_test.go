package natsconn_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/eventstest/natsauth"
)

// The operator's default connection (flags --nats-url, --nats-creds,
// --nats-tls-ca, --nats-tls-cert, --nats-tls-key) against servers that
// require JWT credentials and mutual TLS.

func authEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// authNever checks that cond stays false for d.
func authNever(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			t.Fatalf("unexpectedly %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// authLog is a logger that keeps what it logs, to check it for secrets.
type authLog struct {
	lines chan string
}

func newAuthLog() (*authLog, logr.Logger) {
	l := &authLog{lines: make(chan string, 1000)}
	return l, funcr.New(func(prefix, args string) {
		select {
		case l.lines <- prefix + " " + args:
		default:
		}
	}, funcr.Options{Verbosity: 10})
}

func (l *authLog) all() string {
	var b strings.Builder
	for {
		select {
		case s := <-l.lines:
			b.WriteString(s)
			b.WriteByte('\n')
		default:
			return b.String()
		}
	}
}

func expectNoSecretIn(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Fatalf("%s contains a secret: %q", what, text)
		}
	}
	if strings.Contains(text, "PRIVATE KEY") {
		t.Fatalf("%s contains a private key: %q", what, text)
	}
}

// expectUsable waits until the connection is ready and then makes a
// JetStream request on it.
func expectUsable(t *testing.T, c *natsconn.Conn) {
	t.Helper()
	authEventually(t, "readiness", func() bool { return c.ReadyCheck(nil) == nil })
	js, err := c.JetStream()
	if err != nil {
		t.Fatalf("JetStream() while ready: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("JetStream account info: %v", err)
	}
}

// How a connection is refused: the TLS handshake fails (nats.go keeps
// retrying forever), or the server refuses the credentials (nats.go gives up
// for good after the same authorization error twice in a row, unless
// nats.IgnoreAuthErrorAbort is set: see TestDefaultConnectionKeepsRetryingAfterAuthErrors).
const (
	refusedTLS  = true
	refusedAuth = false
)

// refusedConn is a connection whose credentials the server refuses.
type refusedConn struct {
	name string
	c    *natsconn.Conn
	logs *authLog // nil: not checked
	// keepsRetrying: refused in the TLS handshake, where nats.go retries
	// forever; an authorization error makes it give up after two attempts.
	keepsRetrying bool
}

// expectNeverReady checks that connections with refused credentials were
// created (Connect returns no error: they retry in the background) but never
// become ready, that JetStream() fails fast with ErrConnection, and that
// neither errors nor logs hold a secret. All connections are watched at once.
func expectNeverReady(t *testing.T, conns []refusedConn, secrets ...string) {
	t.Helper()
	// Long enough to span the first background retry (2s wait, with jitter).
	authNever(t, "ready with refused credentials", 2500*time.Millisecond, func() bool {
		for _, r := range conns {
			if r.c.ReadyCheck(nil) == nil {
				t.Logf("%s: ready", r.name)
				return true
			}
		}
		return false
	})
	for _, r := range conns {
		err := r.c.ReadyCheck(nil)
		if err == nil {
			t.Fatalf("%s: ready with refused credentials", r.name)
		}
		expectNoSecretIn(t, r.name+": ReadyCheck error", err.Error(), secrets...)
		_, err = r.c.JetStream()
		if !errors.Is(err, events.ErrConnection) {
			t.Fatalf("%s: JetStream() = %v, want ErrConnection", r.name, err)
		}
		expectNoSecretIn(t, r.name+": JetStream() error", err.Error(), secrets...)
		if r.keepsRetrying && r.c.NATS().IsClosed() {
			t.Fatalf("%s: the connection gave up; it must keep retrying", r.name)
		}
		if r.logs != nil {
			expectNoSecretIn(t, r.name+": the log", r.logs.all(), secrets...)
		}
	}
}

func connectDefault(t *testing.T, o natsconn.Options) (*natsconn.Conn, *authLog) {
	t.Helper()
	logs, log := newAuthLog()
	if o.Name == "" {
		o.Name = "auth-test"
	}
	c, err := natsconn.Connect(o, log)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(c.Close)
	return c, logs
}

func TestDefaultConnectionWithJWTCredentials(t *testing.T) {
	t.Parallel()
	op := natsauth.NewOperator(t)
	user := op.NewAccount(t, "OPERATOR", true).NewUser(t, "eventstream-operator")
	intruder := natsauth.UntrustedUser(t)
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(op.ServerOptions))
	secrets := []string{string(user.Seed), string(intruder.Seed), intruder.JWT}

	c, logs := connectDefault(t, natsconn.Options{URL: srv.URL(), CredsFile: user.WriteCreds(t, "")})
	expectUsable(t, c)
	expectNoSecretIn(t, "the log", logs.all(), secrets...)

	untrusted, logs := connectDefault(t, natsconn.Options{URL: srv.URL(), CredsFile: intruder.WriteCreds(t, "")})
	none, _ := connectDefault(t, natsconn.Options{URL: srv.URL()})
	expectNeverReady(t, []refusedConn{
		{name: "untrusted creds", c: untrusted, logs: logs},
		{name: "no creds", c: none},
	}, secrets...)
}

func TestDefaultConnectionWithMutualTLS(t *testing.T) {
	t.Parallel()
	pki := natsauth.NewPKI(t)
	otherCA := natsauth.NewPKI(t)
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(pki.ServerOptions(t, true)))
	keys := []string{string(pki.ClientKeyPEM), string(otherCA.ClientKeyPEM)}

	c, logs := connectDefault(t, natsconn.Options{URL: srv.URL(), TLSCA: pki.CAFile, TLSCert: pki.ClientCertFile, TLSKey: pki.ClientKeyFile})
	expectUsable(t, c)
	if _, err := c.NATS().TLSConnectionState(); err != nil {
		t.Fatalf("not a TLS connection: %v", err)
	}
	expectNoSecretIn(t, "the log", logs.all(), keys...)

	wrongCA, logs := connectDefault(t, natsconn.Options{URL: srv.URL(), TLSCA: otherCA.CAFile, TLSCert: pki.ClientCertFile, TLSKey: pki.ClientKeyFile})
	noCert, _ := connectDefault(t, natsconn.Options{URL: srv.URL(), TLSCA: pki.CAFile})
	otherCert, _ := connectDefault(t, natsconn.Options{URL: srv.URL(), TLSCA: pki.CAFile, TLSCert: otherCA.ClientCertFile, TLSKey: otherCA.ClientKeyFile})
	expectNeverReady(t, []refusedConn{
		{name: "wrong CA", c: wrongCA, logs: logs, keepsRetrying: true},
		{name: "no client certificate", c: noCert, keepsRetrying: true},
		{name: "client certificate of another CA", c: otherCert, keepsRetrying: true},
	}, keys...)

	_, err := natsconn.Connect(natsconn.Options{URL: srv.URL(), TLSCA: pki.CAFile, TLSCert: pki.ClientCertFile}, logr.Discard())
	if !errors.Is(err, events.ErrValidation) {
		t.Fatalf("Connect with a certificate but no key = %v, want ErrValidation", err)
	}
	_, err = natsconn.Connect(natsconn.Options{URL: srv.URL(), TLSCA: pki.Dir + "/missing.crt"}, logr.Discard())
	if !errors.Is(err, events.ErrValidation) {
		t.Fatalf("Connect with a missing CA file = %v, want ErrValidation", err)
	}
}

func TestDefaultConnectionWithServerTLSOnly(t *testing.T) {
	t.Parallel()
	pki := natsauth.NewPKI(t)
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(pki.ServerOptions(t, false)))
	c, _ := connectDefault(t, natsconn.Options{URL: srv.URL(), TLSCA: pki.CAFile})
	expectUsable(t, c)
}

// Mutual TLS and JWT credentials together, as a production NATS would have.
func TestDefaultConnectionWithMutualTLSAndJWTCredentials(t *testing.T) {
	t.Parallel()
	pki := natsauth.NewPKI(t)
	op := natsauth.NewOperator(t)
	user := op.NewAccount(t, "OPERATOR", true).NewUser(t, "eventstream-operator")
	tlsOpts := pki.ServerOptions(t, true)
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) {
		tlsOpts(o)
		op.ServerOptions(o)
	}))
	c, _ := connectDefault(t, natsconn.Options{URL: srv.URL(), CredsFile: user.WriteCreds(t, ""),
		TLSCA: pki.CAFile, TLSCert: pki.ClientCertFile, TLSKey: pki.ClientKeyFile})
	expectUsable(t, c)
}

// The flags carry no password or token of their own: those go into the URL
// (nats://user:password@host, nats://token@host), which must never be logged.
func TestDefaultConnectionWithCredentialsInTheURL(t *testing.T) {
	t.Parallel()
	const user, password, token = "operator", "op-Pa55word-xyz", "op-token-4e1d"
	userSrv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) {
		o.Users = []*server.User{{Username: user, Password: password}}
	}))
	tokenSrv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) { o.Authorization = token }))
	withUser := func(url, userinfo string) string { return strings.Replace(url, "nats://", "nats://"+userinfo+"@", 1) }

	c, logs := connectDefault(t, natsconn.Options{URL: withUser(userSrv.URL(), user+":"+password)})
	expectUsable(t, c)
	expectNoSecretIn(t, "the log", logs.all(), password)

	c, tokenLogs := connectDefault(t, natsconn.Options{URL: withUser(tokenSrv.URL(), token)})
	expectUsable(t, c)
	loggedToken := tokenLogs.all()

	badPassword, logs := connectDefault(t, natsconn.Options{URL: withUser(userSrv.URL(), user+":wrong-"+password)})
	badToken, tokenLogs := connectDefault(t, natsconn.Options{URL: withUser(tokenSrv.URL(), "wrong-"+token)})
	expectNeverReady(t, []refusedConn{
		{name: "wrong password", c: badPassword, logs: logs},
		{name: "wrong token", c: badToken, logs: tokenLogs},
	}, password, token)

	t.Run("a token URL is not logged", func(t *testing.T) {
		expectNoSecretIn(t, "the log", loggedToken, token)
	})
}

// toggleAuth refuses every client until accept is set.
type toggleAuth struct{ accept atomic.Bool }

func (a *toggleAuth) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	return a.accept.Load() && o.Username == "operator" && o.Password == "op-pw"
}

// The server refuses the operator for a while (credentials not provisioned
// yet, an account JWT not yet pushed, an auth service down) and then accepts
// it: the default connection must become ready without a restart. nats.go
// closes a connection for good after the same authorization error twice in
// a row unless nats.IgnoreAuthErrorAbort() is set, and natsconn does not set
// it: the operator stays unready (ReadyCheck: "CLOSED") until restarted.
func TestDefaultConnectionKeepsRetryingAfterAuthErrors(t *testing.T) {
	t.Parallel()
	auth := &toggleAuth{}
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) { o.CustomClientAuthentication = auth }))
	c, _ := connectDefault(t, natsconn.Options{URL: strings.Replace(srv.URL(), "nats://", "nats://operator:op-pw@", 1)})
	// The first attempt and a retry (2s wait, with jitter) are refused.
	authNever(t, "ready while refused", 5*time.Second, func() bool { return c.ReadyCheck(nil) == nil })
	auth.accept.Store(true)
	expectUsable(t, c)
}
