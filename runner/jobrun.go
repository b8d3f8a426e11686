package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/httpexec"
	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/state"
)

// maxAttempts bounds a job's retry policy, whatever it asks.
const maxAttempts = 10

// outcome is how one attempt ended, in the backend's terms.
type outcome struct {
	status       string
	exitCode     int
	stdout       string
	stderr       string
	scriptOutput json.RawMessage
	condition    *bool
	start, end   time.Time
	// neverRan: the attempt failed before the script started (image
	// missing, bad spec): the job is failed through jobs/{id}/fail.
	neverRan bool
	errMsg   string
	// For the execution's end update: the executor that ran the attempt,
	// when the removal of what its run created ended (zero: none), and
	// whether a restarted agent adopted the run.
	executor string
	cleaned  time.Time
	adopted  bool
}

func (o outcome) retryable() bool {
	return o.status == "failed" || o.status == "timeout"
}

// handle runs a claimed job: journal it, acknowledge, then each attempt as
// its own execution, then exactly one completing item.
func (d *Dispatcher) handle(ctx context.Context, job *api.Job) {
	log := d.log.With("job", job.ID)
	jb, err := d.jobs.Claim(context.WithoutCancel(ctx), job)
	if err != nil {
		// Nothing can be promised about a job the journal does not hold.
		log.Error("journaling the claimed job failed; giving it back", "error", err)
		d.releaseNow(job.ID, "the agent could not journal the job: "+err.Error())
		return
	}
	d.fault("claimed")
	if err := d.acknowledge(ctx, job.ID); err != nil {
		if errors.Is(err, backend.ErrNotClaimed) {
			log.Warn("the backend says the job is not claimed by this agent; not running it")
			d.endJob(jb, func(p *state.Progress) { p.State = state.Released })
			return
		}
		log.Warn("acknowledge failed; running the job anyway", "error", err)
	}
	if len(job.EncryptedEnv) > 0 {
		log.Warn("environment values look encrypted and were passed unchanged: set backend.envEncryptionKey (CRONIUM_ENV_ENCRYPTION_KEY)", "variables", job.EncryptedEnv)
	}
	if msg := unsupported(job); msg != "" {
		log.Warn("refusing job", "reason", msg)
		d.finish(jb, outcome{status: "failed", exitCode: 1, neverRan: true, errMsg: msg, start: time.Now(), end: time.Now()})
		return
	}
	d.runAttempts(ctx, jb, 1)
}

// attempts is how many times the job may run.
func attempts(job *api.Job) int {
	if job.Retry != nil && job.Retry.MaxAttempts > 1 {
		return min(job.Retry.MaxAttempts, maxAttempts)
	}
	return 1
}

// runAttempts runs attempts from..N, each after the first waiting its
// retry delay, and journals the job's end.
func (d *Dispatcher) runAttempts(ctx context.Context, jb *state.Job, from int) {
	job := jb.Backend()
	of := attempts(job)
	var last outcome
	for attempt := from; attempt <= of; attempt++ {
		if attempt > 1 {
			delay := retryDelay(job.Retry, attempt-1)
			d.log.Info("retrying failed run", "job", job.ID, "attempt", attempt, "of", of, "in", delay)
			select {
			case <-ctx.Done():
				last = outcome{status: "cancelled", exitCode: -2, start: time.Now(), end: time.Now()}
				attempt = of // report the cancellation below
				continue
			case <-time.After(delay):
			}
		}
		last = d.attempt(ctx, jb, attempt, of)
		if !last.retryable() {
			break
		}
		if attempt < of {
			d.endExecution(ctx, jb, last)
		}
	}
	d.finish(jb, last)
}

// endExecution journals the end update of an attempt that is retried: the
// next attempt is an execution of its own. (The last attempt's end is
// journaled with the completion, in one transaction.)
func (d *Dispatcher) endExecution(ctx context.Context, jb *state.Job, o outcome) {
	items, err := endItems(jb.Progress(), o)
	if err == nil && len(items) > 0 {
		err = jb.Update(context.WithoutCancel(ctx), func(p *state.Progress) { p.ExecutionEnded = true }, items...)
	}
	if err != nil {
		d.log.Error("journaling the end of an execution failed; its row keeps only its start", "job", jb.Backend().ID, "error", err)
	}
}

