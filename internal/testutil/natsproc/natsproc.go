// Package natsproc runs the real nats-server binary (bin/nats-server, `make
// nats-server`) for tests: a subprocess with its output in a log file, on a
// free loopback port with JetStream on file storage in a test directory, that
// can be stopped with SIGSTOP (a stalled server: no crash, no disconnection,
// no answers), resumed with SIGCONT, killed and started again on the same
// port and store. It also reads back the event IDs a stream stored. The
// stall test (test/stall, in `make test`) and the chaos tests (test/chaos)
// use it.
package natsproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/giia/eventstream-operator/internal/testutil/freeport"
)

// Binary returns the nats-server binary to run: $NATS_SERVER (the Makefile
// sets it to its pinned bin/nats-server), or bin/nats-server at the root of
// the repository. A missing binary is an error saying how to build it.
func Binary() (string, error) {
	bin := os.Getenv("NATS_SERVER")
	from := "NATS_SERVER"
	if bin == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		bin, from = filepath.Join(root, "bin", "nats-server"), "the default, NATS_SERVER is not set"
	}
	fi, err := os.Stat(bin)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("the nats-server binary %s (%s) is missing or not executable: run `make nats-server` (`make test` builds it and sets NATS_SERVER)", bin, from)
	}
	return bin, nil
}

// RepoRoot is the directory of the go.mod of github.com/giia/eventstream-operator,
// found from the working directory up.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module github.com/giia/eventstream-operator\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod of github.com/giia/eventstream-operator) not found")
		}
		dir = parent
	}
}

// Process is a subprocess a test started, its output in a log file.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{} // closed when it has exited
}

// StartProcess starts bin with args. The child is SIGKILLed if the test
// binary dies (Pdeathsig), so a panic or a go test -timeout leaves nothing.
func StartProcess(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop resumes the process if it was stopped, sends SIGTERM, and SIGKILL
// after grace.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGCONT)
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// Tail returns the last n lines of a file.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Server is one nats-server with JetStream on file storage. It can be
// frozen and thawed, killed and started again on the same port and store.
type Server struct {
	Name        string
	Dir         string
	Port        int
	ClusterPort int
	Conf        string
	Bin         string
	Proc        *Process
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
	p, err := StartProcess("nats-server "+s.Name, logPath, os.Environ(), s.Bin, "-c", s.Conf)
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
			return fmt.Errorf("nats-server %s did not start: %v\n%s", s.Name, err, Tail(logPath, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Freeze stops the server with SIGSTOP: its connections stay open, nothing
// is answered, until Thaw.
//
// It returns once every thread of the process is stopped: kill(2) returns
// before a thread running on another core has taken the signal, and a
// request sent in that window would still be answered.
func (s *Server) Freeze() error {
	if err := s.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for !allThreadsStopped(s.Proc.Cmd.Process.Pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("nats-server %s: not every thread stopped 5s after SIGSTOP", s.Name)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// allThreadsStopped reports whether every thread of pid is in state T
// (stopped), from /proc/<pid>/task/*/stat.
func allThreadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses
		// and may itself contain spaces or parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// Thaw resumes a frozen server with SIGCONT.
func (s *Server) Thaw() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	if s.Proc == nil || s.Proc.Exited() {
		return fmt.Errorf("nats-server %s is not running", s.Name)
	}
	return s.Proc.Cmd.Process.Signal(sig)
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
		s.Proc.Stop(15 * time.Second)
	}
}

// StartStandalone starts one JetStream server (the NATS_SERVER binary) on a
// free port in dir and stops it at cleanup. A missing binary fails the test.
func StartStandalone(t testing.TB, dir string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(bin, dir, "standalone", port, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
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
