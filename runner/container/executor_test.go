package container_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/images"
	"github.com/cronium/cronium-agent/runner/output"
)

func TestRuntimes(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	type tc struct {
		name, rt, script string
		exit             int
	}
	var cases []tc
	scripts := map[string]func(code int) string{
		"bash": func(code int) string {
			return fmt.Sprintf("echo \"out $GREETING $CRONIUM_JOB_ID $CRONIUM_EXECUTION_MODE\"\necho \"err line\" >&2\nexit %d\n", code)
		},
		"python": func(code int) string {
			return fmt.Sprintf("import os, sys\nprint('out', os.environ['GREETING'], os.environ['CRONIUM_JOB_ID'], os.environ['CRONIUM_EXECUTION_MODE'])\nprint('err line', file=sys.stderr)\nsys.exit(%d)\n", code)
		},
		"node": func(code int) string {
			return fmt.Sprintf("const e = process.env;\nconsole.log('out', e.GREETING, e.CRONIUM_JOB_ID, e.CRONIUM_EXECUTION_MODE);\nconsole.error('err line');\nprocess.exit(%d);\n", code)
		},
	}
	for _, rt := range []string{"bash", "python", "node"} {
		for _, code := range []int{0, 1, 42} {
			cases = append(cases, tc{name: fmt.Sprintf("%s/exit%d", rt, code), rt: rt, script: scripts[rt](code), exit: code})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			jobID := "job_" + strings.ReplaceAll(c.name, "/", "_")
			r := h.run(ctx, t, c.rt, c.script, withID(jobID), withEnv("GREETING", "hello world"))
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.ExitCode != c.exit {
				t.Errorf("exit code %d, want %d (stderr %q)", r.ExitCode, c.exit, r.stderr.String())
			}
			wantStatus := api.StatusCompleted
			if c.exit != 0 {
				wantStatus = api.StatusFailed
			}
			if r.Status != wantStatus {
				t.Errorf("status %s, want %s", r.Status, wantStatus)
			}
			if want := "out hello world " + jobID + " container\n"; r.stdout.String() != want {
				t.Errorf("stdout %q, want %q", r.stdout.String(), want)
			}
			if r.stderr.String() != "err line\n" {
				t.Errorf("stderr %q", r.stderr.String())
			}
		})
	}
}

func TestEnvironmentAndHostname(t *testing.T) {
	h := newHarness(t)
	r := h.run(context.Background(), t, "bash", `hostname; echo "$CRONIUM_EXECUTION_ID"; echo "$CRONIUM_EVENT_ID"; echo "$HOME"; pwd; echo "$MULTI"`,
		withID("job_Ab3dE6gH9jK2"), withEvent("42", "user_1"), withEnv("MULTI", "a b\tc", "CRONIUM_JOB_ID", "forged"))
	if r.err != nil {
		t.Fatal(r.err)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout.String(), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("output %q", r.stdout.String())
	}
	if lines[0] != "cronium-ab3de6gh9jk2" {
		t.Errorf("hostname %q", lines[0])
	}
	if !strings.HasPrefix(lines[1], "exec_job_Ab3dE6gH9jK2_") {
		t.Errorf("execution id %q", lines[1])
	}
	if lines[2] != "42" || lines[3] != "/workspace" || lines[4] != "/workspace" || lines[5] != "a b\tc" {
		t.Errorf("lines %q", lines)
	}
}

func TestIsolation(t *testing.T) {
	h := newHarness(t)
	var hostUID atomic.Value
	script := `set -u
echo "uid=$(id -u) gid=$(id -g)"
grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t' | tr ':' '='
if touch /rootfile 2>/dev/null; then echo root=writable; else echo root=readonly; fi
if touch /tmp/f && echo x > /workspace/f; then echo tmp=writable; else echo tmp=readonly; fi
if touch /cronium/script.sh 2>/dev/null; then echo script=writable; else echo script=readonly; fi
echo "ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')"
echo ready
sleep 1
`
	req := h.request(t, "bash", script)
	runID := runIDOf(&req)
	r := h.runRequest(context.Background(), t, req, func(e output.Entry) {
		if string(e.Data) != "ready" {
			return
		}
		// The host must see the job's process under the mapped uid.
		data, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids", container.CgroupParent, runID(), "cgroup.procs"))
		for _, pid := range strings.Fields(string(data)) {
			if uid := statusField(pid, "Uid:"); uid != "" {
				hostUID.Store(uid)
			}
		}
	})
	if r.err != nil || r.ExitCode != 0 {
		t.Fatalf("run: %v exit %d stderr %s", r.err, r.ExitCode, r.stderr.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(r.stdout.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	for k, want := range map[string]string{
		"uid": "1000 gid=1000", "CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapBnd": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2", "root": "readonly", "tmp": "writable", "script": "readonly", "ifaces": "eth0 lo ",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q (output %q)", k, got[k], want, r.stdout.String())
		}
	}
	if u, _ := hostUID.Load().(string); u != "101000" {
		t.Errorf("host sees the job's uid as %q, want 101000 (100000 + 1000)", u)
	}
}

func statusField(pid, field string) string {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			if fs := strings.Fields(rest); len(fs) > 0 {
				return fs[0]
			}
		}
	}
	return ""
}

