package runner_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/backend/devserver/devtest"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/httpexec"
	"github.com/cronium/cronium-agent/runner/netpolicy"
	"github.com/cronium/cronium-agent/sidecar"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/journal"
	"github.com/cronium/cronium-agent/state/syncer"
)

// The dispatcher's tests run the agent as Agent.Run (agent.go) wires it
// (journal → state.Jobs → syncer → dispatcher, backend.Client), in the
// test process, against the development backend on 127.0.0.1, with the
// fake executor of dispatch_fake_test.go instead of containerd. They check
// what the end-to-end tests check, from the backend's side.

const (
	testToken = "runner-test-token"
	// testOrch is the agent's orchestrator id; an agent started again on
	// the same state is the same agent, so every agent of a test uses it.
	testOrch = "runner-test-agent"
	// waitLimit bounds every wait for a condition: a test fails instead of
	// hanging, and nothing is asserted about how long anything took.
	waitLimit = 30 * time.Second
)

// waitFor polls cond until it holds, failing the test after waitLimit.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("waited %s for %s", waitLimit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitClosed waits for ch to be closed, failing the test after waitLimit.
func waitClosed(tb testing.TB, what string, ch <-chan struct{}) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		tb.Fatalf("waited %s for %s", waitLimit, what)
	}
}

// devBackend is the development backend served on 127.0.0.1 from the
// test process; Down and Up make an outage (the address stops answering and
// answers again, with the data kept).
type devBackend struct{ *devtest.Backend }

func startBackend(t *testing.T) *devBackend {
	t.Helper()
	return &devBackend{devtest.Start(t, "", testToken)}
}

func (b *devBackend) submit(t *testing.T, req devserver.SubmitRequest) string {
	t.Helper()
	id, err := b.Client.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// rawScript is a SCRIPT wire job running script, for what SubmitRequest
// does not carry (a retry policy); extra fields go into execution.
func rawScript(script string, priority int, execution map[string]any) json.RawMessage {
	ex := map[string]any{
		"environment": map[string]string{}, "inputData": map[string]any{}, "variables": map[string]any{},
		"target": map[string]any{"type": "local"},
		"script": map[string]any{"type": "BASH", "content": script, "workingDirectory": ""},
	}
	for k, v := range execution {
		ex[k] = v
	}
	raw, _ := json.Marshal(map[string]any{
		"type": "container", "priority": priority, "attempts": 0, "execution": ex,
		"metadata": map[string]any{"eventName": "runner test", "triggeredBy": "manual", "originalType": "SCRIPT", "eventId": 1, "userId": "u1"},
	})
	return raw
}

func (b *devBackend) submitRaw(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	id, err := b.Client.SubmitRaw(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (b *devBackend) job(t *testing.T, id string) devserver.JobView {
	t.Helper()
	v, err := b.Client.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitDone waits until a job has a final status on the backend.
func (b *devBackend) waitDone(t *testing.T, id string) devserver.JobView {
	t.Helper()
	var v devserver.JobView
	waitFor(t, "job "+id+" to end", func() bool {
		var err error
		v, err = b.Client.Job(context.Background(), id)
		return err == nil && v.Done()
	})
	return v
}

func (b *devBackend) executions(t *testing.T, id string) []devserver.ExecutionView {
	t.Helper()
	execs, err := b.Client.Executions(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return execs
}

// liveLog returns a job's live log as the backend holds it, by stream,
// after checking its seqs are 1..n without a gap or a copy.
func (b *devBackend) liveLog(t *testing.T, id string) (stdout, stderr, system []string) {
	t.Helper()
	entries, err := b.Client.Logs(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if e.Seq != uint64(i+1) {
			t.Fatalf("job %s: live line %d has seq %d, want %d", id, i, e.Seq, i+1)
		}
		switch e.Stream {
		case "stdout":
			stdout = append(stdout, e.Line)
		case "stderr":
			stderr = append(stderr, e.Line)
		default:
			system = append(system, e.Line)
		}
	}
	return stdout, stderr, system
}

// assertOnce checks exactly-once on the backend's side: no job got more
// than one completing call.
func (b *devBackend) assertOnce(t *testing.T) {
	t.Helper()
	st, err := b.Client.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Duplicates) > 0 {
		t.Errorf("jobs with more than one completing call: %v", st.Duplicates)
	}
}

func exitCode(v devserver.JobView) int {
	if v.ExitCode == nil {
		return -999
	}
	return *v.ExitCode
}

func stdoutOf(v devserver.JobView) string {
	if v.Output == nil {
		return ""
	}
	return v.Output.Stdout
}

// killSwitch is the agent's network: cut, no call of the agent reaches
// the backend any more, as after a SIGKILL.
type killSwitch struct {
	base *http.Transport
	mu   sync.Mutex
	dead bool
}

func (k *killSwitch) RoundTrip(r *http.Request) (*http.Response, error) {
	k.mu.Lock()
	dead := k.dead
	k.mu.Unlock()
	if dead {
		return nil, errors.New("the agent's connection is cut")
	}
	return k.base.RoundTrip(r)
}

func (k *killSwitch) cut() {
	k.mu.Lock()
	k.dead = true
	k.mu.Unlock()
	k.base.CloseIdleConnections()
}

// countingBackend records the dispatcher's direct calls.
type countingBackend struct {
	runner.Backend
	mu         sync.Mutex
	claims     []int // the batch size of every claim
	heartbeats int
}

func (c *countingBackend) ClaimJobs(ctx context.Context, batchSize int, jobTypes []string) ([]api.QueueItem, error) {
	c.mu.Lock()
	c.claims = append(c.claims, batchSize)
	c.mu.Unlock()
	return c.Backend.ClaimJobs(ctx, batchSize, jobTypes)
}

func (c *countingBackend) Heartbeat(ctx context.Context, hb api.Heartbeat) (api.HeartbeatAnswer, error) {
	c.mu.Lock()
	c.heartbeats++
	c.mu.Unlock()
	return c.Backend.Heartbeat(ctx, hb)
}

func (c *countingBackend) claimSizes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.claims...)
}

func (c *countingBackend) heartbeatCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.heartbeats
}

// faultGate parks the jobs that reach a fault point (DispatchConfig.Fault),
// where the end-to-end tests kill the agent, after letting the first skip
// arrivals pass: a parked job does nothing more until the gate opens.
type faultGate struct {
	point   string
	skip    int
	mu      sync.Mutex
	seen    int
	reached int
	release chan struct{}
	once    sync.Once
}

func newFaultGate(point string, skip int) *faultGate {
	return &faultGate{point: point, skip: skip, release: make(chan struct{})}
}

func (f *faultGate) hook(point string) {
	if f == nil || point != f.point {
		return
	}
	f.mu.Lock()
	f.seen++
	park := f.seen > f.skip
	if park {
		f.reached++
	}
	f.mu.Unlock()
	if park {
		<-f.release
	}
}

func (f *faultGate) arrivals() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reached
}

