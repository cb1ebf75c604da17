// Package natsproc runs the real nats-server binary (bin/nats-server, `make
// nats-server`) for tests: a subprocess with its output in a log file, on a
// free loopback port with JetStream on file storage in a test directory, that
// can be stopped with SIGSTOP (a stalled server: no crash, no disconnection,
// no answers), resumed with SIGCONT, killed and started again on the same
// port and store; standalone or a cluster. It also connects clients and reads
// back the event IDs a stream stored. The stall test (test/stall, in `make
// test`), the chaos tests, the end-to-end test and the operator benchmark
// use it.
package natsproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/internal/testutil/freeport"
	"github.com/giia/eventstream-operator/internal/testutil/proc"
	"github.com/giia/eventstream-operator/internal/testutil/repo"
)

// Binary is the nats-server binary: $NATS_SERVER (the Makefile sets it to
// its pinned bin/nats-server), or bin/nats-server at the repository root.
func Binary() (string, error) { return repo.NATSServer() }

// Server is one nats-server with JetStream on file storage. It can be
// frozen and thawed, killed and started again on the same port and store.
type Server struct {
	Name        string
	Dir         string
	Port        int
	ClusterPort int
	Conf        string
	Bin         string
	Proc        *proc.Process
	Starts      int
}

// URL is the server's client URL.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Port) }

// NewServer writes the configuration of a server named name in dir/name
// (routes: the cluster ports of every member including this one; nil for a
// standalone server). It does not start it.
func NewServer(bin, dir, name string, port, clusterPort int, routes []int) (*Server, error) {
	s := &Server{Name: name, Dir: filepath.Join(dir, name), Port: port, ClusterPort: clusterPort, Bin: bin}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\nlisten: \"127.0.0.1:%d\"\n", name, port)
	// Every stream reserves its max bytes against max_file_store: 8 TiB.
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n  max_file_store: 8796093022208\n  max_memory_store: 1073741824\n}\n",
		filepath.Join(s.Dir, "jetstream"))
	if len(routes) > 0 {
		fmt.Fprintf(&b, "cluster {\n  name: chaos\n  listen: \"127.0.0.1:%d\"\n  routes: [\n", clusterPort)
		for _, r := range routes {
			fmt.Fprintf(&b, "    \"nats-route://127.0.0.1:%d\"\n", r)
		}
		b.WriteString("  ]\n}\n")
	}
	s.Conf = filepath.Join(s.Dir, "nats.conf")
	if err := os.WriteFile(s.Conf, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

// Start runs the server and waits until its client port accepts connections.
func (s *Server) Start() error {
	s.Starts++
	logPath := filepath.Join(s.Dir, "nats-server.log")
	p, err := proc.Start("nats-server "+s.Name, logPath, nil, s.Bin, "-c", s.Conf)
	if err != nil {
		return err
	}
	s.Proc = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if s.Proc.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("nats-server %s did not start: %v\n%s", s.Name, err, proc.Tail(logPath, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Freeze stops the server with SIGSTOP: its connections stay open, nothing
// is answered, until Thaw.
func (s *Server) Freeze() error {
	if s.Proc == nil {
		return fmt.Errorf("nats-server %s is not running", s.Name)
	}
	return s.Proc.Freeze()
}

// Thaw resumes a frozen server with SIGCONT.
func (s *Server) Thaw() error {
	if s.Proc == nil {
		return fmt.Errorf("nats-server %s is not running", s.Name)
	}
	return s.Proc.Thaw()
}

// Kill SIGKILLs the server, as a crash would.
func (s *Server) Kill() {
	if s.Proc != nil {
		s.Proc.Kill()
	}
}

// Stop stops the server (thawing it first if it is frozen): SIGTERM, then
// SIGKILL after 15 s.
func (s *Server) Stop() {
	if s.Proc != nil {
		_, _ = s.Proc.Stop(15 * time.Second)
	}
}

// Standalone writes the configuration of one JetStream server (the
// NATS_SERVER binary) on a free port in dir and starts it; the caller stops
// it.
func Standalone(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	port, err := freeport.Port()
	if err != nil {
		return nil, err
	}
	s, err := NewServer(bin, dir, "standalone", port, 0, nil)
	if err != nil {
		return nil, err
	}
	return s, s.Start()
}

// StartStandalone is Standalone for a test: a failure fails it, and the
// server is stopped at cleanup.
func StartStandalone(t testing.TB, dir string) *Server {
	t.Helper()
	s, err := Standalone(dir)
	if s != nil {
		t.Cleanup(s.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// NewCluster writes the configurations of an n-node cluster (servers n1…nN
// on free ports, each routing to all) in dir. It starts none of them.
func NewCluster(dir string, n int) ([]*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	free, err := freeport.Ports(2 * n)
	if err != nil {
		return nil, err
	}
	ports, cports := free[:n], free[n:]
	servers := make([]*Server, n)
	for i := range n {
		if servers[i], err = NewServer(bin, dir, fmt.Sprintf("n%d", i+1), ports[i], cports[i], cports); err != nil {
			return nil, err
		}
	}
	return servers, nil
}

// URLs joins the client URLs of servers with commas, for a client or the
// manager's --nats-url.
func URLs(servers []*Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Connect connects to url (retrying for up to within), with a client that
// reconnects forever, quickly, and returns its JetStream context.
func Connect(url, name string, within time.Duration) (*nats.Conn, jetstream.JetStream, error) {
	deadline := time.Now().Add(within)
	for {
		nc, err := nats.Connect(url, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err == nil {
			js, err := jetstream.New(nc)
			if err != nil {
				nc.Close()
				return nil, nil, err
			}
			return nc, js, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("connecting to %s: %w", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitJetStream waits until JetStream answers (a cluster needs a meta
// leader first).
func WaitJetStream(js jetstream.JetStream, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("JetStream not available after %s: %w", within, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// EventIDs reads every message of a stream with an ordered consumer and
// returns how many there are and how often each ce-id occurs.
func EventIDs(t testing.TB, js jetstream.JetStream, stream string) (int, map[string]int) {
	t.Helper()
	ictx, icancel := context.WithTimeout(context.Background(), 5*time.Second)
	s, err := js.Stream(ictx, stream)
	var info *jetstream.StreamInfo
	if err == nil {
		info, err = s.Info(ictx)
	}
	icancel()
	if err != nil {
		t.Fatalf("stream info %s: %v", stream, err)
	}
	want := int(info.State.Msgs)
	ids := make(map[string]int, want)
	if want == 0 {
		return 0, ids
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("ordered consumer on %s: %v", stream, err)
	}
	n := 0
	for empty := 0; n < want; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("reading %s after %d of %d messages: %v", stream, n, want, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			ids[m.Headers().Get("ce-id")]++
		}
		n += got
		if got == 0 {
			if empty++; empty >= 6 {
				t.Fatalf("reading %s: stuck after %d of %d messages (%v)", stream, n, want, batch.Error())
			}
		}
	}
	return n, ids
}

// Dupes counts the IDs seen more than once and their extra copies.
func Dupes(ids map[string]int) (ids2 int, extra int) {
	for _, n := range ids {
		if n > 1 {
			ids2++
			extra += n - 1
		}
	}
	return
}
