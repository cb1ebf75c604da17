//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/giia/eventstream-operator/internal/testutil/proc"
)

// The processes and the control plane come from the shared harness
// (internal/testutil); these are its helpers under the suite's names.
var (
	tail       = proc.Tail
	grepLines  = proc.Grep
	httpStatus = proc.HTTPStatus
	poll       = proc.Poll
)

// indent prefixes every line of s.
func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// logf logs to t with the elapsed time since start.
func logf(t *testing.T, start time.Time, format string, args ...any) {
	t.Helper()
	t.Logf("[%6.1fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}