func (f *faultGate) open() {
	if f != nil {
		f.once.Do(func() { close(f.release) })
	}
}

type agentConfig struct {
	maxConcurrent int
	drainTimeout  time.Duration
	faults        *faultGate
	// wrap, when set, stands between the dispatcher and the backend client.
	wrap func(runner.Backend) runner.Backend
	// executors are added to the local ones (the fake container executor
	// and the HTTP executor).
	executors runner.Executors
	// pollInterval is the dispatcher's (default 20 ms); longPoll the
	// client's (default 20 s, as the agent's).
	pollInterval time.Duration
	longPoll     time.Duration
	// host gives the metrics their host figures (DispatchConfig.Host).
	host runner.HostSampler
}

// agent is `cronium-agent run` in the test process.
type agent struct {
	t      *testing.T
	dir    string
	log    *testenv.Buffer
	net    *killSwitch
	be     *countingBackend
	jr     *journal.Journal
	jobs   *state.Jobs
	sy     *syncer.Syncer
	exec   *fakeExecutor
	d      *runner.Dispatcher
	faults *faultGate

	ctx      context.Context
	cancel   context.CancelFunc
	drainCh  chan struct{}
	drainOne sync.Once
	stopSync context.CancelFunc
	syncDone chan struct{}
	runDone  chan struct{}

	mu       sync.Mutex
	started  bool
	syncOff  bool
	killed   bool
	stopOnce sync.Once
}

