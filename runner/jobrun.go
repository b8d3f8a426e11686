package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/httpexec"
	"github.com/cronium/cronium-agent/runner/output"
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
}

func (o outcome) retryable() bool {
	return o.status == "failed" || o.status == "timeout"
}

// handle runs a claimed job: acknowledge, then each attempt as its own
// execution, then exactly one completing call.
func (d *Dispatcher) handle(ctx context.Context, job *backend.Job) {
	log := d.log.With("job", job.ID)
	if err := d.acknowledge(ctx, job.ID); err != nil {
		if errors.Is(err, backend.ErrNotClaimed) {
			log.Warn("the backend says the job is not claimed by this agent; not running it")
			return
		}
		log.Warn("acknowledge failed; running the job anyway", "error", err)
	}
	if len(job.EncryptedEnv) > 0 {
		log.Warn("environment values look encrypted and were passed unchanged: set backend.envEncryptionKey (CRONIUM_ENV_ENCRYPTION_KEY)", "variables", job.EncryptedEnv)
	}
	if msg := unsupported(job); msg != "" {
		log.Warn("refusing job", "reason", msg)
		d.reportFail(job.ID, msg, 1)
		return
	}

	attempts := 1
	if job.Retry != nil && job.Retry.MaxAttempts > 1 {
		attempts = min(job.Retry.MaxAttempts, maxAttempts)
	}
	var last outcome
	var lastExec string
	var seq uint64
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 {
			delay := retryDelay(job.Retry, attempt-1)
			log.Info("retrying failed run", "attempt", attempt, "of", attempts, "in", delay)
			select {
			case <-ctx.Done():
				last = outcome{status: "cancelled", exitCode: -2, start: time.Now(), end: time.Now()}
				attempt = attempts // report the cancellation below
				continue
			case <-time.After(delay):
			}
		}
		last, lastExec, seq = d.attempt(ctx, job, attempt, attempts, lastExec, seq)
		if !last.retryable() {
			break
		}
	}
	d.finish(job, last)
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
func unsupported(job *backend.Job) string {
	switch {
	case job.OriginalType == backend.TypeToolAction:
		return "tool actions are not supported by this agent (it runs SCRIPT and HTTP_REQUEST jobs)"
	case job.Type == "ssh" || job.Target.Type == "server":
		return "SSH jobs are not supported by this agent yet (it runs jobs locally in containers)"
	case job.OriginalType == backend.TypeScript && job.Script == nil:
		return "a SCRIPT job without a script"
	case job.OriginalType == backend.TypeHTTP && job.HTTP == nil:
		return "an HTTP_REQUEST job without a request"
	case job.OriginalType != backend.TypeScript && job.OriginalType != backend.TypeHTTP:
		return fmt.Sprintf("unknown job type %q", job.OriginalType)
	}
	return ""
}

// retryDelay is the wait before retry n (1-based) under the policy.
func retryDelay(p *backend.RetryPolicy, n int) time.Duration {
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

// attempt runs the job once as a new execution. prevExec is the previous
// attempt's execution id: two attempts in one second would share
// exec_<job>_<unix seconds>, so the next waits for a new second. Live lines
// are numbered after seq; the last number used is returned.
func (d *Dispatcher) attempt(ctx context.Context, job *backend.Job, n, of int, prevExec string, seq uint64) (outcome, string, uint64) {
	start := time.Now()
	execID := ExecutionID(job.ID, start)
	for execID == prevExec {
		time.Sleep(time.Until(start.Truncate(time.Second).Add(time.Second)))
		start = time.Now()
		execID = ExecutionID(job.ID, start)
	}
	log := d.log.With("job", job.ID, "execution", execID)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	if err := d.be.CreateExecution(rctx, execID, backend.CreateExecution{JobID: job.ID}); err != nil {
		log.Warn("creating the execution on the backend failed", "error", err)
	}
	msg := "running"
	if of > 1 {
		msg = fmt.Sprintf("attempt %d of %d", n, of)
	}
	if err := d.be.SetStatus(rctx, job.ID, "running", msg); err != nil {
		log.Warn("reporting running failed", "error", err)
	}
	cancel()

	logs := newLogStream(func(ctx context.Context, entries []backend.LogEntry) error {
		return d.be.SendLogs(ctx, job.ID, execID, entries)
	}, &d.logsOff, log, seq)
	if of > 1 {
		logs.add("system", fmt.Sprintf("attempt %d of %d", n, of), time.Now().UTC())
	}
	stdout, stderr := newCappedBuffer(d.cfg.OutputCap), newCappedBuffer(d.cfg.OutputCap)
	var o outcome
	switch job.OriginalType {
	case backend.TypeHTTP:
		o = d.runHTTP(ctx, job, logs, stdout, stderr)
	default:
		o = d.runScript(ctx, job, start, logs, stdout, stderr)
	}
	seq = logs.close()
	o.stdout, o.stderr = stdout.String(), stderr.String()
	return o, execID, seq
}

func (d *Dispatcher) runScript(ctx context.Context, job *backend.Job, start time.Time, logs *logStream, stdout, stderr *cappedBuffer) outcome {
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
	req, err := d.policy.Request(rj, start)
	if err != nil {
		return outcome{status: "failed", exitCode: 1, neverRan: true, errMsg: err.Error(), start: start, end: time.Now()}
	}
	res, err := d.scripts.Run(ctx, req, func(e output.Entry) {
		buf := stdout
		if e.Stream == output.Stderr {
			buf = stderr
		}
		buf.Write(e.Data)
		if !e.Fragment {
			buf.Write([]byte{'\n'})
		}
		logs.add(e.Stream.String(), string(e.Data), e.Time.UTC())
	})
	if err != nil && res.StartedAt.IsZero() {
		return outcome{status: "failed", exitCode: 1, neverRan: true, errMsg: err.Error(), start: start, end: time.Now()}
	}
	o := outcome{
		status: string(res.Status), exitCode: res.BackendExitCode(),
		start: res.StartedAt, end: res.FinishedAt,
	}
	if o.status == string(container.StatusCancelled) {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, errCancelledByUser) {
			logs.add("system", "stopped: "+cause.Error(), time.Now().UTC())
		}
	}
	if res.OOMKilled {
		line := fmt.Sprintf("killed: out of memory (limit %d MiB)", res.MemoryLimit>>20)
		logs.add("system", line, time.Now().UTC())
		stderr.Write([]byte(line + "\n"))
	}
	if res.Status == container.StatusTimeout {
		line := fmt.Sprintf("timed out after %s", req.Timeout)
		logs.add("system", line, time.Now().UTC())
	}
	if err != nil {
		// The script ran but the agent lost part of the run (its output).
		stderr.Write([]byte("cronium-agent: " + err.Error() + "\n"))
		if o.status == string(container.StatusCompleted) {
			o.status, o.exitCode = "failed", 1
		}
	}
	if res.HasOutput {
		o.scriptOutput = res.Output
	}
	if res.HasCondition {
		c := res.Condition
		o.condition = &c
	}
	return o
}

