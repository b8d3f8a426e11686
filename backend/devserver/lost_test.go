package devserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
)

// withoutSweeper leaves SweepLost to the test: a background sweep between
// a clock advance and the test's sweep would take the jobs it counts.
func withoutSweeper() Option { return func(o *options) { o.noSweeper = true } }

func (e *testEnv) heartbeat(orch string, running ...string) (cancel, superseded []string) {
	e.t.Helper()
	if running == nil {
		running = []string{}
	}
	var out struct {
		CancelJobs     []string `json:"cancelJobs"`
		SupersededJobs []string `json:"supersededJobs"`
	}
	decode(e.t, e.must(200, "POST", "/api/internal/orchestrator/heartbeat", orch, map[string]any{
		"orchestratorId": orch, "timestamp": "2026-11-27T12:00:00Z", "runningJobs": running, "capacity": map[string]int{"maxJobs": 5},
	}), &out)
	return out.CancelJobs, out.SupersededJobs
}

func (e *testEnv) sweep() int {
	e.t.Helper()
	n, err := e.srv.SweepLost()
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *testEnv) agentState(orch string) string {
	e.t.Helper()
	var orchs struct {
		Orchestrators []OrchestratorView `json:"orchestrators"`
	}
	decode(e.t, e.must(200, "GET", "/api/dev/orchestrators", "", nil), &orchs)
	for _, o := range orchs.Orchestrators {
		if o.ID == orch {
			return o.StateNow
		}
	}
	return ""
}

func historyHas(v JobView, event string) bool {
	for _, h := range v.History {
		if h.Event == event {
			return true
		}
	}
	return false
}

// start takes a claimed job to running, as an agent does.
func (e *testEnv) start(orch, id string) {
	e.t.Helper()
	e.must(200, "POST", "/api/internal/jobs/"+id+"/acknowledge", orch, map[string]any{"orchestratorId": orch, "timestamp": "2026-11-27T12:00:00Z"})
	e.must(201, "POST", "/api/internal/executions/exec_"+id+"_"+orch+"/create", orch, map[string]any{"jobId": id})
	e.must(200, "PUT", "/api/internal/jobs/"+id+"/status", orch, map[string]any{"status": "running"})
}