// newAgent wires an agent on the state directory dir as Agent.Run does, with
// short intervals: the syncer runs, the dispatcher does not yet (recover,
// then start).
func newAgent(t *testing.T, b *devBackend, w *world, dir string, cfg agentConfig) *agent {
	t.Helper()
	if cfg.maxConcurrent == 0 {
		cfg.maxConcurrent = 4
	}
	a := &agent{t: t, dir: dir, log: &testenv.Buffer{}, faults: cfg.faults, drainCh: make(chan struct{}), runDone: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(a.log, &slog.HandlerOptions{Level: slog.LevelDebug}))

	a.net = &killSwitch{base: http.DefaultTransport.(*http.Transport).Clone()}
	client, err := backend.NewClient(b.URL, testToken, testOrch,
		backend.WithHTTPClient(&http.Client{Transport: a.net}),
		backend.WithRetry(3, 10*time.Millisecond, 100*time.Millisecond), backend.WithLongPoll(cmp.Or(cfg.longPoll, 20*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	var be runner.Backend = client
	if cfg.wrap != nil {
		be = cfg.wrap(be)
	}
	a.be = &countingBackend{Backend: be}

	key, err := sidecar.LoadOrCreateSecret(filepath.Join(dir, "journal.key"))
	if err != nil {
		t.Fatal(err)
	}
	a.jr, err = journal.Open(filepath.Join(dir, "journal.db"), journal.WithSecretKey(key), journal.WithKeepLogs(2, 2))
	if err != nil {
		t.Fatal(err)
	}
	if a.jobs, err = state.NewJobs(a.jr); err != nil {
		t.Fatal(err)
	}
	// As Agent.Run: the syncer tells the dispatcher of superseded jobs.
	var disp atomic.Pointer[runner.Dispatcher]
	supersede := func(id string) {
		if d := disp.Load(); d != nil {
			d.Supersede(id)
		}
	}
	a.sy = syncer.New(a.jr, client, syncer.WithLogger(log), syncer.WithRetry(20*time.Millisecond, 200*time.Millisecond), syncer.WithSuperseded(supersede))
	a.jobs.OnAppend(a.sy.Notify)
	sctx, stopSync := context.WithCancel(context.Background())
	a.stopSync, a.syncDone = stopSync, make(chan struct{})
	go func() {
		defer close(a.syncDone)
		_ = a.sy.Run(sctx)
	}()

	a.exec = newFakeExecutor(w)
	executors := runner.LocalExecutors(a.exec, runner.DefaultPolicy(), httpexec.WithPolicy(testOutbound(t)))
	for t, x := range cfg.executors {
		executors[t] = x
	}
	a.d = runner.NewDispatcher(a.be, a.jobs, a.sy, executors, runner.DispatchConfig{
		OrchestratorID:  testOrch,
		MaxConcurrent:   cfg.maxConcurrent,
		PollInterval:    cmp.Or(cfg.pollInterval, 20*time.Millisecond),
		PollMaxInterval: max(cfg.pollInterval, 100*time.Millisecond),
		Heartbeat:       50 * time.Millisecond,
		Metrics:         100 * time.Millisecond,
		DrainTimeout:    cfg.drainTimeout,
		Fault:           cfg.faults.hook,
		Host:            cfg.host,
	}, log)
	disp.Store(a.d)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("agent log (%s):\n%s", dir, a.log.String())
		}
	})
	return a
}

// recover runs Recover, as Agent.Run does before the dispatcher starts.
func (a *agent) recover() int {
	a.t.Helper()
	n, err := a.d.Recover(a.ctx)
	if err != nil {
		a.t.Fatal(err)
	}
	return n
}

// start runs the dispatcher.
func (a *agent) start() *agent {
	a.mu.Lock()
	a.started = true
	a.mu.Unlock()
	go func() {
		defer close(a.runDone)
		if err := a.d.Run(a.ctx, a.drainCh); err != nil {
			a.t.Errorf("dispatcher: %v", err)
		}
	}()
	return a
}

// drain is the first SIGTERM.
func (a *agent) drain() { a.drainOne.Do(func() { close(a.drainCh) }) }

// waitLog waits until the agent logged a message containing text.
func (a *agent) waitLog(text string) {
	a.t.Helper()
	waitFor(a.t, "the agent to log "+strconv.Quote(text), func() bool { return strings.Contains(a.log.String(), text) })
}

// waitStopped waits for the dispatcher's Run to return.
func (a *agent) waitStopped() {
	a.t.Helper()
	waitClosed(a.t, "the dispatcher to stop", a.runDone)
}

