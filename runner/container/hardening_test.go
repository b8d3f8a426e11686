package container_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/output"
)

// A running job's script is readable by the job's user alone: another
// local user who learns the run's directory (it shows in ps) cannot read
// the secrets a script carries.
func TestScriptReadableByTheJobOnly(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "bash", "# secret: hunter2\necho ready; sleep 0.5")
	runID := runIDOf(&req)
	var mode os.FileMode
	var uid uint32
	var readErr error
	r := h.runRequest(context.Background(), t, req, func(e output.Entry) {
		if string(e.Data) != "ready" {
			return
		}
		path := filepath.Join(h.stateDir, "runs", runID(), req.Runtime.ScriptName)
		fi, err := os.Stat(path)
		if err != nil {
			readErr = err
			return
		}
		mode, uid = fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid
		// As nobody (uid 65534), the way another local user would.
		cmd := exec.Command("cat", path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("another user read the script: %q", out)
		}
	})
	if r.err != nil || readErr != nil {
		t.Fatal(r.err, readErr)
	}
	if r.stdout.String() != "ready\n" {
		t.Errorf("stdout %q: the job could not run its own script (stderr %q)", r.stdout.String(), r.stderr.String())
	}
	if mode != 0o400 || uid != 100000+1000 {
		t.Errorf("script mode %v owner %d, want 0400 and the job's host uid 101000", mode, uid)
	}
}

// A cleanup that fails once the script has run leaves its result alone: it
// is logged, and gc removes the rest later.
func TestCleanupFailureKeepsTheResult(t *testing.T) {
	logs := &testenv.Buffer{}
	h := newHarness(t, container.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	req := h.request(t, "bash", "echo ready; sleep 0.3; exit 3")
	runID := runIDOf(&req)
	pinned := func() string { return filepath.Join(h.stateDir, "runs", runID(), "hosts") }
	r := h.runRequest(context.Background(), t, req, func(e output.Entry) {
		if string(e.Data) == "ready" {
			// An immutable file: the run directory cannot be removed.
			if out, err := exec.Command("chattr", "+i", pinned()).CombinedOutput(); err != nil {
				t.Errorf("chattr: %v %s", err, out)
			}
		}
	})
	if r.err != nil {
		t.Errorf("the cleanup's failure became the run's: %v", r.err)
	}
	if r.Status != api.StatusFailed || r.ExitCode != 3 || r.stdout.String() != "ready\n" {
		t.Errorf("status %s exit %d stdout %q, want the script's own result", r.Status, r.ExitCode, r.stdout.String())
	}
	// The removal runs after the result, in the background.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), "gc will retry") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "gc will retry") {
		t.Errorf("the failed cleanup was not logged:\n%s", logs.String())
	}
	_, statErr := os.Stat(pinned())
	if out, err := exec.Command("chattr", "-i", pinned()).CombinedOutput(); err != nil {
		t.Fatalf("chattr -i: %v %s", err, out)
	}
	if statErr != nil {
		t.Fatalf("the pinned file is gone, so the cleanup did not fail: %v", statErr)
	}
	// What the cleanup left, gc removes once the run directory is older
	// than a starting run's (the harness's leftover check runs after this).
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Dir(pinned()), old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ex.GC(context.Background()); err != nil {
		t.Fatal(err)
	}
}
