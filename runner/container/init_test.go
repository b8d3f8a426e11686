package container_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/container"
)

// The init is PID 1 of every job, with the script its child.
func TestInitIsPID1(t *testing.T) {
	h := newHarness(t)
	r := h.run(context.Background(), t, "python",
		"import os\nprint(open('/proc/1/cmdline').read().split('\\0')[0], os.getppid())\n")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got, want := r.stdout.String(), container.InitBin+" 1\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
}

// A timed-out script starts no further command: SIGTERM reaches it through
// the init, and the run ends without waiting for the grace period (20 s
// here; before the init it always waited for the SIGKILL).
func TestTimeoutStopsTheScript(t *testing.T) {
	const grace = 20 * time.Second
	h := newHarness(t, container.WithKillGrace(grace))
	r := h.run(context.Background(), t, "bash", "echo a; sleep 30; echo b; sleep 30; echo c", withTimeout(3*time.Second))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.Status != api.StatusTimeout || r.BackendExitCode() != -1 {
		t.Errorf("status %s exit %d, want timeout", r.Status, r.BackendExitCode())
	}
	if r.stdout.String() != "a\n" {
		t.Errorf("stdout %q: the script ran on after its deadline", r.stdout.String())
	}
	if ran := r.FinishedAt.Sub(r.StartedAt); ran >= grace {
		t.Errorf("ran %s: the script ignored SIGTERM until the SIGKILL", ran)
	}
}

// A script's TERM trap runs within the grace period, and its exit status
// is the job's.
func TestTrapRunsOnTimeout(t *testing.T) {
	h := newHarness(t, container.WithKillGrace(20*time.Second))
	for _, tc := range []struct{ name, script string }{
		{"foreground", "trap 'echo cleanup; exit 5' TERM\necho start\nsleep 30\necho after\n"},
		{"background and wait", "trap 'echo cleanup; exit 5' TERM\necho start\nsleep 30 &\nwait\necho after\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.run(context.Background(), t, "bash", tc.script, withTimeout(2*time.Second))
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.stdout.String() != "start\ncleanup\n" || r.ExitCode != 5 || r.Status != api.StatusTimeout {
				t.Errorf("stdout %q exit %d status %s, want the trap's cleanup, 5, timeout", r.stdout.String(), r.ExitCode, r.Status)
			}
		})
	}
}

// 1 000 orphans are reaped as they exit: none is left a zombie.
func TestOrphansAreReaped(t *testing.T) {
	h := newHarness(t)
	script := `for i in $(seq 1000); do (sleep 0.05 &); done
sleep 2
zombies=0
for s in /proc/[0-9]*/stat; do
	read -r pid comm state ppid rest 2>/dev/null < "$s" || continue
	[ "$state" = Z ] && zombies=$((zombies+1))
done
echo "zombies=$zombies"
`
	r := h.run(context.Background(), t, "bash", script, withPids(2000), withTimeout(time.Minute))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.stdout.String() != "zombies=0\n" || r.ExitCode != 0 {
		t.Errorf("stdout %q exit %d stderr %.300q", r.stdout.String(), r.ExitCode, r.stderr.String())
	}
}

// The job ends with its script: what the script left running is killed,
// and the run does not wait for it.
func TestBackgroundChildrenEndWithTheScript(t *testing.T) {
	h := newHarness(t)
	r := h.run(context.Background(), t, "bash", "sleep 300 &\nsetsid sleep 300 &\necho done", withTimeout(time.Minute))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.Status != api.StatusCompleted || r.ExitCode != 0 || r.stdout.String() != "done\n" {
		t.Errorf("status %s exit %d stdout %q", r.Status, r.ExitCode, r.stdout.String())
	}
	if ran := r.FinishedAt.Sub(r.StartedAt); ran > 30*time.Second {
		t.Errorf("ran %s: the run waited for the script's children", ran)
	}
}

// Exit statuses pass through the init unchanged: the script's own, 128+n
// for a signal n, and 127 for a command that is not there.
func TestInitExitStatuses(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name, script string
		exit         int
	}{
		{"zero", "exit 0", 0},
		{"own", "exit 42", 42},
		{"SIGUSR1", "kill -USR1 $$", 128 + 10},
		{"SIGKILL", "kill -KILL $$", 128 + 9},
		{"SIGTERM by itself", "kill -TERM $$", 128 + 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := h.run(context.Background(), t, "bash", tc.script)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.ExitCode != tc.exit {
				t.Errorf("exit %d, want %d (stderr %q)", r.ExitCode, tc.exit, r.stderr.String())
			}
			if strings.Contains(r.stderr.String(), "cronium-init") {
				t.Errorf("the init spoke: %q", r.stderr.String())
			}
		})
	}
}
