package container_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/output"
)

// warmHarness is a harness whose pool the test configures; its jobs do
// not wait for a sandbox (request does not prewarm), so a test says
// when one must be ready.
func warmHarness(t testing.TB, p container.WarmPool) *harness {
	t.Helper()
	var h *harness
	p.OnMade = func(id string) { h.track(id) }
	h = newHarnessWith(t, []harnessOpt{coldStarts()}, container.WithWarmPool(p))
	return h
}

func isWarm(runID string) bool { return strings.HasPrefix(runID, "cronium-warm-") }

// waitPool polls the pool's figures until cond holds, for at most a minute.
func waitPool(t *testing.T, h *harness, what string, cond func(container.PoolStats) bool) container.PoolStats {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := h.ex.PoolStats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool never %s: %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func prewarm(t *testing.T, h *harness, req container.Request) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.ex.Prewarm(ctx, req); err != nil {
		t.Fatal(err)
	}
}

// Jobs running side by side, more than the pool holds: each sandbox
// serves exactly one job, the others start cold, and every job sees its
// own hostname and script.
func TestPoolNeverGivesASandboxTwice(t *testing.T) {
	h := warmHarness(t, container.WarmPool{Size: 2})
	prewarm(t, h, h.request(t, "bash", "true"))
	waitPool(t, h, "filled", func(st container.PoolStats) bool { return st.Ready == 2 })
	const jobs = 8
	var mu sync.Mutex
	used := map[string]int{}
	var wg sync.WaitGroup
	results := make([]*result, jobs)
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := h.request(t, "bash", fmt.Sprintf("echo job %d on $(hostname)", i), withID(fmt.Sprintf("job_pool%d", i)))
			req.OnRunID = func(id string) {
				mu.Lock()
				used[id]++
				mu.Unlock()
			}
			results[i] = h.runRequest(context.Background(), t, req, nil)
		}()
	}
	wg.Wait()
	warm := 0
	for id, n := range used {
		if n != 1 {
			t.Errorf("sandbox %s served %d jobs", id, n)
		}
		if isWarm(id) {
			warm++
		}
	}
	for i, r := range results {
		if want := fmt.Sprintf("job %d on cronium-pool%d\n", i, i); r.err != nil || r.stdout.String() != want {
			t.Errorf("job %d: %v, stdout %q, want %q (stderr %q)", i, r.err, r.stdout.String(), want, r.stderr.String())
		}
	}
	st := h.ex.PoolStats()
	if warm < 2 || uint64(warm) != st.Taken {
		t.Errorf("%d jobs ran warm, pool gave %d sandboxes: %+v", warm, st.Taken, st)
	}
	t.Logf("%d of %d jobs warm; pool %+v", warm, jobs, st)
}

// A job whose image has no sandbox ready runs all the same, cold; the
// next one of its image finds a sandbox.
func TestPoolColdWhenNoneReady(t *testing.T) {
	h := warmHarness(t, container.WarmPool{Size: 1})
	first := h.run(context.Background(), t, "python", "print('cold')")
	if first.err != nil || first.stdout.String() != "cold\n" || isWarm(first.req.RunID) {
		t.Fatalf("first job: %v %q, run %s", first.err, first.stdout.String(), first.req.RunID)
	}
	waitPool(t, h, "refilled after the first job", func(st container.PoolStats) bool { return st.Ready == 1 })
	second := h.run(context.Background(), t, "python", "print('warm')")
	if second.err != nil || second.stdout.String() != "warm\n" || !isWarm(second.req.RunID) {
		t.Fatalf("second job: %v %q, run %s", second.err, second.stdout.String(), second.req.RunID)
	}
}

// A burst takes every sandbox; the pool is full again after it.
func TestPoolRefillsAfterBurst(t *testing.T) {
	h := warmHarness(t, container.WarmPool{Size: 2})
	prewarm(t, h, h.request(t, "bash", "true"))
	waitPool(t, h, "filled", func(st container.PoolStats) bool { return st.Ready == 2 })
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := h.run(context.Background(), t, "bash", fmt.Sprintf("echo %d", i)); r.err != nil || r.ExitCode != 0 {
				t.Errorf("burst job %d: %v exit %d", i, r.err, r.ExitCode)
			}
		}()
	}
	wg.Wait()
	st := waitPool(t, h, "refilled", func(st container.PoolStats) bool { return st.Ready == 2 })
	if st.Taken < 2 || st.Made < st.Taken+2 {
		t.Errorf("after the burst: %+v", st)
	}
}

// With no job for IdleAfter, the pool empties and stays empty until the
// next job.
func TestPoolShrinksWhenIdle(t *testing.T) {
	h := warmHarness(t, container.WarmPool{Size: 1, IdleAfter: time.Second, Tick: 100 * time.Millisecond})
	prewarm(t, h, h.request(t, "bash", "true"))
	st := waitPool(t, h, "emptied when idle", func(st container.PoolStats) bool { return st.Ready == 0 && st.Destroyed >= 1 })
	time.Sleep(time.Second)
	if now := h.ex.PoolStats(); now.Made != st.Made || now.Ready != 0 {
		t.Errorf("the idle pool made sandboxes: %+v, then %+v", st, now)
	}
}

