package runner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/state"
)

// adoptWait bounds how long Recover waits for the recovered runs to be
// held before it lets the sweeps run.
const adoptWait = 2 * time.Minute

// Recover takes over the jobs a previous agent process left unfinished in
// the journal (it was killed, or the host restarted). Call it before Run,
// and before any sweep of leftovers: adopted runs are then owned again.
//
//   - A job claimed but never begun is released to the queue.
//   - An attempt that was started is adopted by its executor: a run still
//     going is followed to its end, one that ended meanwhile is reported
//     from how it really ended, one that is gone is reported lost.
//   - An attempt set up but never started is removed; the job is released
//     if it was the first attempt, else that attempt is run again.
//
// Adopted jobs run under base, like claimed ones; Run waits for them.
func (d *Dispatcher) Recover(base context.Context) (int, error) {
	jobs, err := d.env.jobs.Unfinished(base)
	if err != nil {
		return 0, fmt.Errorf("recover jobs from the journal: %w", err)
	}
	base = context.WithoutCancel(base)
	var owned sync.WaitGroup
	for _, jb := range jobs {
		p := jb.Progress()
		d.log.Info("recovering a job from the journal", "job", p.JobID, "state", p.State, "attempt", p.Attempt, "execution", p.ExecutionID, "started", !p.StartedAt.IsZero())
		jr := d.env.runnerFor(jb)
		if p.State == state.Claimed || p.Attempt == 0 {
			jr.release("the agent restarted before the job started")
			continue
		}
		owned.Add(1)
		done := sync.OnceFunc(owned.Done)
		if !d.spawn(base, p.JobID, func(ctx context.Context) {
			defer done()
			d.setRunning(p.JobID, p.ExecutionID, p.Attempt, p.StartedAt)
			jr.resumeAttempts(ctx, p, done)
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

// resumeAttempts continues a recovered job at its journaled attempt p;
// owned is called once its run is held again (or found gone).
func (jr *jobRunner) resumeAttempts(ctx context.Context, p state.Progress, owned func()) {
	if jr.exec == nil {
		// Begun by an agent that could run it; this one cannot follow it.
		owned()
		now := time.Now()
		msg := fmt.Sprintf("cronium-agent: the agent restarted without an executor for %s; the run it began is not followed\n", jr.target)
		jr.finish(outcome{Result: Result{Status: api.StatusFailed, ExitCode: 1, Start: now, End: now}, stderr: msg, executor: jr.target})
		return
	}
	if p.ExecutionEnded && p.Attempt < attempts(jr.job) {
		// The attempt ended, was reported and its run removed; the agent
		// stopped while it waited to retry. (Only a retried attempt's end
		// is journaled on its own: a last one's goes with the completion.)
		owned()
		jr.runAttempts(ctx, p.Attempt+1)
		return
	}
	a := jr.newAttempt(p.ExecutionID, p.RunID, p.Attempt, p.Attempts, p.AttemptStart, skippedOf(p))
	a.StartedAt, a.owned = p.StartedAt, owned
	// Held again (Owned), with its start journaled, it may be handed over
	// once more.
	jr.phase(phaseRunning)
	res := jr.exec.Adopt(ctx, a)
	jr.phase(phaseBusy)
	o := jr.end(ctx, a, res, true)
	owned()
	switch {
	case o.HandedOver:
		jr.log.Info("left running for the next start", "attempt", p.Attempt)
	case errors.Is(context.Cause(ctx), errSuperseded):
		jr.supersede(o)
		o.release(ctx)
	case o.NotStarted && p.Attempt <= 1:
		jr.release("the agent restarted before the job's script started")
	case o.NotStarted:
		jr.runAttempts(ctx, p.Attempt)
	case retryable(o.Status) && p.Attempt < attempts(jr.job):
		jr.endExecution(ctx, o)
		o.release(ctx)
		jr.runAttempts(ctx, p.Attempt+1)
	default:
		jr.finish(o)
		o.release(ctx)
	}
}

// reconcile compares what the backend believes this agent holds
// (jobs/orphaned) with the journal: jobs the journal does not know are
// released; the others are already being run, delivered, or released by
// the journal's own items.
func (d *Dispatcher) reconcile(ctx context.Context) error {
	rows, err := d.env.be.Orphaned(ctx)
	if err != nil {
		return fmt.Errorf("list the jobs the backend believes this agent holds: %w", err)
	}
	for _, row := range rows {
		if row.ID == "" {
			continue
		}
		p, known, err := d.env.jobs.Get(ctx, row.ID)
		if err != nil {
			return err
		}
		switch {
		case !known:
			d.log.Info("the backend lists a job this agent never started; releasing it", "job", row.ID, "status", row.Status)
			d.env.releaseNow(row.ID, "the agent restarted and has no record of starting the job")
		case p.State.Ended():
			d.log.Info("the backend still lists a job this agent ended; its report is in the journal", "job", row.ID, "state", p.State)
		}
	}
	return nil
}
