package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/output"
)

// remoteExecutor is an executor of another target, written against the
// Executor interface alone, as the SSH executor is: its runs hold until
// released, and it records what it was handed.
type remoteExecutor struct {
	mu      sync.Mutex
	runs    []runner.Attempt
	adopted []runner.Attempt
	started chan struct{}
	release chan struct{}
}

func newRemoteExecutor() *remoteExecutor {
	return &remoteExecutor{started: make(chan struct{}, 8), release: make(chan struct{})}
}

func (x *remoteExecutor) Run(ctx context.Context, a *runner.Attempt) runner.Result {
	x.mu.Lock()
	x.runs = append(x.runs, *a)
	x.mu.Unlock()
	start := time.Now()
	if err := a.Started(start); err != nil {
		return runner.NeverRan(start, err)
	}
	a.Text(output.Stdout, []byte("started remotely\n"))
	x.started <- struct{}{}
	select {
	case <-x.release:
	case <-ctx.Done():
		return runner.Result{Status: api.StatusCancelled, ExitCode: runner.ExitCancelled, Start: start, End: time.Now()}
	}
	a.Text(output.Stdout, []byte("done remotely\n"))
	return runner.Result{Status: api.StatusCompleted, Start: start, End: time.Now()}
}

func (x *remoteExecutor) Adopt(_ context.Context, a *runner.Attempt) runner.Result {
	x.mu.Lock()
	x.adopted = append(x.adopted, *a)
	x.mu.Unlock()
	if a.StartedAt.IsZero() {
		return runner.Result{NotStarted: true}
	}
	a.Owned()
	a.Text(output.Stdout, []byte("followed after a restart\n"))
	return runner.Result{Status: api.StatusCompleted, Start: a.StartedAt, End: time.Now()}
}

func (x *remoteExecutor) attempts() (runs, adopted []runner.Attempt) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.runs), slices.Clone(x.adopted)
}

// An executor plugged in for a target runs that target's jobs through the
// same dispatcher, journal and recovery as the built-in ones: the agent
// asks for its job type, its output and end reach the backend once, and a
// restarted agent hands it the attempt it began (same execution and run
// id, the journaled start) to adopt.
func TestDispatcherExecutorPerTarget(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	sshJob := json.RawMessage(`{"type":"ssh","execution":{"target":{"type":"server","serverId":"1"},
		"script":{"type":"BASH","content":"echo remote"}},"metadata":{"originalType":"SCRIPT"}}`)
	first := newRemoteExecutor()
	a := newAgent(t, b, w, t.TempDir(), agentConfig{executors: runner.Executors{runner.TargetServer: first}})
	if got, want := runner.LocalExecutors(nil, runner.DefaultPolicy()).JobTypes(), []string{api.TypeHTTP, api.TypeScript}; !slices.Equal(got, want) {
		t.Errorf("local job types %v, want %v", got, want)
	}
	a.start()

	// Run to its end by the executor.
	done := b.submitRaw(t, sshJob)
	waitClosed(t, "the remote run of "+done, first.started)
	first.release <- struct{}{}
	if v := b.waitDone(t, done); v.Status != devserver.StatusCompleted || exitCode(v) != 0 || v.Completions != 1 || v.Output == nil || v.Output.Stdout != "started remotely\ndone remotely\n" {
		t.Errorf("remote job: %s exit %d, %d completing calls, output %+v", v.Status, exitCode(v), v.Completions, v.Output)
	}

	// Begun, then the agent dies: the next one's executor adopts it.
	adopt := b.submitRaw(t, sshJob)
	waitClosed(t, "the remote run of "+adopt, first.started)
	next := a.kill(adopt, 1)
	second := newRemoteExecutor()
	a2 := newAgent(t, b, w, next, agentConfig{executors: runner.Executors{runner.TargetServer: second}})
	if n := a2.recover(); n != 1 {
		t.Fatalf("recovered %d jobs, want 1", n)
	}
	a2.start()
	v := b.waitDone(t, adopt)
	if v.Status != devserver.StatusCompleted || v.Completions != 1 {
		t.Errorf("adopted remote job: %s, %d completing calls", v.Status, v.Completions)
	}
	if stdout, _, _ := b.liveLog(t, adopt); !slices.Equal(stdout, []string{"started remotely", "followed after a restart"}) {
		t.Errorf("live stdout of the adopted job %q", stdout)
	}
	runs, _ := first.attempts()
	_, adopted := second.attempts()
	if len(runs) != 2 || len(adopted) != 1 {
		t.Fatalf("%d runs by the first agent, %d adoptions by the second; want 2 and 1", len(runs), len(adopted))
	}
	began, took := runs[1], adopted[0]
	if took.ExecutionID != began.ExecutionID || took.RunID != began.RunID || took.RunID == "" ||
		took.Number != 1 || took.StartedAt.IsZero() || !took.Start.Equal(began.Start) {
		t.Errorf("adopted attempt %+v\nis not the one begun %+v", took, began)
	}
	if execs := b.executions(t, adopt); len(execs) != 1 {
		t.Errorf("%d executions for the adopted job, want 1", len(execs))
	}
	b.assertOnce(t)
}

