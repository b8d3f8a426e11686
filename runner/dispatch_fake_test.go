package runner_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/output"
)

// The dispatcher's tests run no container: a fake ScriptRunner stands for
// the containerd executor, and a world stands for containerd itself. A
// task belongs to the world, not to the executor that started it, so it
// runs on when that executor's agent is killed, and the next agent adopts
// it: that is what recovery is about.
//
// A job's script is a small program for the fake task, one statement per
// line or separated by ';':
//
//	out TEXT       a stdout line
//	err TEXT       a stderr line
//	frag TEXT      a stdout fragment: TEXT without a newline after it
//	efrag TEXT     a stderr fragment
//	lines N        N stdout lines "line k", k counting on across the task
//	sleep DUR      a Go duration
//	gate NAME      wait until the test opens gate NAME (world.open)
//	wait           wait until the task is stopped
//	exit N         end with exit code N (the end of the program is exit 0)
//	failfirst K N  exit N if this is one of the job's first K runs
//	setup NAME     (first only) the run's setup, before the script starts,
//	               waits until the test opens gate NAME
//
// A task stopped by the agent (timeout, cancellation) ends with 143, as a
// script ended by SIGTERM does.

type opKind int

const (
	opOut opKind = iota
	opErr
	opLines
	opSleep
	opGate
	opWait
	opExit
	opFailFirst
	opSetup
	opFrag
	opErrFrag
)

type op struct {
	kind opKind
	text string
	n, k int
	d    time.Duration
}

func parseProgram(src string) ([]op, error) {
	var prog []op
	for _, stmt := range strings.FieldsFunc(src, func(r rune) bool { return r == '\n' || r == ';' }) {
		stmt = strings.TrimSpace(stmt)
		if stmt == "" {
			continue
		}
		word, arg, _ := strings.Cut(stmt, " ")
		bad := fmt.Errorf("fake task: bad statement %q", stmt)
		switch word {
		case "out":
			prog = append(prog, op{kind: opOut, text: arg})
		case "err":
			prog = append(prog, op{kind: opErr, text: arg})
		case "frag":
			prog = append(prog, op{kind: opFrag, text: arg})
		case "efrag":
			prog = append(prog, op{kind: opErrFrag, text: arg})
		case "lines", "exit":
			n, err := strconv.Atoi(arg)
			if err != nil {
				return nil, bad
			}
			kind := opLines
			if word == "exit" {
				kind = opExit
			}
			prog = append(prog, op{kind: kind, n: n})
		case "sleep":
			d, err := time.ParseDuration(arg)
			if err != nil {
				return nil, bad
			}
			prog = append(prog, op{kind: opSleep, d: d})
		case "gate":
			prog = append(prog, op{kind: opGate, text: arg})
		case "wait":
			prog = append(prog, op{kind: opWait})
		case "setup":
			if len(prog) > 0 {
				return nil, bad // the setup comes before the script
			}
			prog = append(prog, op{kind: opSetup, text: arg})
		case "failfirst":
			var k, n int
			if _, err := fmt.Sscanf(arg, "%d %d", &k, &n); err != nil {
				return nil, bad
			}
			prog = append(prog, op{kind: opFailFirst, k: k, n: n})
		default:
			return nil, bad
		}
	}
	return prog, nil
}

// sigtermExit is the exit code of a task the agent stopped.
const sigtermExit = 143

// lostReason is what the fake says of a task lost with its host.
const lostReason = "the job's container task was lost while the agent was down (fake host restart)"

// world is containerd as the fake executors see it: the tasks by run id,
// which outlive the executor (agent) that started them.
type world struct {
	mu      sync.Mutex
	tasks   map[string]*task
	runs    map[string]int // scripts started per job
	gates   map[string]chan struct{}
	history []runRecord // every started script, in start order
	adopts  []adoptCall
	running int
	maxRun  int
	wg      sync.WaitGroup
}

// runRecord is one script started: when, and when it ended.
type runRecord struct {
	jobID, runID string
	started      time.Time
	ended        time.Time // zero while it runs
}

