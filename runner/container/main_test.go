package container_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/runtimes/helpers"
	"github.com/cronium/cronium-agent/sidecar"
	cstate "github.com/cronium/cronium-agent/state"
)

// jobProgram is cronium-job, built for these tests: the program jobs run
// (their init, the helpers' program) and their output logger, as the agent
// finds it beside itself.
var jobProgram string

func TestMain(m *testing.M) {
	testenv.MainWithShimLogger()
	if spec := os.Getenv(childEnv); spec != "" {
		// A separate agent process running one job, for a test to kill.
		jobProgram = os.Getenv(childJobProgramEnv)
		os.Exit(runChild(spec))
	}
	dir, err := os.MkdirTemp("", "cronium-job-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	jobProgram = filepath.Join(dir, "cronium-job")
	build := exec.Command("go", "build", "-o", jobProgram, "../../cmd/cronium-job")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build cronium-job:", err)
		os.Exit(1)
	}
	// Readable and runnable by the jobs' mapped users (TempDir is 0700).
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(childJobProgramEnv, jobProgram)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// childJobProgramEnv hands jobProgram to the child agent processes.
const childJobProgramEnv = "CRONIUM_TEST_JOB_PROGRAM"

type harness struct {
	client   *containerd.Client
	ex       *container.Executor
	stateDir string
	policy   runner.Policy

	net    *cni.Manager
	secret []byte
	api    *sidecar.Server

	// warm: jobs wait for a warm sandbox (request).
	warm bool

	mu     sync.Mutex
	runIDs []string
}

// harnessConfig selects what a harness's runs get.
type harnessConfig struct {
	egress bool
	// network, when set, replaces the job networks' configuration that
	// egress gives (an outbound policy, DNS servers).
	network func(*cni.Config)
	// client is the containerd the harness uses (default: the test one),
	// runtimes the runtime images it must hold.
	client   *containerd.Client
	runtimes []string
	// cold: no warm pool; every job makes its run when it comes.
	cold bool
}

type harnessOpt func(*harnessConfig)

func withEgress() harnessOpt { return func(c *harnessConfig) { c.egress = true } }

// coldStarts makes a harness without a warm pool.
func coldStarts() harnessOpt { return func(c *harnessConfig) { c.cold = true } }

// onDaemon runs the harness's jobs on a private containerd, which holds
// the bash image only.
func onDaemon(c *containerd.Client) harnessOpt {
	return func(hc *harnessConfig) { hc.client, hc.runtimes = c, []string{"bash"} }
}

// newHarness builds an executor as the agent does: every run gets its own
// network, runtime API and helpers.
func newHarness(t testing.TB, opts ...container.Option) *harness {
	return newHarnessWith(t, nil, opts...)
}

func newHarnessWith(t testing.TB, hopts []harnessOpt, opts ...container.Option) *harness {
	t.Helper()
	hc := harnessConfig{runtimes: []string{"bash", "python", "node"}}
	for _, o := range hopts {
		o(&hc)
	}
	client := hc.client
	if client == nil {
		client = testenv.Containerd(t)
	}
	state := testenv.StateDir(t)
	if err := helpers.WriteTo(filepath.Join(state, "helpers")); err != nil {
		t.Fatal(err)
	}
	ncfg := cni.DefaultConfig()
	if hc.egress {
		ncfg.Egress = cni.EgressAll
	}
	if hc.network != nil {
		hc.network(&ncfg)
	}
	h := &harness{client: client, stateDir: state, policy: runner.DefaultPolicy()}
	if !hc.cold {
		// Every job runs in a warm sandbox (request waits for one), so
		// that every test here checks that path; the pool's own tests
		// and coldStarts harnesses check the other.
		h.warm = true
		opts = append([]container.Option{container.WithWarmPool(container.WarmPool{Size: 1, OnMade: h.track})}, opts...)
	}
	a, err := newAgentNet(client, state, "local.db", ncfg, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
	if errors.Is(err, errNoNetworks) {
		testenv.Unavailable(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.store.Close() })
	h.ex, h.net, h.secret, h.api = a.ex, a.net, a.secret, a.api
	for _, rt := range hc.runtimes {
		if _, err := client.GetImage(context.Background(), h.policy.Images[rt]); err != nil {
			testenv.Unavailable(t, "runtime image %s not imported (make import): %v", h.policy.Images[rt], err)
		}
	}
	t.Cleanup(func() { h.assertClean(t) })
	return h
}

// agent is an executor built as the agent builds it, on a state directory
// whose helpers are written: the harness's, or a child process's on the
// harness's state directory.
type agent struct {
	ex     *container.Executor
	net    *cni.Manager
	secret []byte
	api    *sidecar.Server
	store  *cstate.Local
}

// errNoNetworks is wrapped when job networks cannot be made on this host.
var errNoNetworks = errors.New("job networks")

// newAgent builds the executor; db names its runtime API store (a bbolt
// file only one process may open).
func newAgent(client *containerd.Client, state, db string, egress bool, log *slog.Logger, opts ...container.Option) (*agent, error) {
	ncfg := cni.DefaultConfig()
	if egress {
		ncfg.Egress = cni.EgressAll
	}
	return newAgentNet(client, state, db, ncfg, log, opts...)
}

// newAgentNet is newAgent with its job networks configured by ncfg.
func newAgentNet(client *containerd.Client, state, db string, ncfg cni.Config, log *slog.Logger, opts ...container.Option) (*agent, error) {
	nm, err := cni.New(ncfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoNetworks, err)
	}
	secret, err := sidecar.LoadOrCreateSecret(filepath.Join(state, "runtime-api.key"))
	if err != nil {
		return nil, err
	}
	store, err := cstate.OpenLocal(filepath.Join(state, db))
	if err != nil {
		return nil, err
	}
	api := sidecar.New(secret, store, sidecar.WithLogger(log))
	opts = append([]container.Option{
		container.WithKillGrace(2 * time.Second),
		container.WithLogger(log),
		container.WithNetwork(nm),
		container.WithRuntimeAPI(api, ncfg.APIPort),
		container.WithHelpers(filepath.Join(state, "helpers"), jobProgram),
		container.WithLoggerBinary(jobProgram),
	}, opts...)
	ex, err := container.New(client, state, opts...)
	if err != nil {
		store.Close()
		return nil, err
	}
	return &agent{ex: ex, net: nm, secret: secret, api: api, store: store}, nil
}

// result is a finished run with its captured streams.
type result struct {
	container.Result
	stdout, stderr bytes.Buffer
	entries        []output.Entry
	req            container.Request
	err            error
}

type jobOpt func(*runner.Job)

func withEnv(kv ...string) jobOpt {
	return func(j *runner.Job) {
		j.Env = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			j.Env[kv[i]] = kv[i+1]
		}
	}
}
func withTimeout(d time.Duration) jobOpt { return func(j *runner.Job) { j.Timeout = d } }
func withMemory(b int64) jobOpt          { return func(j *runner.Job) { j.Resources.MemoryBytes = b } }
func withPids(n int64) jobOpt            { return func(j *runner.Job) { j.Resources.Pids = n } }
func withID(id string) jobOpt            { return func(j *runner.Job) { j.ID = id } }
func withImage(ref string) jobOpt        { return func(j *runner.Job) { j.Image = ref } }
func withEvent(event, user string) jobOpt {
	return func(j *runner.Job) { j.EventID, j.UserID = event, user }
}

