package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/state"
)

// Exit codes the backend reads as the way a job ended (§2.4).
const (
	ExitTimeout   = -1
	ExitCancelled = -2
)

// retryable: the job's retry policy may run it again.
func retryable(s api.Status) bool { return s == api.StatusFailed || s == api.StatusTimeout }

// Target is the kind of place a job runs on. Each has one executor; the
// dispatcher picks it by the job's target and knows nothing else of it.
type Target string

// Targets.
const (
	TargetContainer Target = "container" // a script in a container on this host
	TargetHTTP      Target = "http"      // an HTTP request the agent makes
	TargetServer    Target = "ssh"       // a script on a remote server, over SSH
	TargetTool      Target = "tool"      // a tool action (Slack, email, ...)
)

// jobType is the backend job type a target's jobs come as, which is what
// the agent asks the backend for.
func (t Target) jobType() string {
	switch t {
	case TargetHTTP:
		return api.TypeHTTP
	case TargetTool:
		return api.TypeToolAction
	}
	return api.TypeScript
}

// TargetOf says where a job runs, or what makes it unrunnable anywhere.
func TargetOf(job *api.Job) (Target, error) {
	switch job.OriginalType {
	case api.TypeToolAction:
		return TargetTool, nil
	case api.TypeHTTP:
		if job.HTTP == nil {
			return "", fmt.Errorf("an HTTP_REQUEST job without a request")
		}
		return TargetHTTP, nil
	case api.TypeScript:
		if job.Script == nil {
			return "", fmt.Errorf("a SCRIPT job without a script")
		}
		if job.Type == "ssh" || job.Target.Type == "server" {
			return TargetServer, nil
		}
		return TargetContainer, nil
	}
	return "", fmt.Errorf("unknown job type %q", job.OriginalType)
}

// Executor runs the attempts of jobs on one kind of target. The
// dispatcher journals everything an executor reports through the Attempt
// it is handed, retries, and reports the end; an executor only runs.
type Executor interface {
	// Run runs the attempt to its end. ctx ends when the job is cancelled
	// (context.Cause says why); the run then ends as api.StatusCancelled.
	// Before its script (or request) starts, the executor calls
	// a.Started: once that returns nil, a restarted agent adopts the
	// attempt instead of starting it again.
	Run(ctx context.Context, a *Attempt) Result
	// Adopt takes over an attempt a previous agent process began
	// (a.StartedAt is its journaled start, zero when none was journaled):
	// it follows a run still going to its end, reports one that ended
	// meanwhile, and one that is gone as lost. NotStarted says nothing of
	// it had started (what was set up is removed): the dispatcher then
	// runs the attempt again or releases the job.
	Adopt(ctx context.Context, a *Attempt) Result
}

// String is what a target's jobs are called in messages.
func (t Target) String() string {
	switch t {
	case TargetContainer:
		return "script jobs in containers"
	case TargetHTTP:
		return "HTTP requests"
	case TargetServer:
		return "SSH jobs"
	case TargetTool:
		return "tool actions"
	}
	return string(t)
}

// Executors are the agent's executors by target; a job whose target has
// none is refused with a message saying so.
type Executors map[Target]Executor

// refusal says why the agent cannot run a job, or "".
func (x Executors) refusal(job *api.Job) string {
	t, err := TargetOf(job)
	if err != nil {
		return err.Error()
	}
	if x[t] != nil {
		return ""
	}
	var runs []string
	for t := range x {
		runs = append(runs, t.String())
	}
	sort.Strings(runs)
	return fmt.Sprintf("%s are not supported by this agent (it runs %s)", t, strings.Join(runs, ", "))
}

// JobTypes are the backend job types the executors run, which is all the
// agent asks for.
func (x Executors) JobTypes() []string {
	seen := map[string]bool{}
	var out []string
	for t := range x {
		if jt := t.jobType(); !seen[jt] {
			seen[jt] = true
			out = append(out, jt)
		}
	}
	sort.Strings(out)
	return out
}

