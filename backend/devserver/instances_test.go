package devserver

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
)

// callAs is call with the instance headers of an agent process.
func (e *testEnv) callAs(method, path, orch, instance, previous, host string) (int, string) {
	e.t.Helper()
	h := http.Header{}
	h.Set("User-Agent", "cronium-agent/v9")
	h.Set(api.InstanceHeader, instance)
	if previous != "" {
		h.Set(api.PreviousInstanceHeader, previous)
	}
	h.Set(api.HostHeader, host)
	code, body := e.callWith(method, path, orch, nil, h)
	return code, string(body)
}

func TestSecondLiveInstanceIsRefused(t *testing.T) {
	e := newTestEnv(t)
	id := e.submit(bashJob(0, "true"))
	queue := "/api/internal/jobs/queue?batchSize=1"
	if code, body := e.callAs("GET", queue, "agent-1", "aaaa", "", "host-a"); code != 200 || !strings.Contains(body, id) {
		t.Fatalf("first instance: %d %s", code, body)
	}
	// Another process under the same id, not naming the first: refused,
	// its claim, release and orphan listing alike, and it changes nothing.
	for _, c := range []struct{ method, path string }{
		{"GET", queue}, {"GET", "/api/internal/jobs/orphaned"}, {"POST", "/api/internal/jobs/" + id + "/release"},
	} {
		code, body := e.callAs(c.method, c.path, "agent-1", "bbbb", "", "host-b")
		if code != http.StatusConflict || !strings.Contains(body, api.DuplicateIDCode) || !strings.Contains(body, "agent-1") || !strings.Contains(body, "host-a") || !strings.Contains(body, "aaaa") {
			t.Errorf("%s %s by a second instance: %d %s", c.method, c.path, code, body)
		}
	}
	if v := e.job(id); v.Status != StatusClaimed || v.Orchestrator != "agent-1" || v.Releases != 0 {
		t.Errorf("job after the refusals: %+v", v.JobSummary)
	}
	var orchs struct {
		Orchestrators []OrchestratorView `json:"orchestrators"`
	}
	decode(t, e.must(200, "GET", "/api/dev/orchestrators", "", nil), &orchs)
	if o := orchs.Orchestrators[0]; o.Instance != "aaaa" || o.Host != "host-a" || o.Version != "v9" || o.Refusals != 3 {
		t.Errorf("record %+v", o)
	}
	// A restart names the process before it: taken at once.
	if code, body := e.callAs("GET", queue, "agent-1", "cccc", "aaaa", "host-a"); code != 200 {
		t.Fatalf("restart: %d %s", code, body)
	}
	// The replaced process is now the second one.
	if code, _ := e.callAs("GET", queue, "agent-1", "aaaa", "", "host-a"); code != http.StatusConflict {
		t.Errorf("the replaced instance: %d", code)
	}
	// Silent for three heartbeats (10 s each when unknown), the live one
	// is gone: another process may take the id.
	e.advance(31 * time.Second)
	if code, body := e.callAs("GET", queue, "agent-1", "dddd", "", "host-d"); code != 200 {
		t.Errorf("after the first went silent: %d %s", code, body)
	}
	// Calls without the headers (other clients) are not checked.
	if code, _ := e.call("GET", queue, "agent-1", nil); code != 200 {
		t.Errorf("without instance headers: %d", code)
	}
}

func TestAgentState(t *testing.T) {
	e := newTestEnv(t)
	hb := func() {
		e.must(200, "POST", "/api/internal/orchestrator/heartbeat", "agent-2", map[string]any{"orchestratorId": "agent-2", "timestamp": "2026-11-27T12:00:00Z", "runningJobs": []string{}, "capacity": map[string]int{"maxJobs": 2}})
	}
	state := func() string {
		var orchs struct {
			Orchestrators []OrchestratorView `json:"orchestrators"`
		}
		decode(t, e.must(200, "GET", "/api/dev/orchestrators", "", nil), &orchs)
		return orchs.Orchestrators[0].StateNow
	}
	hb()
	e.advance(2 * time.Second)
	hb() // heartbeats every 2 s
	if s := state(); s != AgentOnline {
		t.Errorf("after a heartbeat: %s", s)
	}
	e.advance(5 * time.Second)
	if s := state(); s != AgentOnline {
		t.Errorf("two missed heartbeats: %s", s)
	}
	e.advance(2 * time.Second)
	if s := state(); s != AgentDisconnected {
		t.Errorf("three missed heartbeats: %s", s)
	}
	hb()
	if s := state(); s != AgentOnline {
		t.Errorf("back: %s", s)
	}
}