func (h *harness) run(ctx context.Context, t testing.TB, rt, script string, opts ...jobOpt) *result {
	t.Helper()
	return h.runWith(ctx, t, rt, script, nil, opts...)
}

// runWith runs a job; onEntry (optional) sees each entry as it arrives.
func (h *harness) runWith(ctx context.Context, t testing.TB, rt, script string, onEntry func(output.Entry), opts ...jobOpt) *result {
	t.Helper()
	return h.runRequest(ctx, t, h.request(t, rt, script, opts...), onEntry)
}

// request builds the run request of a job as the agent would.
func (h *harness) request(t testing.TB, rt, script string, opts ...jobOpt) container.Request {
	t.Helper()
	job := runner.Job{ID: "job_test" + strings.ToLower(randomSuffix()), Runtime: rt, Script: []byte(script), Timeout: time.Minute}
	for _, o := range opts {
		if o != nil {
			o(&job)
		}
	}
	req, err := h.policy.Request(job, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if h.warm {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := h.ex.Prewarm(ctx, req); err != nil {
			// The job runs cold, and says what is wrong (a missing image).
			t.Logf("no warm sandbox for %s: %v", rt, err)
		}
	}
	return req
}

// runRequest runs a prepared request, collecting its output.
func (h *harness) runRequest(ctx context.Context, t testing.TB, req container.Request, onEntry func(output.Entry)) *result {
	t.Helper()
	h.track(req.RunID)
	r := &result{req: req}
	prev := req.OnRunID
	req.OnRunID = func(id string) {
		r.req.RunID = id // the sandbox's: what the test looks for
		if prev != nil {
			prev(id)
		}
	}
	r.Result, r.err = h.ex.Run(ctx, req, r.collector(onEntry))
	return r
}

// runIDOf makes req report the id it runs under (a warm sandbox's, when
// it takes one), for tests that look at a run's files or cgroup while it
// runs: the returned func gives it once the run has started.
func runIDOf(req *container.Request) func() string {
	var mu sync.Mutex
	id := req.RunID
	prev := req.OnRunID
	req.OnRunID = func(got string) {
		mu.Lock()
		id = got
		mu.Unlock()
		if prev != nil {
			prev(got)
		}
	}
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return id
	}
}

