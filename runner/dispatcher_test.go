package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/backend/devserver/devtest"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/state"
)

// heartbeatOf returns the last heartbeat the backend got from the agent.
func heartbeatOf(t *testing.T, b *devBackend) (hb struct {
	RunningJobs []string     `json:"runningJobs"`
	Capacity    api.Capacity `json:"capacity"`
}, ok bool) {
	t.Helper()
	orchs, err := b.Client.Orchestrators(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range orchs {
		if o.ID == testOrch && json.Unmarshal(o.LastHeartbeat, &hb) == nil {
			return hb, true
		}
	}
	return hb, false
}

// metricsOf returns the last metrics the backend got from the agent.
func metricsOf(t *testing.T, b *devBackend) api.AgentMetrics {
	t.Helper()
	orchs, err := b.Client.Orchestrators(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Metrics api.AgentMetrics `json:"metrics"`
	}
	for _, o := range orchs {
		if o.ID == testOrch {
			_ = json.Unmarshal(o.LastMetrics, &m)
		}
	}
	return m.Metrics
}

// The dispatcher holds at most jobs.maxConcurrent jobs: it asks for no
// more than its free slots, the others stay queued, unclaimed.
func TestDispatcherClaimsUpToFreeSlots(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	a := newAgent(t, b, w, t.TempDir(), agentConfig{maxConcurrent: 2}).start()
	var ids []string
	for range 5 {
		ids = append(ids, b.submit(t, devserver.SubmitRequest{Script: "out started; gate go"}))
	}
	waitFor(t, "two jobs to run", func() bool { return w.runningJobs() == 2 })

	held, unclaimed := 0, 0
	for _, id := range ids {
		switch v := b.job(t, id); {
		case v.Status == devserver.StatusQueued && v.Claims == 0:
			unclaimed++
		case v.Status == devserver.StatusClaimed || v.Status == devserver.StatusRunning:
			held++
		default:
			t.Errorf("job %s: %s after %d claims", id, v.Status, v.Claims)
		}
	}
	if held != 2 || unclaimed != 3 {
		t.Errorf("with 2 slots full: %d jobs held, %d unclaimed; want 2 and 3", held, unclaimed)
	}
	waitFor(t, "a heartbeat with both slots taken", func() bool {
		hb, ok := heartbeatOf(t, b)
		return ok && len(hb.RunningJobs) == 2 && hb.Capacity == api.Capacity{MaxJobs: 2, CurrentJobs: 2, AvailableSlots: 0}
	})

	w.open("go")
	for _, id := range ids {
		if v := b.waitDone(t, id); v.Status != devserver.StatusCompleted || exitCode(v) != 0 || v.Completions != 1 {
			t.Errorf("job %s: %s exit %d with %d completing calls", id, v.Status, exitCode(v), v.Completions)
		}
	}
	if got := w.maxRunning(); got != 2 {
		t.Errorf("at most %d scripts ran at once, want 2", got)
	}
	for _, n := range a.be.claimSizes() {
		if n < 1 || n > 2 {
			t.Errorf("claims asked for batches of %v: want 1 or 2 (the free slots)", a.be.claimSizes())
			break
		}
	}
	waitFor(t, "metrics counting the 5 jobs", func() bool {
		m := metricsOf(t, b)
		return m.JobsProcessed == 5 && m.JobsSucceeded == 5 && m.JobsFailed == 0
	})
	b.assertOnce(t)
}

// overDeliverer is a backend that hands out more jobs than asked for.
type overDeliverer struct {
	runner.Backend
	extra int
}

func (o overDeliverer) ClaimJobs(ctx context.Context, batchSize int, jobTypes []string) ([]api.QueueItem, error) {
	return o.Backend.ClaimJobs(ctx, batchSize+o.extra, jobTypes)
}

// Jobs a backend hands out beyond the free slots are released unstarted
// (never acknowledged, no execution) and run later, each once.
func TestDispatcherReleasesOverDelivery(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	var ids []string
	for range 6 {
		ids = append(ids, b.submit(t, devserver.SubmitRequest{Script: "out started; gate go"}))
	}
	// The first claim asks for 2 and gets 5: 2 run, 3 go back.
	a := newAgent(t, b, w, t.TempDir(), agentConfig{maxConcurrent: 2, wrap: func(be runner.Backend) runner.Backend {
		return overDeliverer{Backend: be, extra: 3}
	}}).start()
	waitFor(t, "two jobs to run", func() bool { return w.runningJobs() == 2 })
	var released []string
	waitFor(t, "3 jobs released", func() bool {
		released = released[:0]
		for _, id := range ids {
			if v := b.job(t, id); v.Releases > 0 {
				released = append(released, id)
			}
		}
		return len(released) == 3
	})
	for _, id := range released {
		v := b.job(t, id)
		if v.Status != devserver.StatusQueued || v.AcknowledgedAt != nil || len(v.Executions) != 0 || w.runsOf(id) != 0 {
			t.Errorf("released job %s: %s, acknowledged %v, executions %v, runs %d; want queued, untouched",
				id, v.Status, v.AcknowledgedAt, v.Executions, w.runsOf(id))
		}
		if i := slices.IndexFunc(v.History, func(h devserver.HistoryEvent) bool { return h.Event == "released" }); i < 0 || !strings.Contains(v.History[i].Detail, "no free slot") {
			t.Errorf("released job %s: history %+v does not say why", id, v.History)
		}
	}
	if !strings.Contains(a.log.String(), "more jobs than asked for") {
		t.Error("the over-delivery is not logged")
	}

	w.open("go")
	for _, id := range ids {
		if v := b.waitDone(t, id); v.Status != devserver.StatusCompleted || v.Completions != 1 || len(v.Executions) != 1 {
			t.Errorf("job %s: %s with %d completing calls and executions %v", id, v.Status, v.Completions, v.Executions)
		}
		if n := w.runsOf(id); n != 1 {
			t.Errorf("job %s ran %d times", id, n)
		}
	}
	if got := w.maxRunning(); got > 2 {
		t.Errorf("%d scripts ran at once with 2 slots", got)
	}
	b.assertOnce(t)
}

// With one slot, jobs start by priority, then by age.
func TestDispatcherClaimsInPriorityOrder(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	priorities := []int{1, 5, 3, 5, 0, 9, 3}
	var ids []string
	for i, p := range priorities {
		ids = append(ids, b.submit(t, devserver.SubmitRequest{Script: fmt.Sprintf("out job %d", i), Priority: p}))
	}
	want := slices.Clone(ids)
	sort.SliceStable(want, func(i, j int) bool {
		return priorities[slices.Index(ids, want[i])] > priorities[slices.Index(ids, want[j])]
	})

	newAgent(t, b, w, t.TempDir(), agentConfig{maxConcurrent: 1}).start()
	for _, id := range ids {
		b.waitDone(t, id)
	}
	var got []string
	for _, r := range w.runHistory() {
		got = append(got, r.jobID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("start order %v, want %v (priorities %v)", got, want, priorities)
	}
}

// A failed or timed-out run is retried per the job's retryPolicy: each
// attempt is an execution of its own with a start and an end, the log says
// which attempt runs, the delays are waited, and the job ends with exactly
// one completing call.
func TestDispatcherRetryPolicy(t *testing.T) {
	t.Parallel()
	retry := func(n int, backoff string, delay float64) map[string]any {
		return map[string]any{"retryPolicy": map[string]any{"maxAttempts": n, "backoffType": backoff, "backoffDelay": delay}}
	}
	for _, tc := range []struct {
		name      string
		script    string
		execution map[string]any
		made      int // the job's attempts field: attempts the backend counts as made
		status    string
		exit      int
		execExits []int // the exit code each execution's end reported
		system    []string
		minGaps   []time.Duration // between one run's end and the next one's start
	}{
		{
			name: "every attempt fails", script: "out try; exit 3", execution: retry(3, "fixed", 0.05),
			status: "failed", exit: 3, execExits: []int{3, 3, 3},
			system: []string{"attempt 1 of 3", "attempt 2 of 3", "attempt 3 of 3"},
		},
		{
			name: "the second attempt succeeds", script: "failfirst 1 3; out ok", execution: retry(3, "fixed", 0.05),
			status: "completed", exit: 0, execExits: []int{3, 0},
			system: []string{"attempt 1 of 3", "attempt 2 of 3"},
		},
		{
			name: "no retry policy: one attempt", script: "out try; exit 3",
			status: "failed", exit: 3, execExits: []int{3},
		},
		{
			// Retried by the backend after its agent was lost: 3 - 2 left.
			name: "attempts made elsewhere count", script: "out try; exit 3", execution: retry(3, "fixed", 0.05), made: 2,
			status: "failed", exit: 3, execExits: []int{3},
		},
		{
			name: "a timeout is retried", script: "out up; wait",
			execution: map[string]any{"timeout": int64(100 * time.Millisecond), "retryPolicy": retry(2, "fixed", 0.05)["retryPolicy"]},
			status:    "timeout", exit: -1, execExits: []int{-1, -1},
			system: []string{"attempt 1 of 2", "timed out after 100ms", "attempt 2 of 2", "timed out after 100ms"},
		},
		{
			// Delays above a second: attempts are a second apart anyway
			// (an execution id has the start's second in it).
			name: "exponential backoff waits its delays", script: "exit 1", execution: retry(3, "exponential", 1.2),
			status: "failed", exit: 1, execExits: []int{1, 1, 1},
			system:  []string{"attempt 1 of 3", "attempt 2 of 3", "attempt 3 of 3"},
			minGaps: []time.Duration{1200 * time.Millisecond, 2400 * time.Millisecond},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, w := startBackend(t), newWorld(t)
			newAgent(t, b, w, t.TempDir(), agentConfig{}).start()
			raw := rawScript(tc.script, 5, tc.execution)
			if tc.made > 0 {
				var job map[string]any
				if err := json.Unmarshal(raw, &job); err != nil {
					t.Fatal(err)
				}
				job["attempts"] = tc.made
				raw, _ = json.Marshal(job)
			}
			id := b.submitRaw(t, raw)
			v := b.waitDone(t, id)
			if v.Status != tc.status || exitCode(v) != tc.exit || v.Completions != 1 {
				t.Errorf("job: %s exit %d with %d completing calls; want %s %d once", v.Status, exitCode(v), v.Completions, tc.status, tc.exit)
			}
			if n := w.runsOf(id); n != len(tc.execExits) {
				t.Errorf("the script ran %d times, want %d", n, len(tc.execExits))
			}
			execs := b.executions(t, id)
			if len(execs) != len(tc.execExits) {
				t.Fatalf("%d executions, want one per attempt (%d)", len(execs), len(tc.execExits))
			}
			for i, ex := range execs {
				if ex.ExitCode() == nil || *ex.ExitCode() != tc.execExits[i] || ex.Updates != 2 {
					t.Errorf("execution %d (%s): exit %v after %d updates; want %d, a start and an end", i+1, ex.ID, ex.ExitCode(), ex.Updates, tc.execExits[i])
				}
				if got := string(ex.ExecutionMetadata["attempt"]); got != fmt.Sprint(i+1) {
					t.Errorf("execution %d (%s): attempt %s", i+1, ex.ID, got)
				}
			}
			if _, _, system := b.liveLog(t, id); !slices.Equal(system, tc.system) {
				t.Errorf("system lines %q, want %q", system, tc.system)
			}
			runs := w.runHistory()
			for i, gap := range tc.minGaps {
				if i+1 >= len(runs) {
					break
				}
				// A lower bound only: the delay must have been waited.
				if got := runs[i+1].started.Sub(runs[i].ended); got < gap {
					t.Errorf("attempt %d started %s after attempt %d ended, want at least %s", i+2, got, i+1, gap)
				}
			}
		})
	}
}

// Each kind of job ends with the status and exit code the backend expects,
// its output in the completion, and one completing call.
func TestDispatcherJobOutcomes(t *testing.T) {
	t.Parallel()
	// HTTP_REQUEST jobs go to this server, on loopback only.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "hello from the hook: %s %s", r.Method, body)
		case "/fail":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/slow":
			<-r.Context().Done()
		}
	}))
	defer hook.Close()
	b, w := startBackend(t), newWorld(t)
	newAgent(t, b, w, t.TempDir(), agentConfig{maxConcurrent: 8}).start()

	for _, tc := range []struct {
		name     string
		req      devserver.SubmitRequest
		raw      json.RawMessage
		status   string
		exit     int
		stdout   string
		stderr   string // a substring
		system   string // a substring of one system line
		errorMsg string // a substring of the fail call's error
		runs     int
	}{
		{name: "completed", req: devserver.SubmitRequest{Script: "out hello; err warn"},
			status: "completed", exit: 0, stdout: "hello\n", stderr: "warn\n", runs: 1},
		{name: "failed with the script's exit code", req: devserver.SubmitRequest{Script: "out failing; exit 3"},
			status: "failed", exit: 3, stdout: "failing\n", runs: 1},
		{name: "timed out", req: devserver.SubmitRequest{Script: "out up; wait", Timeout: "150ms"},
			status: "timeout", exit: -1, stdout: "up\n", system: "timed out after 150ms", runs: 1},
		{name: "HTTP request answered", req: devserver.SubmitRequest{HTTP: &devserver.HTTPSpec{Method: "POST", URL: hook.URL + "/ok", Body: "ping"}},
			status: "completed", exit: 0, stdout: "hello from the hook: POST ping"},
		{name: "HTTP request refused with 500", req: devserver.SubmitRequest{HTTP: &devserver.HTTPSpec{URL: hook.URL + "/fail"}},
			status: "failed", exit: 1, stdout: "boom\n", stderr: "500 Internal Server Error"},
		{name: "HTTP request timed out", req: devserver.SubmitRequest{HTTP: &devserver.HTTPSpec{URL: hook.URL + "/slow"}, Timeout: "150ms"},
			status: "timeout", exit: -1, stderr: "no response within 150ms"},
		// The harness's outbound policy allows 127.0.0.1 only.
		{name: "HTTP request to the metadata service refused", req: devserver.SubmitRequest{HTTP: &devserver.HTTPSpec{URL: "http://169.254.169.254/latest/meta-data/"}},
			status: "failed", exit: 1, stderr: "refused by the outbound policy: 169.254.169.254:80 is link-local (the cloud metadata service)",
			system: "GET http://169.254.169.254/latest/meta-data/: refused by the outbound policy: 169.254.169.254:80 is link-local"},
		{name: "HTTP request to loopback not allowed refused", req: devserver.SubmitRequest{HTTP: &devserver.HTTPSpec{URL: "http://127.0.0.2:9/"}},
			status: "failed", exit: 1, stderr: `127.0.0.2:9 is loopback (allow it with network.allow: "127.0.0.2/32")`,
			system: `refused by the outbound policy: 127.0.0.2:9 is loopback (allow it with network.allow: "127.0.0.2/32")`},
		{name: "SSH job refused", raw: json.RawMessage(`{"type":"ssh","execution":{"target":{"type":"server","serverId":"1"},
			"script":{"type":"BASH","content":"out never"}},"metadata":{"originalType":"SCRIPT"}}`),
			status: "failed", exit: 1, errorMsg: "SSH jobs are not supported"},
		{name: "malformed job failed with the decoder's message", raw: json.RawMessage(`{"type":"container","execution":{"timeout":"soon",
			"target":{"type":"local"},"script":{"type":"BASH","content":"out never"}},"metadata":{"originalType":"SCRIPT"}}`),
			status: "failed", exit: 1, errorMsg: "execution.timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var id string
			if tc.raw != nil {
				id = b.submitRaw(t, tc.raw)
			} else {
				id = b.submit(t, tc.req)
			}
			v := b.waitDone(t, id)
			if v.Status != tc.status || exitCode(v) != tc.exit || v.Completions != 1 {
				t.Errorf("%s exit %d with %d completing calls; want %s %d once (error %q)", v.Status, exitCode(v), v.Completions, tc.status, tc.exit, v.Error)
			}
			if tc.errorMsg != "" {
				if !strings.Contains(v.Error, tc.errorMsg) || len(v.Executions) != 0 {
					t.Errorf("error %q with executions %v; want %q and none", v.Error, v.Executions, tc.errorMsg)
				}
			} else if v.Output == nil || v.Output.Stdout != tc.stdout || !strings.Contains(v.Output.Stderr, tc.stderr) {
				t.Errorf("output %+v; want stdout %q, stderr with %q", v.Output, tc.stdout, tc.stderr)
			}
			_, _, system := b.liveLog(t, id)
			if tc.system != "" && !slices.ContainsFunc(system, func(l string) bool { return strings.Contains(l, tc.system) }) {
				t.Errorf("system lines %q, want one with %q", system, tc.system)
			}
			if n := w.runsOf(id); n != tc.runs {
				t.Errorf("the script ran %d times, want %d", n, tc.runs)
			}
		})
	}
	b.assertOnce(t)
}