func TestForkBombIsContained(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// Every process forks forever; at the pids limit fork raises, the script
	// (pid 1) dies of it, and the job fails.
	r := h.run(ctx, t, "python", "import os\nwhile True:\n    os.fork()\n", withPids(50), withTimeout(40*time.Second))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.Status != api.StatusFailed || r.ExitCode == 0 {
		t.Errorf("status %s exit %d, want a failure", r.Status, r.ExitCode)
	}
	if !strings.Contains(r.stderr.String(), "Resource temporarily unavailable") {
		t.Errorf("stderr does not show fork failing at the limit: %.300q", r.stderr.String())
	}
	// Bash retries a failed fork with growing sleeps: 200 background
	// processes against a limit of 50 keep it retrying until the timeout.
	bomb := h.run(ctx, t, "bash", `for i in $(seq 200); do sleep 30 & done; wait`, withPids(50), withTimeout(5*time.Second))
	if bomb.err != nil {
		t.Fatal(bomb.err)
	}
	if !strings.Contains(bomb.stderr.String(), "fork: retry: Resource temporarily unavailable") {
		t.Errorf("bash bomb stderr: %.300q", bomb.stderr.String())
	}
	// And the agent is healthy afterwards.
	ok := h.run(ctx, t, "bash", "echo still here")
	if ok.err != nil || ok.stdout.String() != "still here\n" {
		t.Errorf("after the bomb: %v %q", ok.err, ok.stdout.String())
	}
}

func TestOutOfMemory(t *testing.T) {
	h := newHarness(t)
	r := h.run(context.Background(), t, "python", "x = bytearray(1 << 30)\nprint('allocated')\n", withMemory(64<<20))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.OOMKilled || r.MemoryLimit != 64<<20 {
		t.Errorf("OOMKilled=%v limit=%d, want true/%d (exit %d)", r.OOMKilled, r.MemoryLimit, 64<<20, r.ExitCode)
	}
	if r.ExitCode != 137 || r.Status != api.StatusFailed {
		t.Errorf("exit %d status %s, want 137 failed", r.ExitCode, r.Status)
	}
	if strings.Contains(r.stdout.String(), "allocated") {
		t.Error("allocation past the limit succeeded")
	}
}

func TestTimeout(t *testing.T) {
	h := newHarness(t, container.WithKillGrace(10*time.Second))
	start := time.Now()
	r := h.run(context.Background(), t, "bash", "echo started\nsleep 600", withTimeout(2*time.Second))
	took := time.Since(start)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.Status != api.StatusTimeout {
		t.Errorf("status %s, want timeout", r.Status)
	}
	if r.stdout.String() != "started\n" {
		t.Errorf("stdout %q", r.stdout.String())
	}
	// The bound: timeout 2 s + grace 10 s + teardown.
	if took > 13*time.Second {
		t.Errorf("took %s, want at most 13s", took)
	}
}

