package container_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/output"
)

// adopted is what an adoption delivered and returned.
type adopted struct {
	container.Result
	err   error
	lines []seqLine
}

// adopt takes over req's run, collecting what it delivers.
func (h *harness) adopt(ctx context.Context, req container.Request, startedAt time.Time, skip uint64, onEntry func(output.Entry)) *adopted {
	a := &adopted{}
	var mu sync.Mutex
	a.Result, a.err = h.ex.Adopt(ctx, req, startedAt, skip, func(e output.Entry) {
		mu.Lock()
		a.lines = append(a.lines, lineOf(e))
		mu.Unlock()
		if onEntry != nil {
			onEntry(e)
		}
	})
	return a
}

// signal sends sig to the job's pid 1 (a trap in the script handles it),
// waiting for a containerd that is coming back to answer.
func (h *harness) signal(runID string, sig syscall.Signal) error {
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		task, err := h.loadTask(ctx, runID)
		if err == nil {
			err = task.Kill(ctx, sig)
		}
		if err == nil || !errdefs.IsUnavailable(err) || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("signal the job: %w", err)
			}
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) loadTask(ctx context.Context, runID string) (containerd.Task, error) {
	ctr, err := h.client.LoadContainer(ctx, runID)
	if err != nil {
		return nil, err
	}
	return ctr.Task(ctx, nil)
}

// waitTask polls the run's task until done(its status, or the error
// loading it) holds, for up to a minute.
func (h *harness) waitTask(t *testing.T, runID, what string, done func(containerd.ProcessStatus, error) bool) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		var st containerd.Status
		task, err := h.loadTask(ctx, runID)
		if err == nil {
			st, err = task.Status(ctx)
		}
		if done(st.Status, err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task never %s: status %q, %v", what, st.Status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertLines checks that the child's entries and then the adopter's have
// the seqs 1, 2, ... without a gap or repeat, and that their stdout lines
// are want.
func assertLines(t *testing.T, child []seqLine, a *adopted, want []string) {
	t.Helper()
	all := append(append([]seqLine(nil), child...), a.lines...)
	var out []string
	for i, l := range all {
		if l.seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d: child's %v, adopter's %v", i+1, l.seq, child, a.lines)
		}
		if l.stream == "out" {
			out = append(out, l.text)
		}
	}
	if strings.Join(out, "\n") != strings.Join(want, "\n") {
		t.Errorf("stdout of the child's entries then the adopter's: %q, want %q", out, want)
	}
}

func numbered(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, "line "+strconv.Itoa(i))
	}
	return out
}