// A cancellation asked of the backend reaches the agent in its heartbeat's
// cancelJobs: the run stops and the job completes cancelled / -2, whether
// its script was running or it waited to retry.
func TestDispatcherCancelThroughHeartbeat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		raw     json.RawMessage
		ready   func(w *world, id string) bool
		stdout  string
		execs   int
		execEnd int
	}{
		{
			name:  "while the script runs",
			raw:   rawScript("out up; wait", 5, nil),
			ready: func(w *world, id string) bool { return w.isRunning(id) },
			// The script's own output stays; the run's end says -2.
			stdout: "up\n", execs: 1, execEnd: -2,
		},
		{
			name: "while it waits to retry",
			raw:  rawScript("out try; exit 3", 5, map[string]any{"retryPolicy": map[string]any{"maxAttempts": 3, "backoffType": "fixed", "backoffDelay": 3600}}),
			ready: func(w *world, id string) bool {
				h := w.runHistory()
				return len(h) == 1 && !h[0].ended.IsZero() && w.taskOf(id) == nil
			},
			execs: 1, execEnd: 3,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, w := startBackend(t), newWorld(t)
			newAgent(t, b, w, t.TempDir(), agentConfig{}).start()
			id := b.submitRaw(t, tc.raw)
			waitFor(t, "the job to be under way", func() bool { return tc.ready(w, id) })
			if _, err := b.Client.Cancel(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			v := b.waitDone(t, id)
			if v.Status != devserver.StatusCancelled || exitCode(v) != -2 || v.Completions != 1 || !v.CancelDelivered {
				t.Errorf("job: %s exit %d, %d completing calls, cancel delivered %v; want cancelled -2 once", v.Status, exitCode(v), v.Completions, v.CancelDelivered)
			}
			if stdoutOf(v) != tc.stdout {
				t.Errorf("completion stdout %q, want %q", stdoutOf(v), tc.stdout)
			}
			if n := w.runsOf(id); n != 1 {
				t.Errorf("the script ran %d times, want once", n)
			}
			execs := b.executions(t, id)
			if len(execs) != tc.execs || execs[0].ExitCode() == nil || *execs[0].ExitCode() != tc.execEnd {
				t.Errorf("executions %+v; want %d ending %d", execs, tc.execs, tc.execEnd)
			}
			// A user's cancellation is not the agent stopping.
			if _, _, system := b.liveLog(t, id); slices.ContainsFunc(system, func(l string) bool { return strings.HasPrefix(l, "stopped:") }) {
				t.Errorf("system lines %q", system)
			}
		})
	}
}

