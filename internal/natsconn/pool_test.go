package natsconn_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/eventstest/natsauth"
)

// Per-resource connections, built from a Secret's data only.

// poolHooks records the pool's onConnect and stop calls.
type poolHooks struct {
	mu       sync.Mutex
	connects []*nats.Conn
	stops    []*nats.Conn
}

func (h *poolHooks) onConnect(nc *nats.Conn) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connects = append(h.connects, nc)
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.stops = append(h.stops, nc)
	}
}

func (h *poolHooks) counts() (connects, stops int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.connects), len(h.stops)
}

func (h *poolHooks) stopped(nc *nats.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.stops {
		if s == nc {
			return true
		}
	}
	return false
}

func newTestPool(t *testing.T) (*natsconn.Pool, *poolHooks, *authLog) {
	t.Helper()
	hooks := &poolHooks{}
	logs, log := newAuthLog()
	p := natsconn.NewPool(log, hooks.onConnect, nil)
	t.Cleanup(p.Close)
	return p, hooks, logs
}

// secretData is a Secret's data as the operator reads it.
func secretData(kv ...string) map[string][]byte {
	d := map[string][]byte{}
	for i := 0; i+1 < len(kv); i += 2 {
		d[kv[i]] = []byte(kv[i+1])
	}
	return d
}

func TestPoolConnectsWithEachMechanism(t *testing.T) {
	const user, password, token = "tenant", "tenant-Pa55-9c2f", "tenant-token-77ab"
	nk := natsauth.NewNKey(t)
	op := natsauth.NewOperator(t)
	jwtUser := op.NewAccount(t, "TENANT", true).NewUser(t, "tenant")
	pki := natsauth.NewPKI(t)

	userSrv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) {
		o.Users = []*server.User{{Username: user, Password: password}}
	}))
	tokenSrv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) { o.Authorization = token }))
	nkeySrv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: nk.Pub}}
	}))
	jwtSrv := eventstest.RunJetStream(t, eventstest.WithServerOptions(op.ServerOptions))
	tlsSrv := eventstest.RunJetStream(t, eventstest.WithServerOptions(pki.ServerOptions(t, false)))
	mtlsSrv := eventstest.RunJetStream(t, eventstest.WithServerOptions(pki.ServerOptions(t, true)))
	tlsOpts := pki.ServerOptions(t, true)
	mtlsJWTSrv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) {
		tlsOpts(o)
		op.ServerOptions(o)
	}))

	secrets := []string{password, token, string(nk.Seed), string(jwtUser.Seed), string(pki.ClientKeyPEM)}
	cases := []struct {
		name string
		data map[string][]byte
	}{
		{"user and password", secretData("url", userSrv.URL(), "user", user, "password", password)},
		{"token", secretData("url", tokenSrv.URL(), "token", token+"\n")},
		{"nkey seed", secretData("url", nkeySrv.URL(), "nkey", string(nk.Seed)+"\n")},
		{"creds", secretData("url", jwtSrv.URL(), "creds", string(jwtUser.Creds))},
		{"TLS CA", secretData("url", tlsSrv.URL(), "ca.crt", string(pki.CAPEM))},
		{"mutual TLS", secretData("url", mtlsSrv.URL(), "ca.crt", string(pki.CAPEM),
			"tls.crt", string(pki.ClientCertPEM), "tls.key", string(pki.ClientKeyPEM))},
		{"mutual TLS and creds", secretData("url", "  "+mtlsJWTSrv.URL()+"\n", "creds", string(jwtUser.Creds),
			"ca.crt", string(pki.CAPEM), "tls.crt", string(pki.ClientCertPEM), "tls.key", string(pki.ClientKeyPEM))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, hooks, logs := newTestPool(t)
			c, err := p.Get("tenant-ns/nats", "1", tc.data, "EventStream:tenant-ns/s")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			expectUsable(t, c)
			if n, _ := hooks.counts(); n != 1 {
				t.Fatalf("onConnect called %d times, want 1", n)
			}
			expectNoSecretIn(t, "the log", logs.all(), secrets...)
		})
	}
}

