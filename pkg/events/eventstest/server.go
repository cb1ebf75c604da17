// Package eventstest is the test kit for services built on package events:
// an embedded JetStream server that tests start in one line, and a Recorder
// that stands in for the publisher in unit tests.
package eventstest

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/pkg/events"
)

// Option adjusts the embedded server's options before it starts.
type Option func(*server.Options)

// WithMaxPayload sets the server's maximum message size.
func WithMaxPayload(n int32) Option {
	return func(o *server.Options) { o.MaxPayload = n }
}

// WithServerOptions gives full access to the server's options.
func WithServerOptions(fn func(*server.Options)) Option { return fn }

// Server is an embedded nats-server with JetStream, storing under a
// temporary directory. It is shut down when the test ends.
type Server struct {
	mu     sync.Mutex
	opts   *server.Options
	srv    *server.Server
	ownDir string // store directory StartJetStream created, removed by Close
}

// RunJetStream starts a JetStream-enabled server on a random local port with
// its store in t.TempDir(), and registers its shutdown with t.Cleanup.
func RunJetStream(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := start(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("eventstest: start nats-server: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// StartJetStream is RunJetStream for code without a testing.TB (examples,
// benchmarks, local tools): the store goes under storeDir (a new temporary
// directory when empty) and the caller calls Shutdown.
func StartJetStream(storeDir string, opts ...Option) (*Server, error) {
	own := ""
	if storeDir == "" {
		dir, err := os.MkdirTemp("", "eventstest-*")
		if err != nil {
			return nil, err
		}
		storeDir, own = dir, dir
	}
	s, err := start(storeDir, opts)
	if err != nil {
		if own != "" {
			_ = os.RemoveAll(own)
		}
		return nil, err
	}
	s.ownDir = own
	return s, nil
}

// Close shuts the server down for good and removes the store directory if
// StartJetStream created it.
func (s *Server) Close() {
	s.Shutdown()
	if s.ownDir != "" {
		_ = os.RemoveAll(s.ownDir)
	}
}

func start(storeDir string, opts []Option) (*Server, error) {
	o := &server.Options{
		Host:                  "127.0.0.1",
		Port:                  server.RANDOM_PORT,
		JetStream:             true,
		StoreDir:              storeDir,
		JetStreamMaxMemory:    256 << 20,
		JetStreamMaxStore:     4 << 30,
		NoLog:                 true,
		NoSigs:                true,
		DisableShortFirstPing: true,
	}
	for _, opt := range opts {
		opt(o)
	}
	s := &Server{opts: o}
	if err := s.start(); err != nil {
		return nil, err
	}
	// The first start picked a port; restarts reuse it so clients reconnect.
	if addr, ok := s.srv.Addr().(*net.TCPAddr); ok {
		s.opts.Port = addr.Port
	}
	return s, nil
}

func (s *Server) start() error {
	srv, err := server.NewServer(s.opts.Clone())
	if err != nil {
		return err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return errNotReady
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	return nil
}

type notReady struct{}

func (notReady) Error() string { return "server not ready within 10s" }

var errNotReady error = notReady{}

// URL is the client URL, e.g. nats://127.0.0.1:4222. It stays the same
// across Restart.
func (s *Server) URL() string {
	return "nats://" + s.opts.Host + ":" + strconv.Itoa(s.opts.Port)
}

// NATSServer returns the running server (nil while shut down).
func (s *Server) NATSServer() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Shutdown stops the server and waits for it; the store is kept for Restart.
func (s *Server) Shutdown() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart shuts the server down if it is running and starts it again on
// the same port with the same store, so streams and messages survive and
// clients reconnect.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Shutdown()
	if err := s.Start(); err != nil {
		t.Fatalf("eventstest: restart nats-server: %v", err)
	}
}

// Start starts a server that was shut down again, on the same port with the
// same store (Restart without a testing.TB, e.g. for Ginkgo suites).
func (s *Server) Start() error {
	var err error
	for i := 0; i < 50; i++ { // the port may linger for a moment
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Conn connects to the server; the connection reconnects quickly and
// forever, and is closed when the test ends.
func (s *Server) Conn(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	all := append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(0, 0),
	}, opts...)
	nc, err := nats.Connect(s.URL(), all...)
	if err != nil {
		t.Fatalf("eventstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a new connection (see Conn).
func (s *Server) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(s.Conn(t))
	if err != nil {
		t.Fatalf("eventstest: jetstream: %v", err)
	}
	return js
}

// CreateStream creates a stream with the house defaults except a small
// MaxBytes (64 MiB), so that tests can create many without exhausting the
// server's storage reservation. Memory storage keeps tests fast; mod
// changes anything else.
func CreateStream(t testing.TB, js jetstream.JetStream, name string, subjects []string, mod ...func(*events.StreamConfig)) jetstream.Stream {
	t.Helper()
	cfg := events.NewStreamConfig(name, subjects...)
	cfg.MaxBytes = 64 << 20
	cfg.Storage = jetstream.MemoryStorage
	for _, m := range mod {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := events.CreateStream(ctx, js, cfg); err != nil {
		t.Fatalf("eventstest: create stream %s: %v", name, err)
	}
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("eventstest: stream %s: %v", name, err)
	}
	return st
}

// StreamMsgs returns how many messages the stream holds.
func StreamMsgs(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("eventstest: stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("eventstest: stream info %s: %v", stream, err)
	}
	return info.State.Msgs
}

// WaitForMsgs waits until the stream holds at least n messages and returns
// the count; the test fails if that does not happen within timeout.
func WaitForMsgs(t testing.TB, js jetstream.JetStream, stream string, n uint64, timeout time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := StreamMsgs(t, js, stream)
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("eventstest: stream %s holds %d messages after %s, want %d", stream, got, timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// GetMsg returns the message at seq in stream.
func GetMsg(t testing.TB, js jetstream.JetStream, stream string, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("eventstest: stream %s: %v", stream, err)
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		t.Fatalf("eventstest: get %s/%d: %v", stream, seq, err)
	}
	return m
}

// WithJetStreamDomain puts the server's JetStream in domain: clients
// connected elsewhere reach it through the API prefix $JS.<domain>.API
// (jetstream.NewWithDomain).
func WithJetStreamDomain(domain string) Option {
	return func(o *server.Options) { o.JetStreamDomain = domain }
}

// WithLeafNodes makes the server accept leaf node connections on a free
// local port, so that StartLeaf can attach a leaf node to it.
func WithLeafNodes() Option {
	return func(o *server.Options) {
		o.LeafNode.Host = "127.0.0.1"
		o.LeafNode.Port = freePort()
	}
}

// freePort returns a local TCP port that was free a moment ago (nats-server
// does not report the port of a random leaf node listener).
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return server.RANDOM_PORT
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// LeafURL is the address leaf nodes dial, nats-leaf://127.0.0.1:port; empty
// unless the server was started WithLeafNodes.
func (s *Server) LeafURL() string {
	if s.opts.LeafNode.Port <= 0 {
		return ""
	}
	return "nats-leaf://" + s.opts.LeafNode.Host + ":" + strconv.Itoa(s.opts.LeafNode.Port)
}

// StartLeaf starts a leaf node of hub (which was started WithLeafNodes)
// whose JetStream is its own, in domain, and returns once the leaf node
// connection is up. Clients of either server reach the leaf's JetStream
// with jetstream.NewWithDomain(nc, domain). storeDir is as in
// StartJetStream; the caller calls Close.
func StartLeaf(hub *Server, domain, storeDir string, opts ...Option) (*Server, error) {
	hubURL, err := url.Parse(hub.LeafURL())
	if err != nil || hub.LeafURL() == "" {
		return nil, errors.New("eventstest: the hub was not started WithLeafNodes")
	}
	hubSrv := hub.NATSServer()
	before := 0
	if hubSrv != nil {
		before = hubSrv.NumLeafNodes()
	}
	all := append([]Option{WithJetStreamDomain(domain), func(o *server.Options) {
		o.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{hubURL}}}
		o.LeafNode.ReconnectInterval = 100 * time.Millisecond
	}}, opts...)
	leaf, err := StartJetStream(storeDir, all...)
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if hubSrv != nil && hubSrv.NumLeafNodes() > before {
			return leaf, nil
		}
		if time.Now().After(deadline) {
			leaf.Close()
			return nil, errors.New("eventstest: the leaf node did not connect to the hub within 10s")
		}
	}
}

// RunLeaf is StartLeaf for a test: the store is in t.TempDir() and the
// leaf is shut down when the test ends.
func RunLeaf(t testing.TB, hub *Server, domain string, opts ...Option) *Server {
	t.Helper()
	leaf, err := StartLeaf(hub, domain, t.TempDir(), opts...)
	if err != nil {
		t.Fatalf("eventstest: start leaf node: %v", err)
	}
	t.Cleanup(leaf.Shutdown)
	return leaf
}
