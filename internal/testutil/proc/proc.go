// Package proc runs the child processes of the tests, benchmarks and local
// tools (nats-server, bin/manager, a consumer): output into a log file,
// SIGKILLed if the parent dies, stopped (SIGTERM then SIGKILL), killed,
// frozen (SIGSTOP) and thawed; and the small helpers around them: the tail
// and matching lines of a log, this process's children, polling, HTTP
// status probes.
package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a child process, its output in a log file.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	Log  string

	done chan struct{} // closed when it has exited
	mu   sync.Mutex
	err  error
}

// Start starts bin with args (env: nil inherits this process's), stdout and
// stderr appended to logPath. The child is SIGKILLed if this process dies
// (Pdeathsig), so a panic or a go test -timeout leaves nothing running.
func Start(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
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
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitErr is how the process ended (nil: exit status 0, or still running).
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig to a running process.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return fmt.Errorf("%s is not running", p.Name)
	}
	return p.Cmd.Process.Signal(sig)
}

// Freeze stops the process with SIGSTOP: its connections stay open and
// nothing is answered until Thaw.
func (p *Process) Freeze() error { return p.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen process with SIGCONT.
func (p *Process) Thaw() error { return p.Signal(syscall.SIGCONT) }

// Kill sends SIGKILL, as a crash would, and waits for the process to be gone.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop thaws the process if it is frozen, sends SIGTERM and waits up to
// grace, then SIGKILLs it. It returns whether SIGKILL was needed and how
// the process ended.
func (p *Process) Stop(grace time.Duration) (killed bool, exit error) {
	if p.Exited() {
		return false, p.ExitErr()
	}
	_ = p.Cmd.Process.Signal(syscall.SIGCONT)
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return false, p.ExitErr()
	case <-time.After(grace):
	}
	p.Kill()
	return true, p.ExitErr()
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

// Grep returns the lines of path containing needle (case-insensitive).
func Grep(path, needle string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	needle = strings.ToLower(needle)
	for sc.Scan() {
		if strings.Contains(strings.ToLower(sc.Text()), needle) {
			out = append(out, sc.Text())
		}
	}
	return out, sc.Err()
}

// Child is a child process of this one, from /proc.
type Child struct {
	Pid     int
	Comm    string // the command name, truncated to 15 bytes by the kernel
	State   string // R, S, Z, …
	Cmdline []byte // NUL-separated arguments
}

// Children lists this process's children (from /proc).
func Children() []Child {
	var out []Child
	self := strconv.Itoa(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i, j := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(string(stat[j+1:]))
		if len(f) < 2 || f[1] != self {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, Child{Pid: pid, Comm: string(stat[i+1 : j]), State: f[0], Cmdline: cmdline})
	}
	return out
}

// TerminateChildren sends SIGTERM to this process's live children, waits up
// to grace for them to exit, then SIGKILLs what is left.
func TerminateChildren(grace time.Duration) {
	live := func() []int {
		var pids []int
		for _, c := range Children() {
			if c.State != "Z" {
				pids = append(pids, c.Pid)
			}
		}
		return pids
	}
	for _, pid := range live() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	for deadline := time.Now().Add(grace); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if len(live()) == 0 {
			return
		}
	}
	for _, pid := range live() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