func TestLostAgentJobsGoBack(t *testing.T) {
	e := newTestEnv(t, WithLostAfter(10*time.Second), withoutSweeper())
	retry := json.RawMessage(`{"maxAttempts":2,"backoffType":"fixed","backoffDelay":1}`)
	claimed := e.submit(bashJob(3, "true"))
	retried := e.submit(SubmitRequest{Runtime: "bash", Script: "sleep 60", Priority: 2, RetryPolicy: retry})
	failed := e.submit(bashJob(1, "sleep 60"))
	e.heartbeat("agent-a")
	e.heartbeat("agent-b")
	if got := e.claim("agent-a", "batchSize=3"); len(got) != 3 {
		t.Fatalf("claimed %v", got)
	}
	e.start("agent-a", retried)
	e.start("agent-a", failed)

	// Nine seconds of silence: not lost; agent-b keeps heartbeating.
	e.advance(9 * time.Second)
	e.heartbeat("agent-b")
	if n := e.sweep(); n != 0 || e.agentState("agent-a") == AgentLost {
		t.Fatalf("before lost-after: moved %d, state %s", n, e.agentState("agent-a"))
	}
	e.advance(2 * time.Second)
	e.heartbeat("agent-b")
	if n := e.sweep(); n != 3 {
		t.Fatalf("moved %d jobs, want 3", n)
	}
	if s := e.agentState("agent-a"); s != AgentLost {
		t.Errorf("state %s", s)
	}
	if n := e.sweep(); n != 0 {
		t.Errorf("a second sweep moved %d", n)
	}

	// The claimed job is queued again, no attempt counted.
	if v := e.job(claimed); v.Status != StatusQueued || v.Orchestrator != "" || !historyHas(v, "agent lost, requeued") || len(v.LostFrom) != 1 || v.LostFrom[0].Attempt != 0 {
		t.Errorf("claimed job: %s %q %+v %+v", v.Status, v.Orchestrator, v.LostFrom, v.History)
	}
	// The running job with a retry left is queued with attempts 1.
	v := e.job(retried)
	var wire struct{ Attempts int }
	decode(t, v.Job, &wire)
	if v.Status != StatusQueued || wire.Attempts != 1 || !historyHas(v, "agent lost, retrying") || v.LostFrom[0].Attempt != 1 {
		t.Errorf("retried job: %s attempts %d %+v", v.Status, wire.Attempts, v.History)
	}
	// The running job without one failed with exit -1, no completing call.
	v = e.job(failed)
	if v.Status != StatusFailed || v.ExitCode == nil || *v.ExitCode != -1 || !strings.Contains(v.Error, "agent lost") || len(v.CompletionCalls) != 0 || !historyHas(v, "agent lost, failed") {
		t.Errorf("failed job: %s %v %q %d calls", v.Status, v.ExitCode, v.Error, len(v.CompletionCalls))
	}
	var ex ExecutionView
	decode(t, e.must(200, "GET", "/api/dev/executions/exec_"+failed+"_agent-a", "", nil), &ex)
	if ex.Status != StatusFailed {
		t.Errorf("lost attempt's execution: %s", ex.Status)
	}

	// Another agent gets them; the lost one does not, while another is online.
	if got := e.claim("agent-a", "batchSize=5"); len(got) != 0 {
		t.Errorf("the lost agent claimed %v", got)
	}
	got := e.claim("agent-b", "batchSize=5")
	if len(got) != 2 {
		t.Fatalf("agent-b claimed %v", got)
	}
	e.start("agent-b", retried)
	// The new run's lines, numbered from 1 by its agent, follow the line
	// that tells of the loss.
	e.must(200, "POST", "/api/internal/jobs/"+retried+"/logs", "agent-b", map[string]any{"entries": []map[string]any{{"seq": 1, "stream": "stdout", "line": "from b"}}})
	var logs LogPage
	decode(t, e.must(200, "GET", "/api/dev/jobs/"+retried+"/logs", "", nil), &logs)
	if len(logs.Entries) != 2 || logs.Entries[0].Stream != "system" || !strings.Contains(logs.Entries[0].Line, "agent lost: agent-a") || logs.Entries[1].Seq != 2 || logs.Entries[1].Line != "from b" {
		t.Errorf("retried job's log: %+v", logs.Entries)
	}
	e.must(200, "POST", "/api/internal/jobs/"+retried+"/complete", "agent-b", complete("completed", 0))

	// The lost agent returns: its reports on those jobs are refused and
	// its heartbeat names the ones it still runs.
	_, gone := e.heartbeat("agent-a", retried, failed)
	if len(gone) != 2 {
		t.Errorf("superseded %v", gone)
	}
	if s := e.agentState("agent-a"); s != AgentOnline {
		t.Errorf("state after its heartbeat: %s", s)
	}
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/internal/jobs/" + retried + "/complete", complete("completed", 0)},
		{"POST", "/api/internal/jobs/" + failed + "/complete", complete("completed", 0)},
		{"POST", "/api/internal/jobs/" + failed + "/fail", map[string]any{"error": "x"}},
		{"PUT", "/api/internal/jobs/" + failed + "/status", map[string]any{"status": "running"}},
		{"POST", "/api/internal/jobs/" + failed + "/logs", map[string]any{"entries": []map[string]any{{"seq": 9, "stream": "stdout", "line": "late"}}}},
		{"PUT", "/api/internal/executions/exec_" + failed + "_agent-a/update", map[string]any{"status": "running"}},
		{"POST", "/api/internal/executions/exec_" + failed + "_agent-a/output", map[string]any{"output": 1}},
		{"POST", "/api/internal/executions/exec_late/create", map[string]any{"jobId": failed}},
	} {
		code, body := e.call(c.method, c.path, "agent-a", c.body)
		if code != http.StatusConflict || !strings.Contains(string(body), api.SupersededCode) || !strings.Contains(string(body), "agent-a") {
			t.Errorf("%s %s by the lost agent: %d %s", c.method, c.path, code, body)
		}
	}
	if v := e.job(retried); v.Status != StatusCompleted || len(v.CompletionCalls) != 1 {
		t.Errorf("retried job after the late reports: %s, %d completing calls", v.Status, len(v.CompletionCalls))
	}
	if v := e.job(failed); v.Status != StatusFailed || len(v.CompletionCalls) != 0 || v.LogLines != 1 {
		t.Errorf("failed job after the late reports: %s, %d completing calls, %d lines", v.Status, len(v.CompletionCalls), v.LogLines)
	}
}