func TestPoolWrongCredentialsNeverConnect(t *testing.T) {
	t.Parallel()
	const user, password, token = "tenant", "tenant-Pa55-9c2f", "tenant-token-77ab"
	nk, otherNK := natsauth.NewNKey(t), natsauth.NewNKey(t)
	op := natsauth.NewOperator(t)
	op.NewAccount(t, "TENANT", true)
	intruder := natsauth.UntrustedUser(t)
	pki, otherCA := natsauth.NewPKI(t), natsauth.NewPKI(t)
	srv := func(mod func(*server.Options)) string {
		return eventstest.RunJetStream(t, eventstest.WithServerOptions(mod)).URL()
	}
	userURL := srv(func(o *server.Options) { o.Users = []*server.User{{Username: user, Password: password}} })
	tokenURL := srv(func(o *server.Options) { o.Authorization = token })
	nkeyURL := srv(func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: nk.Pub}} })
	jwtURL := srv(op.ServerOptions)
	mtlsURL := srv(pki.ServerOptions(t, true))

	secrets := []string{password, "wrong-" + password, token, "wrong-" + token, string(nk.Seed), string(otherNK.Seed),
		string(intruder.Seed), intruder.JWT, string(pki.ClientKeyPEM), string(otherCA.ClientKeyPEM)}
	cases := []struct {
		name  string
		data  map[string][]byte
		byTLS bool
	}{
		{"wrong password", secretData("url", userURL, "user", user, "password", "wrong-"+password), refusedAuth},
		{"no credentials", secretData("url", userURL), refusedAuth},
		{"wrong token", secretData("url", tokenURL, "token", "wrong-"+token), refusedAuth},
		{"another nkey", secretData("url", nkeyURL, "nkey", string(otherNK.Seed)), refusedAuth},
		{"untrusted creds", secretData("url", jwtURL, "creds", string(intruder.Creds)), refusedAuth},
		{"wrong CA", secretData("url", mtlsURL, "ca.crt", string(otherCA.CAPEM),
			"tls.crt", string(pki.ClientCertPEM), "tls.key", string(pki.ClientKeyPEM)), refusedTLS},
		{"client certificate of another CA", secretData("url", mtlsURL, "ca.crt", string(pki.CAPEM),
			"tls.crt", string(otherCA.ClientCertPEM), "tls.key", string(otherCA.ClientKeyPEM)), refusedTLS},
	}
	var conns []refusedConn
	for _, tc := range cases {
		p, _, logs := newTestPool(t)
		c, err := p.Get("tenant-ns/nats", "1", tc.data, "EventStream:tenant-ns/s")
		if err != nil {
			t.Fatalf("%s: Get must not fail while the server refuses (it retries in the background): %v", tc.name, err)
		}
		conns = append(conns, refusedConn{name: tc.name, c: c, logs: logs, keepsRetrying: tc.byTLS})
	}
	expectNeverReady(t, conns, secrets...)
}