// adoptCall is what an Adopt was asked.
type adoptCall struct {
	jobID, runID string
	startedAt    time.Time
}

func newWorld(t *testing.T) *world {
	w := &world{tasks: map[string]*task{}, runs: map[string]int{}, gates: map[string]chan struct{}{}}
	// Whatever a test leaves running is stopped with it (a host shutdown).
	t.Cleanup(w.shutdown)
	return w
}

type taskState int

const (
	taskCreated taskState = iota
	taskRunning
	taskExited
	taskLost
)

// task is a fake container task: a goroutine running a program. Its
// fields are guarded by the world's mutex.
type task struct {
	w            *world
	runID, jobID string
	prog         []op
	run          int // the job's run number, from 1
	record       int // index in world.history
	state        taskState
	exitCode     int
	entries      []output.Entry
	changed      chan struct{} // closed and replaced at every change
	stop         chan struct{} // closed to stop the task (SIGTERM)
	stopOnce     sync.Once
	lost         bool
	lines        int
}

// changedLocked wakes whoever waits for the task; w.mu is held.
func (t *task) changedLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

func (w *world) gate(name string) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.gates[name]
	if !ok {
		ch = make(chan struct{})
		w.gates[name] = ch
	}
	return ch
}

// open lets the tasks waiting at gate name go on (and those that reach it later).
func (w *world) open(name string) {
	ch := w.gate(name)
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// create makes the task of a run, not started yet.
func (w *world) create(req container.Request, prog []op) *task {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := &task{w: w, runID: req.RunID, jobID: req.JobID, prog: prog, changed: make(chan struct{}), stop: make(chan struct{})}
	w.tasks[req.RunID] = t
	return t
}

// start starts a created task.
func (w *world) start(t *task, at time.Time) {
	w.mu.Lock()
	w.runs[t.jobID]++
	t.run = w.runs[t.jobID]
	t.state = taskRunning
	t.record = len(w.history)
	w.history = append(w.history, runRecord{jobID: t.jobID, runID: t.runID, started: at})
	w.running++
	w.maxRun = max(w.maxRun, w.running)
	t.changedLocked()
	w.wg.Add(1)
	w.mu.Unlock()
	go t.main()
}

func (t *task) main() {
	defer t.w.wg.Done()
	code := 0
run:
	for _, o := range t.prog {
		switch o.kind {
		case opOut:
			t.emit(output.Stdout, o.text)
		case opErr:
			t.emit(output.Stderr, o.text)
		case opFrag:
			t.emitEntry(output.Stdout, o.text, true)
		case opErrFrag:
			t.emitEntry(output.Stderr, o.text, true)
		case opLines:
			for range o.n {
				t.w.mu.Lock()
				t.lines++
				n := t.lines
				t.w.mu.Unlock()
				t.emit(output.Stdout, fmt.Sprintf("line %d", n))
			}
		case opSleep:
			timer := time.NewTimer(o.d)
			select {
			case <-timer.C:
			case <-t.stop:
				timer.Stop()
				code = sigtermExit
				break run
			}
		case opGate:
			select {
			case <-t.w.gate(o.text):
			case <-t.stop:
				code = sigtermExit
				break run
			}
		case opWait:
			<-t.stop
			code = sigtermExit
			break run
		case opExit:
			code = o.n
			break run
		case opFailFirst:
			if t.run <= o.k {
				code = o.n
				break run
			}
		}
	}
	t.w.mu.Lock()
	defer t.w.mu.Unlock()
	t.w.running--
	if t.lost {
		t.state = taskLost
	} else {
		t.state, t.exitCode = taskExited, code
		t.w.history[t.record].ended = time.Now()
	}
	t.changedLocked()
}

func (t *task) emit(s output.Stream, line string) { t.emitEntry(s, line, false) }

// emitEntry adds an output entry: a line, or with fragment a piece of
// text no newline follows.
func (t *task) emitEntry(s output.Stream, line string, fragment bool) {
	t.w.mu.Lock()
	defer t.w.mu.Unlock()
	t.entries = append(t.entries, output.Entry{Seq: uint64(len(t.entries) + 1), Stream: s, Time: time.Now(), Data: []byte(line), Fragment: fragment})
	t.changedLocked()
}

// signal stops the task, as SIGTERM stops a script.
func (t *task) signal() { t.stopOnce.Do(func() { close(t.stop) }) }

// find returns the task of a run, or nil.
func (w *world) find(runID string) *task {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tasks[runID]
}

// taskOf returns the current task of a job, or nil.
func (w *world) taskOf(jobID string) *task {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.tasks {
		if t.jobID == jobID {
			return t
		}
	}
	return nil
}

// remove deletes a run's task, as the executor's cleanup does.
func (w *world) remove(t *task) {
	t.signal()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.tasks[t.runID] == t {
		delete(w.tasks, t.runID)
	}
}

// lose makes a job's task vanish with its exit status, as a host restart
// does; what it printed stays (the output file survives).
func (w *world) lose(tb testing.TB, jobID string) {
	tb.Helper()
	t := w.taskOf(jobID)
	if t == nil {
		tb.Fatalf("job %s has no task to lose", jobID)
	}
	w.mu.Lock()
	t.lost = true
	w.mu.Unlock()
	t.signal()
	waitFor(tb, "the lost task to end", func() bool { return w.state(t) == taskLost })
}

func (w *world) state(t *task) taskState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return t.state
}

