package managerproc

import (
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/giia/eventstream-operator/internal/testutil/repo"
)

// Build compiles the manager (./cmd) of the repository this runs in into
// dir and returns the binary's path, for tests that run under make test,
// which does not build bin/manager.
func Build(dir string) (string, error) {
	root, err := repo.Root()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "manager")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the manager: %w\n%s", err, out)
	}
	return bin, nil
}