// collector records every entry into r; onEntry (optional) sees each too.
func (r *result) collector(onEntry func(output.Entry)) container.EntryFunc {
	var mu sync.Mutex
	return func(e output.Entry) {
		mu.Lock()
		defer mu.Unlock()
		r.entries = append(r.entries, output.Entry{Seq: e.Seq, Stream: e.Stream, Time: e.Time, Fragment: e.Fragment})
		w := &r.stdout
		if e.Stream == output.Stderr {
			w = &r.stderr
		}
		w.Write(e.Data)
		if !e.Fragment {
			w.WriteByte('\n')
		}
		if onEntry != nil {
			onEntry(e)
		}
	}
}

// track adds a run to those assertClean checks.
func (h *harness) track(runID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.runIDs = append(h.runIDs, runID)
}

func randomSuffix() string {
	id := runner.RunID("x")
	return id[len(id)-8:]
}

// assertClean checks that nothing of this harness's runs is left:
// containers, tasks, snapshots, cgroups, mounts, processes and run files.
// Other test packages may run jobs on the same containerd meanwhile, so it
// looks only at what carries this harness's state directory or run ids.
func (h *harness) assertClean(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	h.ex.ClosePool()
	if err := h.ex.Wait(wctx); err != nil {
		t.Error(err)
	}
	h.mu.Lock()
	runs := append([]string(nil), h.runIDs...)
	h.mu.Unlock()
	ctrs, err := h.client.Containers(ctx, fmt.Sprintf("labels.%q==%q", container.LabelState, h.stateDir))
	if err != nil {
		t.Errorf("list containers: %v", err)
	}
	for _, c := range ctrs {
		t.Errorf("container left: %s", c.ID())
	}
	sn := h.client.SnapshotService(h.ex.Snapshotter())
	_ = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Labels[container.LabelState] == h.stateDir {
			t.Errorf("run snapshot left: %s", info.Name)
		}
		return nil
	})
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	veths, err := exec.Command("ip", "-o", "link", "show", "type", "veth").Output()
	if err != nil {
		t.Errorf("list veths: %v", err)
	}
	for _, id := range runs {
		_, bridge := cni.Names(strings.TrimPrefix(id, "cronium-"))
		if bytes.Contains(veths, []byte("link-netns "+id)) || bytes.Contains(veths, []byte("master "+bridge+" ")) {
			t.Errorf("veth left for %s", id)
		}
		if _, err := h.client.LoadContainer(ctx, id); err == nil {
			t.Errorf("container left: %s", id)
		}
		if _, err := h.client.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: id}); err == nil {
			t.Errorf("task left: %s", id)
		}
		if _, err := sn.Stat(ctx, id); err == nil {
			t.Errorf("snapshot left: %s", id)
		}
		if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + container.CgroupParent + "/" + id); len(dirs) > 0 {
			t.Errorf("cgroups left: %v", dirs)
		}
		if bytes.Contains(mi, []byte("/"+id+"/")) || bytes.Contains(mi, []byte("/netns/"+id)) {
			t.Errorf("mount left for %s", id)
		}
		if _, err := os.Stat("/var/run/netns/" + id); err == nil {
			t.Errorf("network namespace left: %s", id)
		}
		netID := strings.TrimPrefix(id, "cronium-")
		if _, bridge := cni.Names(netID); linkExists(bridge) {
			t.Errorf("bridge left: %s", bridge)
		}
		for _, p := range []string{"nets/" + netID + ".json", "nets/" + netID + ".lock", "ipam/cronium-" + netID} {
			if _, err := os.Stat(filepath.Join(cni.DefaultConfig().StateDir, p)); err == nil {
				t.Errorf("network file left: %s", p)
			}
		}
	}
	if bytes.Contains(mi, []byte(h.stateDir)) {
		t.Errorf("mounts left below %s", h.stateDir)
	}
	// No shim or output logger of a run may outlive it.
	ids := map[string]bool{}
	for _, id := range runs {
		ids[id] = true
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmd, _ := os.ReadFile(p)
		args := strings.Split(string(cmd), "\x00")
		leaked := bytes.Contains(cmd, []byte("shim-logger\x00"+h.stateDir))
		for i, a := range args {
			if a == "-id" && i+1 < len(args) && ids[args[i+1]] {
				leaked = true
			}
		}
		if leaked {
			t.Errorf("process left: %s", strings.Join(args, " "))
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(h.stateDir, "runs")); len(entries) > 0 {
		for _, e := range entries {
			t.Errorf("run files left: %s", e.Name())
		}
	}
	if h.api != nil && h.api.Live() != 0 {
		t.Errorf("%d runtime API listeners left", h.api.Live())
	}
	if len(runs) == 0 && !t.Skipped() {
		t.Log("harness ran no job")
	}
}

func writeJSON(tb testing.TB, path string, v any) {
	tb.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}
