package natsconn_test

import (
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
	"github.com/giia/eventstream-operator/pkg/events/eventstest/natsauth"
)

// The operator's default connection from --nats-tls-ca, --nats-tls-cert and
// --nats-tls-key follows certificates rotated on disk (cert-manager renewing
// the Secret the chart mounts) without a restart: first a new client
// certificate from the same CA, then a new CA for the server and the client.

func TestDefaultConnectionFollowsTLSFilesRotatedOnDisk(t *testing.T) {
	t.Parallel()
	oldPKI, newPKI := natsauth.NewPKI(t), natsauth.NewPKI(t)
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(oldPKI.ServerOptions(t, true)))
	dir := t.TempDir()
	o := natsconn.Options{URL: srv.URL(), Name: "rotation-test",
		TLSCA: filepath.Join(dir, "ca.crt"), TLSCert: filepath.Join(dir, "tls.crt"), TLSKey: filepath.Join(dir, "tls.key")}
	natsauth.ReplaceFile(t, o.TLSCA, oldPKI.CAPEM)
	natsauth.ReplaceFile(t, o.TLSCert, oldPKI.ClientCertPEM)
	natsauth.ReplaceFile(t, o.TLSKey, oldPKI.ClientKeyPEM)
	c, _ := connectDefault(t, o)
	var reconnects atomic.Int32
	c.OnReconnect(func() { reconnects.Add(1) })
	expectUsable(t, c)
	first := natsauth.ClientNamed(srv.NATSServer(), o.Name)
	if !strings.Contains(natsauth.PeerSubject(first), "CN=nats-client") {
		t.Fatalf("server sees subject %q, want CN=nats-client", natsauth.PeerSubject(first))
	}

	// 1. A new client certificate from the same CA; the server drops the
	// connection (as it would on a restart or a lame-duck shutdown).
	cert, key := oldPKI.NewClientCert(t, "operator-rotated")
	natsauth.ReplaceFile(t, o.TLSCert, cert)
	natsauth.ReplaceFile(t, o.TLSKey, key)
	if err := srv.NATSServer().DisconnectClientByID(first.Cid); err != nil {
		t.Fatal(err)
	}
	authEventually(t, "a reconnection presenting the rotated certificate", func() bool {
		cur := natsauth.ClientNamed(srv.NATSServer(), o.Name)
		return cur != nil && cur.Cid != first.Cid && strings.Contains(natsauth.PeerSubject(cur), "CN=operator-rotated")
	})
	authEventually(t, "the reconnect announcement", func() bool { return reconnects.Load() >= 1 })
	expectUsable(t, c)

	// 2. The CA itself is replaced: the server restarts on the same address
	// with a certificate of the new CA and accepts only client certificates
	// of the new CA. With the old files the operator stays disconnected...
	port := srv.NATSServer().Addr().(*net.TCPAddr).Port
	srv.Shutdown()
	authEventually(t, "the disconnection", func() bool { return c.ReadyCheck(nil) != nil })
	newSrv := natsauth.StartJetStreamOn(t, port, newPKI.ServerOptions(t, true))
	authNever(t, "connected to the new CA's server with the old CA file", 2500*time.Millisecond, func() bool {
		return c.ReadyCheck(nil) == nil || natsauth.ClientNamed(newSrv.NATSServer(), o.Name) != nil
	})
	// ... until the files are rotated, without a restart.
	natsauth.ReplaceFile(t, o.TLSCA, newPKI.CAPEM)
	natsauth.ReplaceFile(t, o.TLSCert, newPKI.ClientCertPEM)
	natsauth.ReplaceFile(t, o.TLSKey, newPKI.ClientKeyPEM)
	expectUsable(t, c)
	if natsauth.ClientNamed(newSrv.NATSServer(), o.Name) == nil {
		t.Fatal("ready, but the new server does not see the operator's connection")
	}
}
