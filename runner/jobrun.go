package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/mask"
	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/state"
)

// maxAttempts bounds a job's retry policy, whatever it asks.
const maxAttempts = 10

// jobEnv is what every job's run shares with the dispatcher that started
// it: the dispatcher claims jobs and holds their slots, a jobRunner runs
// one job from its claim to its completion (as buildkite-agent's
// AgentWorker and JobRunner split the work).
type jobEnv struct {
	be        Backend
	jobs      *state.Jobs
	executors Executors
	outputCap int
	// masking says which of a job's values its logs never show.
	masking Masking
	fault   func(string)
	log     *slog.Logger
	// stopped ends the retrying of journal writes at a hard stop: the
	// next start recovers what they were about.
	stopped <-chan struct{}
	// attempting records the attempt a job is at (status, heartbeat).
	attempting func(jobID, execution string, attempt int, start time.Time)
	// ended counts a job's end (metrics).
	ended func(o outcome)
	// observer, if set, hears of claims (metrics).
	observer Observer
	// gateOf is a running job's hand-over gate (nil: none).
	gateOf func(jobID string) *handOverGate
}

// jobRunner runs one job: its attempts, their retries, the adoption of an
// attempt a previous agent process began, and the journaling of its one
// completing item.
type jobRunner struct {
	*jobEnv
	jb  *state.Job
	job *api.Job
	// target and exec are where the job runs; exec is nil when this agent
	// has no executor for it (the job is refused).
	target Target
	exec   Executor
	log    *slog.Logger
	// mask masks the job's secrets in all its attempts' text (nil: off).
	mask *mask.Masker
}

// phase moves the job to phase p of its hand-over gate; false if it was
// handed over meanwhile: the job then returns at once, journaling nothing.
func (jr *jobRunner) phase(p gatePhase) bool {
	if jr.gateOf == nil {
		return true
	}
	// A job waiting to retry runs nothing: whatever its executor, the
	// next start runs its next attempt.
	h, ok := jr.exec.(HandsOver)
	return jr.gateOf(jr.job.ID).setPhase(p, p == phaseWaiting || ok && h.HandsOver())
}

func (jr *jobRunner) gate() *handOverGate {
	if jr.gateOf == nil {
		return nil
	}
	return jr.gateOf(jr.job.ID)
}

func (e *jobEnv) runnerFor(jb *state.Job) *jobRunner {
	job := jb.Backend()
	jr := &jobRunner{jobEnv: e, jb: jb, job: job, log: e.log.With("job", job.ID), mask: e.masking.masker(job)}
	if t, err := TargetOf(job); err == nil {
		jr.target, jr.exec = t, e.executors[t]
	}
	return jr
}

// outcome is how an attempt ended with what it produced, as reported.
type outcome struct {
	Result
	stdout, stderr string
	condition      *bool
	executor       Target
	// adopted: a restarted agent took the run over.
	adopted bool
	// attemptStart is when the attempt began (its setup with it).
	attemptStart time.Time
}

// runClaimed runs a claimed job: journal it, acknowledge, then each
// attempt as its own execution, then exactly one completing item.
func (e *jobEnv) runClaimed(ctx context.Context, job *api.Job) {
	log := e.log.With("job", job.ID)
	jb, err := e.jobs.Claim(context.WithoutCancel(ctx), job)
	if err != nil {
		// Nothing can be promised about a job the journal does not hold.
		log.Error("journaling the claimed job failed; giving it back", "error", err)
		e.releaseNow(job.ID, "the agent could not journal the job: "+err.Error())
		return
	}
	e.fault("claimed")
	jr := e.runnerFor(jb)
	if e.observer != nil {
		due := job.CreatedAt
		if job.ScheduledFor.After(due) {
			due = job.ScheduledFor
		}
		if !due.IsZero() {
			e.observer.Claimed(jr.target, max(0, time.Since(due)))
		}
	}
	if err := e.acknowledge(ctx, job.ID); err != nil {
		if errors.Is(err, backend.ErrNotClaimed) {
			log.Warn("the backend says the job is not claimed by this agent; not running it")
			jr.endJob(func(p *state.Progress) { p.State = state.Released })
			return
		}
		log.Warn("acknowledge failed; running the job anyway", "error", err)
	}
	if len(job.EncryptedEnv) > 0 {
		log.Warn("environment values look encrypted and were passed unchanged: set backend.envEncryptionKey (CRONIUM_ENV_ENCRYPTION_KEY)", "variables", job.EncryptedEnv)
	}
	if msg := e.executors.refusal(job); msg != "" {
		log.Warn("refusing job", "reason", msg)
		now := time.Now()
		jr.finish(outcome{Result: Result{Status: api.StatusFailed, ExitCode: 1, NeverRan: true, Err: msg, Start: now, End: now}})
		return
	}
	jr.runAttempts(ctx, 1)
}

