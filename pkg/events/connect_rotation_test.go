package events_test

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/giia/eventstream-operator/pkg/events"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/eventstest/natsauth"
)

// Credentials rotated on disk (cert-manager renewing a certificate, a
// mounted Secret updated) are used from the next reconnection on, without a
// new Connect: WithTLS reads its files at each TLS handshake and
// WithCredsFile reads its file at each connection.

// rotFiles writes a CA, certificate and key into a new directory.
func rotFiles(t *testing.T, ca, cert, key []byte) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caFile, certFile, keyFile = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	natsauth.ReplaceFile(t, caFile, ca)
	natsauth.ReplaceFile(t, certFile, cert)
	natsauth.ReplaceFile(t, keyFile, key)
	return caFile, certFile, keyFile
}

func rotEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rotKick makes the server drop the client, which then reconnects.
func rotKick(t *testing.T, srv *eventstest.Server, c *server.ConnInfo) {
	t.Helper()
	if err := srv.NATSServer().DisconnectClientByID(c.Cid); err != nil {
		t.Fatalf("kick client %d: %v", c.Cid, err)
	}
}

func rotConnect(t *testing.T, url, name string, opts ...events.ConnectOption) *nats.Conn {
	t.Helper()
	nc, err := events.Connect(url, append([]events.ConnectOption{
		events.WithName(name), events.WithReconnectWait(20 * time.Millisecond),
		events.WithNATSOptions(nats.ReconnectJitter(0, 0)),
	}, opts...)...)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestTLSClientCertificateRotatedOnDisk(t *testing.T) {
	pki := natsauth.NewPKI(t)
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(pki.ServerOptions(t, true)))
	caFile, certFile, keyFile := rotFiles(t, pki.CAPEM, pki.ClientCertPEM, pki.ClientKeyPEM)
	const name = "rotating-client"
	nc := rotConnect(t, srv.URL(), name, events.WithTLS(caFile, certFile, keyFile))

	before := natsauth.ClientNamed(srv.NATSServer(), name)
	if got := natsauth.PeerSubject(before); !strings.Contains(got, "CN=nats-client") {
		t.Fatalf("server sees subject %q, want CN=nats-client", got)
	}
	newCert, newKey := pki.NewClientCert(t, "nats-client-rotated")
	natsauth.ReplaceFile(t, certFile, newCert)
	natsauth.ReplaceFile(t, keyFile, newKey)
	// The live connection is not touched by the rotation itself.
	if got := natsauth.PeerSubject(natsauth.ClientNamed(srv.NATSServer(), name)); !strings.Contains(got, "CN=nats-client") || strings.Contains(got, "rotated") {
		t.Fatalf("before a reconnection the server sees %q", got)
	}

	rotKick(t, srv, before)
	rotEventually(t, "a reconnection with the rotated certificate", func() bool {
		c := natsauth.ClientNamed(srv.NATSServer(), name)
		return c != nil && c.Cid != before.Cid && strings.Contains(natsauth.PeerSubject(c), "CN=nats-client-rotated")
	})
	cxExpectJetStream(t, nc)
}

func TestTLSCARotatedOnDisk(t *testing.T) {
	oldPKI, newPKI := natsauth.NewPKI(t), natsauth.NewPKI(t)
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(oldPKI.ServerOptions(t, true)))
	port := srv.NATSServer().Addr().(*net.TCPAddr).Port
	caFile, certFile, keyFile := rotFiles(t, oldPKI.CAPEM, oldPKI.ClientCertPEM, oldPKI.ClientKeyPEM)
	const name = "rotating-ca-client"
	nc := rotConnect(t, srv.URL(), name, events.WithTLS(caFile, certFile, keyFile))
	cxExpectJetStream(t, nc)

	// The server comes back on the same address with a certificate from a
	// new CA, and accepts only client certificates of that CA.
	srv.Shutdown()
	rotEventually(t, "the disconnection", func() bool { return !nc.IsConnected() })
	newSrv := natsauth.StartJetStreamOn(t, port, newPKI.ServerOptions(t, true))
	// With the old CA file the client refuses the new server.
	refusing := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(refusing) {
		if nc.IsConnected() {
			t.Fatal("connected to a server whose certificate the client's CA file does not sign")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if natsauth.ClientNamed(newSrv.NATSServer(), name) != nil {
		t.Fatal("the new server has the client before its files were rotated")
	}

	// cert-manager rotates the client's CA, certificate and key.
	natsauth.ReplaceFile(t, caFile, newPKI.CAPEM)
	natsauth.ReplaceFile(t, certFile, newPKI.ClientCertPEM)
	natsauth.ReplaceFile(t, keyFile, newPKI.ClientKeyPEM)
	rotEventually(t, "a reconnection after the CA rotation", func() bool {
		return nc.IsConnected() && natsauth.ClientNamed(newSrv.NATSServer(), name) != nil
	})
	cxExpectJetStream(t, nc)
}

// nats.UserCredentials (behind WithCredsFile) reads the file at each
// connection: a credentials file replaced on disk logs in as the new user
// from the next reconnection on.
func TestCredsFileRotatedOnDisk(t *testing.T) {
	op := natsauth.NewOperator(t)
	acct := op.NewAccount(t, "TENANT", true)
	oldUser, newUser := acct.NewUser(t, "svc-old"), acct.NewUser(t, "svc-new")
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(op.ServerOptions))
	credsFile := oldUser.WriteCreds(t, "")
	const name = "rotating-creds"
	nc := rotConnect(t, srv.URL(), name, events.WithCredsFile(credsFile))

	before := natsauth.ClientNamed(srv.NATSServer(), name)
	if before == nil || before.AuthorizedUser != oldUser.Pub {
		t.Fatalf("server sees %+v, want user %s", before, oldUser.Pub)
	}
	natsauth.ReplaceFile(t, credsFile, newUser.Creds)
	rotKick(t, srv, before)
	rotEventually(t, "a reconnection as the rotated user", func() bool {
		c := natsauth.ClientNamed(srv.NATSServer(), name)
		return c != nil && c.Cid != before.Cid && c.AuthorizedUser == newUser.Pub
	})
	cxExpectJetStream(t, nc)
}