// A cancellation that arrives while the run is being set up (an image
// pull, say) stops it before its script starts, and the job ends with one
// completing call. Its status is not asserted: today it is failed / 1
// through jobs/{id}/fail ("... context canceled"), where cancelled / -2
// would be expected (reported as a finding, left to the refactor).
func TestDispatcherCancelDuringSetup(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	newAgent(t, b, w, t.TempDir(), agentConfig{}).start()
	id := b.submit(t, devserver.SubmitRequest{Script: "setup pull; out never"})
	waitFor(t, "the run to be set up", func() bool {
		hb, ok := heartbeatOf(t, b)
		return ok && slices.Contains(hb.RunningJobs, id) && b.job(t, id).Status == devserver.StatusRunning
	})
	if _, err := b.Client.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	v := b.waitDone(t, id)
	if v.Completions != 1 || w.runsOf(id) != 0 || stdoutOf(v) != "" {
		t.Errorf("job cancelled during its setup: %s exit %d, %d completing calls, %d runs, stdout %q",
			v.Status, exitCode(v), v.Completions, w.runsOf(id), stdoutOf(v))
	}
	t.Logf("a job cancelled during its setup ends %s, exit %d, error %q", v.Status, exitCode(v), v.Error)
}

// Closing the drain channel (the first SIGTERM) stops the claims: running
// jobs finish, queued ones stay queued; past the drain timeout, running
// jobs are cancelled; a hard stop (ctx, the second signal) ends the drain
// at once. Every job that ran is reported, once.
func TestDispatcherDrain(t *testing.T) {
	t.Parallel()
	t.Run("running jobs finish, queued ones stay queued", func(t *testing.T) {
		t.Parallel()
		b, w := startBackend(t), newWorld(t)
		a := newAgent(t, b, w, t.TempDir(), agentConfig{maxConcurrent: 3, drainTimeout: time.Hour}).start()
		run1 := b.submit(t, devserver.SubmitRequest{Script: "out up; gate finish; out finished", Priority: 9})
		run2 := b.submit(t, devserver.SubmitRequest{Script: "out up; gate finish; out finished", Priority: 9})
		waitFor(t, "both jobs to run", func() bool { return w.isRunning(run1) && w.isRunning(run2) })
		a.drain()
		a.waitLog("draining: no new claims")
		queued := b.submit(t, devserver.SubmitRequest{Script: "out should not run"})
		// A free slot and a queued job, for a few heartbeats: no claim.
		hb := a.be.heartbeatCount()
		waitFor(t, "heartbeats during the drain", func() bool { return a.be.heartbeatCount() >= hb+3 })
		w.open("finish")
		a.waitStopped()
		a.stop()
		for _, id := range []string{run1, run2} {
			if v := b.job(t, id); v.Status != devserver.StatusCompleted || v.Completions != 1 || !strings.Contains(stdoutOf(v), "finished") {
				t.Errorf("job %s after the drain: %s with %d completing calls, stdout %q", id, v.Status, v.Completions, stdoutOf(v))
			}
		}
		if v := b.job(t, queued); v.Status != devserver.StatusQueued || v.AcknowledgedAt != nil || len(v.Executions) != 0 || w.runsOf(queued) != 0 {
			t.Errorf("job queued during the drain: %s, acknowledged %v, executions %v", v.Status, v.AcknowledgedAt, v.Executions)
		}
		b.assertOnce(t)
	})
	t.Run("drain timeout cancels", func(t *testing.T) {
		t.Parallel()
		b, w := startBackend(t), newWorld(t)
		a := newAgent(t, b, w, t.TempDir(), agentConfig{drainTimeout: 200 * time.Millisecond}).start()
		id := b.submit(t, devserver.SubmitRequest{Script: "out up; wait"})
		waitFor(t, "the job to run", func() bool { return w.isRunning(id) })
		a.drain()
		a.waitStopped()
		a.stop()
		v := b.job(t, id)
		if v.Status != devserver.StatusCancelled || exitCode(v) != -2 || v.Completions != 1 {
			t.Errorf("after the drain timeout: %s exit %d with %d completing calls", v.Status, exitCode(v), v.Completions)
		}
		if _, _, system := b.liveLog(t, id); !slices.Contains(system, "stopped: the agent is shutting down") {
			t.Errorf("system lines %q do not say why the job stopped", system)
		}
	})
	t.Run("a second stop ends the drain at once and reports every job", func(t *testing.T) {
		t.Parallel()
		b, w := startBackend(t), newWorld(t)
		a := newAgent(t, b, w, t.TempDir(), agentConfig{maxConcurrent: 2, drainTimeout: time.Hour}).start()
		running := b.submit(t, devserver.SubmitRequest{Script: "out up; wait", Priority: 9})
		retrying := b.submitRaw(t, rawScript("out try; exit 3", 9, map[string]any{"retryPolicy": map[string]any{"maxAttempts": 2, "backoffType": "fixed", "backoffDelay": 3600}}))
		waitFor(t, "one job to run and one to wait for its retry", func() bool {
			return w.isRunning(running) && w.runsOf(retrying) == 1 && w.taskOf(retrying) == nil
		})
		queued := b.submit(t, devserver.SubmitRequest{Script: "out should not run"})
		a.drain()
		a.waitLog("draining: no new claims") // the second stop comes during the drain
		a.cancel()
		a.waitStopped() // the drain timeout is an hour: the stop did not wait for it
		a.stop()
		for _, id := range []string{running, retrying} {
			if v := b.job(t, id); v.Status != devserver.StatusCancelled || exitCode(v) != -2 || v.Completions != 1 {
				t.Errorf("job %s after the stop: %s exit %d with %d completing calls; want cancelled -2 once", id, v.Status, exitCode(v), v.Completions)
			}
		}
		if v := b.job(t, queued); v.Status != devserver.StatusQueued || w.runsOf(queued) != 0 {
			t.Errorf("queued job after the stop: %s", v.Status)
		}
		b.assertOnce(t)
	})
}