// Result is how an attempt ended, as its executor says.
type Result struct {
	Status api.Status
	// ExitCode is as the backend takes it: ExitTimeout, ExitCancelled, or
	// the script's own.
	ExitCode int
	// Start and End bound the script (or request) itself.
	Start, End time.Time
	// NeverRan: the attempt failed before its script started (image
	// missing, bad request); Err says why and the job is failed through
	// jobs/{id}/fail.
	NeverRan bool
	Err      string
	// NotStarted (Adopt only): nothing of the attempt had started.
	NotStarted bool
	// Output is the step's output when the executor makes it (an HTTP
	// response); what a script sets through the runtime API wins over it.
	Output json.RawMessage
	// Cleaned is when the removal of what the run created ended (zero:
	// nothing to remove).
	Cleaned time.Time
	// Usage is what the script consumed, from an executor that measures
	// it (containers, from the job's cgroup); nil from the others and for
	// a run that never started.
	Usage *Usage
	// HandedOver: the run goes on, left to the next agent process at a
	// hand-over (ErrHandOver); nothing of it was stopped or removed, and
	// nothing else in the Result counts.
	HandedOver bool
	// Release, if set, is called once the attempt's end is journaled: it
	// removes what the run kept until then for an agent that would adopt
	// it (an SSH run's work directory: removed before, a crash in between
	// would lose the run's status).
	Release func(ctx context.Context)
}

// NeverRan is the result of an attempt that failed before its script
// started (begun at start): the job is failed with err's message.
func NeverRan(start time.Time, err error) Result {
	return Result{Status: api.StatusFailed, ExitCode: 1, NeverRan: true, Err: err.Error(), Start: start, End: time.Now()}
}

// Attempt is one attempt of a job as its executor sees it: what to run,
// and where what the run produces goes. Its methods journal; an executor
// calls them from one goroutine at a time.
type Attempt struct {
	Job         *api.Job
	ExecutionID string
	// RunID names what the attempt creates (a container, a remote work
	// directory): unique per attempt and journaled before anything is
	// created, so that a restarted agent finds it.
	RunID      string
	Number, Of int
	// Start is when the attempt began: its setup starts there.
	Start time.Time
	// StartedAt (Adopt only) is the journaled start of the script; zero
	// when none was journaled.
	StartedAt time.Time
	Log       *slog.Logger

	jb     *state.Job
	r      *run
	target Target
	fault  func(string)
	owned  func()
	gate   *handOverGate
}

// Started journals that the script (or request) starts at at, with the
// execution's start update, in one transaction: a crash cannot leave one
// without the other. An error means it could not be journaled; the
// executor must then not start.
func (a *Attempt) Started(at time.Time) error {
	p := a.jb.Progress()
	it, err := startItem(p.ExecutionID, p.AttemptStart, at)
	if err != nil {
		return err
	}
	// The run id too: a warm sandbox's replaces the one journaled at the
	// attempt's begin, and a restart must find the run under it.
	if err := a.jb.Update(context.Background(), func(p *state.Progress) { p.StartedAt, p.RunID = at.UTC(), a.RunID }, it); err != nil {
		return err
	}
	a.gate.started()
	return nil
}

// Exited journals how the run ended (its executor's status and exit
// code) before the executor removes what would tell it again: an agent
// killed in between then reports this exit after its restart, instead of
// a run lost and tried again.
func (a *Attempt) Exited(status api.Status, code int, at time.Time) error {
	exit := &state.AttemptExit{Status: string(status), Code: code, At: at.UTC()}
	return a.jb.Update(context.Background(), func(p *state.Progress) { p.Exit = exit })
}

// journaledExit is the exit Exited journaled for this attempt, if any.
func (a *Attempt) journaledExit() *state.AttemptExit {
	if p := a.jb.Progress(); p.ExecutionID == a.ExecutionID {
		return p.Exit
	}
	return nil
}

// Output takes the run's next output entry (entries are counted: a run
// adopted after a restart reads its output from the start again and the
// journal takes only what it does not have).
func (a *Attempt) Output(e output.Entry) { a.r.entry(e) }

// OutputFrom takes the next output entry of source src (≥ 0), one of
// several whose output is read apart (the servers of a multi-server job):
// a run adopted after a restart skips what is journaled source by source.
func (a *Attempt) OutputFrom(src int, e output.Entry) { a.r.entryFrom(src, e) }