func (e *jobEnv) acknowledge(ctx context.Context, jobID string) error {
	var err error
	for try := 0; try < 3; try++ {
		if err = e.be.Acknowledge(ctx, jobID, time.Now().UTC()); err == nil || !backend.IsTransient(err) {
			return err
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	return err
}

// releaseNow gives a job back to the queue straight away (the backend
// just answered): one this agent never journaled.
func (e *jobEnv) releaseNow(jobID, why string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.be.Release(ctx, jobID, why); err != nil {
		e.log.Warn("release failed", "job", jobID, "error", err)
	}
}

// attempts is how many times the job may run here.
func attempts(job *api.Job) int {
	if job.Retry != nil && job.Retry.MaxAttempts > 1 {
		// Less the attempts the backend counts as made already (a run lost
		// with another agent, retried here), so that the policy bounds the
		// job's attempts across agents.
		return max(1, min(job.Retry.MaxAttempts, maxAttempts)-job.Attempts)
	}
	return 1
}

// retryDelay is the wait before retry n (1-based) under the policy.
func retryDelay(p *api.RetryPolicy, n int) time.Duration {
	base := time.Second
	if p != nil && p.Delay > 0 {
		base = p.Delay
	}
	switch {
	case p != nil && p.BackoffType == "fixed":
		return base
	case p != nil && p.BackoffType == "linear":
		return base * time.Duration(n)
	}
	return min(base<<min(n-1, 10), time.Hour)
}

// runAttempts runs attempts from..N, each after the first waiting its
// retry delay, and journals the job's end.
func (jr *jobRunner) runAttempts(ctx context.Context, from int) {
	of := attempts(jr.job)
	var last outcome
	for attempt := from; attempt <= of; attempt++ {
		if attempt > 1 {
			delay := retryDelay(jr.job.Retry, attempt-1)
			jr.log.Info("retrying failed run", "attempt", attempt, "of", of, "in", delay)
			jr.phase(phaseWaiting)
			select {
			case <-ctx.Done():
				if HandingOver(ctx) {
					jr.log.Info("left to the next start while it waits to retry", "attempt", attempt)
					return
				}
				now := time.Now()
				last = outcome{Result: Result{Status: api.StatusCancelled, ExitCode: ExitCancelled, Start: now, End: now}}
				attempt = of // report the cancellation below
				continue
			case <-time.After(delay):
			}
		}
		if !jr.phase(phaseBusy) {
			jr.log.Info("left to the next start while it waits to retry", "attempt", attempt)
			return
		}
		last = jr.attempt(ctx, attempt, of)
		if last.HandedOver {
			jr.log.Info("left running for the next start", "attempt", attempt)
			return
		}
		if !retryable(last.Status) {
			break
		}
		if attempt < of {
			jr.endExecution(ctx, last)
			last.release(ctx)
		}
	}
	if errors.Is(context.Cause(ctx), errSuperseded) {
		jr.supersede(last)
		last.release(ctx)
		return
	}
	jr.finish(last)
	last.release(ctx)
}

// supersede ends a run the backend took from this agent: its outcome is
// journaled as superseded, with no completing item; what of it was still
// undelivered is refused by the backend and dropped by the syncer.
func (jr *jobRunner) supersede(o outcome) {
	code := o.ExitCode
	jr.endJob(func(p *state.Progress) {
		p.State, p.Status, p.ExitCode = state.Superseded, string(o.Status), &code
		p.Usage = o.Usage
	})
	jr.log.Warn("run stopped and kept in the journal as superseded: the backend had given the job to another agent", "status", o.Status, "exitCode", o.ExitCode)
}

// release runs the result's Release, its end being journaled.
func (o outcome) release(ctx context.Context) {
	if o.Release != nil {
		o.Release(context.WithoutCancel(ctx))
	}
}

// endExecution journals the end update of an attempt that is retried: the
// next attempt is an execution of its own. (The last attempt's end is
// journaled with the completion, in one transaction.)
func (jr *jobRunner) endExecution(ctx context.Context, o outcome) {
	o.Err = jr.mask.Mask(o.Err)
	items, err := endItems(jr.jb.Progress(), o)
	if err == nil && len(items) > 0 {
		err = jr.jb.Update(context.WithoutCancel(ctx), func(p *state.Progress) { p.ExecutionEnded = true }, items...)
	}
	if err != nil {
		jr.log.Error("journaling the end of an execution failed; its row keeps only its start", "error", err)
	}
}

// attempt runs the job once as a new execution. Two attempts in one second
// would share exec_<job>_<unix seconds>, so the next waits for a new second.
func (jr *jobRunner) attempt(ctx context.Context, n, of int) outcome {
	prev := jr.jb.Progress().ExecutionID
	start := time.Now()
	execID := attemptExecutionID(jr.job, start)
	for execID == prev {
		time.Sleep(time.Until(start.Truncate(time.Second).Add(time.Second)))
		start = time.Now()
		execID = attemptExecutionID(jr.job, start)
	}
	runID := RunID(jr.job.ID)
	msg := "running"
	if of > 1 {
		msg = fmt.Sprintf("attempt %d of %d", n, of)
	}
	created, err := state.Item(state.KindExecution, executionItem(jr.job, execID, n))
	if err != nil {
		return outcome{Result: NeverRan(start, err)}
	}
	running, err := state.Item(state.KindStatus, state.StatusItem{Status: string(api.StatusRunning), Message: msg, At: start.UTC()})
	if err == nil {
		err = jr.jb.Update(context.WithoutCancel(ctx), func(p *state.Progress) {
			p.State, p.Attempt, p.Attempts, p.AttemptStart = state.Running, n, of, start.UTC()
			p.RunID, p.ExecutionID, p.StartedAt = runID, execID, time.Time{}
			p.Entries, p.ErrEntries, p.StreamCounts = 0, 0, true
			p.Executions, p.SourceEntries = nil, nil
			p.ExecutionEnded = false
			p.Output, p.Condition, p.Exit = nil, nil, nil
		}, created, running)
	}
	if err != nil {
		return outcome{Result: NeverRan(start, fmt.Errorf("the agent could not journal the run: %w", err))}
	}
	jr.attempting(jr.job.ID, execID, n, start)
	a := jr.newAttempt(execID, runID, n, of, start, skipped{byStreams: true})
	if of > 1 {
		a.System(fmt.Sprintf("attempt %d of %d", n, of))
	}
	// Its start journaled, the run may be handed over (the gate says when).
	jr.phase(phaseRunning)
	res := jr.exec.Run(ctx, a)
	jr.fault("ran") // the run over (a container's task deleted), its end not journaled
	jr.phase(phaseBusy)
	return jr.end(ctx, a, res, false)
}

// executionItem creates execution execID, attempt n of job; one on a
// server names it (§3: the id as a number).
func executionItem(job *api.Job, execID string, n int) state.ExecutionItem {
	it := state.ExecutionItem{ExecutionID: execID, JobID: job.ID, Attempt: n}
	if t := job.Target; t.ServerID != "" {
		it.ServerID = serverNumber(t.ServerID)
		if t.Server != nil {
			it.ServerName = t.Server.Name
		}
		for _, s := range job.Metadata.Servers {
			if s.ID == t.ServerID && it.ServerName == "" {
				it.ServerName = s.Name
			}
		}
	}
	return it
}

// serverNumber is a server id as executions/create sends it: a number.
func serverNumber(id string) *int64 {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return &n
	}
	return nil
}

// newAttempt hands the executor attempt n; skip says which of its output
// entries are journaled already.
func (jr *jobRunner) newAttempt(execID, runID string, n, of int, start time.Time, skip skipped) *Attempt {
	log := jr.log.With("execution", execID)
	return &Attempt{
		Job: jr.job, ExecutionID: execID, RunID: runID, Number: n, Of: of, Start: start, Log: log,
		jb: jr.jb, fault: jr.fault, target: jr.target, gate: jr.gate(),
		r: &run{
			jb: jr.jb, exec: execID, skip: skip,
			logs:   newLogStream(jr.jb, execID, log, jr.fault),
			stdout: newCappedBuffer(jr.outputCap), stderr: newCappedBuffer(jr.outputCap),
			mask: jr.mask, masks: [2]*mask.Stream{jr.mask.Stream(), jr.mask.Stream()},
		},
	}
}

// end closes an attempt's log and makes its outcome: what the executor
// said, the captured streams and what the script set through the runtime
// API, as journaled.
func (jr *jobRunner) end(ctx context.Context, a *Attempt, res Result, adopted bool) outcome {
	if res.Status == api.StatusCancelled {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, errCancelledByUser) {
			a.System("stopped: " + cause.Error())
		}
	}
	r := a.r
	if !res.HandedOver {
		// A run handed over is read again by the next agent process,
		// which holds back the same text and gives it out itself.
		r.flush()
	}
	r.logs.close()
	o := outcome{Result: res, executor: jr.target, adopted: adopted, attemptStart: a.Start}
	if res.NotStarted || res.HandedOver {
		return o
	}
	o.stdout, o.stderr = r.stdout.String(), r.stderr.String()
	if p := jr.jb.Progress(); p.ExecutionID == r.exec {
		if p.Output != nil {
			o.Output = p.Output
		}
		if p.Condition != nil {
			c := *p.Condition
			o.condition = &c
		}
	}
	return o
}

