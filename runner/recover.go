package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/state"
)

// resumed is an attempt a previous agent process journaled as begun.
type resumed struct {
	p state.Progress
	// owned is called once the run is held again (or found gone): until
	// then a sweep could take it for a leftover.
	owned func()
}

// notStartedStatus marks an outcome whose attempt never started its script.
const notStartedStatus = "not-started"

// adoptWait bounds how long Recover waits for the recovered runs to be
// held before it lets the sweeps run.
const adoptWait = 2 * time.Minute

// Recover takes over the jobs a previous agent process left unfinished in
// the journal (it was killed, or the host restarted). Call it before Run,
// and before any sweep of leftovers: adopted runs are then owned again.
//
//   - A job claimed but never begun is released to the queue.
//   - An attempt whose script was started is adopted: a task still running
//     is followed to its end, one that ended meanwhile is reported from its
//     real exit status and output, one that is gone is reported lost.
//   - An attempt set up but never started is removed; the job is released
//     if it was the first attempt, else that attempt is run again.
//
// Adopted jobs run under base, like claimed ones; Run waits for them.
func (d *Dispatcher) Recover(base context.Context) (int, error) {
	jobs, err := d.jobs.Unfinished(base)
	if err != nil {
		return 0, fmt.Errorf("recover jobs from the journal: %w", err)
	}
	base = context.WithoutCancel(base)
	var owned sync.WaitGroup
	for _, jb := range jobs {
		p := jb.Progress()
		d.log.Info("recovering a job from the journal", "job", p.JobID, "state", p.State, "attempt", p.Attempt, "execution", p.ExecutionID, "started", !p.StartedAt.IsZero())
		if p.State == state.Claimed || p.Attempt == 0 {
			d.releaseJob(jb, "the agent restarted before the job started")
			continue
		}
		owned.Add(1)
		done := sync.OnceFunc(owned.Done)
		if !d.spawn(base, p.JobID, func(ctx context.Context) {
			defer done()
			d.setRunning(p.JobID, p.ExecutionID, p.Attempt, p.StartedAt)
			d.resumeAttempts(ctx, jb, &resumed{p: p, owned: done})
		}) {
			done()
		}
	}
	waited := make(chan struct{})
	go func() {
		owned.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(adoptWait):
		d.log.Warn("recovered runs not all taken over yet; sweeping anyway", "after", adoptWait)
	}
	return len(jobs), nil
}

// resumeAttempts continues a recovered job at its journaled attempt.
func (d *Dispatcher) resumeAttempts(ctx context.Context, jb *state.Job, rs *resumed) {
	p := rs.p
	if p.ExecutionEnded && p.Attempt < attempts(jb.Backend()) {
		// The attempt ended, was reported and its run removed; the agent
		// stopped while it waited to retry. (Only a retried attempt's end
		// is journaled on its own: a last one's goes with the completion.)
		rs.owned()
		d.runAttempts(ctx, jb, p.Attempt+1)
		return
	}
	o := d.resume(ctx, jb, rs)
	rs.owned()
	switch {
	case o.status == notStartedStatus && p.Attempt <= 1:
		d.releaseJob(jb, "the agent restarted before the job's script started")
	case o.status == notStartedStatus:
		d.runAttempts(ctx, jb, p.Attempt)
	case o.retryable() && p.Attempt < attempts(jb.Backend()):
		d.endExecution(ctx, jb, o)
		d.runAttempts(ctx, jb, p.Attempt+1)
	default:
		d.finish(jb, o)
	}
}