// Text adds what the executor produced itself to a stream: as it is to
// the output the completion carries, line by line to the live log, the
// job's secrets masked.
func (a *Attempt) Text(s output.Stream, text []byte) {
	buf := a.r.stdout
	if s == output.Stderr {
		buf = a.r.stderr
	}
	masked := a.r.mask.Mask(string(text))
	buf.WriteString(masked)
	now := time.Now().UTC()
	for _, line := range strings.Split(strings.TrimSuffix(masked, "\n"), "\n") {
		a.r.logs.add(s.String(), line, now, 0, 0)
	}
}

// System logs one of the agent's own lines in the job's log (the job's
// secrets masked: an error may quote a value).
func (a *Attempt) System(line string) { a.r.system(line) }

// Stderr adds text to the stderr the completion carries only (not the
// live log): what the agent has to say beside the script's own output.
func (a *Attempt) Stderr(text string) { a.r.stderr.WriteString(a.r.mask.Mask(text)) }

// AddSecrets adds values that the job's text must not show from now on:
// secrets an executor learns during the run (a tool's credentials, a
// server's details fetched from the backend). Values the job carries
// (secret environment values, its servers' passwords and keys) are masked
// already. A no-op when masking is off.
func (a *Attempt) AddSecrets(values ...string) { a.r.mask.Add(values...) }

// Owned says (Adopt only) that the run is held again: until then a sweep
// could take it for a leftover.
func (a *Attempt) Owned() {
	if a.owned != nil {
		a.owned()
	}
	if !a.StartedAt.IsZero() {
		a.gate.started()
	}
}

// Fault marks a named point of the run; fault-injection tests kill the
// agent there.
func (a *Attempt) Fault(point string) {
	if a.fault != nil {
		a.fault(point)
	}
}

// Executions of one attempt on several servers (multi-server SSH jobs,
// §3): the attempt's own execution is its first server's; the executor
// creates the others, and reports the start and end of each.

// CreateExecution journals the creation of execution execID for server
// serverID (named name) beside the attempt's own.
func (a *Attempt) CreateExecution(execID, serverID, name string) error {
	it, err := state.Item(state.KindExecution, state.ExecutionItem{
		ExecutionID: execID, JobID: a.Job.ID, Attempt: a.Number, ServerID: serverNumber(serverID), ServerName: name})
	if err != nil {
		return err
	}
	// Not to be handed over before it starts (or ends without).
	a.gate.created(execID)
	return a.jb.Update(context.Background(), func(p *state.Progress) {
		if !slices.Contains(p.Executions, execID) {
			p.Executions = append(p.Executions, execID)
		}
	}, it)
}

// ExecutionStarted journals that execution execID (one CreateExecution
// made) started its script at at.
func (a *Attempt) ExecutionStarted(execID string, at time.Time) error {
	it, err := startItem(execID, a.Start, at)
	if err != nil {
		return err
	}
	if err := a.jb.Update(context.Background(), func(*state.Progress) {}, it); err != nil {
		return err
	}
	a.gate.settled(execID)
	return nil
}

// EndExecution journals the end update of execution execID (the
// attempt's own or one CreateExecution made), whose script started at
// startedAt (zero: it never did), ended as r, and printed stdout and
// stderr. The attempt's own execution is then not ended again with the
// job.
func (a *Attempt) EndExecution(execID string, startedAt time.Time, r Result, stdout, stderr string) error {
	defer a.gate.settled(execID)
	p := a.jb.Progress()
	own := execID == p.ExecutionID
	p.ExecutionID, p.StartedAt, p.ExecutionEnded = execID, startedAt, false
	m := a.r.mask
	r.Err = m.Mask(r.Err)
	it, err := endItems(p, outcome{Result: r, stdout: m.Mask(stdout), stderr: m.Mask(stderr), executor: a.target})
	if err != nil || len(it) == 0 {
		return err
	}
	return a.jb.Update(context.Background(), func(p *state.Progress) {
		if own {
			p.ExecutionEnded = true
		}
	}, it...)
}