// finish journals the job's one completing item, after the end update of
// its last execution when that is not journaled yet; the syncer delivers
// them in that order.
func (jr *jobRunner) finish(o outcome) {
	jr.ended(o)
	o.Err = jr.mask.Mask(o.Err)
	var it journalItem
	var err error
	if o.NeverRan {
		it, err = state.Item(state.KindFail, state.FailItem{Error: o.Err, ExitCode: o.ExitCode})
	} else {
		it, err = state.Item(state.KindComplete, api.Completion{
			Status:       string(o.Status),
			ExitCode:     o.ExitCode,
			Output:       api.Output{Stdout: o.stdout, Stderr: o.stderr},
			ScriptOutput: o.Output,
			Condition:    o.condition,
			Metrics:      api.RunMetrics{StartTime: o.Start.UTC(), EndTime: o.End.UTC(), Duration: o.End.Sub(o.Start).Milliseconds()},
			Timestamp:    time.Now().UTC(),
		})
	}
	if err != nil {
		jr.log.Error("encode the job's completion", "error", err)
		return
	}
	items, err := endItems(jr.jb.Progress(), o)
	if err != nil {
		// The completion matters more than the execution's row.
		jr.log.Error("encode the execution's end update", "error", err)
	}
	code := o.ExitCode
	jr.endJob(func(p *state.Progress) {
		p.State, p.Status, p.ExitCode = state.Finished, string(o.Status), &code
		p.Usage = o.Usage
		if o.NeverRan {
			p.Status = string(api.StatusFailed)
		}
		p.ExecutionEnded = p.ExecutionEnded || len(items) > 0
	}, append(items, it)...)
	jr.fault("finished")
}

