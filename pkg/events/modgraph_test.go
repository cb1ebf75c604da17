package events_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// operatorModule is the module path of the eventstream-operator itself; the
// library is the nested module operatorModule + "/pkg/events".
const operatorModule = "github.com/giia/eventstream-operator"

// TestServiceModuleGraph builds the module graph a service gets: a throwaway
// module that requires the library (replaced with this directory, as a
// published version would be fetched) and imports events and eventstest.
// It imports the schema registry (events/schemas) too, whose JSON Schema
// validator (github.com/santhosh-tekuri/jsonschema/v6, with golang.org/x/text
// for its messages) is the one dependency it adds.
// After go mod tidy, go list -m all must show no Kubernetes module and not
// the operator's module — the library's go.mod, not only its imports, keeps
// them out of a service's build list.
//
// It runs offline against the module cache (GOPROXY=off) when that is warm;
// only if that fails does it try again with the environment's GOPROXY.
func TestServiceModuleGraph(t *testing.T) {
	lib, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(lib, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/authservice\n\ngo 1.26.0\n\n"+
		"require "+operatorModule+"/pkg/events v0.0.0\n\n"+
		"replace "+operatorModule+"/pkg/events => "+lib+"\n")
	// The library's checksums: a service's graph is a subset of the library's.
	write("go.sum", string(sum))
	write("main.go", `package main

import (
	"fmt"
	"time"

	"`+operatorModule+`/pkg/events"
	"`+operatorModule+`/pkg/events/eventstest"
	"`+operatorModule+`/pkg/events/schemas"
)

func main() {
	e, err := events.NewEvent("user.created", "auth-service", "org-1", time.Now(), map[string]interface{}{"user_id": "u-1"})
	fmt.Println(e, err, eventstest.NewRecorder(), schemas.DefaultBucket)
}
`)

	// The go command that built this test: go test builds and runs the test
	// binary on this machine, where its GOROOT is meaningful.
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go") //nolint:staticcheck // SA1019: see above; the same toolchain as the test

	run := func(proxy string, args ...string) ([]byte, error) {
		cmd := exec.Command(gobin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOPROXY="+proxy)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, &cmdError{args: args, proxy: proxy, err: err, stderr: stderr.String()}
		}
		return out, nil
	}
	// go list -m all reads the go.mod of every module in the graph, which
	// the build does not need; offline, the cache may lack some.
	graph := func(proxy string) ([]byte, error) {
		if _, err := run(proxy, "mod", "tidy"); err != nil {
			return nil, err
		}
		return run(proxy, "list", "-m", "all")
	}
	proxy := "off"
	out, err := graph(proxy)
	if err != nil {
		t.Logf("offline go mod tidy / go list -m all failed (%v); trying the environment's GOPROXY", err)
		gp, perr := exec.Command(gobin, "env", "GOPROXY").Output()
		if perr != nil {
			t.Fatalf("go env GOPROXY: %v", perr)
		}
		proxy = strings.TrimSpace(string(gp))
		if out, err = graph(proxy); err != nil {
			t.Fatal(err)
		}
	}
	mods := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("GOPROXY=%s; go list -m all of a service importing events, eventstest and schemas (%d modules):\n%s",
		proxy, len(mods), strings.Join(mods, "\n"))
	var sawNATS, sawJSONSchema bool
	for _, line := range mods[1:] { // mods[0] is the service's own module
		path := strings.Fields(line)[0]
		switch {
		case strings.HasPrefix(path, "k8s.io/"), strings.HasPrefix(path, "sigs.k8s.io/"):
			t.Errorf("a service importing the library gets the Kubernetes module %s", line)
		case path == operatorModule:
			t.Errorf("a service importing the library gets the operator's module %s", line)
		case path == "github.com/nats-io/nats.go":
			sawNATS = true
		case path == "github.com/santhosh-tekuri/jsonschema/v6":
			sawJSONSchema = true
		}
	}
	if mods[0] != "example.com/authservice" || !sawNATS || !sawJSONSchema {
		t.Fatalf("go list -m all does not look like the service's graph (no nats.go or jsonschema?):\n%s", out)
	}
}

type cmdError struct {
	args   []string
	proxy  string
	err    error
	stderr string
}

func (e *cmdError) Error() string {
	return "GOPROXY=" + e.proxy + " go " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.stderr
}