// snapshot returns what a task printed so far and how it stands.
func (w *world) snapshot(t *task) (entries []output.Entry, state taskState, code int, changed <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return t.entries, t.state, t.exitCode, t.changed
}

// runsOf returns how many scripts of a job were started.
func (w *world) runsOf(jobID string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runs[jobID]
}

// isRunning reports whether a job's script runs now.
func (w *world) isRunning(jobID string) bool {
	t := w.taskOf(jobID)
	return t != nil && w.state(t) == taskRunning
}

// runningJobs counts the scripts running now.
func (w *world) runningJobs() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running
}

// maxRunning is the most scripts that ran at once.
func (w *world) maxRunning() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxRun
}

// runHistory returns the scripts started so far, in start order.
func (w *world) runHistory() []runRecord {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]runRecord(nil), w.history...)
}

func (w *world) adoptCalls() []adoptCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]adoptCall(nil), w.adopts...)
}

// shutdown stops every task and waits for them.
func (w *world) shutdown() {
	w.mu.Lock()
	tasks := make([]*task, 0, len(w.tasks))
	for _, t := range w.tasks {
		tasks = append(tasks, t)
	}
	w.mu.Unlock()
	for _, t := range tasks {
		t.signal()
	}
	w.wg.Wait()
}

// errAgentDied is what a killed agent's executor calls return, to the
// killed agent only: nothing of them reaches the next one.
var errAgentDied = errors.New("fake executor: the agent was killed")

// fakeExecutor is the dispatcher's ScriptRunner in these tests. It keeps
// the containerd executor's contract (runner/container Run and Adopt):
// PhaseNetwork, then PhaseStarting before the script starts (an error there
// aborts the run with a zero StartedAt, and so does ctx ending before it),
// entries in order through onEntry, PhaseExited once the exit is known,
// then the rest of the output. Once the script runs, ctx ending means
// api.StatusCancelled, req.Timeout from the start api.StatusTimeout, a non-zero
// exit api.StatusFailed. Adopt takes a run over by its RunID with the journaled
// start (PhaseAdopted once it holds it), skips the entries the caller has,
// reports a task that ended meanwhile from its exit code, one lost with its
// host as Lost, and none (or one never started) as ErrNotStarted. A run
// cancelled with container.ErrHandOver is left running and returns
// HandedOver.
type fakeExecutor struct {
	w *world
	// mu is held while entries are handed over, so that kill returns only
	// once none is being handed over.
	mu        sync.Mutex
	dead      bool
	killed    chan struct{}
	thawed    chan struct{}
	thawOnce  sync.Once
	delivered map[string]uint64 // entries handed over, by job
}