func (a *agent) stopSyncer() {
	a.mu.Lock()
	off := a.syncOff
	a.syncOff = true
	a.mu.Unlock()
	if !off {
		a.stopSync()
		<-a.syncDone
	}
}

// stop stops the agent at once (a second signal) and as Agent.Run does then:
// the dispatcher reports every job, the syncer delivers what the backend
// takes within 10 s, the journal is closed.
func (a *agent) stop() {
	a.stopOnce.Do(func() {
		a.faults.open()
		a.exec.thaw()
		a.cancel()
		a.mu.Lock()
		started, killed := a.started, a.killed
		a.mu.Unlock()
		if started {
			select {
			case <-a.runDone:
			case <-time.After(waitLimit):
				a.t.Errorf("the dispatcher did not stop within %s; its journal is left open", waitLimit)
				return
			}
		}
		if !killed {
			fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := a.sy.Flush(fctx); err != nil {
				a.t.Logf("reports left in the journal: %v", err)
			}
			cancel()
		}
		a.stopSyncer()
		if err := a.jr.Close(); err != nil && !errors.Is(err, journal.ErrClosed) {
			a.t.Errorf("close journal: %v", err)
		}
		a.net.base.CloseIdleConnections()
	})
}

// progress returns a job's progress in the agent's journal.
func (a *agent) progress(jobID string) (state.Progress, bool) {
	p, ok, err := a.jobs.Get(context.Background(), jobID)
	if err != nil {
		a.t.Fatal(err)
	}
	return p, ok
}

// kill stops the agent as SIGKILL would, as far as the backend, the
// journal and the tasks can tell: from this moment it calls the backend no
// more, takes no output from its runs, leaves their tasks running and does
// nothing else (its parked and frozen goroutines stay so). Its journal as
// it is then is copied into a new state directory, returned for the next
// agent; the dead agent is then wound down against its own journal, which
// nothing reads any more.
//
// The copy must not be taken in the middle of a journal write: kill first
// waits until job jobID's progress holds logSeq live lines (the lines of
// the current attempt are journaled in batches, every 100 ms) and every
// output entry the runs were handed. The caller makes sure nothing else
// writes then (the job is parked at a fault point or its task waits).
func (a *agent) kill(jobID string, logSeq uint64) string {
	t := a.t
	t.Helper()
	a.mu.Lock()
	a.killed = true
	a.mu.Unlock()
	a.net.cut()
	a.stopSyncer()
	a.exec.kill()
	settled := func(id string, entries, seq uint64) {
		waitFor(t, "the killed agent's last lines of "+id+" to be journaled", func() bool {
			p, ok := a.progress(id)
			return ok && ((p.Entries >= entries && p.LogSeq >= seq) || p.State == state.Finished || p.State == state.Released)
		})
	}
	handed := a.exec.deliveredCounts()
	for id, n := range handed {
		settled(id, n, 0)
	}
	if jobID != "" {
		settled(jobID, handed[jobID], logSeq)
	}
	var before state.Progress
	if jobID != "" {
		before, _ = a.progress(jobID)
	}
	next := t.TempDir()
	for _, name := range []string{"journal.db", "journal.key"} {
		data, err := os.ReadFile(filepath.Join(a.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(next, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A job's progress changes with every write of it (after the write):
	// unchanged, nothing of the job was written during the copy.
	if jobID != "" {
		if after, _ := a.progress(jobID); !reflect.DeepEqual(before, after) {
			t.Fatalf("job %s was journaled while the killed agent's journal was copied:\n%+v\n%+v", jobID, before, after)
		}
	}
	a.stop()
	return next
}

// testOutbound is the outbound policy of the harness's HTTP jobs: mode none
// with 127.0.0.1 allowed, where the tests' hook servers listen. Its connect
// hook refuses anything off loopback even if the policy let it through: a
// test never sends a packet elsewhere.
func testOutbound(t testing.TB) *netpolicy.Policy {
	t.Helper()
	p, err := netpolicy.New(netpolicy.ModeNone, []string{"127.0.0.1/32"}, nil, netpolicy.WithHostAddrs(),
		netpolicy.WithConnectHook(func(_, address string) error {
			if ap, err := netip.ParseAddrPort(address); err != nil || !ap.Addr().IsLoopback() {
				return errors.New("test: connect to " + address + " blocked")
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
