package events_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The library's packages must stay free of Kubernetes imports and of the
// OpenTelemetry SDK: a service importing them pulls in nats.go, the
// OpenTelemetry API and little else (docs/design.md, "The
// library"). The module graph a service gets is checked by
// TestServiceModuleGraph.
func TestNoKubernetesDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", operatorModule+"/pkg/events",
		operatorModule+"/pkg/events/eventstest", operatorModule+"/pkg/events/admin", operatorModule+"/pkg/events/schemas").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list printed nothing")
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "k8s.io/") || strings.HasPrefix(d, "sigs.k8s.io/") {
			t.Errorf("the library depends on %s", d)
		}
		// The OpenTelemetry API only: the SDK and exporters are the
		// service's choice (tests use the SDK).
		if strings.HasPrefix(d, "go.opentelemetry.io/otel/sdk") || strings.HasPrefix(d, "go.opentelemetry.io/otel/exporters") {
			t.Errorf("the library depends on %s", d)
		}
	}
}