func (d *Dispatcher) runHTTP(ctx context.Context, job *backend.Job, logs *logStream, stdout, stderr *cappedBuffer) outcome {
	timeout := job.Timeout
	if timeout <= 0 {
		timeout = d.policy.DefaultTimeout
	}
	timeout = min(timeout, d.policy.MaxTimeout)
	start := time.Now()
	h := job.HTTP
	res, err := d.http.Do(ctx, httpexec.Request{Method: h.Method, URL: h.URL, Headers: h.Headers, Body: h.Body}, timeout)
	o := outcome{start: start, end: time.Now()}
	switch {
	case ctx.Err() != nil:
		o.status, o.exitCode = "cancelled", -2
	case res.TimedOut:
		o.status, o.exitCode = "timeout", -1
		stderr.Write([]byte(err.Error() + "\n"))
		logs.add("stderr", err.Error(), time.Now().UTC())
	case err != nil:
		o.status, o.exitCode = "failed", 1
		stderr.Write([]byte(err.Error() + "\n"))
		logs.add("stderr", err.Error(), time.Now().UTC())
	default:
		stdout.Write(res.Body)
		for _, line := range strings.Split(strings.TrimSuffix(string(res.Body), "\n"), "\n") {
			logs.add("stdout", line, time.Now().UTC())
		}
		o.status, o.exitCode = "completed", 0
		if res.StatusCode >= 400 {
			o.status, o.exitCode = "failed", 1
			stderr.Write([]byte(res.Status + "\n"))
		}
		// The response is the step's output, for workflows that use it.
		so, _ := json.Marshal(map[string]any{"statusCode": res.StatusCode, "body": string(res.Body), "truncated": res.Truncated})
		o.scriptOutput = so
	}
	return o
}

// finish sends the job's one completing call.
func (d *Dispatcher) finish(job *backend.Job, o outcome) {
	d.stats.processed.Add(1)
	d.stats.totalMillis.Add(o.end.Sub(o.start).Milliseconds())
	if o.status == "completed" {
		d.stats.succeeded.Add(1)
	} else {
		d.stats.failed.Add(1)
	}
	if o.neverRan {
		d.reportFail(job.ID, o.errMsg, o.exitCode)
		return
	}
	c := backend.Completion{
		Status:       o.status,
		ExitCode:     o.exitCode,
		Output:       backend.Output{Stdout: o.stdout, Stderr: o.stderr},
		ScriptOutput: o.scriptOutput,
		Condition:    o.condition,
		Metrics:      backend.RunMetrics{StartTime: o.start.UTC(), EndTime: o.end.UTC(), Duration: o.end.Sub(o.start).Milliseconds()},
		Timestamp:    time.Now().UTC(),
	}
	d.deliver(job.ID, "complete", func(ctx context.Context) error { return d.be.Complete(ctx, job.ID, c) })
}

func (d *Dispatcher) reportFail(jobID, msg string, exitCode int) {
	d.deliver(jobID, "fail", func(ctx context.Context) error { return d.be.Fail(ctx, jobID, msg, exitCode) })
}

// deliver retries a completing call while the backend is unreachable: it
// must not be lost because one round of retries ran out. It is sent once:
// a final (4xx) answer ends the attempts.
func (d *Dispatcher) deliver(jobID, what string, call func(context.Context) error) {
	delay := time.Second
	deadline := time.Now().Add(24 * time.Hour)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := call(ctx)
		cancel()
		if err == nil {
			return
		}
		if !backend.IsTransient(err) || time.Now().After(deadline) {
			d.log.Error("the backend refused the job's completing call", "job", jobID, "call", what, "error", err)
			return
		}
		d.log.Warn("completing call not delivered yet; retrying", "job", jobID, "call", what, "error", err, "retryIn", delay)
		select {
		case <-time.After(delay):
		case <-d.giveUp:
			d.log.Error("agent stopped before the backend took the job's completing call", "job", jobID, "call", what)
			return
		}
		delay = min(delay*2, time.Minute)
	}
}