// The agent is SIGKILLed while its job runs; the next agent process adopts
// the run and delivers the rest of the output, none twice and none lost,
// with the job's real exit code. The job pauses at line 10 until signalled,
// so the kill always finds it running, and sets its output through the
// runtime API after the adoption with the token it was started with.
func TestAdoptRunningAfterKill(t *testing.T) {
	const n = 40
	h := newHarness(t)
	script := fmt.Sprintf(`trap 'go=1' USR1
for i in $(seq 1 %d); do
  echo "line $i"
  if [ "$i" = 10 ]; then while [ -z "$go" ]; do sleep 0.05; done; fi
  sleep 0.02
done
cronium_output '{"lines":%d}' || exit 9
`, n, n)
	req := h.request(t, "bash", script)
	c, startedAt, release := h.killAfter(t, req, 5)
	had := c.entries(t)

	var once sync.Once
	resume := func() {
		go once.Do(func() {
			if err := h.signal(req.RunID, syscall.SIGUSR1); err != nil {
				t.Error(err)
			}
		})
	}
	if len(had) >= 10 {
		resume()
	}
	release()
	r := h.adopt(context.Background(), req, startedAt, uint64(len(had)), func(e output.Entry) {
		if string(e.Data) == "line 10" {
			resume()
		}
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.Status != api.StatusCompleted || r.ExitCode != 0 || r.Lost {
		t.Errorf("status %s exit %d lost %v (entries %v)", r.Status, r.ExitCode, r.Lost, r.lines)
	}
	if !r.StartedAt.Equal(startedAt) || r.Entries != n {
		t.Errorf("started at %s (want %s), %d entries (want %d)", r.StartedAt, startedAt, r.Entries, n)
	}
	if !r.HasOutput || string(r.Output) != fmt.Sprintf(`{"lines":%d}`, n) {
		t.Errorf("output set through the runtime API after adoption: %q (set: %v)", r.Output, r.HasOutput)
	}
	assertLines(t, had, r, numbered(1, n))
	t.Logf("the child had %d entries; the adopter delivered %d", len(had), len(r.lines))
}

// The job ends while no agent watches: the adopter reports its real exit
// code and the output written meanwhile.
func TestAdoptStoppedTask(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "bash", `trap 'echo last; exit 3' USR1
echo first
echo second
while :; do sleep 0.05; done
`)
	c, startedAt, release := h.killAfter(t, req, 2)
	had := c.entries(t)
	if err := h.signal(req.RunID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	h.waitTask(t, req.RunID, "stopped", func(st containerd.ProcessStatus, err error) bool {
		return err == nil && st == containerd.Stopped
	})
	release()
	r := h.adopt(context.Background(), req, startedAt, uint64(len(had)), nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.Status != api.StatusFailed || r.ExitCode != 3 || r.Lost {
		t.Errorf("status %s exit %d lost %v, want failed with the job's exit 3", r.Status, r.ExitCode, r.Lost)
	}
	assertLines(t, had, r, []string{"first", "second", "last"})
}

// The timeout counts from the run's real start, not from the adoption: a
// job of 100 s with a timeout of 3 s is stopped as timed out, whether the
// adopter comes with time left or after the deadline passed.
func TestAdoptCountsTimeoutFromRealStart(t *testing.T) {
	const timeout = 3 * time.Second
	h := newHarness(t, container.WithKillGrace(500*time.Millisecond))
	for _, c := range []struct {
		name  string
		after time.Duration // from the start to the adoption
	}{
		{"time left", 2 * time.Second},
		{"deadline passed", timeout + time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := h.request(t, "bash", "echo started; sleep 100", withTimeout(timeout))
			child, startedAt, release := h.killAfter(t, req, 1)
			time.Sleep(time.Until(startedAt.Add(c.after)))
			release()
			r := h.adopt(context.Background(), req, startedAt, 1, nil)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.Status != api.StatusTimeout || r.BackendExitCode() != -1 {
				t.Errorf("status %s (backend exit %d), want timeout", r.Status, r.BackendExitCode())
			}
			assertLines(t, child.entries(t), r, []string{"started"})
		})
	}
}

// A run whose script never started is removed and reported as such: the
// agent was killed between creating the task and starting it, or before
// making anything.
func TestAdoptNotStarted(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		name    string
		prepare func(t *testing.T, req container.Request) time.Time
	}{
		{"task created", func(t *testing.T, req container.Request) time.Time {
			child := h.startChild(t, req, true)
			at := child.startedAt(t)
			child.kill()
			defer h.holdLocks(t, req.RunID)()
			h.waitTask(t, req.RunID, "created", func(st containerd.ProcessStatus, err error) bool {
				return err == nil && st == containerd.Created
			})
			return at
		}},
		{"nothing made", func(t *testing.T, req container.Request) time.Time {
			h.track(req.RunID)
			return time.Now()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := h.request(t, "bash", "echo never")
			startedAt := c.prepare(t, req)
			r := h.adopt(context.Background(), req, startedAt, 0, nil)
			if !errors.Is(r.err, container.ErrNotStarted) {
				t.Fatalf("adopt: %v, want ErrNotStarted", r.err)
			}
			if !r.StartedAt.IsZero() || len(r.lines) != 0 {
				t.Errorf("a run that never started reports start %s and entries %v", r.StartedAt, r.lines)
			}
			if _, err := os.Stat(filepath.Join(h.stateDir, "runs", req.RunID)); !os.IsNotExist(err) {
				t.Errorf("run directory left: %v", err)
			}
		})
	}
}

// The job's shim is killed while no agent watches (as a host restart loses
// every task): the adopter reports the run lost, with the output on file.
func TestAdoptLostTask(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "bash", `for i in 1 2 3; do echo "line $i"; done
while :; do sleep 0.05; done
`)
	c, startedAt, release := h.killAfter(t, req, 3)
	if err := syscall.Kill(shimPID(t, req.RunID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.waitTask(t, req.RunID, "gone", func(_ containerd.ProcessStatus, err error) bool { return errdefs.IsNotFound(err) })
	// containerd cleans up after a dead shim (runc delete, unmount) with a
	// shim process of its own; the agent comes back after that.
	waitNoShim(t, req.RunID)
	// Through the agent's shim wrapper, which hands this clean-up to the
	// real shim: runc's state of the container goes (containerd may show
	// the task gone before its clean-up's `runc delete` has ended).
	state := filepath.Join("/run/containerd/runc", testenv.Namespace, req.RunID)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(state); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runc state of the killed shim's container still there after 30 s: %s", state)
		}
	}
	if err := os.Remove(testenv.ShimSocket(testenv.Address(), testenv.Namespace, req.RunID)); err != nil {
		t.Errorf("the killed shim's socket: %v", err)
	}
	release()
	// The caller journaled only the first entry: the adopter delivers the others.
	r := h.adopt(context.Background(), req, startedAt, 1, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.Lost || r.LostReason == "" || r.Status != api.StatusFailed || r.ExitCode != containerd.UnknownExitStatus {
		t.Errorf("lost %v (%q), status %s, exit %d", r.Lost, r.LostReason, r.Status, r.ExitCode)
	}
	if !r.StartedAt.Equal(startedAt) || r.FinishedAt.Before(startedAt) || r.Entries != 3 {
		t.Errorf("started %s, finished %s, %d entries", r.StartedAt, r.FinishedAt, r.Entries)
	}
	assertLines(t, c.entries(t)[:1], r, numbered(1, 3))
}

// shimPID finds the shim of a run's task.
func shimPID(t *testing.T, runID string) int {
	t.Helper()
	pids := shimPIDs(runID)
	if len(pids) == 0 {
		t.Fatalf("no shim for %s", runID)
	}
	return pids[0]
}

// waitNoShim waits until no shim process of the run is left.
func waitNoShim(t *testing.T, runID string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(shimPIDs(runID)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("shim processes of %s still run after a minute", runID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shimPIDs lists the shim processes of a run (the shim, or the one
// containerd runs to clean up after it).
func shimPIDs(runID string) []int { return testenv.Shims(testenv.Address())[runID] }

// A job runs across a graceful restart of containerd (its task lives on in
// its shim) and completes with its exit code and every line: whether it
// goes on running after the restart, or ends while containerd is down.
func TestRunSurvivesContainerdRestart(t *testing.T) {
	d := testenv.PrivateContainerd(t)
	logs := &testenv.Buffer{}
	h := newHarnessWith(t, []harnessOpt{onDaemon(d.Client(t)), coldStarts()}, container.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	cases := []struct {
		name   string
		script string
		exit   int
		// bounce is called with the entries seen so far; it restarts
		// containerd and lets the job go on.
		bounce func(t *testing.T, req container.Request, seen <-chan string, done <-chan *result)
	}{
		{
			name: "job runs on",
			// It waits at line 10 for a signal, which only a containerd
			// that found the task again can deliver.
			script: `trap 'go=1' USR1
for i in $(seq 1 30); do
  echo "line $i"
  if [ "$i" = 10 ]; then while [ -z "$go" ]; do sleep 0.05; done; fi
  sleep 0.1
done
`,
			bounce: func(t *testing.T, req container.Request, seen <-chan string, done <-chan *result) {
				waitLine(t, seen, done, "line 5")
				d.Restart(t)
				if err := h.signal(req.RunID, syscall.SIGUSR1); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:   "job ends while containerd is down",
			script: "for i in $(seq 1 30); do echo \"line $i\"; sleep 0.05; done; exit 7\n",
			exit:   7,
			bounce: func(t *testing.T, req container.Request, seen <-chan string, done <-chan *result) {
				waitLine(t, seen, done, "line 5")
				d.Stop()
				waitLine(t, seen, done, "line 30")
				// The logger writes the last line as the job exits; the
				// exit itself is what containerd must find on its return.
				h.waitExited(t, req.RunID)
				d.Restart(t)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			logs.Reset()
			req := h.request(t, "bash", c.script)
			seen := make(chan string, 100)
			done := make(chan *result, 1)
			go func() {
				done <- h.runRequest(context.Background(), t, req, func(e output.Entry) { seen <- string(e.Data) })
				close(seen)
			}()
			c.bounce(t, req, seen, done)
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.ExitCode != c.exit || r.Lost {
				t.Errorf("exit %d (lost %v), want %d", r.ExitCode, r.Lost, c.exit)
			}
			if want := strings.Join(numbered(1, 30), "\n") + "\n"; r.stdout.String() != want {
				t.Errorf("stdout %q, want lines 1 to 30", r.stdout.String())
			}
			// The run did lose containerd, and found it again.
			if log := logs.String(); strings.Count(log, "containerd is unreachable") != 1 || !strings.Contains(log, "containerd answers again") {
				t.Errorf("the executor's log does not show one reconnect:\n%s", log)
			}
		})
	}
}

// waitLine reads seen until line comes, for up to a minute; the run ending
// first (seen closed) fails the test with what it returned.
func waitLine(t *testing.T, seen <-chan string, done <-chan *result, line string) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case l, ok := <-seen:
			if !ok {
				r := <-done
				t.Fatalf("the run ended before %q: %+v, %v (stderr %q)", line, r.Result, r.err, r.stderr.String())
			}
			if l == line {
				return
			}
		case <-timeout:
			t.Fatalf("no %q within a minute", line)
		}
	}
}

// waitExited waits until the job's processes are gone, looking at its
// cgroup (containerd may be down).
func (h *harness) waitExited(t *testing.T, runID string) {
	t.Helper()
	procs := filepath.Join("/sys/fs/cgroup/pids", container.CgroupParent, runID, "cgroup.procs")
	deadline := time.Now().Add(time.Minute)
	for {
		data, err := os.ReadFile(procs)
		if err != nil {
			t.Fatalf("the job's cgroup: %v", err)
		}
		if len(strings.TrimSpace(string(data))) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job still runs after a minute: %s", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The job's shim is killed while the agent watches: the run is reported
// lost, with every line the job wrote.
func TestRunReportsLostTask(t *testing.T) {
	h := newHarness(t)
	req := h.request(t, "bash", `for i in 1 2 3; do echo "line $i"; done
while :; do sleep 0.05; done
`)
	runID := runIDOf(&req)
	r := h.runRequest(context.Background(), t, req, func(e output.Entry) {
		if string(e.Data) == "line 3" {
			if err := syscall.Kill(shimPID(t, runID()), syscall.SIGKILL); err != nil {
				t.Error(err)
			}
		}
	})
	t.Cleanup(func() { _ = os.Remove(testenv.ShimSocket(testenv.Address(), testenv.Namespace, req.RunID)) })
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.Lost || r.Status != api.StatusFailed || r.ExitCode != containerd.UnknownExitStatus {
		t.Errorf("lost %v (%q), status %s, exit %d", r.Lost, r.LostReason, r.Status, r.ExitCode)
	}
	if want := strings.Join(numbered(1, 3), "\n") + "\n"; r.stdout.String() != want {
		t.Errorf("stdout %q, want lines 1 to 3", r.stdout.String())
	}
}

// A hand-over (ErrHandOver) leaves the started run going, its container,
// task and network in place, and returns at once; an adoption then
// delivers the rest of the output, none twice and none lost, serves the
// runtime API again with the token the job was started with, reports the
// job's real exit code and removes everything.
func TestHandOverThenAdopt(t *testing.T) {
	const n = 20
	h := newHarness(t)
	script := fmt.Sprintf(`trap 'go=1' USR1
for i in $(seq 1 %d); do
  echo "line $i"
  if [ "$i" = 5 ]; then while [ -z "$go" ]; do sleep 0.05; done; fi
done
cronium_output '{"lines":%d}' || exit 9
exit 4
`, n, n)
	req := h.request(t, "bash", script)
	runID := runIDOf(&req)
	var startedAt time.Time
	req.OnPhase = func(p container.Phase, at time.Time) error {
		if p == container.PhaseStarting {
			startedAt = at
		}
		return nil
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var mu sync.Mutex
	var had []seqLine
	fifth := make(chan struct{})
	h.track(req.RunID)
	res, err := h.ex.Run(ctx, req, func(e output.Entry) {
		mu.Lock()
		had = append(had, lineOf(e))
		mu.Unlock()
		if string(e.Data) == "line 5" {
			close(fifth)
			cancel(container.ErrHandOver)
		}
	})
	<-fifth
	if err != nil || !res.HandedOver {
		t.Fatalf("Run after ErrHandOver: %+v, %v; want HandedOver", res, err)
	}
	// The run goes by its warm sandbox's id, as the runner journals it.
	req.RunID = runID()
	// Left as it was: the task runs on, paused at line 5 until signalled.
	h.waitTask(t, req.RunID, "running after the hand-over", func(st containerd.ProcessStatus, err error) bool {
		return err == nil && st == containerd.Running
	})
	if _, err := os.Stat(filepath.Join(h.stateDir, "runs", req.RunID, "output")); err != nil {
		t.Errorf("the run's output file after the hand-over: %v", err)
	}
	mu.Lock()
	skip := uint64(len(had))
	mu.Unlock()

	// The rest is printed once the run is held again (its runtime API is
	// served again right after: the helper retries meanwhile).
	req.OnPhase = func(p container.Phase, _ time.Time) error {
		if p == container.PhaseAdopted {
			go func() {
				if err := h.signal(req.RunID, syscall.SIGUSR1); err != nil {
					t.Error(err)
				}
			}()
		}
		return nil
	}
	r := h.adopt(context.Background(), req, startedAt, skip, nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.Status != api.StatusFailed || r.ExitCode != 4 || r.Lost || r.HandedOver {
		t.Errorf("adopted: status %s exit %d lost %v handedOver %v, want failed with the job's exit 4", r.Status, r.ExitCode, r.Lost, r.HandedOver)
	}
	if !r.HasOutput || string(r.Output) != fmt.Sprintf(`{"lines":%d}`, n) {
		t.Errorf("output set through the runtime API after the hand-over: %q (set: %v)", r.Output, r.HasOutput)
	}
	assertLines(t, had, r, numbered(1, n))
}
