package natsconn_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/giia/eventstream-operator/internal/natsconn"
	"github.com/giia/eventstream-operator/internal/testutil/natsauth"
	"github.com/giia/eventstream-operator/pkg/events/eventstest"
)

// The operator's default connection from --nats-tls-ca, --nats-tls-cert and
// --nats-tls-key follows certificates rotated on disk (cert-manager renewing
// the Secret the chart mounts) without a restart: first a new client
// certificate from the same CA, then a new CA for the server and the client.

// replaceFile swaps a file the way the kubelet updates a mounted Secret.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".new", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// clientNamed is the server's view of the connection called name (nil when
// there is none).
func clientNamed(srv *eventstest.Server, name string) *server.ConnInfo {
	s := srv.NATSServer()
	if s == nil {
		return nil
	}
	connz, err := s.Connz(&server.ConnzOptions{Username: true})
	if err != nil {
		return nil
	}
	for _, c := range connz.Conns {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func peerSubject(c *server.ConnInfo) string {
	if c == nil || len(c.TLSPeerCerts) == 0 {
		return ""
	}
	return c.TLSPeerCerts[0].Subject
}

func TestDefaultConnectionFollowsTLSFilesRotatedOnDisk(t *testing.T) {
	t.Parallel()
	oldPKI, newPKI := natsauth.NewPKI(t), natsauth.NewPKI(t)
	srv := eventstest.RunJetStream(t, eventstest.WithServerOptions(oldPKI.ServerOptions(t, true)))
	dir := t.TempDir()
	o := natsconn.Options{URL: srv.URL(), Name: "rotation-test",
		TLSCA: filepath.Join(dir, "ca.crt"), TLSCert: filepath.Join(dir, "tls.crt"), TLSKey: filepath.Join(dir, "tls.key")}
	replaceFile(t, o.TLSCA, oldPKI.CAPEM)
	replaceFile(t, o.TLSCert, oldPKI.ClientCertPEM)
	replaceFile(t, o.TLSKey, oldPKI.ClientKeyPEM)
	c, _ := connectDefault(t, o)
	var reconnects atomic.Int32
	c.OnReconnect(func() { reconnects.Add(1) })
	expectUsable(t, c)
	first := clientNamed(srv, o.Name)
	if !strings.Contains(peerSubject(first), "CN=nats-client") {
		t.Fatalf("server sees subject %q, want CN=nats-client", peerSubject(first))
	}

	// 1. A new client certificate from the same CA; the server drops the
	// connection (as it would on a restart or a lame-duck shutdown).
	cert, key := oldPKI.NewClientCert(t, "operator-rotated")
	replaceFile(t, o.TLSCert, cert)
	replaceFile(t, o.TLSKey, key)
	if err := srv.NATSServer().DisconnectClientByID(first.Cid); err != nil {
		t.Fatal(err)
	}
	authEventually(t, "a reconnection presenting the rotated certificate", func() bool {
		cur := clientNamed(srv, o.Name)
		return cur != nil && cur.Cid != first.Cid && strings.Contains(peerSubject(cur), "CN=operator-rotated")
	})
	authEventually(t, "the reconnect announcement", func() bool { return reconnects.Load() >= 1 })
	expectUsable(t, c)

	// 2. The CA itself is replaced: the server restarts on the same address
	// with a certificate of the new CA and accepts only client certificates
	// of the new CA. With the old files the operator stays disconnected...
	port := srv.NATSServer().Addr().(*net.TCPAddr).Port
	srv.Shutdown()
	newSrv := startOnPort(t, port, newPKI.ServerOptions(t, true))
	authNever(t, "connected to the new CA's server with the old CA file", 2500*time.Millisecond, func() bool {
		return c.ReadyCheck(nil) == nil || clientNamed(newSrv, o.Name) != nil
	})
	// ... until the files are rotated, without a restart.
	replaceFile(t, o.TLSCA, newPKI.CAPEM)
	replaceFile(t, o.TLSCert, newPKI.ClientCertPEM)
	replaceFile(t, o.TLSKey, newPKI.ClientKeyPEM)
	expectUsable(t, c)
	if clientNamed(newSrv, o.Name) == nil {
		t.Fatal("ready, but the new server does not see the operator's connection")
	}
}

// startOnPort starts a JetStream server on 127.0.0.1:port, retrying while
// the previous server's port lingers.
func startOnPort(t *testing.T, port int, mod func(*server.Options)) *eventstest.Server {
	t.Helper()
	var lastErr error
	for i := 0; i < 50; i++ {
		s, err := eventstest.StartJetStream(t.TempDir(), eventstest.WithServerOptions(func(o *server.Options) {
			mod(o)
			o.Port = port
		}))
		if err == nil {
			t.Cleanup(s.Shutdown)
			return s
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("start a server on port %d: %v", port, lastErr)
	return nil
}
