package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/httpexec"
)

// ScriptRunner runs a script job to its end in a container (the containerd
// executor), or takes over one a previous agent process started.
type ScriptRunner interface {
	Run(ctx context.Context, req container.Request, onEntry container.EntryFunc) (container.Result, error)
	Adopt(ctx context.Context, req container.Request, startedAt time.Time, skip uint64, onEntry container.EntryFunc) (container.Result, error)
}

// ContainerExecutor runs script jobs in containers on this host, under the
// agent's policy.
type ContainerExecutor struct {
	scripts ScriptRunner
	policy  Policy
}

// NewContainerExecutor returns the executor of TargetContainer.
func NewContainerExecutor(scripts ScriptRunner, policy Policy) *ContainerExecutor {
	return &ContainerExecutor{scripts: scripts, policy: policy}
}

// LocalExecutors are the executors of a host that runs jobs itself: script
// jobs in containers, HTTP requests from the agent (under httpOpts: the
// outbound policy, without which every request is refused).
func LocalExecutors(scripts ScriptRunner, policy Policy, httpOpts ...httpexec.Option) Executors {
	return Executors{
		TargetContainer: NewContainerExecutor(scripts, policy),
		TargetHTTP:      NewHTTPExecutor(policy, httpOpts...),
	}
}

// request is the container run of attempt a.
func (x *ContainerExecutor) request(a *Attempt, start time.Time) (container.Request, error) {
	req, err := x.policy.Request(ScriptJob(a.Job), start)
	if err != nil {
		return req, err
	}
	req.RunID = a.RunID
	req.OnRunID = func(id string) { a.RunID = id }
	req.OnExit = a.Exited
	req.OnPhase = func(ph container.Phase, at time.Time) error {
		switch ph {
		case container.PhaseNetwork:
			a.Fault("network")
		case container.PhaseCreated:
			a.Fault("container")
		case container.PhaseStarting:
			// Its timeout counts from here after a restart.
			return a.Started(at)
		case container.PhaseAdopted:
			a.Owned()
		case container.PhaseExited:
			a.Fault("exited")
		}
		return nil
	}
	return req, nil
}

// HandsOver implements HandsOver: a container runs on without the agent
// (its shim and output logger are containerd's).
func (x *ContainerExecutor) HandsOver() bool { return true }

// Run implements Executor.
func (x *ContainerExecutor) Run(ctx context.Context, a *Attempt) Result {
	req, err := x.request(a, a.Start)
	if err != nil {
		return NeverRan(a.Start, err)
	}
	res, err := x.scripts.Run(ctx, req, a.Output)
	if res.HandedOver {
		return HandedOver()
	}
	if err != nil && res.StartedAt.IsZero() {
		return NeverRan(a.Start, err)
	}
	r := x.result(a, req, res, err)
	r.Cleaned = time.Now() // Run returns once the run's leftovers are removed
	return r
}

// Adopt implements Executor.
func (x *ContainerExecutor) Adopt(ctx context.Context, a *Attempt) Result {
	req, err := x.request(a, a.Start)
	if err != nil {
		return NeverRan(a.Start, err)
	}
	if !a.StartedAt.IsZero() {
		req.Execution.StartTime = a.StartedAt
	}
	// The output file is read from its start again: the completion's
	// capped output needs all of it; the journal takes only what is new.
	// Without a journaled start the script cannot have started (the start
	// is journaled first): Adopt then only removes what was set up.
	startedAt := a.StartedAt
	if startedAt.IsZero() {
		startedAt = a.Start
	}
	res, err := x.scripts.Adopt(ctx, req, startedAt, 0, a.Output)
	cleaned := time.Now() // Adopt returns once the run's leftovers are removed
	if res.Lost && a.StartedAt.IsZero() && res.Entries == 0 {
		// No start journaled (it is journaled before the task starts) and
		// no output: killed while setting up, after the container was made
		// and before its task was. Nothing ran; Adopt removed what was set
		// up.
		return Result{NotStarted: true}
	}
	if exit := a.journaledExit(); res.Lost && exit != nil {
		// Killed after its task's exit was journaled and the task deleted:
		// the run ended as journaled, and its output is all on file.
		a.Log.Info("the run's task is gone, its exit was journaled before the agent stopped", "status", exit.Status, "exitCode", exit.Code)
		res.Lost, res.LostReason = false, ""
		res.Status, res.ExitCode, res.FinishedAt = api.Status(exit.Status), exit.Code, exit.At
		if res.Status == api.StatusCompleted && res.ExitCode != 0 {
			res.Status = api.StatusFailed
		}
	}
	switch {
	case res.HandedOver:
		return HandedOver()
	case errors.Is(err, container.ErrNotStarted):
		return Result{NotStarted: true}
	case err != nil && res.StartedAt.IsZero():
		res = container.Result{Status: api.StatusFailed, ExitCode: 1, StartedAt: a.StartedAt, FinishedAt: time.Now()}
	}
	if a.StartedAt.IsZero() && err == nil {
		// Started by the previous process after all (its start record was
		// not journaled): now it is.
		_ = a.Started(res.StartedAt)
	}
	r := x.result(a, req, res, err)
	r.Cleaned = cleaned
	return r
}

// result turns the container executor's result into the attempt's,
// saying in the job's log what the exit code alone does not.
func (x *ContainerExecutor) result(a *Attempt, req container.Request, res container.Result, err error) Result {
	r := Result{Status: res.Status, ExitCode: res.BackendExitCode(), Start: res.StartedAt, End: res.FinishedAt, Usage: containerUsage(res.Usage)}
	if res.Lost {
		a.System(res.LostReason)
		a.Stderr("cronium-agent: " + res.LostReason + "\n")
	}
	if res.OOMKilled {
		line := fmt.Sprintf("killed: out of memory (limit %d MiB)", res.MemoryLimit>>20)
		a.System(line)
		a.Stderr(line + "\n")
	}
	if res.Status == api.StatusTimeout {
		a.System(fmt.Sprintf("timed out after %s", req.Timeout))
	}
	for _, note := range res.Notes {
		a.System(note) // the result stands; the log says what the agent could not do
	}
	if err != nil {
		// The script ran but the agent lost part of the run (its output).
		a.Stderr("cronium-agent: " + err.Error() + "\n")
		if r.Status == api.StatusCompleted || r.Status == "" {
			r.Status, r.ExitCode = api.StatusFailed, 1
		}
	}
	return r
}

// ScriptJob is the runner's view of a SCRIPT job.
func ScriptJob(job *api.Job) Job {
	rj := Job{
		ID: job.ID, EventID: job.Metadata.EventID, UserID: job.Metadata.UserID,
		Runtime: job.Script.Runtime, Script: []byte(job.Script.Content), Env: job.Environment,
		Timeout: job.Timeout, Input: job.Input,
		EventName: job.Metadata.EventName, EventType: job.OriginalType, Trigger: job.Metadata.TriggeredBy,
		Metadata: job.Metadata.Raw,
	}
	if r := job.Resources; r != nil {
		rj.Resources = oci.Resources{CPU: r.CPU, MemoryBytes: r.Memory, Pids: r.Pids}
	}
	return rj
}