var _ runner.ScriptRunner = (*fakeExecutor)(nil)

func newFakeExecutor(w *world) *fakeExecutor {
	return &fakeExecutor{w: w, killed: make(chan struct{}), thawed: make(chan struct{}), delivered: map[string]uint64{}}
}

// kill makes the executor the one of a killed agent: from its return on
// its calls hand over nothing more, leave their tasks alone and do not
// return (a dead process does nothing) until thaw.
func (e *fakeExecutor) kill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.dead {
		e.dead = true
		close(e.killed)
	}
}

// thaw lets a killed executor's calls return errAgentDied, so that the
// dead agent's goroutines can be wound down.
func (e *fakeExecutor) thaw() { e.thawOnce.Do(func() { close(e.thawed) }) }

func (e *fakeExecutor) isDead() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dead
}

// died is the end of a call of a killed executor.
func (e *fakeExecutor) died() (container.Result, error) {
	<-e.thawed
	return container.Result{}, errAgentDied
}

// deliveredCounts returns the entries handed over, by job.
func (e *fakeExecutor) deliveredCounts() map[string]uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]uint64, len(e.delivered))
	for k, v := range e.delivered {
		out[k] = v
	}
	return out
}

func phase(req container.Request, p container.Phase, at time.Time) error {
	if req.OnPhase == nil {
		return nil
	}
	if err := req.OnPhase(p, at); err != nil {
		return fmt.Errorf("phase %s of job %s: %w", p, req.JobID, err)
	}
	return nil
}

func (e *fakeExecutor) Run(ctx context.Context, req container.Request, onEntry container.EntryFunc) (container.Result, error) {
	if req.RunID == "" || req.JobID == "" || req.Image == "" {
		return container.Result{}, fmt.Errorf("fake executor: incomplete request %+v", req)
	}
	if err := phase(req, container.PhaseNetwork, time.Now()); err != nil {
		return container.Result{}, err
	}
	if e.isDead() {
		return e.died()
	}
	prog, err := parseProgram(string(req.Script))
	if err != nil {
		return container.Result{}, err // as a missing image: the script never starts
	}
	// The setup (image, snapshot, network, runtime API) takes ctx: a run
	// cancelled before its script starts ends in an error, with a zero
	// StartedAt, as the containerd executor's does.
	if len(prog) > 0 && prog[0].kind == opSetup {
		select {
		case <-e.w.gate(prog[0].text):
		case <-ctx.Done():
		}
		prog = prog[1:]
	}
	if err := ctx.Err(); err != nil {
		return container.Result{}, fmt.Errorf("fake executor: prepare the run: %w", err)
	}
	t := e.w.create(req, prog)
	startedAt := time.Now()
	// The caller journals the start before the script can do anything.
	if err := phase(req, container.PhaseStarting, startedAt); err != nil {
		e.w.remove(t)
		return container.Result{}, err
	}
	if e.isDead() {
		return e.died()
	}
	e.w.start(t, startedAt)
	return e.follow(ctx, req, t, startedAt, 0, onEntry)
}

func (e *fakeExecutor) Adopt(ctx context.Context, req container.Request, startedAt time.Time, skip uint64, onEntry container.EntryFunc) (container.Result, error) {
	if startedAt.IsZero() {
		return container.Result{}, fmt.Errorf("adopt job %s: no start time", req.JobID)
	}
	t := e.w.find(req.RunID)
	e.w.mu.Lock()
	e.w.adopts = append(e.w.adopts, adoptCall{jobID: req.JobID, runID: req.RunID, startedAt: startedAt})
	e.w.mu.Unlock()
	if req.OnPhase != nil {
		_ = req.OnPhase(container.PhaseAdopted, time.Now())
	}
	if t == nil {
		return container.Result{}, fmt.Errorf("adopt job %s: %w", req.JobID, container.ErrNotStarted)
	}
	switch entries, state, _, _ := e.w.snapshot(t); state {
	case taskCreated:
		e.w.remove(t)
		return container.Result{}, fmt.Errorf("adopt job %s: its task was created but never started: %w", req.JobID, container.ErrNotStarted)
	case taskLost:
		next := skip
		if !e.hand(req.JobID, entries, &next, onEntry) {
			return e.died()
		}
		e.w.remove(t)
		return container.Result{Status: api.StatusFailed, ExitCode: 255, Lost: true, LostReason: lostReason,
			StartedAt: startedAt, FinishedAt: time.Now(), Entries: uint64(len(entries))}, nil
	}
	return e.follow(ctx, req, t, startedAt, skip, onEntry)
}