// resume adopts the journaled attempt of a job.
func (d *Dispatcher) resume(ctx context.Context, jb *state.Job, rs *resumed) outcome {
	job, p := jb.Backend(), rs.p
	r := d.newRun(jb, p.ExecutionID, p.Entries)
	if job.OriginalType == api.TypeHTTP {
		if p.StartedAt.IsZero() {
			r.logs.close()
			return outcome{status: notStartedStatus}
		}
		msg := "the agent restarted while the HTTP request was in flight; it is not sent again (it may have reached its target)"
		r.system(msg)
		r.stderr.Write([]byte(msg + "\n"))
		return r.end(outcome{status: "failed", exitCode: 1, start: p.StartedAt, end: time.Now(), executor: executorHTTP})
	}
	req, err := d.policy.Request(scriptJob(job), p.AttemptStart)
	if err != nil {
		r.logs.close()
		return outcome{status: "failed", exitCode: 1, neverRan: true, errMsg: err.Error(), start: p.AttemptStart, end: time.Now()}
	}
	req.RunID = p.RunID
	onPhase := d.onPhase(jb)
	req.OnPhase = func(ph container.Phase, at time.Time) error {
		if ph == container.PhaseAdopted {
			rs.owned()
			return nil
		}
		return onPhase(ph, at)
	}
	if !p.StartedAt.IsZero() {
		req.Execution.StartTime = p.StartedAt
	}
	// The output file is read from its start again: the completion's
	// capped output needs all of it; the journal takes only what is new.
	// Without a journaled start the script cannot have started (the start
	// is journaled first): Adopt then only removes what was set up.
	startedAt := p.StartedAt
	if startedAt.IsZero() {
		startedAt = p.AttemptStart
	}
	res, err := d.scripts.Adopt(ctx, req, startedAt, 0, r.entry)
	cleaned := time.Now() // Adopt returns once the run's leftovers are removed
	switch {
	case errors.Is(err, container.ErrNotStarted):
		r.logs.close()
		return outcome{status: notStartedStatus}
	case err != nil && res.StartedAt.IsZero():
		res = container.Result{Status: container.StatusFailed, ExitCode: 1, StartedAt: p.StartedAt, FinishedAt: time.Now()}
	}
	if p.StartedAt.IsZero() && err == nil {
		// Started by the previous process after all (its start record was
		// not journaled): now it is, with the execution's start update
		// that went with it.
		var items []journalItem
		if it, ierr := startItem(p.ExecutionID, p.AttemptStart, res.StartedAt); ierr == nil {
			items = append(items, it)
		}
		_ = jb.Update(context.WithoutCancel(ctx), func(pp *state.Progress) { pp.StartedAt = res.StartedAt.UTC() }, items...)
	}
	o := d.scriptOutcome(ctx, r, req, res, err)
	o.executor, o.cleaned, o.adopted = executorContainer, cleaned, true
	return r.end(o)
}

// releaseJob journals the release of a job that will not run here.
func (d *Dispatcher) releaseJob(jb *state.Job, why string) {
	it, err := state.Item(state.KindRelease, state.ReleaseItem{Message: why})
	if err != nil {
		d.log.Error("encode release", "error", err)
		return
	}
	d.log.Info("releasing job", "job", jb.Backend().ID, "reason", why)
	d.endJob(jb, func(p *state.Progress) { p.State = state.Released }, it)
}

// reconcile compares what the backend believes this agent holds
// (jobs/orphaned) with the journal: jobs the journal does not know are
// released; the others are already being run, delivered, or released by
// the journal's own items.
func (d *Dispatcher) reconcile(ctx context.Context) error {
	rows, err := d.be.Orphaned(ctx)
	if err != nil {
		return fmt.Errorf("list the jobs the backend believes this agent holds: %w", err)
	}
	for _, row := range rows {
		if row.ID == "" {
			continue
		}
		p, known, err := d.jobs.Get(ctx, row.ID)
		if err != nil {
			return err
		}
		switch {
		case !known:
			d.log.Info("the backend lists a job this agent never started; releasing it", "job", row.ID, "status", row.Status)
			d.releaseNow(row.ID, "the agent restarted and has no record of starting the job")
		case p.State == state.Finished || p.State == state.Released:
			d.log.Info("the backend still lists a job this agent ended; its report is in the journal", "job", row.ID, "state", p.State)
		}
	}
	return nil
}