func (d *Dispatcher) acknowledge(ctx context.Context, jobID string) error {
	var err error
	for try := 0; try < 3; try++ {
		if err = d.be.Acknowledge(ctx, jobID, time.Now().UTC()); err == nil || !backend.IsTransient(err) {
			return err
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	return err
}

// unsupported says why this agent cannot run a job, or "".
func unsupported(job *api.Job) string {
	switch {
	case job.OriginalType == api.TypeToolAction:
		return "tool actions are not supported by this agent (it runs SCRIPT and HTTP_REQUEST jobs)"
	case job.Type == "ssh" || job.Target.Type == "server":
		return "SSH jobs are not supported by this agent yet (it runs jobs locally in containers)"
	case job.OriginalType == api.TypeScript && job.Script == nil:
		return "a SCRIPT job without a script"
	case job.OriginalType == api.TypeHTTP && job.HTTP == nil:
		return "an HTTP_REQUEST job without a request"
	case job.OriginalType != api.TypeScript && job.OriginalType != api.TypeHTTP:
		return fmt.Sprintf("unknown job type %q", job.OriginalType)
	}
	return ""
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

// run is one attempt in progress: what its output goes to.
type run struct {
	jb             *state.Job
	exec           string
	logs           *logStream
	stdout, stderr *cappedBuffer
	// skip: output entries up to it are already journaled (a run adopted
	// after a restart reads its output file from the start again).
	skip    uint64
	entries uint64
}

func (d *Dispatcher) newRun(jb *state.Job, exec string, skip uint64) *run {
	return &run{
		jb: jb, exec: exec, skip: skip,
		logs:   newLogStream(jb, exec, d.log.With("job", jb.Backend().ID, "execution", exec), d.fault),
		stdout: newCappedBuffer(d.cfg.OutputCap), stderr: newCappedBuffer(d.cfg.OutputCap),
	}
}

// entry takes the run's next output entry.
func (r *run) entry(e output.Entry) {
	r.entries++
	buf := r.stdout
	if e.Stream == output.Stderr {
		buf = r.stderr
	}
	buf.Write(e.Data)
	if !e.Fragment {
		buf.Write([]byte{'\n'})
	}
	if r.entries > r.skip {
		r.logs.add(e.Stream.String(), string(e.Data), e.Time.UTC(), r.entries)
	}
}

func (r *run) system(line string) { r.logs.add("system", line, time.Now().UTC(), 0) }

// end closes the run's log and fills in the outcome's output: the captured
// streams and what the script set through the runtime API, as journaled.
func (r *run) end(o outcome) outcome {
	r.logs.close()
	o.stdout, o.stderr = r.stdout.String(), r.stderr.String()
	if p := r.jb.Progress(); p.ExecutionID == r.exec {
		if p.Output != nil {
			o.scriptOutput = p.Output
		}
		if p.Condition != nil {
			c := *p.Condition
			o.condition = &c
		}
	}
	return o
}

// attempt runs the job once as a new execution. Two attempts in one second
// would share exec_<job>_<unix seconds>, so the next waits for a new second.
func (d *Dispatcher) attempt(ctx context.Context, jb *state.Job, n, of int) outcome {
	job := jb.Backend()
	prev := jb.Progress().ExecutionID
	start := time.Now()
	execID := ExecutionID(job.ID, start)
	for execID == prev {
		time.Sleep(time.Until(start.Truncate(time.Second).Add(time.Second)))
		start = time.Now()
		execID = ExecutionID(job.ID, start)
	}
	var req container.Request
	var reqErr error
	if job.OriginalType == api.TypeScript {
		req, reqErr = d.policy.Request(scriptJob(job), start)
	}
	msg := "running"
	if of > 1 {
		msg = fmt.Sprintf("attempt %d of %d", n, of)
	}
	created, err := state.Item(state.KindExecution, state.ExecutionItem{ExecutionID: execID, JobID: job.ID, Attempt: n})
	if err != nil {
		return outcome{status: "failed", exitCode: 1, neverRan: true, errMsg: err.Error(), start: start, end: time.Now()}
	}
	running, err := state.Item(state.KindStatus, state.StatusItem{Status: "running", Message: msg, At: start.UTC()})
	if err == nil {
		err = jb.Update(context.WithoutCancel(ctx), func(p *state.Progress) {
			p.State, p.Attempt, p.Attempts, p.AttemptStart = state.Running, n, of, start.UTC()
			p.RunID, p.ExecutionID, p.StartedAt, p.Entries = req.RunID, execID, time.Time{}, 0
			p.ExecutionEnded = false
			p.Output, p.Condition = nil, nil
		}, created, running)
	}
	if err != nil {
		return outcome{status: "failed", exitCode: 1, neverRan: true, errMsg: "the agent could not journal the run: " + err.Error(), start: start, end: time.Now()}
	}
	d.setRunning(job.ID, execID, n, start)
	r := d.newRun(jb, execID, 0)
	if of > 1 {
		r.system(fmt.Sprintf("attempt %d of %d", n, of))
	}
	var o outcome
	switch {
	case job.OriginalType == api.TypeHTTP:
		o = d.runHTTP(ctx, jb, r)
	case reqErr != nil:
		o = outcome{status: "failed", exitCode: 1, neverRan: true, errMsg: reqErr.Error(), start: start, end: time.Now()}
	default:
		o = d.runScript(ctx, jb, r, req)
	}
	o.executor = executorOf(job)
	return r.end(o)
}

// scriptJob is the runner's view of a SCRIPT job.
func scriptJob(job *api.Job) Job {
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

// onPhase journals the script's start (its timeout counts from it after a
// restart) with the execution's start update, in one transaction: a crash
// cannot leave one without the other, and the update's times are the
// journaled ones. It also marks the fault-injection points.
func (d *Dispatcher) onPhase(jb *state.Job) func(container.Phase, time.Time) error {
	return func(ph container.Phase, at time.Time) error {
		switch ph {
		case container.PhaseNetwork:
			d.fault("network")
		case container.PhaseStarting:
			p := jb.Progress()
			it, err := startItem(p.ExecutionID, p.AttemptStart, at)
			if err != nil {
				return err
			}
			return jb.Update(context.Background(), func(p *state.Progress) { p.StartedAt = at.UTC() }, it)
		case container.PhaseExited:
			d.fault("exited")
		}
		return nil
	}
}

func (d *Dispatcher) runScript(ctx context.Context, jb *state.Job, r *run, req container.Request) outcome {
	req.OnPhase = d.onPhase(jb)
	res, err := d.scripts.Run(ctx, req, r.entry)
	if err != nil && res.StartedAt.IsZero() {
		return outcome{status: "failed", exitCode: 1, neverRan: true, errMsg: err.Error(), start: req.Execution.StartTime, end: time.Now()}
	}
	o := d.scriptOutcome(ctx, r, req, res, err)
	o.cleaned = time.Now() // Run returns once the run's leftovers are removed
	return o
}

// scriptOutcome turns an executor result into the attempt's outcome.
func (d *Dispatcher) scriptOutcome(ctx context.Context, r *run, req container.Request, res container.Result, err error) outcome {
	o := outcome{
		status: string(res.Status), exitCode: res.BackendExitCode(),
		start: res.StartedAt, end: res.FinishedAt,
	}
	if o.status == string(container.StatusCancelled) {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, errCancelledByUser) {
			r.system("stopped: " + cause.Error())
		}
	}
	if res.Lost {
		r.system(res.LostReason)
		r.stderr.Write([]byte("cronium-agent: " + res.LostReason + "\n"))
	}
	if res.OOMKilled {
		line := fmt.Sprintf("killed: out of memory (limit %d MiB)", res.MemoryLimit>>20)
		r.system(line)
		r.stderr.Write([]byte(line + "\n"))
	}
	if res.Status == container.StatusTimeout {
		r.system(fmt.Sprintf("timed out after %s", req.Timeout))
	}
	for _, note := range res.Notes {
		r.system(note) // the result stands; the log says what the agent could not do
	}
	if err != nil {
		// The script ran but the agent lost part of the run (its output).
		r.stderr.Write([]byte("cronium-agent: " + err.Error() + "\n"))
		if o.status == string(container.StatusCompleted) || o.status == "" {
			o.status, o.exitCode = "failed", 1
		}
	}
	return o
}

func (d *Dispatcher) runHTTP(ctx context.Context, jb *state.Job, r *run) outcome {
	job := jb.Backend()
	timeout := job.Timeout
	if timeout <= 0 {
		timeout = d.policy.DefaultTimeout
	}
	timeout = min(timeout, d.policy.MaxTimeout)
	start := time.Now()
	// Journaled as started, with the execution's start update: after a
	// crash the request is not sent again (it may have reached its target
	// already).
	p := jb.Progress()
	it, err := startItem(p.ExecutionID, p.AttemptStart, start)
	if err == nil {
		err = jb.Update(context.WithoutCancel(ctx), func(p *state.Progress) { p.StartedAt = start.UTC() }, it)
	}
	if err != nil {
		return outcome{status: "failed", exitCode: 1, neverRan: true, errMsg: "the agent could not journal the run: " + err.Error(), start: start, end: time.Now()}
	}
	h := job.HTTP
	res, err := d.http.Do(ctx, httpexec.Request{Method: h.Method, URL: h.URL, Headers: h.Headers, Body: h.Body}, timeout)
	o := outcome{start: start, end: time.Now()}
	now := func() time.Time { return time.Now().UTC() }
	switch {
	case ctx.Err() != nil:
		o.status, o.exitCode = "cancelled", -2
	case res.TimedOut:
		o.status, o.exitCode = "timeout", -1
		r.stderr.Write([]byte(err.Error() + "\n"))
		r.logs.add("stderr", err.Error(), now(), 0)
	case err != nil:
		o.status, o.exitCode = "failed", 1
		r.stderr.Write([]byte(err.Error() + "\n"))
		r.logs.add("stderr", err.Error(), now(), 0)
	default:
		r.stdout.Write(res.Body)
		for _, line := range strings.Split(strings.TrimSuffix(string(res.Body), "\n"), "\n") {
			r.logs.add("stdout", line, now(), 0)
		}
		o.status, o.exitCode = "completed", 0
		if res.StatusCode >= 400 {
			o.status, o.exitCode = "failed", 1
			r.stderr.Write([]byte(res.Status + "\n"))
		}
		// The response is the step's output, for workflows that use it.
		so, _ := json.Marshal(map[string]any{"statusCode": res.StatusCode, "body": string(res.Body), "truncated": res.Truncated})
		o.scriptOutput = so
	}
	return o
}

// finish journals the job's one completing item, after the end update of
// its last execution when that is not journaled yet; the syncer delivers
// them in that order.
func (d *Dispatcher) finish(jb *state.Job, o outcome) {
	d.stats.processed.Add(1)
	d.stats.totalMillis.Add(o.end.Sub(o.start).Milliseconds())
	if o.status == "completed" {
		d.stats.succeeded.Add(1)
	} else {
		d.stats.failed.Add(1)
	}
	var it journalItem
	var err error
	if o.neverRan {
		it, err = state.Item(state.KindFail, state.FailItem{Error: o.errMsg, ExitCode: o.exitCode})
	} else {
		it, err = state.Item(state.KindComplete, api.Completion{
			Status:       o.status,
			ExitCode:     o.exitCode,
			Output:       api.Output{Stdout: o.stdout, Stderr: o.stderr},
			ScriptOutput: o.scriptOutput,
			Condition:    o.condition,
			Metrics:      api.RunMetrics{StartTime: o.start.UTC(), EndTime: o.end.UTC(), Duration: o.end.Sub(o.start).Milliseconds()},
			Timestamp:    time.Now().UTC(),
		})
	}
	if err != nil {
		d.log.Error("encode the job's completion", "job", jb.Backend().ID, "error", err)
		return
	}
	items, err := endItems(jb.Progress(), o)
	if err != nil {
		// The completion matters more than the execution's row.
		d.log.Error("encode the execution's end update", "job", jb.Backend().ID, "error", err)
	}
	code := o.exitCode
	d.endJob(jb, func(p *state.Progress) {
		p.State, p.Status, p.ExitCode = state.Finished, o.status, &code
		if o.neverRan {
			p.Status = "failed"
		}
		p.ExecutionEnded = p.ExecutionEnded || len(items) > 0
	}, append(items, it)...)
	d.fault("finished")
}

// endJob journals a job's last item and closes its stream, retrying a
// failing disk: the completion must not be lost while the agent runs.
func (d *Dispatcher) endJob(jb *state.Job, fn func(*state.Progress), items ...journalItem) {
	delay := 100 * time.Millisecond
	for {
		err := jb.Finish(context.Background(), func(p *state.Progress) {
			fn(p)
			p.FinishedAt = time.Now().UTC()
		}, items...)
		if err == nil {
			return
		}
		d.log.Error("journaling the end of a job failed; retrying", "job", jb.Backend().ID, "error", err, "retryIn", delay)
		select {
		case <-time.After(delay):
		case <-d.stopped:
			d.log.Error("agent stopped before the end of the job was journaled; the next start recovers it", "job", jb.Backend().ID)
			return
		}
		delay = min(delay*2, 10*time.Second)
	}
}