// hand hands entries from *next on to onEntry; false once the agent is dead.
func (e *fakeExecutor) hand(jobID string, entries []output.Entry, next *uint64, onEntry container.EntryFunc) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dead {
		return false
	}
	for ; *next < uint64(len(entries)); *next++ {
		onEntry(entries[*next])
	}
	e.delivered[jobID] = *next
	return true
}

// follow waits for a started task's end as the executor's finish does:
// the timeout counts from startedAt, cancellation comes through ctx.
func (e *fakeExecutor) follow(ctx context.Context, req container.Request, t *task, startedAt time.Time, skip uint64, onEntry container.EntryFunc) (container.Result, error) {
	var deadline <-chan time.Time
	if req.Timeout > 0 {
		timer := time.NewTimer(time.Until(startedAt.Add(req.Timeout)))
		defer timer.Stop()
		deadline = timer.C
	}
	done := ctx.Done()
	var stoppedAs api.Status
	next := skip
	for {
		entries, state, code, changed := e.w.snapshot(t)
		if state == taskLost {
			if !e.hand(req.JobID, entries, &next, onEntry) {
				return e.died()
			}
			e.w.remove(t)
			return container.Result{Status: api.StatusFailed, ExitCode: 255, Lost: true, LostReason: lostReason,
				StartedAt: startedAt, FinishedAt: time.Now(), Entries: uint64(len(entries))}, nil
		}
		if state == taskExited {
			res := container.Result{Status: api.StatusCompleted, ExitCode: code, StartedAt: startedAt, FinishedAt: time.Now()}
			switch {
			case stoppedAs != "":
				res.Status = stoppedAs
			case code != 0:
				res.Status = api.StatusFailed
			}
			// The exit is journaled before the rest of the output is read.
			phaseErr := phase(req, container.PhaseExited, res.FinishedAt)
			if !e.hand(req.JobID, entries, &next, onEntry) {
				return e.died()
			}
			res.Entries = uint64(len(entries))
			e.w.remove(t)
			return res, phaseErr
		}
		if !e.hand(req.JobID, entries, &next, onEntry) {
			return e.died()
		}
		select {
		case <-changed:
		case <-done:
			if errors.Is(context.Cause(ctx), container.ErrHandOver) {
				// Left running, as the containerd executor leaves it.
				return container.Result{HandedOver: true, StartedAt: startedAt}, nil
			}
			done = nil
			if stoppedAs == "" {
				stoppedAs = api.StatusCancelled
			}
			t.signal()
		case <-deadline:
			deadline = nil
			if stoppedAs == "" {
				stoppedAs = api.StatusTimeout
			}
			t.signal()
		case <-e.killed:
			return e.died()
		}
	}
}

// The rest of runner.LocalRuntime, for Agent.Run: nothing to sweep, every
// image ready, no cleanup to wait for.

func (e *fakeExecutor) GC(context.Context, ...container.GCOption) (container.GCReport, error) {
	return container.GCReport{}, nil
}

func (e *fakeExecutor) PrepareImage(_ context.Context, ref string) (string, error) { return ref, nil }

func (e *fakeExecutor) Wait(context.Context) error { return nil }

var _ runner.LocalRuntime = (*fakeExecutor)(nil)