func TestPoolRefusesBadSecretData(t *testing.T) {
	nk := natsauth.NewNKey(t)
	pki, otherCA := natsauth.NewPKI(t), natsauth.NewPKI(t)
	srv := eventstest.RunJetStream(t)
	badSeed := string(nk.Seed[:20]) + "A" + string(nk.Seed[21:])
	if badSeed == string(nk.Seed) {
		badSeed = string(nk.Seed[:20]) + "B" + string(nk.Seed[21:])
	}
	secrets := []string{string(nk.Seed), badSeed, "hunter2", string(pki.ClientKeyPEM), string(otherCA.ClientKeyPEM)}
	cases := []struct {
		name  string
		data  map[string][]byte
		field string
	}{
		{"no url", secretData("user", "u", "password", "hunter2"), "connection.secretRef"},
		{"blank url", secretData("url", " \n", "password", "hunter2"), "connection.secretRef"},
		{"not an nkey seed", secretData("url", srv.URL(), "nkey", badSeed), "connection.secretRef: nkey"},
		{"not a creds file", secretData("url", srv.URL(), "creds", "hunter2"), "connection.secretRef: creds"},
		{"CA that is not PEM", secretData("url", srv.URL(), "ca.crt", "hunter2"), "connection.secretRef: tls.ca"},
		{"certificate without key", secretData("url", srv.URL(), "ca.crt", string(pki.CAPEM), "tls.crt", string(pki.ClientCertPEM)), "connection.secretRef: tls"},
		{"key of another certificate", secretData("url", srv.URL(), "ca.crt", string(pki.CAPEM),
			"tls.crt", string(pki.ClientCertPEM), "tls.key", string(otherCA.ClientKeyPEM)), "connection.secretRef: tls.cert"},
		{"domain that is no domain name", secretData("url", srv.URL(), "domain", "leaf.one"), "connection.secretRef: domain"},
		{"empty domain", secretData("url", srv.URL(), "domain", " "), "connection.secretRef: domain"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, hooks, _ := newTestPool(t)
			_, err := p.Get("tenant-ns/nats", "1", tc.data, "EventStream:tenant-ns/s")
			var verr *events.ValidationError
			if !errors.Is(err, events.ErrValidation) || !errors.As(err, &verr) {
				t.Fatalf("Get = %v, want a *events.ValidationError", err)
			}
			if !strings.HasPrefix(verr.Field, tc.field) {
				t.Fatalf("ValidationError names %q, want %q", verr.Field, tc.field)
			}
			expectNoSecretIn(t, "the error", err.Error(), secrets...)
			if p.Len() != 0 {
				t.Fatalf("pool holds %d connections after a refused Secret", p.Len())
			}
			if n, _ := hooks.counts(); n != 0 {
				t.Fatalf("onConnect called %d times for a refused Secret", n)
			}
		})
	}
}

func TestPoolSharesRebuildsAndClosesConnections(t *testing.T) {
	const token = "tenant-token-77ab"
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) { o.Authorization = token }))
	data := secretData("url", srv.URL(), "token", token)
	p, hooks, _ := newTestPool(t)
	const key = "tenant-ns/nats"

	a, err := p.Get(key, "1", data, "EventStream:tenant-ns/a")
	if err != nil {
		t.Fatal(err)
	}
	expectUsable(t, a)

	// Same Secret version: the same connection, whoever asks.
	b, err := p.Get(key, "1", data, "EventConsumer:tenant-ns/b")
	if err != nil {
		t.Fatal(err)
	}
	if b != a {
		t.Fatal("same Secret version, different connection")
	}
	if again, _ := p.Get(key, "1", data, "EventStream:tenant-ns/a"); again != a {
		t.Fatal("same user, same version, different connection")
	}
	if n, s := hooks.counts(); n != 1 || s != 0 {
		t.Fatalf("onConnect/stop called %d/%d times, want 1/0", n, s)
	}
	if p.Len() != 1 {
		t.Fatalf("Len = %d, want 1", p.Len())
	}

	// Another Secret: another connection.
	other, err := p.Get("tenant-ns/other", "7", data, "EventStream:tenant-ns/c")
	if err != nil {
		t.Fatal(err)
	}
	if other == a {
		t.Fatal("two Secrets share a connection")
	}
	if p.Len() != 2 {
		t.Fatalf("Len = %d, want 2", p.Len())
	}

	// The Secret changed: a new connection, the old one closed and its
	// stop function called.
	a2, err := p.Get(key, "2", data, "EventStream:tenant-ns/a")
	if err != nil {
		t.Fatal(err)
	}
	if a2 == a {
		t.Fatal("new Secret version, same connection")
	}
	if !a.NATS().IsClosed() {
		t.Fatal("the connection of the old Secret version is still open")
	}
	if !hooks.stopped(a.NATS()) {
		t.Fatal("stop was not called for the old connection")
	}
	expectUsable(t, a2)
	if n, s := hooks.counts(); n != 3 || s != 1 {
		t.Fatalf("onConnect/stop called %d/%d times, want 3/1", n, s)
	}

	// Releasing one of two users keeps it; releasing the last closes it.
	if _, err := p.Get(key, "2", data, "EventConsumer:tenant-ns/b"); err != nil {
		t.Fatal(err)
	}
	p.Release("EventStream:tenant-ns/a")
	if a2.NATS().IsClosed() {
		t.Fatal("closed while another resource still uses it")
	}
	p.Release("EventConsumer:tenant-ns/b")
	if !a2.NATS().IsClosed() {
		t.Fatal("still open after its last user was released")
	}
	if !hooks.stopped(a2.NATS()) {
		t.Fatal("stop was not called when the last user was released")
	}
	if p.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (the other Secret's)", p.Len())
	}
	// Releasing a resource that uses nothing changes nothing.
	p.Release("EventStream:tenant-ns/nobody")
	if other.NATS().IsClosed() || p.Len() != 1 {
		t.Fatal("releasing an unknown user closed a connection")
	}

	// A released Secret connects again on demand.
	a3, err := p.Get(key, "2", data, "EventStream:tenant-ns/a")
	if err != nil {
		t.Fatal(err)
	}
	expectUsable(t, a3)

	// Close closes everything and calls every stop function.
	p.Close()
	if !a3.NATS().IsClosed() || !other.NATS().IsClosed() {
		t.Fatal("Close left a connection open")
	}
	if p.Len() != 0 {
		t.Fatalf("Len after Close = %d", p.Len())
	}
	if n, s := hooks.counts(); n != s {
		t.Fatalf("onConnect called %d times but stop %d times", n, s)
	}
}

