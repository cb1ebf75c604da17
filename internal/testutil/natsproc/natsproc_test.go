package natsproc

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// A frozen server keeps the connection but answers nothing; thawed, it
// answers again; stopped (even while frozen), its process is gone.
func TestFreezeThawStop(t *testing.T) {
	s := StartStandalone(t, t.TempDir())
	nc, err := nats.Connect(s.URL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Request("$JS.API.INFO", nil, 2*time.Second); err != nil {
		t.Fatalf("JetStream does not answer: %v", err)
	}
	if err := s.Freeze(); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Request("$JS.API.INFO", nil, 500*time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("a frozen server answered: %v", err)
	}
	if err := s.Thaw(); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Request("$JS.API.INFO", nil, 5*time.Second); err != nil {
		t.Fatalf("the thawed server does not answer: %v", err)
	}
	if !nc.IsConnected() {
		t.Fatal("the connection was dropped")
	}
	if err := s.Freeze(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if !s.Proc.Exited() {
		t.Fatal("the server still runs after Stop")
	}
	if err := s.Thaw(); err == nil {
		t.Fatal("Thaw of a stopped server did not fail")
	}
}