// release journals the release of a job that will not run here.
func (jr *jobRunner) release(why string) {
	it, err := state.Item(state.KindRelease, state.ReleaseItem{Message: why})
	if err != nil {
		jr.log.Error("encode release", "error", err)
		return
	}
	jr.log.Info("releasing job", "reason", why)
	jr.endJob(func(p *state.Progress) { p.State = state.Released }, it)
}

// endJob journals a job's last item and closes its stream, retrying a
// failing disk: the completion must not be lost while the agent runs.
func (jr *jobRunner) endJob(fn func(*state.Progress), items ...journalItem) {
	delay := 100 * time.Millisecond
	for {
		err := jr.jb.Finish(context.Background(), func(p *state.Progress) {
			fn(p)
			p.FinishedAt = time.Now().UTC()
		}, items...)
		if err == nil {
			return
		}
		jr.log.Error("journaling the end of a job failed; retrying", "error", err, "retryIn", delay)
		select {
		case <-time.After(delay):
		case <-jr.stopped:
			jr.log.Error("agent stopped before the end of the job was journaled; the next start recovers it")
			return
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// run is one attempt in progress: what its output goes to.
type run struct {
	jb             *state.Job
	exec           string
	logs           *logStream
	stdout, stderr *cappedBuffer
	// mask masks the job's secrets in everything the run journals (nil:
	// off); masks are its stdout's and stderr's streams, srcMasks those of
	// each source. Masking happens before anything is kept: the captured
	// streams, the live lines and the journal never hold a secret.
	mask     *mask.Masker
	masks    [2]*mask.Stream
	srcMasks [][2]*mask.Stream
	// skip: the output entries already journaled (a run adopted after a
	// restart reads its output from the start again).
	skip skipped
	// entries counts the output entries taken, errEntries those of stderr;
	// sources those of each source's stdout and stderr.
	entries, errEntries uint64
	sources             [][2]uint64
}

// skipped is how many output entries of a run are journaled: stream by
// stream, or (journals from before stream counts) in all.
type skipped struct {
	out, err  uint64
	total     uint64
	byStreams bool
	sources   [][2]uint64
}

// skippedOf is what progress p says is journaled of its run.
func skippedOf(p state.Progress) skipped {
	if p.StreamCounts {
		return skipped{out: p.Entries - p.ErrEntries, err: p.ErrEntries, byStreams: true, sources: p.SourceEntries}
	}
	return skipped{total: p.Entries}
}

// hasFrom tells whether the n-th entry of stream (0 stdout, 1 stderr) of
// source src is journaled already.
func (s skipped) hasFrom(src, stream int, n uint64) bool {
	return src < len(s.sources) && n <= s.sources[src][stream]
}

// has tells whether the entry counted so (in all, of its stream) is
// journaled already.
func (s skipped) has(total, ofStream uint64, stderr bool) bool {
	switch {
	case !s.byStreams:
		return total <= s.total
	case stderr:
		return ofStream <= s.err
	}
	return ofStream <= s.out
}

// capture counts an output entry, masks it (ms is its stream's mask) and
// adds it to the streams the completion carries; text is what stands for
// the entry in the live log. Entries already journaled go through it too:
// the head of a secret they end with is held back for the next entry.
func (r *run) capture(e output.Entry, ms *mask.Stream) (text string) {
	r.entries++
	stream := streamIndex(e.Stream)
	if stream == 1 {
		r.errEntries++
	}
	if e.Stream == output.System {
		// The capture's own notices ("output dropped") are whole lines
		// between the script's: the streams' held-back heads stay held.
		text = r.mask.Mask(string(e.Data))
	} else {
		text = ms.Next(e.Data, e.Fragment)
	}
	buf := r.buffer(stream)
	buf.WriteString(text)
	if !e.Fragment {
		buf.Write([]byte{'\n'})
	}
	return text
}

// streamIndex is 1 for stderr, 0 for the others (they go with stdout).
func streamIndex(s output.Stream) int {
	if s == output.Stderr {
		return 1
	}
	return 0
}

// buffer is the captured stream the completion carries (0 stdout).
func (r *run) buffer(stream int) *cappedBuffer {
	if stream == 1 {
		return r.stderr
	}
	return r.stdout
}

// logged tells whether an entry masked to text makes a live line: not a
// fragment held back whole (its text comes with the next entry; its count
// is journaled with that entry's, so a run adopted after a restart takes
// it again).
func logged(e output.Entry, text string) bool {
	return text != "" || !e.Fragment || len(e.Data) == 0
}

// entry takes the run's next output entry.
func (r *run) entry(e output.Entry) {
	ofStream := r.entries - r.errEntries + 1
	stream := streamIndex(e.Stream)
	text := r.capture(e, r.masks[stream])
	if stream == 1 {
		ofStream = r.errEntries
	}
	if logged(e, text) && !r.skip.has(r.entries, ofStream, e.Stream == output.Stderr) {
		r.logs.add(e.Stream.String(), text, e.Time.UTC(), r.entries, r.errEntries)
	}
}

// entryFrom takes the run's next output entry from source src (one of
// several read apart: the servers of a multi-server job).
func (r *run) entryFrom(src int, e output.Entry) {
	for len(r.sources) <= src {
		r.sources = append(r.sources, [2]uint64{})
		r.srcMasks = append(r.srcMasks, [2]*mask.Stream{r.mask.Stream(), r.mask.Stream()})
	}
	stream := streamIndex(e.Stream)
	text := r.capture(e, r.srcMasks[src][stream])
	r.sources[src][stream]++
	n := r.sources[src][stream]
	if logged(e, text) && !r.skip.hasFrom(src, stream, n) {
		r.logs.addFrom(e.Stream.String(), text, e.Time.UTC(), r.entries, r.errEntries, src, stream, n)
	}
}

// flush gives out what the masks hold back at the end of the run: the
// end of a last line without a newline that began like a secret.
func (r *run) flush() {
	now := time.Now().UTC()
	for stream, ms := range r.masks {
		if ms.Held() {
			text := ms.Flush()
			r.buffer(stream).WriteString(text)
			r.logs.add(streamName(stream), text, now, r.entries, r.errEntries)
		}
	}
	for src, mss := range r.srcMasks {
		for stream, ms := range mss {
			if ms.Held() {
				text := ms.Flush()
				r.buffer(stream).WriteString(text)
				r.logs.addFrom(streamName(stream), text, now, r.entries, r.errEntries, src, stream, r.sources[src][stream])
			}
		}
	}
}

// streamName is the name of stream 0 (stdout) or 1 (stderr).
func streamName(stream int) string {
	if stream == 1 {
		return output.Stderr.String()
	}
	return output.Stdout.String()
}

func (r *run) system(line string) {
	r.logs.add("system", r.mask.Mask(line), time.Now().UTC(), 0, 0)
}