// Before its first claim the dispatcher lists what the backend believes it
// holds (jobs/orphaned): a job its journal does not know (claimed by a
// process that died before journaling it) is released, then claimed and
// run like any other.
func TestDispatcherReleasesOrphans(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	id := b.submit(t, devserver.SubmitRequest{Script: "out ran"})
	earlier, err := backend.NewClient(b.URL, testToken, testOrch)
	if err != nil {
		t.Fatal(err)
	}
	if items, err := earlier.ClaimJobs(context.Background(), 1, []string{api.TypeScript}); err != nil || len(items) != 1 || items[0].ID != id {
		t.Fatalf("claim by the earlier process: %v %+v", err, items)
	}
	newAgent(t, b, w, t.TempDir(), agentConfig{}).start()
	v := b.waitDone(t, id)
	if v.Status != devserver.StatusCompleted || v.Completions != 1 || v.Releases != 1 || v.Claims != 2 || w.runsOf(id) != 1 {
		t.Errorf("orphan: %s, %d completing calls, %d releases, %d claims, %d runs; want completed once after one release",
			v.Status, v.Completions, v.Releases, v.Claims, w.runsOf(id))
	}
	if i := slices.IndexFunc(v.History, func(h devserver.HistoryEvent) bool { return h.Event == "released" }); i < 0 || !strings.Contains(v.History[i].Detail, "no record of starting") {
		t.Errorf("history %+v does not say why the job was released", v.History)
	}
}