func TestTimeoutEscalatesToSIGKILL(t *testing.T) {
	h := newHarness(t, container.WithKillGrace(time.Second))
	r := h.run(context.Background(), t, "bash", "trap '' TERM\necho ignoring\nwhile :; do sleep 0.1; done", withTimeout(time.Second))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.Status != api.StatusTimeout || r.ExitCode != 137 {
		t.Errorf("status %s exit %d, want timeout after SIGKILL (137)", r.Status, r.ExitCode)
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t, container.WithKillGrace(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	r := h.runWith(ctx, t, "bash", "echo up\nsleep 600", func(e output.Entry) {
		if string(e.Data) == "up" {
			cancel()
		}
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.Status != api.StatusCancelled {
		t.Errorf("status %s, want cancelled", r.Status)
	}
}

func TestMissingImage(t *testing.T) {
	h := newHarness(t)
	r := h.run(context.Background(), t, "bash", "true", withImage("cronium.local/runtimes/bash:does-not-exist"))
	if !errors.Is(r.err, images.ErrNotFound) || !strings.Contains(r.err.Error(), "images import") {
		t.Fatalf("err = %v, want ErrNotFound telling how to import", r.err)
	}
}

func TestLongRunsAreNumbered(t *testing.T) {
	h := newHarness(t)
	r := h.run(context.Background(), t, "bash", `for i in $(seq 1 500); do echo "o$i"; echo "e$i" >&2; done`)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.entries) != 1000 {
		t.Fatalf("%d entries, want 1000", len(r.entries))
	}
	for i, e := range r.entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
		if e.Time.IsZero() {
			t.Fatalf("entry %d has no timestamp", i)
		}
	}
	outs := strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
	errs := strings.Split(strings.TrimSpace(r.stderr.String()), "\n")
	for i := range 500 {
		if outs[i] != "o"+strconv.Itoa(i+1) || errs[i] != "e"+strconv.Itoa(i+1) {
			t.Fatalf("line %d: %q %q", i, outs[i], errs[i])
		}
	}
}

// The host's cgroup files show the job's limits, with requests above the
// configured maxima clamped to them.
func TestLimits(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name                      string
		cpu                       float64
		mem, pids                 int64
		wantQuota, wantMem, wantP string
	}{
		// pids: the job's, plus the init's threads.
		{"defaults", 0, 0, 0, "50000", "536870912", "108"},
		{"requested", 1.5, 100 << 20, 33, "150000", "104857600", "41"},
		{"clamped to the maxima", 64, 1 << 40, 1 << 20, "200000", "4294967296", "1032"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]string{}
			req := h.request(t, "bash", "echo ready; sleep 0.5", func(j *runner.Job) { j.Resources = oci.Resources{CPU: tc.cpu, MemoryBytes: tc.mem, Pids: tc.pids} })
			runID := runIDOf(&req)
			r := h.runRequest(context.Background(), t, req, func(e output.Entry) {
				if string(e.Data) != "ready" {
					return
				}
				for _, f := range []string{"cpu/cpu.cfs_quota_us", "memory/memory.limit_in_bytes", "memory/memory.memsw.limit_in_bytes", "pids/pids.max"} {
					ctrl, file, _ := strings.Cut(f, "/")
					b, _ := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, container.CgroupParent, runID(), file))
					got[file] = strings.TrimSpace(string(b))
				}
			})
			if r.err != nil {
				t.Fatal(r.err)
			}
			want := map[string]string{"cpu.cfs_quota_us": tc.wantQuota, "memory.limit_in_bytes": tc.wantMem, "memory.memsw.limit_in_bytes": tc.wantMem, "pids.max": tc.wantP}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// The image is remapped into the user-namespace range once; runs reuse the
// committed snapshot, which stays as a gc root between runs.
func TestRemapOncePerImage(t *testing.T) {
	// Cold: a warm pool's sandboxes would be counted among the runs.
	h := newHarnessWith(t, []harnessOpt{coldStarts()})
	ctx := context.Background()
	key, err := h.ex.PrepareImage(ctx, h.policy.Images["bash"])
	if err != nil {
		t.Fatal(err)
	}
	sn := h.client.SnapshotService(h.ex.Snapshotter())
	before, err := sn.Stat(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if before.Kind != snapshots.KindCommitted || before.Labels["containerd.io/gc.root"] == "" {
		t.Errorf("remapped snapshot %s: kind %s labels %v", key, before.Kind, before.Labels)
	}
	var parents []string
	for range 3 {
		r := h.runWith(ctx, t, "bash", "echo ready; sleep 0.2", func(e output.Entry) {
			_ = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
				if info.Labels[container.LabelState] == h.stateDir {
					parents = append(parents, info.Parent)
				}
				return nil
			})
		})
		if r.err != nil {
			t.Fatal(r.err)
		}
	}
	after, err := sn.Stat(ctx, key)
	if err != nil || !after.Created.Equal(before.Created) {
		t.Errorf("remapped snapshot changed: %v %v -> %v", err, before.Created, after.Created)
	}
	if len(parents) != 3 {
		t.Fatalf("saw %d run snapshots, want 3", len(parents))
	}
	for _, p := range parents {
		if p != key {
			t.Errorf("run snapshot parent %s, want the remapped %s", p, key)
		}
	}
}