func TestLostAgentAloneGetsItsJobBack(t *testing.T) {
	e := newTestEnv(t, WithLostAfter(10*time.Second), withoutSweeper())
	id := e.submit(bashJob(0, "true"))
	e.heartbeat("agent-a")
	e.claim("agent-a", "batchSize=1")
	e.advance(11 * time.Second)
	if n := e.sweep(); n != 1 {
		t.Fatalf("moved %d", n)
	}
	// No other agent online: the one that returns takes it again.
	e.heartbeat("agent-a")
	if got := e.claim("agent-a", "batchSize=1"); len(got) != 1 || got[0] != id {
		t.Fatalf("claimed %v", got)
	}
	e.start("agent-a", id)
	e.must(200, "POST", "/api/internal/jobs/"+id+"/complete", "agent-a", complete("completed", 0))
}

func TestLostAfterZeroNeverLoses(t *testing.T) {
	e := newTestEnv(t, WithLostAfter(0), withoutSweeper())
	id := e.submit(bashJob(0, "true"))
	e.claim("agent-a", "batchSize=1")
	e.advance(24 * time.Hour)
	if n := e.sweep(); n != 0 {
		t.Fatalf("moved %d", n)
	}
	if v := e.job(id); v.Status != StatusClaimed {
		t.Errorf("status %s", v.Status)
	}
}

func TestLostClaimWithoutHeartbeats(t *testing.T) {
	// A client that claims without heartbeats or instance headers is
	// judged by its claim's age.
	e := newTestEnv(t, WithLostAfter(time.Minute), withoutSweeper())
	id := e.submit(bashJob(0, "true"))
	e.claim("agent-x", "batchSize=1")
	e.advance(59 * time.Second)
	if n := e.sweep(); n != 0 {
		t.Fatalf("moved %d before a minute", n)
	}
	e.advance(2 * time.Second)
	if n := e.sweep(); n != 1 {
		t.Fatalf("moved %d", n)
	}
	if v := e.job(id); v.Status != StatusQueued {
		t.Errorf("status %s", v.Status)
	}
}

func TestLostAgentCancelRequested(t *testing.T) {
	// A job a user cancelled before its agent was lost ends cancelled,
	// whether it ran or not, and is never run again.
	e := newTestEnv(t, WithLostAfter(10*time.Second), withoutSweeper())
	retry := json.RawMessage(`{"maxAttempts":3}`)
	running := e.submit(SubmitRequest{Runtime: "bash", Script: "sleep 60", Priority: 1, RetryPolicy: retry})
	claimed := e.submit(SubmitRequest{Runtime: "bash", Script: "true", RetryPolicy: retry})
	e.heartbeat("agent-a")
	e.claim("agent-a", "batchSize=2")
	e.start("agent-a", running)
	for _, id := range []string{running, claimed} {
		e.must(200, "POST", "/api/dev/jobs/"+id+"/cancel", "", nil)
	}
	e.advance(11 * time.Second)
	if n := e.sweep(); n != 2 {
		t.Fatalf("moved %d", n)
	}
	for _, id := range []string{running, claimed} {
		if v := e.job(id); v.Status != StatusCancelled || exitOf(v) != -2 || !historyHas(v, "agent lost, cancelled") {
			t.Errorf("job %s: %s exit %d", id, v.Status, exitOf(v))
		}
	}
}

func exitOf(v JobView) int {
	if v.ExitCode == nil {
		return -999
	}
	return *v.ExitCode
}