// While the backend is away jobs keep running, new claims pause and
// everything waits in the journal; once it is back, every job is
// delivered whole: one completing call each, live lines 1..n in order.
func TestDispatcherBackendOutage(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	a := newAgent(t, b, w, t.TempDir(), agentConfig{maxConcurrent: 3}).start()
	var ids []string
	for range 3 {
		ids = append(ids, b.submit(t, devserver.SubmitRequest{Script: "lines 3; gate outage; lines 3; err done", Priority: 9}))
	}
	// No slot for it until one of the others ends, which is in the outage.
	later := b.submit(t, devserver.SubmitRequest{Script: "out later"})
	waitFor(t, "the jobs' first lines on the backend", func() bool {
		for _, id := range ids {
			if v := b.job(t, id); v.LogLines < 3 {
				return false
			}
		}
		return true
	})

	b.Down()
	w.open("outage")
	waitFor(t, "the jobs to end during the outage", func() bool {
		for _, id := range ids {
			if w.runsOf(id) != 1 || w.taskOf(id) != nil {
				return false
			}
		}
		return true
	})
	waitFor(t, "the agent to find the backend unreachable", func() bool { return !a.sy.Reachable() && a.sy.Backlog() > 0 })
	claims := len(a.be.claimSizes())
	hb := a.be.heartbeatCount()
	waitFor(t, "heartbeats during the outage", func() bool { return a.be.heartbeatCount() >= hb+3 })
	if n := len(a.be.claimSizes()); n != claims {
		t.Errorf("%d claims while the backend was unreachable with reports waiting", n-claims)
	}
	if n := w.runsOf(later); n != 0 {
		t.Errorf("a job was run during the outage (%d runs)", n)
	}

	b.Up(t)
	for _, id := range ids {
		v := b.waitDone(t, id)
		if v.Status != devserver.StatusCompleted || v.Completions != 1 {
			t.Errorf("job %s: %s with %d completing calls", id, v.Status, v.Completions)
		}
		stdout, stderr, _ := b.liveLog(t, id)
		if want := []string{"line 1", "line 2", "line 3", "line 4", "line 5", "line 6"}; !slices.Equal(stdout, want) || !slices.Equal(stderr, []string{"done"}) {
			t.Errorf("job %s: live stdout %q stderr %q", id, stdout, stderr)
		}
	}
	if v := b.waitDone(t, later); v.Status != devserver.StatusCompleted || v.Completions != 1 {
		t.Errorf("job claimed after the outage: %s with %d completing calls", v.Status, v.Completions)
	}
	waitFor(t, "the journal's backlog to drain", func() bool { return a.sy.Reachable() && a.sy.Backlog() == 0 })
	b.assertOnce(t)
}

