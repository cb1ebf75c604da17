package events_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The library must stay free of Kubernetes: a service importing it pulls in
// nats.go and little else (DESIGN.md §2).
func TestNoKubernetesDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", "github.com/giia/eventstream-operator/pkg/events").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list printed nothing")
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "k8s.io/") || strings.HasPrefix(d, "sigs.k8s.io/") {
			t.Errorf("pkg/events depends on %s", d)
		}
	}
}
