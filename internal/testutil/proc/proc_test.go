package proc

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func shell(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start("sh", filepath.Join(t.TempDir(), "sh.log"), nil, "/bin/sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

// Output goes to the log; Stop ends a process that honours SIGTERM
// without SIGKILL, and reports its exit.
func TestStartLogStop(t *testing.T) {
	p := shell(t, `echo started; trap 'echo bye; exit 3' TERM; while :; do sleep 0.05; done`)
	if err := Poll(context.Background(), 10*time.Second, 20*time.Millisecond, "output", func() error {
		if lines, _ := Grep(p.Log, "STARTED"); len(lines) != 1 {
			return errors.New("no output yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range Children() {
		found = found || c.Pid == p.Pid()
	}
	if !found {
		t.Errorf("Children() lacks the child %d", p.Pid())
	}
	killed, err := p.Stop(10 * time.Second)
	if killed || err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Stop: killed %t, exit %v; want a SIGTERM exit with status 3", killed, err)
	}
	if got := Tail(p.Log, 1); got != "bye" {
		t.Errorf("last log line %q, want bye", got)
	}
}

// A process that ignores SIGTERM is SIGKILLed after the grace period.
func TestStopKillsAfterGrace(t *testing.T) {
	p := shell(t, `trap '' TERM; echo ready; while :; do sleep 0.05; done`)
	_ = Poll(context.Background(), 10*time.Second, 20*time.Millisecond, "ready", func() error {
		if Tail(p.Log, 1) != "ready" {
			return errors.New("not yet")
		}
		return nil
	})
	killed, _ := p.Stop(300 * time.Millisecond)
	if !killed || !p.Exited() {
		t.Errorf("killed %t, exited %t; want both", killed, p.Exited())
	}
	if err := p.Freeze(); err == nil {
		t.Error("Freeze of an exited process did not fail")
	}
}

// A frozen process does not run until thawed.
func TestFreezeThaw(t *testing.T) {
	p := shell(t, `i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done`)
	time.Sleep(200 * time.Millisecond)
	if err := p.Freeze(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let a last write land
	before, _ := os.ReadFile(p.Log)
	time.Sleep(300 * time.Millisecond)
	after, _ := os.ReadFile(p.Log)
	if len(after) != len(before) {
		t.Errorf("a frozen process wrote %d bytes", len(after)-len(before))
	}
	if err := p.Thaw(); err != nil {
		t.Fatal(err)
	}
	if err := Poll(context.Background(), 5*time.Second, 20*time.Millisecond, "output after Thaw", func() error {
		if now, _ := os.ReadFile(p.Log); len(now) == len(after) {
			return errors.New("no new output")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Poll returns a Permanent error at once, and the last error at the timeout.
func TestPoll(t *testing.T) {
	begin := time.Now()
	calls := 0
	err := Poll(context.Background(), time.Minute, time.Millisecond, "gone", func() error {
		calls++
		return Permanent(errors.New("exited"))
	})
	if err == nil || err.Error() != "gone: exited" || calls != 1 || time.Since(begin) > 10*time.Second {
		t.Errorf("Permanent: %v after %d calls", err, calls)
	}
	err = Poll(context.Background(), 50*time.Millisecond, 10*time.Millisecond, "never", func() error { return errors.New("not yet") })
	if err == nil || !strings.Contains(err.Error(), "never: not within 50ms: not yet") {
		t.Errorf("timeout: %v", err)
	}
}