// A Secret that changes from bad to good data: the bad version is refused,
// the good one connects.
func TestPoolRecoversWhenTheSecretIsFixed(t *testing.T) {
	const token = "tenant-token-77ab"
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) { o.Authorization = token }))
	p, _, _ := newTestPool(t)
	if _, err := p.Get("ns/s", "1", secretData("token", token), "EventStream:ns/a"); !errors.Is(err, events.ErrValidation) {
		t.Fatalf("Get without url = %v, want ErrValidation", err)
	}
	c, err := p.Get("ns/s", "2", secretData("url", srv.URL(), "token", token), "EventStream:ns/a")
	if err != nil {
		t.Fatal(err)
	}
	expectUsable(t, c)
	if _, err := p.Get("ns/s", "3", secretData("url", srv.URL(), "nkey", "garbage"), "EventStream:ns/a"); !errors.Is(err, events.ErrValidation) {
		t.Fatalf("Get with a bad nkey = %v, want ErrValidation", err)
	}
	if !c.NATS().IsClosed() {
		t.Fatal("the previous version's connection is still open")
	}
	if p.Len() != 0 {
		t.Fatalf("Len = %d after a refused Secret version", p.Len())
	}
}

// As TestDefaultConnectionKeepsRetryingAfterAuthErrors, for a tenant's
// server: the tenant provisions the user after creating the Secret. The
// Secret does not change, so the pool keeps handing out the connection that
// nats.go has closed for good.
func TestPoolConnectionKeepsRetryingAfterAuthErrors(t *testing.T) {
	t.Parallel()
	auth := &toggleAuth{}
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(func(o *server.Options) { o.CustomClientAuthentication = auth }))
	p, _, _ := newTestPool(t)
	data := secretData("url", srv.URL(), "user", "operator", "password", "op-pw")
	c, err := p.Get("ns/s", "1", data, "EventStream:ns/a")
	if err != nil {
		t.Fatal(err)
	}
	authNever(t, "ready while refused", 5*time.Second, func() bool { return c.ReadyCheck(nil) == nil })
	auth.accept.Store(true)
	c, err = p.Get("ns/s", "1", data, "EventStream:ns/a")
	if err != nil {
		t.Fatal(err)
	}
	expectUsable(t, c)
}

