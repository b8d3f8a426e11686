package container_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/internal/ociruntime"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/output"
)

// Each OCI runtime the agent may choose runs the job, and the job sees the
// same isolation under both. The rest of the suite runs under the one auto
// chooses (crun on the CI machine, after hack/cgroups.sh).
func TestOCIRuntimes(t *testing.T) {
	script := `echo "uid_map $(awk '{ print $1, $2, $3 }' /proc/self/uid_map)"
grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t' ' '
touch /usr/x 2>/dev/null && echo "root writable" || echo "root read-only"
echo "links $(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')"
echo ready
sleep 0.5
`
	want := "uid_map 0 100000 65536\nCapEff: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2\nroot read-only\nlinks eth0 lo \nready\n"
	for _, tc := range []struct {
		name      string
		stateFile string // what the runtime keeps below the shim's root
	}{
		{ociruntime.Runc, "state.json"},
		{ociruntime.Crun, "status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, container.WithOCIRuntime(tc.name))
			if got := h.ex.OCIRuntime().Name; got != tc.name {
				testenv.Unavailable(t, "the executor chose %s (%s)", got, h.ex.OCIRuntime().Why)
			}
			req := h.request(t, "bash", script)
			runID := runIDOf(&req)
			var kept []string
			r := h.runRequest(context.Background(), t, req, func(e output.Entry) {
				if string(e.Data) != "ready" {
					return
				}
				dir := filepath.Join("/run/containerd/runc", testenv.Namespace, runID())
				for _, f := range []string{"state.json", "status"} {
					if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
						kept = append(kept, f)
					}
				}
			})
			if r.err != nil {
				t.Fatal(r.err)
			}
			if got := r.stdout.String(); got != want || r.Result.ExitCode != 0 {
				t.Errorf("exit %d, stdout:\n%s\nwant:\n%s(stderr %q)", r.Result.ExitCode, got, want, r.stderr.String())
			}
			if strings.Join(kept, " ") != tc.stateFile {
				t.Errorf("the runtime kept %v for the running job, want %s: not %s", kept, tc.stateFile, tc.name)
			}
		})
	}
}