// Under memory pressure the ready sandboxes go and none is made; jobs run
// cold meanwhile; with memory back, the pool fills again.
func TestPoolShrinksUnderMemoryPressure(t *testing.T) {
	var avail atomic.Int64
	avail.Store(8 << 30)
	h := warmHarness(t, container.WarmPool{Size: 1, MinAvailable: 1 << 30, Tick: 100 * time.Millisecond,
		MemAvailable: func() (int64, error) { return avail.Load(), nil }})
	prewarm(t, h, h.request(t, "bash", "true"))
	avail.Store(512 << 20)
	waitPool(t, h, "emptied under memory pressure", func(st container.PoolStats) bool { return st.Ready == 0 && st.Destroyed >= 1 })
	r := h.run(context.Background(), t, "bash", "echo short")
	if r.err != nil || r.stdout.String() != "short\n" || isWarm(r.req.RunID) {
		t.Fatalf("job under memory pressure: %v %q, run %s", r.err, r.stdout.String(), r.req.RunID)
	}
	time.Sleep(300 * time.Millisecond)
	if st := h.ex.PoolStats(); st.Ready != 0 {
		t.Errorf("a sandbox was made under memory pressure: %+v", st)
	}
	avail.Store(8 << 30)
	waitPool(t, h, "refilled with memory back", func(st container.PoolStats) bool { return st.Ready == 1 })
}

// Stopping with sandboxes ready removes them all: the harness's check
// finds nothing of them (containers, tasks, shims, loggers, snapshots,
// cgroups, networks, files).
func TestPoolStopsCleanly(t *testing.T) {
	h := warmHarness(t, container.WarmPool{Size: 2})
	prewarm(t, h, h.request(t, "bash", "true"))
	prewarm(t, h, h.request(t, "python", "pass"))
	waitPool(t, h, "filled", func(st container.PoolStats) bool { return st.Ready == 4 })
	h.assertClean(t)
	if st := h.ex.PoolStats(); st.Destroyed != 4 || st.Ready != 0 {
		t.Errorf("after the stop: %+v", st)
	}
}

// killedWithSandboxes starts a child agent of h's state directory that
// keeps n warm sandboxes, SIGKILLs it once they are made, and returns
// their ids (tracked: the harness checks that nothing of them is left).
func (h *harness) killedWithSandboxes(t *testing.T, n int) []string {
	t.Helper()
	c := h.startWarmChild(t, h.request(t, "bash", "true"), n)
	var ids []string
	c.waitFor(t, "the warm sandboxes", func() bool {
		data, _ := os.ReadFile(c.spec.Made)
		ids = strings.Fields(string(data))
		return len(ids) >= n
	})
	for _, id := range ids {
		h.track(id)
	}
	c.kill()
	return ids
}

// An agent killed with sandboxes ready leaves them to the next start,
// whose sweeps (gc and the network sweep, as at start-up) remove them all.
func TestPoolSIGKILLThenGC(t *testing.T) {
	h := newHarnessWith(t, []harnessOpt{coldStarts()})
	ids := h.killedWithSandboxes(t, 2)
	// The sandboxes are whole: containers with their tasks waiting.
	for _, id := range ids {
		if _, err := h.client.LoadContainer(context.Background(), id); err != nil {
			t.Fatalf("sandbox %s before the sweep: %v", id, err)
		}
	}
	ctx := context.Background()
	rep, err := h.ex.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Other agents' garbage in the namespace may go too (go test runs
	// packages side by side): only the child's sandboxes are checked.
	removed := map[string]bool{}
	for _, id := range rep.Containers {
		removed[id] = true
	}
	for _, id := range ids {
		if !removed[id] {
			t.Errorf("gc removed %v, not the sandbox %s", rep.Containers, id)
		}
	}
	if _, err := h.net.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
}