// The pool refuses a URL its HostPatterns do not allow before dialling it:
// the server never sees a connection.
func TestPoolRefusesDisallowedURLsWithoutDialling(t *testing.T) {
	srv := eventstest.RunJetStream(t)
	port := strings.TrimPrefix(srv.URL(), "nats://127.0.0.1:")
	allowed, err := natsconn.ParseHostPatterns([]string{"localhost:" + port})
	if err != nil {
		t.Fatal(err)
	}
	hooks := &poolHooks{}
	p := natsconn.NewPool(logr.Discard(), hooks.onConnect, allowed)
	t.Cleanup(p.Close)

	for _, url := range []string{srv.URL(), "nats://localhost:" + port + ",nats://127.0.0.1:" + port, "nats://localhost:" + port + "0"} {
		_, err := p.Get("ns/s", url, secretData("url", url, "password", "hunter2"), "EventStream:ns/a")
		var refused *natsconn.URLNotAllowedError
		if !errors.As(err, &refused) {
			t.Fatalf("Get(%q) = %v, want a *URLNotAllowedError", url, err)
		}
		expectNoSecretIn(t, "the error", err.Error(), "hunter2")
	}
	if p.Len() != 0 {
		t.Fatalf("Len = %d after refused URLs", p.Len())
	}
	if n, _ := hooks.counts(); n != 0 {
		t.Fatalf("onConnect called %d times", n)
	}
	v, err := srv.NATSServer().Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.TotalConnections != 0 {
		t.Fatalf("the server saw %d connections", v.TotalConnections)
	}

	c, err := p.Get("ns/s", "ok", secretData("url", "nats://localhost:"+port), "EventStream:ns/a")
	if err != nil {
		t.Fatal(err)
	}
	expectUsable(t, c)
}

// clusterNode starts a plain nats-server (no JetStream) in cluster "c";
// with routeTo it joins the node listening there.
func clusterNode(t *testing.T, routeTo string) *server.Server {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "c", Host: "127.0.0.1", Port: server.RANDOM_PORT}}
	if routeTo != "" {
		o.Routes = server.RoutesFromStr(routeTo)
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("cluster node not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// A tenant's server announces the other servers of its cluster; with host
// patterns set, the pool's connection never dials them (they were not
// checked), even when the server it knows goes away.
func TestRestrictedPoolIgnoresServersTheClusterAnnounces(t *testing.T) {
	a := clusterNode(t, "")
	b := clusterNode(t, fmt.Sprintf("nats://%s", a.ClusterAddr().String()))
	waitFor(t, "the route between the nodes", func() bool { return a.NumRoutes() > 0 && b.NumRoutes() > 0 })
	urlA := "nats://" + a.Addr().String()

	// A plain client of A learns about B: that is what must be ignored.
	control, err := nats.Connect(urlA)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A announcing B", func() bool { return len(control.DiscoveredServers()) > 0 })
	control.Close()

	allowed, err := natsconn.ParseHostPatterns([]string{a.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	p := natsconn.NewPool(logr.Discard(), nil, allowed)
	t.Cleanup(p.Close)
	c, err := p.Get("ns/s", "1", secretData("url", urlA), "EventStream:ns/a")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool's connection", func() bool { return c.NATS().IsConnected() })
	if err := c.NATS().Flush(); err != nil { // INFO updates have arrived
		t.Fatal(err)
	}
	if got := c.NATS().DiscoveredServers(); len(got) != 0 {
		t.Fatalf("the restricted connection took announced servers %q", got)
	}
	before, err := b.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Shutdown()
	a.WaitForShutdown()
	// nats.go waits 2s (plus jitter) between rounds of reconnection attempts.
	authNever(t, "a connection to the announced server", 3*time.Second, func() bool {
		v, err := b.Varz(nil)
		return err == nil && v.TotalConnections > before.TotalConnections
	})
}
