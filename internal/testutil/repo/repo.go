// Package repo finds the repository the tests, benchmarks and local tools
// run in: its root (the go.mod of github.com/giia/eventstream-operator),
// the binaries `make` puts in bin/, the CRDs and envtest's binaries.
package repo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

const module = "module github.com/giia/eventstream-operator\n"

var root struct {
	once sync.Once
	dir  string
	err  error
}

// Root is the directory of the operator module's go.mod, found from the
// working directory up.
func Root() (string, error) {
	root.once.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			root.err = err
			return
		}
		for {
			data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && bytes.Contains(data, []byte(module)) {
				root.dir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				root.err = errors.New("repository root (go.mod of github.com/giia/eventstream-operator) not found: run from inside the repository")
				return
			}
			dir = parent
		}
	})
	return root.dir, root.err
}

// Path joins elem to the repository root.
func Path(elem ...string) (string, error) {
	r, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(append([]string{r}, elem...)...), nil
}

// Bin is bin/<name> at the root, or the file $env names when env is set and
// not empty. A missing or non-executable file is an error that says which
// make target builds it.
func Bin(name, env, target string) (string, error) {
	bin, from := "", ""
	if env != "" {
		bin, from = os.Getenv(env), env
	}
	if bin == "" {
		p, err := Path("bin", name)
		if err != nil {
			return "", err
		}
		bin, from = p, "the default"
		if env != "" {
			from += ", " + env + " is not set"
		}
	}
	fi, err := os.Stat(bin)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s (%s) is missing or not executable: run `make %s`", bin, from, target)
	}
	return bin, nil
}

// NATSServer is the nats-server binary: $NATS_SERVER (the Makefile sets it
// to its pinned bin/nats-server), or bin/nats-server.
func NATSServer() (string, error) { return Bin("nats-server", "NATS_SERVER", "nats-server") }

// Manager is bin/manager (`make build`).
func Manager() (string, error) { return Bin("manager", "", "build") }

// CRDDir is config/crd/bases.
func CRDDir() (string, error) { return Path("config", "crd", "bases") }

// EnvtestAssets is the directory of envtest's kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS, else what hack/envtest/build.sh prints (it builds
// them on first use).
func EnvtestAssets() (string, error) {
	if a := os.Getenv("KUBEBUILDER_ASSETS"); a != "" {
		return a, nil
	}
	r, err := Root()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(r, "hack", "envtest", "build.sh"))
	cmd.Dir, cmd.Stderr = r, os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/envtest/build.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}