// A job in a sandbox of the same pool as the job before it finds nothing
// of it: no file (root, /tmp, /workspace, /dev/shm), no process, no
// neighbour or listener at its address, none of its variables.
func TestNoTraceOfThePreviousJob(t *testing.T) {
	h := warmHarness(t, container.WarmPool{Size: 1})
	prewarm(t, h, h.request(t, "python", "pass"))
	first := h.run(context.Background(), t, "python", `
import os, socket, subprocess
for d in ("/tmp", "/workspace", "/dev/shm"):
    open(os.path.join(d, "first-was-here"), "w").write(os.environ["FIRST_SECRET"])
# A listener and a process that would outlive the job if anything could.
srv = socket.socket(); srv.bind(("0.0.0.0", 7777)); srv.listen()
subprocess.Popen(["sleep", "300"], start_new_session=True)
# A neighbour entry: talk to the gateway.
try:
    socket.create_connection(("runtime-api", 8081), timeout=2).close()
except OSError:
    pass
print(socket.gethostbyname(socket.gethostname()))
`, withEnv("FIRST_SECRET", "s3cr3t-of-the-first-job"))
	if first.err != nil || first.ExitCode != 0 || !isWarm(first.req.RunID) {
		t.Fatalf("first job: %v exit %d run %s: %s", first.err, first.ExitCode, first.req.RunID, first.stderr.String())
	}
	firstAddr := strings.TrimSpace(first.stdout.String())
	waitPool(t, h, "refilled", func(st container.PoolStats) bool { return st.Ready == 1 })
	second := h.run(context.Background(), t, "python", fmt.Sprintf(`
import os, socket
found = []
for d in ("/tmp", "/workspace", "/dev/shm", "/"):
    for name in os.listdir(d):
        if "first" in name:
            found.append(os.path.join(d, name))
for k, v in os.environ.items():
    if "FIRST" in k or "s3cr3t" in v:
        found.append("env " + k)
pids = [p for p in os.listdir("/proc") if p.isdigit()]
for p in pids:
    cmd = open("/proc/%%s/cmdline" %% p, "rb").read().replace(b"\0", b" ").decode()
    if "sleep" in cmd:
        found.append("process " + cmd)
for line in open("/proc/net/arp").read().splitlines()[1:]:
    if line.split()[0] == %[1]q:
        found.append("neighbour " + line)
try:
    socket.create_connection((%[1]q, 7777), timeout=1).close()
    found.append("listener at the first job's address")
except OSError:
    pass
print("found:", found)
print("pids:", len(pids))
`, firstAddr))
	if second.err != nil || second.ExitCode != 0 || !isWarm(second.req.RunID) || second.req.RunID == first.req.RunID {
		t.Fatalf("second job: %v exit %d run %s (first %s): %s", second.err, second.ExitCode, second.req.RunID, first.req.RunID, second.stderr.String())
	}
	if !strings.Contains(second.stdout.String(), "found: []\n") {
		t.Errorf("the second job found traces of the first: %s", second.stdout.String())
	}
	// PID 1 (the init), the script: nothing else lives in a new job.
	if !strings.Contains(second.stdout.String(), "pids: 2\n") {
		t.Errorf("processes in the second job: %s", second.stdout.String())
	}
}

// The init's start file holds the job's environment (its secrets): only
// the job's user on the host may read it, as for the script.
func TestStartFileReadableByTheJobOnly(t *testing.T) {
	h := warmHarness(t, container.WarmPool{Size: 1})
	req := h.request(t, "bash", "echo ready; sleep 0.5", withEnv("TOKEN", "hunter2"))
	prewarm(t, h, req)
	runID := runIDOf(&req)
	var statErr error
	var mode os.FileMode
	var uid uint32
	r := h.runRequest(context.Background(), t, req, func(e output.Entry) {
		if string(e.Data) != "ready" {
			return
		}
		path := filepath.Join(h.stateDir, "runs", runID(), "start")
		fi, err := os.Stat(path)
		if err != nil {
			statErr = err
			return
		}
		mode, uid = fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid
		cmd := exec.Command("cat", path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("another user read the start file: %q", out)
		}
	})
	if r.err != nil || statErr != nil || !isWarm(runID()) {
		t.Fatal(r.err, statErr, runID())
	}
	if mode != 0o400 || uid != 100000+1000 {
		t.Errorf("start file mode %v owner %d, want 0400 and the job's host uid 101000", mode, uid)
	}
}

// Agents sharing the namespace collect only their own garbage: another
// agent's dead runs (its SIGKILLed process's sandboxes) are left to it, and
// to a gc asked to remove others' too (gc --all).
func TestGCLeavesOtherAgentsRuns(t *testing.T) {
	mine := newHarnessWith(t, []harnessOpt{coldStarts()})
	other := newHarnessWith(t, []harnessOpt{coldStarts()})
	if mine.stateDir == other.stateDir {
		t.Fatal("the harnesses share a state directory")
	}
	ids := other.killedWithSandboxes(t, 1)
	ctx := context.Background()
	rep, err := mine.ex.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if slices.Contains(rep.Containers, id) || slices.Contains(rep.Snapshots, id) {
			t.Errorf("gc of another state directory removed %s: %+v", id, rep)
		}
		if _, err := mine.client.LoadContainer(ctx, id); err != nil {
			t.Errorf("the other agent's sandbox %s is gone: %v", id, err)
		}
	}
	rep, err = mine.ex.GC(ctx, container.OthersToo())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !slices.Contains(rep.Containers, id) {
			t.Errorf("gc with OthersToo left %s: %+v", id, rep.Containers)
		}
	}
	if _, err := other.net.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
}