// A job begun by an executor the restarted agent no longer has (its
// target was switched off) is not left hanging: it fails once, saying so.
func TestRecoverWithoutTheExecutor(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	first := newRemoteExecutor()
	a := newAgent(t, b, w, t.TempDir(), agentConfig{executors: runner.Executors{runner.TargetServer: first}})
	a.start()
	id := b.submitRaw(t, json.RawMessage(`{"type":"ssh","execution":{"target":{"type":"server","serverId":"1"},
		"script":{"type":"BASH","content":"echo remote"}},"metadata":{"originalType":"SCRIPT"}}`))
	waitClosed(t, "the remote run of "+id, first.started)
	next := a.kill(id, 1)

	a2 := newAgent(t, b, w, next, agentConfig{})
	if n := a2.recover(); n != 1 {
		t.Fatalf("recovered %d jobs, want 1", n)
	}
	a2.start()
	v := b.waitDone(t, id)
	if v.Status != devserver.StatusFailed || exitCode(v) != 1 || v.Completions != 1 || v.Output == nil ||
		!strings.Contains(v.Output.Stderr, "without an executor for SSH jobs") {
		t.Errorf("job: %s exit %d, %d completing calls, output %+v", v.Status, exitCode(v), v.Completions, v.Output)
	}
	b.assertOnce(t)
}

// multiExecutor runs an attempt on two "servers" as the SSH executor does
// for a multi-server job: a second execution beside the attempt's own,
// each started and ended on its own, output from two sources.
type multiExecutor struct {
	release chan struct{}
	started chan struct{}
}

func (x *multiExecutor) run(ctx context.Context, a *runner.Attempt, adopt bool) runner.Result {
	second := a.ExecutionID + "_b"
	start := a.StartedAt
	if !adopt {
		start = time.Now()
		if err := a.CreateExecution(second, "8", "web-2"); err != nil {
			return runner.NeverRan(start, err)
		}
		if err := a.Started(start); err != nil {
			return runner.NeverRan(start, err)
		}
		_ = a.ExecutionStarted(second, start)
	} else {
		a.Owned()
	}
	emit := func(src int, line string) {
		a.OutputFrom(src, output.Entry{Stream: output.Stdout, Time: time.Now(), Data: []byte(line)})
	}
	// The first run hands over a1, a2 and b1, then waits; meanwhile the
	// servers wrote more (b2, b3, a3), which an adoption reads with the
	// rest, from the start, in another order: a count per stream would
	// skip b1, b2, a1 and journal a2 twice, b2 never.
	if !adopt {
		emit(0, "a1")
		emit(0, "a2")
		emit(1, "b1")
		x.started <- struct{}{}
		select {
		case <-x.release:
		case <-ctx.Done(): // the killed agent's run, wound down
			return runner.Result{Status: api.StatusCancelled, ExitCode: runner.ExitCancelled, Start: start, End: time.Now()}
		}
	} else {
		for i := 1; i <= 3; i++ {
			emit(1, fmt.Sprintf("b%d", i))
		}
		for i := 1; i <= 3; i++ {
			emit(0, fmt.Sprintf("a%d", i))
		}
	}
	emit(0, "a4")
	emit(1, "b4")
	end := time.Now()
	ok := runner.Result{Status: api.StatusCompleted, Start: start, End: end}
	_ = a.EndExecution(a.ExecutionID, start, ok, "a\n", "")
	_ = a.EndExecution(second, start, runner.Result{Status: api.StatusFailed, ExitCode: 3, Start: start, End: end}, "b\n", "boom\n")
	return runner.Result{Status: api.StatusCompleted, ExitCode: 101, Start: start, End: end}
}

func (x *multiExecutor) Run(ctx context.Context, a *runner.Attempt) runner.Result {
	return x.run(ctx, a, false)
}

func (x *multiExecutor) Adopt(ctx context.Context, a *runner.Attempt) runner.Result {
	return x.run(ctx, a, true)
}

// An executor with several executions per attempt: each is created,
// started and ended on its own, and an adoption that hands the sources'
// output over in another order journals each source's lines once.
func TestDispatcherSeveralExecutionsPerAttempt(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	first := &multiExecutor{release: make(chan struct{}), started: make(chan struct{}, 1)}
	a := newAgent(t, b, w, t.TempDir(), agentConfig{executors: runner.Executors{runner.TargetServer: first}})
	a.start()
	id := b.submitRaw(t, json.RawMessage(`{"type":"ssh","execution":{"target":{"type":"server","serverId":"7"},
		"script":{"type":"BASH","content":"echo"}},"metadata":{"originalType":"SCRIPT"}}`))
	waitClosed(t, "the first run", first.started)
	next := a.kill(id, 3)
	a2 := newAgent(t, b, w, next, agentConfig{executors: runner.Executors{runner.TargetServer: &multiExecutor{}}})
	if n := a2.recover(); n != 1 {
		t.Fatalf("recovered %d, want 1", n)
	}
	a2.start()
	v := b.waitDone(t, id)
	if v.Status != devserver.StatusCompleted || exitCode(v) != 101 || v.Completions != 1 {
		t.Errorf("job: %s exit %d, %d completing calls", v.Status, exitCode(v), v.Completions)
	}
	stdout, _, _ := b.liveLog(t, id)
	var as, bs []string
	for _, l := range stdout {
		if strings.HasPrefix(l, "a") {
			as = append(as, l)
		} else {
			bs = append(bs, l)
		}
	}
	if !slices.Equal(as, []string{"a1", "a2", "a3", "a4"}) || !slices.Equal(bs, []string{"b1", "b2", "b3", "b4"}) {
		t.Errorf("live lines per source: %q %q, want each once in order", as, bs)
	}
	execs := b.executions(t, id)
	if len(execs) != 2 {
		t.Fatalf("%d executions, want 2: %+v", len(execs), execs)
	}
	for _, e := range execs {
		if e.ServerID == nil || (*e.ServerID != 7 && *e.ServerID != 8) {
			t.Errorf("execution %s names server %v", e.ID, e.ServerID)
		}
	}
	b.assertOnce(t)
}