// On a backend that holds claims (long poll), an idle agent claims a job
// as it is submitted, not at its next poll, and a drain ends the held
// claim rather than waiting for it.
func TestDispatcherLongPoll(t *testing.T) {
	b := startBackend(t)
	w := newWorld(t)
	// Polls a minute apart, claims held 55 s: within waitLimit (30 s),
	// only a held claim takes the job, and only an ended one stops.
	a := newAgent(t, b, w, t.TempDir(), agentConfig{pollInterval: time.Minute, longPoll: 55 * time.Second}).start()
	waitFor(t, "the first claim", func() bool { return len(a.be.claimSizes()) >= 1 })
	time.Sleep(200 * time.Millisecond) // the held claim is under way
	id := b.submit(t, devserver.SubmitRequest{Script: "out held"})
	v := b.waitDone(t, id)
	if v.Status != "completed" || len(a.be.claimSizes()) > 2 {
		t.Errorf("%s after %d claims, want completed after at most 2", v.Status, len(a.be.claimSizes()))
	}
	waitFor(t, "a held claim again", func() bool { return len(a.be.claimSizes()) >= 2 })
	time.Sleep(200 * time.Millisecond)
	a.drain()
	a.waitStopped()
	b.assertOnce(t)
}

// An agent cut off from the backend runs a job to its end and journals its
// completion; meanwhile the backend declares it lost and takes the job from
// it (here: fails it, "agent lost"). Back in touch, the refused completion is not sent again, the
// job is marked superseded in the journal, and the backend counts nothing.
func TestDispatcherSupersededWhileOffline(t *testing.T) {
	b := &devBackend{devtest.Start(t, "", testToken, devserver.WithLostAfter(time.Second))}
	w := newWorld(t)
	a := newAgent(t, b, w, t.TempDir(), agentConfig{}).start()
	id := b.submit(t, devserver.SubmitRequest{Script: "out one; gate end; out two"})
	waitFor(t, "the job's first line", func() bool { return b.job(t, id).LogLines >= 1 })
	b.Down()
	w.open("end")
	waitFor(t, "the job's end in the journal", func() bool {
		p, ok, err := a.jobs.Get(context.Background(), id)
		return err == nil && ok && p.State == state.Finished
	})
	waitFor(t, "the backend to give the job back", func() bool {
		v, err := b.Server.InProcessClient(testToken).Job(context.Background(), id)
		return err == nil && len(v.LostFrom) == 1
	})
	b.Up(t)
	a.waitLog("kept in the journal as superseded")
	p, _, err := a.jobs.Get(context.Background(), id)
	if err != nil || p.State != state.Superseded {
		t.Errorf("journal: %+v, %v", p, err)
	}
	a.drain()
	a.waitStopped()
	if v := b.job(t, id); v.Status != devserver.StatusFailed || exitCode(v) != -1 || v.Completions != 0 || len(v.LostFrom) != 1 {
		t.Errorf("backend: %s, %d completing calls, lost from %+v", v.Status, v.Completions, v.LostFrom)
	}
}

// An agent that has delivered nothing yet, but whose claims and heartbeats
// the backend answers, has reached it: its status says when.
func TestStatusContactBeforeAnyDelivery(t *testing.T) {
	b := startBackend(t)
	a := newAgent(t, b, newWorld(t), t.TempDir(), agentConfig{}).start()
	waitFor(t, "a heartbeat", func() bool { return a.be.heartbeatCount() >= 1 })
	st, err := runner.NewInspector(a.d, a.jobs, a.sy).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.LastContact.IsZero() || !st.BackendReachable || time.Since(st.LastContact) > waitLimit {
		t.Errorf("status: reachable %v, last contact %v", st.BackendReachable, st.LastContact)
	}
}
