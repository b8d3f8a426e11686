package devserver

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/internal/contracttest"
)

const testToken = "dev-token"

type testEnv struct {
	t    *testing.T
	dir  string
	srv  *Server
	ts   *httptest.Server
	now  atomic.Int64 // unix nanos of the server's clock
	opts []Option
}

func newTestEnv(t *testing.T, opts ...Option) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir(), opts: opts}
	e.now.Store(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).UnixNano())
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *testEnv) open() {
	e.t.Helper()
	opts := append([]Option{WithClock(func() time.Time { return time.Unix(0, e.now.Load()) })}, e.opts...)
	srv, err := New(e.dir, testToken, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv = srv
	e.ts = httptest.NewServer(srv.Handler())
}

func (e *testEnv) close() {
	if e.ts != nil {
		e.ts.Close()
		e.srv.Close()
		e.ts = nil
	}
}

func (e *testEnv) reopen() {
	e.close()
	e.open()
}

func (e *testEnv) advance(d time.Duration) { e.now.Add(int64(d)) }

// call sends a request with the token and X-Orchestrator-ID (unless orch is
// empty) and returns the status and body.
func (e *testEnv) call(method, path, orch string, body any) (int, []byte) {
	e.t.Helper()
	return e.callWith(method, path, orch, body, nil)
}

// callWith is call with extra request headers.
func (e *testEnv) callWith(method, path, orch string, body any, header http.Header) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if orch != "" {
		req.Header.Set("X-Orchestrator-ID", orch)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// must is call that fails the test unless the status is want.
func (e *testEnv) must(want int, method, path, orch string, body any) []byte {
	e.t.Helper()
	code, out := e.call(method, path, orch, body)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, code, want, out)
	}
	return out
}

func (e *testEnv) submit(req SubmitRequest) string {
	e.t.Helper()
	var out struct{ ID string }
	decode(e.t, e.must(http.StatusCreated, "POST", "/api/dev/jobs", "", req), &out)
	return out.ID
}

func (e *testEnv) claim(orch string, query string) []string {
	e.t.Helper()
	var out struct {
		Jobs  []struct{ ID string }
		Count int
	}
	decode(e.t, e.must(http.StatusOK, "GET", "/api/internal/jobs/queue?"+query, orch, nil), &out)
	ids := []string{}
	for _, j := range out.Jobs {
		ids = append(ids, j.ID)
	}
	if out.Count != len(ids) {
		e.t.Fatalf("count %d for %d jobs", out.Count, len(ids))
	}
	return ids
}

func (e *testEnv) job(id string) JobView {
	e.t.Helper()
	var v JobView
	decode(e.t, e.must(http.StatusOK, "GET", "/api/dev/jobs/"+id, "", nil), &v)
	return v
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

func bashJob(prio int, script string) SubmitRequest {
	return SubmitRequest{Runtime: "bash", Script: script, Priority: prio}
}

func complete(status string, code int) map[string]any {
	return map[string]any{"status": status, "exitCode": code, "output": map[string]string{"stdout": "out", "stderr": ""},
		"metrics":   map[string]any{"startTime": "2026-11-27T12:00:00Z", "endTime": "2026-11-27T12:00:01Z", "duration": 1000},
		"timestamp": "2026-11-27T12:00:01Z"}
}

func TestUnauthorized(t *testing.T) {
	e := newTestEnv(t)
	for _, auth := range []string{"", "Bearer wrong", "Basic " + testToken, "Bearer " + testToken + "x"} {
		req, _ := http.NewRequest("GET", e.ts.URL+"/api/internal/orchestrator/health", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || strings.TrimSpace(string(body)) != `{"error":"Unauthorized"}` {
			t.Errorf("auth %q: %d %s", auth, resp.StatusCode, body)
		}
	}
	var h map[string]any
	decode(t, e.must(200, "GET", "/api/internal/orchestrator/health", "", nil), &h)
	if h["status"] != "healthy" {
		t.Errorf("health: %v", h)
	}
}

func TestNewRefusesEmptyToken(t *testing.T) {
	if _, err := New(t.TempDir(), ""); err == nil {
		t.Fatal("New with an empty token succeeded")
	}
}

func TestDBFileMode(t *testing.T) {
	e := newTestEnv(t)
	fi, err := os.Stat(filepath.Join(e.dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}

func TestQueueOrderPriorityThenAge(t *testing.T) {
	e := newTestEnv(t)
	var want []string
	low := e.submit(bashJob(1, "echo low"))
	e.advance(time.Second)
	midOld := e.submit(bashJob(5, "echo mid old"))
	e.advance(time.Second)
	high := e.submit(bashJob(9, "echo high"))
	e.advance(time.Second)
	midNew := e.submit(bashJob(5, "echo mid new"))
	want = []string{high, midOld, midNew, low}
	// A raw job with an older createdAt goes before midOld.
	raw := `{"id":"job_RawOld000001","type":"container","priority":5,"createdAt":"2026-11-01T00:00:00.000Z","scheduledFor":"2026-11-01T00:00:00.000Z","attempts":0,"execution":{"script":{"type":"BASH","content":"true"}},"metadata":{"originalType":"SCRIPT"}}`
	e.must(201, "POST", "/api/dev/jobs", "", `{"raw":`+raw+`}`)
	want = slices.Insert(want, 1, "job_RawOld000001")

	got := e.claim("agent-1", "batchSize=2")
	got = append(got, e.claim("agent-1", "batchSize=10")...)
	if !slices.Equal(got, want) {
		t.Fatalf("claim order %v, want %v", got, want)
	}
	if more := e.claim("agent-1", "batchSize=10"); len(more) != 0 {
		t.Fatalf("claimed again: %v", more)
	}
	v := e.job(high)
	if v.Status != StatusClaimed || v.Orchestrator != "agent-1" || v.ClaimedAt == nil {
		t.Errorf("claimed job: %+v", v.JobSummary)
	}
}

func TestQueueBadRequests(t *testing.T) {
	e := newTestEnv(t)
	code, body := e.call("GET", "/api/internal/jobs/queue?batchSize=5", "", nil)
	if code != 400 || !strings.Contains(string(body), "X-Orchestrator-ID") {
		t.Errorf("without X-Orchestrator-ID: %d %s", code, body)
	}
	for _, q := range []string{"batchSize=0", "batchSize=x", "batchSize=-1"} {
		if code, body := e.call("GET", "/api/internal/jobs/queue?"+q, "a", nil); code != 400 {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
	// Empty queue: an empty array, not null.
	body = e.must(200, "GET", "/api/internal/jobs/queue", "a", nil)
	if strings.TrimSpace(string(body)) != `{"count":0,"jobs":[]}` {
		t.Errorf("empty queue: %s", body)
	}
	code, body = e.call("GET", "/api/internal/servers/1/credentials", "", nil)
	if code != 400 {
		t.Errorf("credentials without X-Orchestrator-ID: %d %s", code, body)
	}
}

func TestQueueConcurrentClaimsAreExclusive(t *testing.T) {
	e := newTestEnv(t)
	const jobs = 60
	for i := range jobs {
		e.submit(bashJob(i%3, fmt.Sprintf("echo %d", i)))
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			orch := fmt.Sprintf("agent-%d", w)
			for {
				req, _ := http.NewRequest("GET", e.ts.URL+"/api/internal/jobs/queue?batchSize=3", nil)
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("X-Orchestrator-ID", orch)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				var out struct{ Jobs []struct{ ID string } }
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if err != nil {
					errs <- err
					return
				}
				if len(out.Jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range out.Jobs {
					if prev, dup := seen[j.ID]; dup {
						errs <- fmt.Errorf("job %s claimed by %s and %s", j.ID, prev, orch)
					}
					seen[j.ID] = orch
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != jobs {
		t.Errorf("claimed %d jobs, want %d", len(seen), jobs)
	}
	for id, orch := range seen {
		if v := e.job(id); v.Orchestrator != orch || v.Claims != 1 {
			t.Errorf("%s: orchestrator %s claims %d, want %s once", id, v.Orchestrator, v.Claims, orch)
		}
	}
}

func TestQueueJobTypesAndSchedule(t *testing.T) {
	e := newTestEnv(t)
	script := e.submit(bashJob(0, "true"))
	httpJob := e.submit(SubmitRequest{Type: "HTTP_REQUEST", HTTP: &HTTPSpec{URL: "http://127.0.0.1:1/x"}})
	tool := e.submit(SubmitRequest{Type: "TOOL_ACTION", ToolAction: json.RawMessage(`{"toolType":"SLACK","config":{"actionId":"send"}}`)})
	later := e.submit(SubmitRequest{Runtime: "python", Script: "print(1)", Delay: "1m"})

	if got := e.claim("a", "batchSize=10&jobTypes=HTTP_REQUEST,TOOL_ACTION"); !slices.Equal(got, []string{httpJob, tool}) {
		t.Errorf("jobTypes=HTTP_REQUEST,TOOL_ACTION: %v", got)
	}
	if got := e.claim("a", "batchSize=10&jobTypes=SCRIPT"); !slices.Equal(got, []string{script}) {
		t.Errorf("jobTypes=SCRIPT: %v (the delayed job must wait)", got)
	}
	e.advance(2 * time.Minute)
	if got := e.claim("a", "batchSize=10"); !slices.Equal(got, []string{later}) {
		t.Errorf("after the delay: %v", got)
	}
}

func TestBuiltJobWireShape(t *testing.T) {
	e := newTestEnv(t)
	id := e.submit(SubmitRequest{Runtime: "node", Script: "console.log(1)", Env: map[string]string{"A": "1"},
		Input: json.RawMessage(`[1,2]`), Timeout: "30s", Priority: 7, UserID: "u1", EventName: "ev"})
	body := e.must(200, "GET", "/api/internal/jobs/queue?batchSize=1", "a", nil)
	var out struct {
		Jobs []map[string]any `json:"jobs"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatal(err)
	}
	j := out.Jobs[0]
	ex := j["execution"].(map[string]any)
	md := j["metadata"].(map[string]any)
	checks := map[string]any{
		"id": j["id"], "type": j["type"], "priority": j["priority"], "attempts": j["attempts"],
		"timeout": ex["timeout"], "script.type": ex["script"].(map[string]any)["type"],
		"env": ex["environment"].(map[string]any)["A"], "target": ex["target"].(map[string]any)["type"],
		"originalType": md["originalType"], "userId": md["userId"], "eventName": md["eventName"],
	}
	want := map[string]any{
		"id": id, "type": "container", "priority": json.Number("7"), "attempts": json.Number("0"),
		"timeout": json.Number("30000000000"), "script.type": "NODEJS", "env": "1", "target": "local",
		"originalType": "SCRIPT", "userId": "u1", "eventName": "ev",
	}
	for k, w := range want {
		if checks[k] != w {
			t.Errorf("%s = %v (%T), want %v", k, checks[k], checks[k], w)
		}
	}
	if _, ok := md["eventId"].(json.Number); !ok {
		t.Errorf("metadata.eventId %v is not a number", md["eventId"])
	}
	if in, _ := json.Marshal(ex["inputData"]); string(in) != "[1,2]" {
		t.Errorf("inputData %s", in)
	}
	for _, k := range []string{"createdAt", "scheduledFor"} {
		if _, err := time.Parse(time.RFC3339, j[k].(string)); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	if !strings.HasPrefix(id, "job_") || len(id) != 16 {
		t.Errorf("id %q", id)
	}
	for _, bad := range []SubmitRequest{
		{Runtime: "ruby", Script: "x"}, {Runtime: "bash"}, {Type: "HTTP_REQUEST"}, {Type: "NOPE"},
		{Script: "x", Timeout: "soon"}, {Script: "x", ServerID: "99"},
	} {
		if code, body := e.call("POST", "/api/dev/jobs", "", bad); code != 400 {
			t.Errorf("submit %+v: %d %s", bad, code, body)
		}
	}
}

func TestRawFixtureJobsRoundTrip(t *testing.T) {
	e := newTestEnv(t)
	for _, name := range []string{"queue-mixed-batch.json", "queue-single-bash.json", "queue-ssh.json"} {
		var fx struct {
			Jobs []json.RawMessage `json:"jobs"`
		}
		decode(t, contracttest.Fixture(t, name), &fx)
		want := map[string][]byte{}
		var order []string
		for _, raw := range fx.Jobs {
			var id struct{ ID string }
			decode(t, raw, &id)
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				t.Fatal(err)
			}
			want[id.ID] = buf.Bytes()
			order = append(order, id.ID)
			var sub struct{ ID string }
			decode(t, e.must(201, "POST", "/api/dev/jobs", "", `{"raw":`+string(raw)+`}`), &sub)
			if sub.ID != id.ID {
				t.Fatalf("%s: submitted as %s", id.ID, sub.ID)
			}
		}
		body := e.must(200, "GET", "/api/internal/jobs/queue?batchSize=50", "agent-fx", nil)
		var out struct {
			Jobs  []json.RawMessage `json:"jobs"`
			Count int               `json:"count"`
		}
		decode(t, body, &out)
		if out.Count != len(fx.Jobs) {
			t.Fatalf("%s: claimed %d of %d", name, out.Count, len(fx.Jobs))
		}
		var got []string
		for _, j := range out.Jobs {
			var id struct{ ID string }
			decode(t, j, &id)
			got = append(got, id.ID)
			if !bytes.Equal(j, want[id.ID]) {
				t.Errorf("%s: %s came back as\n%s\nwant\n%s", name, id.ID, j, want[id.ID])
			}
		}
		// The fixtures list their jobs by priority, then age.
		if !slices.Equal(got, order) {
			t.Errorf("%s: order %v, want %v", name, got, order)
		}
		if name == "queue-mixed-batch.json" {
			s := string(body)
			for _, frag := range []string{`"timeout":120000000000`, `"timeout":"thirty seconds"`, `"PORT":8080`, `"COUNT":"3"`, `"type":"RUBY"`, `"eventId":"47"`} {
				if !strings.Contains(s, frag) {
					t.Errorf("queue answer lacks %s", frag)
				}
			}
		}
	}
	// Refused: not an object, no execution, a duplicate id, a non-string id.
	for _, raw := range []string{`[1]`, `{"id":"job_X"}`, `{"id":"job_Py0000000001","execution":{}}`, `{"id":5,"execution":{}}`, `{"execution":null}`} {
		if code, body := e.call("POST", "/api/dev/jobs", "", `{"raw":`+raw+`}`); code/100 != 4 {
			t.Errorf("raw %s: %d %s", raw, code, body)
		}
	}
	// Without an id, one is given and put first.
	var sub struct{ ID string }
	decode(t, e.must(201, "POST", "/api/dev/jobs", "", `{"raw":{"execution":{"script":{"type":"BASH","content":"true"}}}}`), &sub)
	body := e.must(200, "GET", "/api/internal/jobs/queue", "a", nil)
	if want := `{"id":"` + sub.ID + `","execution":{"script":{"type":"BASH","content":"true"}}}`; !strings.Contains(string(body), want) {
		t.Errorf("raw job without id came back as %s, want %s", body, want)
	}
}

func TestAcknowledge(t *testing.T) {
	e := newTestEnv(t)
	id := e.submit(bashJob(0, "true"))
	ack := func(orch string) (int, []byte) {
		return e.call("POST", "/api/internal/jobs/"+id+"/acknowledge", orch,
			map[string]string{"orchestratorId": orch, "timestamp": "2026-11-27T12:00:00Z"})
	}
	if code, _ := ack("a"); code != 403 {
		t.Errorf("acknowledge of a queued job: %d", code)
	}
	e.claim("a", "")
	if code, body := ack("b"); code != 403 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("acknowledge by another orchestrator: %d %s", code, body)
	}
	code, body := ack("a")
	var out struct {
		Success bool
		Job     map[string]any
	}
	decode(t, body, &out)
	if code != 200 || !out.Success || out.Job["id"] != id || out.Job["orchestrator_id"] != "a" {
		t.Errorf("acknowledge: %d %s", code, body)
	}
	if v := e.job(id); v.AcknowledgedAt == nil {
		t.Error("acknowledgedAt not recorded")
	}
	if code, _ := e.call("POST", "/api/internal/jobs/job_None00000000/acknowledge", "a", map[string]string{"orchestratorId": "a"}); code != 404 {
		t.Errorf("acknowledge of an unknown job: %d", code)
	}
}

func TestStatusUpdates(t *testing.T) {
	e := newTestEnv(t)
	id := e.submit(bashJob(0, "true"))
	e.claim("a", "")
	path := "/api/internal/jobs/" + id + "/status"
	for _, st := range []string{"claimed", "queued", "cancelled", "timeout", "RUNNING", ""} {
		if code, body := e.call("PUT", path, "a", map[string]any{"status": st}); code != 400 {
			t.Errorf("status %q: %d %s", st, code, body)
		}
	}
	if code, body := e.call("PUT", path, "a", `{"status":"running","details":{"error":{"code":1}}}`); code != 400 {
		t.Errorf("details.error object: %d %s", code, body)
	}
	e.must(200, "PUT", path, "a", map[string]any{"status": "running", "timestamp": "2026-11-27T12:00:05Z",
		"details": map[string]string{"message": "started"}})
	v := e.job(id)
	if v.Status != StatusRunning || v.StartedAt == nil || !v.StartedAt.Equal(time.Date(2026, 11, 27, 12, 0, 5, 0, time.UTC)) || v.StatusMessage != "started" {
		t.Errorf("after running: %s %v %q", v.Status, v.StartedAt, v.StatusMessage)
	}
	e.must(200, "PUT", path, "a", `{"status":"failed","details":{"error":"boom"}}`)
	if v := e.job(id); v.Status != StatusFailed || v.Completions != 0 {
		t.Errorf("after failed: %s, %d completions", v.Status, v.Completions)
	}
	// A late "running" does not take a finished job back.
	e.must(200, "PUT", path, "a", `{"status":"running"}`)
	if v := e.job(id); v.Status != StatusFailed {
		t.Errorf("late running: %s", v.Status)
	}
}

func TestCompleteAndFailAreCounted(t *testing.T) {
	e := newTestEnv(t)
	a := e.submit(bashJob(0, "true"))
	b := e.submit(bashJob(0, "false"))
	e.claim("x", "batchSize=2")
	pa, pb := "/api/internal/jobs/"+a, "/api/internal/jobs/"+b

	for _, bad := range []any{
		map[string]any{"status": "done", "exitCode": 0},
		map[string]any{"status": "completed"},
		map[string]any{"status": "completed", "exitCode": "0"},
		map[string]any{"status": "completed", "exitCode": 0, "condition": "yes"},
		map[string]any{"status": "completed", "exitCode": 0, "output": map[string]any{"stdout": 1}},
		map[string]any{"status": "completed", "exitCode": 0, "metrics": 5},
		"",
	} {
		if code, body := e.call("POST", pa+"/complete", "x", bad); code != 400 {
			t.Errorf("complete %v: %d %s", bad, code, body)
		}
	}
	body := complete("completed", 0)
	body["scriptOutput"] = map[string]any{"sum": 6}
	body["condition"] = true
	e.must(200, "POST", pa+"/complete", "x", body)
	v := e.job(a)
	if v.Status != StatusCompleted || v.ExitCode == nil || *v.ExitCode != 0 || v.Output == nil || v.Output.Stdout != "out" ||
		string(v.ScriptOutput) != `{"sum":6}` || v.Condition == nil || !*v.Condition || v.CompletedAt == nil || v.Completions != 1 ||
		!strings.Contains(string(v.Metrics), `"duration":1000`) {
		t.Errorf("after complete: %+v", v)
	}
	// A second completing call is accepted and counted.
	e.must(200, "POST", pa+"/complete", "x", complete("timeout", -1))
	if v := e.job(a); v.Completions != 2 || v.Status != StatusTimeout || len(v.CompletionCalls) != 2 || v.CompletionCalls[1].Endpoint != "complete" {
		t.Errorf("after a second complete: %d completions, status %s", v.Completions, v.Status)
	}

	for _, bad := range []string{`{"exitCode":1}`, `{"error":""}`, `{"error":5}`} {
		if code, body := e.call("POST", pb+"/fail", "x", bad); code != 400 {
			t.Errorf("fail %s: %d %s", bad, code, body)
		}
	}
	e.must(200, "POST", pb+"/fail", "x", map[string]any{"error": "unsupported runtime RUBY", "exitCode": 1, "timestamp": "2026-11-27T12:00:00Z"})
	v = e.job(b)
	if v.Status != StatusFailed || v.Error != "unsupported runtime RUBY" || v.Completions != 1 || v.CompletionCalls[0].Endpoint != "fail" {
		t.Errorf("after fail: %+v", v)
	}
	e.must(200, "POST", pb+"/complete", "x", complete("failed", 1))

	var st Stats
	decode(t, e.must(200, "GET", "/api/dev/stats", "", nil), &st)
	if st.Completions[a] != 2 || st.Completions[b] != 2 || !slices.Equal(st.Duplicates, sorted(a, b)) || st.Jobs != 2 {
		t.Errorf("stats: %+v", st)
	}
	if code, _ := e.call("POST", "/api/internal/jobs/job_None00000000/complete", "x", complete("completed", 0)); code != 404 {
		t.Errorf("complete of an unknown job: %d", code)
	}
}

func sorted(s ...string) []string { sort.Strings(s); return s }

func TestLogs(t *testing.T) {
	e := newTestEnv(t)
	id := e.submit(bashJob(0, "echo hi"))
	e.claim("a", "")
	path := "/api/internal/jobs/" + id + "/logs"
	ts := "2026-11-27T12:00:00.123456789Z"
	batch := func(entries ...string) string {
		return `{"executionId":"exec_` + id + `_1","entries":[` + strings.Join(entries, ",") + `]}`
	}
	entry := func(seq int, stream, line string) string {
		return fmt.Sprintf(`{"seq":%d,"stream":%q,"line":%q,"timestamp":%q}`, seq, stream, line, ts)
	}
	var res struct{ Accepted, Duplicates int }
	decode(t, e.must(200, "POST", path, "a", batch(entry(1, "stdout", "one"), entry(2, "stderr", "two"))), &res)
	if res.Accepted != 2 {
		t.Errorf("accepted %d", res.Accepted)
	}
	// Redelivery with changed text: the first copy wins.
	decode(t, e.must(200, "POST", path, "a", batch(entry(2, "stderr", "TWO"), entry(3, "system", "three"))), &res)
	if res.Accepted != 1 || res.Duplicates != 1 {
		t.Errorf("redelivery: %+v", res)
	}
	for _, bad := range []string{batch(entry(4, "stdin", "x")), batch(entry(0, "stdout", "x")), batch(entry(4, "", "x")), `{"entries":5}`} {
		if code, body := e.call("POST", path, "a", bad); code != 400 {
			t.Errorf("logs %s: %d %s", bad, code, body)
		}
	}
	// A bad batch is refused whole.
	if code, _ := e.call("POST", path, "a", batch(entry(9, "stdout", "ok"), entry(10, "bogus", "x"))); code != 400 {
		t.Error("batch with one bad stream accepted")
	}
	// Unknown job: 400, never 404 (which means "no log endpoint").
	if code, _ := e.call("POST", "/api/internal/jobs/job_None00000000/logs", "a", batch(entry(1, "stdout", "x"))); code != 400 {
		t.Errorf("logs of an unknown job: %d", code)
	}

	var page LogPage
	decode(t, e.must(200, "GET", "/api/dev/jobs/"+id+"/logs", "", nil), &page)
	if len(page.Entries) != 3 || page.Status != StatusClaimed {
		t.Fatalf("logs: %+v", page)
	}
	for i, want := range []string{"one", "two", "three"} {
		l := page.Entries[i]
		if l.Seq != uint64(i+1) || l.Line != want || l.ExecutionID != "exec_"+id+"_1" || l.Timestamp.Nanosecond() != 123456789 {
			t.Errorf("entry %d: %+v", i, l)
		}
	}
	decode(t, e.must(200, "GET", "/api/dev/jobs/"+id+"/logs?after=2", "", nil), &page)
	if len(page.Entries) != 1 || page.Entries[0].Line != "three" {
		t.Errorf("after=2: %+v", page.Entries)
	}
	decode(t, e.must(200, "GET", "/api/dev/jobs/"+id+"/logs?after=1&limit=1", "", nil), &page)
	if len(page.Entries) != 1 || !page.More {
		t.Errorf("limit=1: %+v", page)
	}
	if v := e.job(id); v.LogLines != 3 || v.LastLogSeq != 3 {
		t.Errorf("log lines %d, last seq %d", v.LogLines, v.LastLogSeq)
	}
}

func TestWithoutLogEndpoint(t *testing.T) {
	e := newTestEnv(t, WithoutLogEndpoint())
	id := e.submit(bashJob(0, "echo hi"))
	e.claim("a", "")
	code, body := e.call("POST", "/api/internal/jobs/"+id+"/logs", "a", `{"executionId":"x","entries":[{"seq":1,"stream":"stdout","line":"x"}]}`)
	if code != 404 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("logs without the endpoint: %d %s", code, body)
	}
	e.must(200, "POST", "/api/internal/jobs/"+id+"/complete", "a", complete("completed", 0))
}

func TestRelease(t *testing.T) {
	e := newTestEnv(t)
	raw := `{"id":"job_Rel000000001","type":"container","priority":1,"attempts":2,"execution":{"script":{"type":"BASH","content":"true"}},"metadata":{"originalType":"SCRIPT"}}`
	e.must(201, "POST", "/api/dev/jobs", "", `{"raw":`+raw+`}`)
	id := "job_Rel000000001"
	e.claim("a", "")
	if code, _ := e.call("POST", "/api/internal/jobs/"+id+"/release", "b", `{"message":"not mine"}`); code != 403 {
		t.Errorf("release by another orchestrator: %d", code)
	}
	e.must(200, "POST", "/api/internal/jobs/"+id+"/release", "a", `{"message":"shutting down"}`)
	v := e.job(id)
	if v.Status != StatusQueued || v.Orchestrator != "" || v.Releases != 1 {
		t.Errorf("after release: %+v", v.JobSummary)
	}
	body := e.must(200, "GET", "/api/internal/jobs/queue", "b", nil)
	if !strings.Contains(string(body), `"attempts":2`) || !strings.Contains(string(body), id) {
		t.Errorf("re-claim after release: %s", body)
	}
	// Released while a cancel was pending: cancelled.
	e.must(200, "POST", "/api/dev/jobs/"+id+"/cancel", "", nil)
	e.must(200, "POST", "/api/internal/jobs/"+id+"/release", "b", nil)
	if v := e.job(id); v.Status != StatusCancelled {
		t.Errorf("release of a cancel-requested job: %s", v.Status)
	}
	if code, _ := e.call("POST", "/api/internal/jobs/"+id+"/release", "b", nil); code != 409 {
		t.Errorf("release of a finished job: %d", code)
	}
}

func TestOrphaned(t *testing.T) {
	e := newTestEnv(t)
	a := e.submit(bashJob(3, "sleep 1"))
	b := e.submit(bashJob(2, "sleep 2"))
	c := e.submit(bashJob(1, "sleep 3"))
	e.claim("agent-1", "batchSize=2")
	e.claim("agent-2", "batchSize=1")
	e.must(200, "PUT", "/api/internal/jobs/"+a+"/status", "agent-1", `{"status":"running","timestamp":"2026-11-27T12:00:02Z"}`)

	if code, _ := e.call("GET", "/api/internal/jobs/orphaned", "", nil); code != 400 {
		t.Errorf("orphaned without orchestratorId: %d", code)
	}
	body := e.must(200, "GET", "/api/internal/jobs/orphaned?orchestratorId=agent-1", "agent-1", nil)
	if body[0] != '[' {
		t.Fatalf("not a bare array: %s", body)
	}
	var rows []map[string]any
	decode(t, body, &rows)
	byID := map[string]map[string]any{}
	for _, r := range rows {
		byID[r["id"].(string)] = r
	}
	if len(rows) != 2 || byID[a] == nil || byID[b] == nil {
		t.Fatalf("orphaned for agent-1: %s", body)
	}
	ra := byID[a]
	if ra["status"] != "running" || ra["orchestrator_id"] != "agent-1" || ra["started_at"] != "2026-11-27T12:00:02.000Z" || ra["type"] != "SCRIPT" {
		t.Errorf("row of a: %v", ra)
	}
	if byID[b]["status"] != "claimed" || byID[b]["started_at"] != nil {
		t.Errorf("row of b: %v", byID[b])
	}
	for _, k := range []string{"event_id", "user_id", "payload", "scheduled_for", "completed_at", "created_at", "updated_at", "attempts", "last_error", "metadata"} {
		if _, ok := ra[k]; !ok {
			t.Errorf("row lacks %s", k)
		}
	}
	e.must(200, "POST", "/api/internal/jobs/"+a+"/complete", "agent-1", complete("completed", 0))
	decode(t, e.must(200, "GET", "/api/internal/jobs/orphaned?orchestratorId=agent-1", "", nil), &rows)
	if len(rows) != 1 || rows[0]["id"] != b {
		t.Errorf("after completing a: %v", rows)
	}
	if body := e.must(200, "GET", "/api/internal/jobs/orphaned?orchestratorId=nobody", "", nil); strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("nobody's orphans: %s", body)
	}
	_ = c
}

func TestExecutions(t *testing.T) {
	e := newTestEnv(t)
	id := e.submit(SubmitRequest{Script: "true", UserID: "user_1", EventName: "ev"})
	exec := "exec_" + id + "_1764244800"
	p := "/api/internal/executions/" + exec
	for _, bad := range []string{`{}`, `{"jobId":"` + id + `","serverId":"7"}`} {
		if code, body := e.call("POST", p+"/create", "a", bad); code != 400 {
			t.Errorf("create %s: %d %s", bad, code, body)
		}
	}
	if code, _ := e.call("POST", p+"/create", "a", `{"jobId":"job_None00000000"}`); code != 404 {
		t.Errorf("create for an unknown job: %d", code)
	}
	e.must(201, "POST", p+"/create", "a", `{"jobId":"`+id+`","serverId":7,"serverName":"web-1"}`)
	e.must(200, "POST", p+"/create", "a", `{"jobId":"`+id+`","serverId":7,"serverName":"web-1"}`) // retried
	if code, _ := e.call("POST", p+"/create", "a", `{"jobId":"job_Other0000000"}`); code != 409 {
		t.Errorf("create for another job: %d", code)
	}

	for _, bad := range []string{
		`{"completedAt":"2026-11-27T12:00:00Z"}`,
		`{"status":"completed"}`, `{"status":"FAILED"}`, `{"status":"timeout"}`, `{"status":"cancelled"}`,
		`{"executionStartedAt":"0001-01-01T00:00:00Z"}`, `{"startedAt":"yesterday"}`,
		`{"totalDuration":"5"}`, `{"metadata":[1]}`, `{"exitCode":1.5}`, `{"output":{"a":1}}`, `{"error":3}`, `{"status":1}`,
	} {
		if code, body := e.call("PUT", p+"/update", "a", bad); code != 400 {
			t.Errorf("update %s: %d %s", bad, code, body)
		}
	}
	e.must(200, "PUT", p+"/update", "a", `{"status":"running","startedAt":"2026-11-27T12:00:00Z","metadata":{"a":1,"b":1}}`)
	e.must(200, "PUT", p+"/update", "a", `{"exitCode":0,"setupDuration":12,"metadata":{"b":2},"executionMetadata":{"image":"bash"}}`)
	if code, _ := e.call("PUT", "/api/internal/executions/exec_none/update", "a", `{"exitCode":0}`); code != 404 {
		t.Errorf("update of an unknown execution: %d", code)
	}

	if code, _ := e.call("POST", p+"/output", "a", `{"timestamp":"2026-11-27T12:00:00Z"}`); code != 400 {
		t.Error("output without output accepted")
	}
	e.must(200, "POST", p+"/output", "a", `{"output":{"sum":6},"timestamp":"2026-11-27T12:00:00Z"}`)
	if code, _ := e.call("POST", p+"/condition", "a", `{"condition":"true"}`); code != 400 {
		t.Error("non-boolean condition accepted")
	}
	e.must(200, "POST", p+"/condition", "a", `{"condition":false}`)

	var ev ExecutionView
	decode(t, e.must(200, "GET", "/api/dev/executions/"+exec, "", nil), &ev)
	if ev.JobID != id || ev.Status != StatusRunning || ev.ServerID == nil || *ev.ServerID != 7 || ev.Updates != 2 || string(ev.Metadata["a"]) != "1" ||
		string(ev.Metadata["b"]) != "2" || string(ev.Fields["exitCode"]) != "0" || string(ev.Output) != `{"sum":6}` ||
		ev.Condition == nil || *ev.Condition || string(ev.ExecutionMetadata["image"]) != `"bash"` {
		t.Errorf("execution: %+v", ev)
	}
	// The condition of an execution does not touch the job.
	if v := e.job(id); v.Condition != nil || !slices.Equal(v.Executions, []string{exec}) {
		t.Errorf("job after execution calls: condition %v, executions %v", v.Condition, v.Executions)
	}

	var ctx map[string]any
	decode(t, e.must(200, "GET", p+"/context", "a", nil), &ctx)
	if ctx["executionId"] != exec || ctx["jobId"] != id || ctx["userId"] != "user_1" || ctx["eventId"] == nil || ctx["user"] != nil {
		t.Errorf("context: %v", ctx)
	}
	if ev, _ := ctx["event"].(map[string]any); ev["name"] != "ev" {
		t.Errorf("context event: %v", ctx["event"])
	}
	if code, _ := e.call("GET", "/api/internal/executions/exec_none/context", "a", nil); code != 404 {
		t.Errorf("context of an unknown execution: %d", code)
	}
}

// An execution's status is queued when created, running once an update
// says so, and final once its job completes: the backend's own business,
// since no update may carry a terminal one.
func TestExecutionStatus(t *testing.T) {
	type exec struct {
		updates []string // update bodies, in order
		want    string   // status once the job completed
	}
	for _, tc := range []struct {
		name     string
		endpoint string // complete or fail
		body     string
		execs    []exec
	}{
		{"completed run", "complete", `{"status":"completed","exitCode":0}`, []exec{
			{[]string{`{"status":"running","startedAt":"2026-11-27T12:00:00Z"}`, `{"exitCode":0,"totalDuration":12}`}, "completed"},
		}},
		{"retried: earlier attempts take their exit code's status", "complete", `{"status":"failed","exitCode":3}`, []exec{
			{[]string{`{"status":"running"}`, `{"exitCode":3}`}, "failed"},
			{[]string{`{"status":"running"}`, `{"exitCode":-1}`}, "timeout"},
			{[]string{`{"status":"running"}`, `{"exitCode":0}`}, "completed"},
			{[]string{`{"status":"running"}`}, "failed"}, // started, never reported its end
			{nil, "queued"}, // never started, reported nothing
			{[]string{`{"status":"running"}`, `{"exitCode":3}`}, "failed"}, // the last: the job's status
		}},
		{"timed out", "complete", `{"status":"timeout","exitCode":-1}`, []exec{
			{[]string{`{"status":"running"}`, `{"exitCode":-1}`}, "timeout"},
		}},
		{"failed before it started", "fail", `{"error":"image missing","exitCode":1}`, []exec{
			{[]string{`{"exitCode":1,"setupDuration":5}`}, "failed"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			id := e.submit(SubmitRequest{Script: "true"})
			var ids []string
			for i, x := range tc.execs {
				ex := fmt.Sprintf("exec_%s_%d", id, 1764244800+i)
				ids = append(ids, ex)
				e.must(201, "POST", "/api/internal/executions/"+ex+"/create", "a", `{"jobId":"`+id+`"}`)
				var ev ExecutionView
				decode(t, e.must(200, "GET", "/api/dev/executions/"+ex, "", nil), &ev)
				if ev.Status != StatusQueued {
					t.Errorf("%s created with status %q", ex, ev.Status)
				}
				for _, u := range x.updates {
					e.must(200, "PUT", "/api/internal/executions/"+ex+"/update", "a", u)
				}
			}
			e.must(200, "POST", "/api/internal/jobs/"+id+"/"+tc.endpoint, "a", tc.body)
			// A late start update never takes a finished execution back.
			e.must(200, "PUT", "/api/internal/executions/"+ids[len(ids)-1]+"/update", "a", `{"status":"running"}`)

			c, err := NewDevClient(e.ts.URL, testToken)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Executions(context.Background(), id)
			if err != nil || len(got) != len(tc.execs) {
				t.Fatalf("executions: %d, %v", len(got), err)
			}
			for i, ev := range got {
				if ev.ID != ids[i] || ev.Status != tc.execs[i].want {
					t.Errorf("execution %d: %s %q, want %s %q", i, ev.ID, ev.Status, ids[i], tc.execs[i].want)
				}
				if _, ok := ev.Fields["status"]; ok {
					t.Errorf("execution %d keeps status among its fields", i)
				}
			}
		})
	}

	e := newTestEnv(t)
	c, _ := NewDevClient(e.ts.URL, testToken)
	if _, err := c.Executions(context.Background(), "job_None00000000"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("executions of an unknown job: %v", err)
	}
}

func TestExecutionViewFields(t *testing.T) {
	ev := ExecutionView{Fields: map[string]json.RawMessage{
		"exitCode": []byte(`-1`), "setupDuration": []byte(`812`), "executionStartedAt": []byte(`"2026-11-27T12:00:00.250Z"`),
		"cleanupDuration": []byte(`"x"`),
	}}
	if c := ev.ExitCode(); c == nil || *c != -1 {
		t.Errorf("exit code %v", c)
	}
	if d, ok := ev.Duration("setupDuration"); !ok || d != 812*time.Millisecond {
		t.Errorf("setupDuration %s %v", d, ok)
	}
	if _, ok := ev.Duration("cleanupDuration"); ok {
		t.Error("a malformed duration read")
	}
	if _, ok := ev.Duration("totalDuration"); ok {
		t.Error("an absent duration read")
	}
	if at, ok := ev.Time("executionStartedAt"); !ok || !at.Equal(time.Date(2026, 11, 27, 12, 0, 0, 250e6, time.UTC)) {
		t.Errorf("executionStartedAt %s %v", at, ok)
	}
	if (ExecutionView{}).ExitCode() != nil {
		t.Error("exit code of an execution that reported none")
	}
}

func TestVariables(t *testing.T) {
	e := newTestEnv(t)
	p := "/api/internal/variables/user_1/"
	code, body := e.call("GET", p+"counter", "a", nil)
	if code != 404 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("unset variable: %d %s", code, body)
	}
	for _, bad := range []string{`{"value":5}`, `{"value":{"a":1}}`, `{"value":null}`, `{}`, ``} {
		if code, body := e.call("PUT", p+"counter", "a", bad); code != 400 {
			t.Errorf("PUT %s: %d %s", bad, code, body)
		}
	}
	var ok struct{ Success bool }
	decode(t, e.must(200, "PUT", p+"counter", "a", `{"value":"5"}`), &ok)
	if !ok.Success {
		t.Error("PUT did not answer success")
	}
	var v struct{ Key, Value, UpdatedAt string }
	decode(t, e.must(200, "GET", p+"counter", "a", nil), &v)
	if v.Key != "counter" || v.Value != "5" || v.UpdatedAt == "" {
		t.Errorf("GET: %+v", v)
	}
	// Keys are path-escaped: a key with a slash and a space.
	e.must(200, "PUT", p+"a%2Fb%20c", "a", `{"value":"{\"x\":1}"}`)
	decode(t, e.must(200, "GET", p+"a%2Fb%20c", "a", nil), &v)
	if v.Key != "a/b c" || v.Value != `{"x":1}` {
		t.Errorf("escaped key: %+v", v)
	}
	if code, _ := e.call("GET", "/api/internal/variables/user_2/counter", "a", nil); code != 404 {
		t.Errorf("another user's variable: %d", code)
	}
}

func TestHeartbeatDeliversCancelOnce(t *testing.T) {
	e := newTestEnv(t)
	running := e.submit(bashJob(2, "sleep 100"))
	queued := e.submit(bashJob(0, "sleep 100"))
	other := e.submit(bashJob(1, "sleep 100"))
	e.claim("a", "batchSize=1")
	e.claim("b", "batchSize=1")
	e.must(200, "PUT", "/api/internal/jobs/"+running+"/status", "a", `{"status":"running"}`)

	var c CancelResult
	decode(t, e.must(200, "POST", "/api/dev/jobs/"+queued+"/cancel", "", nil), &c)
	if c.Status != StatusCancelled {
		t.Errorf("cancel of a queued job: %+v", c)
	}
	if got := e.claim("a", "batchSize=5"); len(got) != 0 {
		t.Errorf("cancelled job claimed: %v", got)
	}
	decode(t, e.must(200, "POST", "/api/dev/jobs/"+running+"/cancel", "", nil), &c)
	if c.Status != StatusRunning || !c.CancelRequested {
		t.Errorf("cancel of a running job: %+v", c)
	}
	hb := func(orch string) []string {
		var out struct {
			Success    bool
			Timestamp  string
			CancelJobs []string
		}
		decode(t, e.must(200, "POST", "/api/internal/orchestrator/heartbeat", orch, map[string]any{
			"orchestratorId": orch, "timestamp": "2026-11-27T12:00:00Z", "runningJobs": []string{},
			"capacity": map[string]int{"maxJobs": 5, "currentJobs": 1, "availableSlots": 4}}), &out)
		if !out.Success || out.Timestamp == "" || out.CancelJobs == nil {
			t.Errorf("heartbeat answer: %+v", out)
		}
		return out.CancelJobs
	}
	if got := hb("b"); len(got) != 0 {
		t.Errorf("b got %v", got)
	}
	if got := hb("a"); !slices.Equal(got, []string{running}) {
		t.Errorf("a got %v, want [%s]", got, running)
	}
	if got := hb("a"); len(got) != 0 {
		t.Errorf("second heartbeat of a got %v", got)
	}
	if code, _ := e.call("POST", "/api/dev/jobs/"+queued+"/cancel", "", nil); code != 409 {
		t.Errorf("cancel of a cancelled job: %d", code)
	}
	e.must(200, "POST", "/api/internal/jobs/"+running+"/complete", "a", complete("cancelled", -2))
	if v := e.job(running); v.Status != StatusCancelled || !v.CancelDelivered {
		t.Errorf("after completion: %s delivered=%v", v.Status, v.CancelDelivered)
	}
	if code, _ := e.call("POST", "/api/internal/orchestrator/heartbeat", "", `{"timestamp":"2026-11-27T12:00:00Z"}`); code != 400 {
		t.Errorf("heartbeat without orchestratorId: %d", code)
	}
	_ = other
}

func TestMetricsAndHealthReports(t *testing.T) {
	e := newTestEnv(t)
	e.must(200, "POST", "/api/internal/orchestrator/metrics", "a", `{"orchestratorId":"a","timestamp":"2026-11-27T12:00:00Z","period":"minute","metrics":{"jobsProcessed":3,"cpuUsage":0.5}}`)
	e.must(200, "POST", "/api/internal/orchestrator/health", "a", `{"orchestratorId":"a","status":"degraded","timestamp":"2026-11-27T12:00:00Z","metrics":{},"errors":["disk"]}`)
	for _, bad := range []struct{ path, body string }{
		{"metrics", `{"orchestratorId":"a","metrics":{"jobsProcessed":"3"}}`},
		{"metrics", `{"orchestratorId":"a"}`},
		{"health", `{"orchestratorId":"a","status":"fine"}`},
	} {
		if code, body := e.call("POST", "/api/internal/orchestrator/"+bad.path, "a", bad.body); code != 400 {
			t.Errorf("%s %s: %d %s", bad.path, bad.body, code, body)
		}
	}
	var out struct{ Orchestrators []OrchestratorView }
	decode(t, e.must(200, "GET", "/api/dev/orchestrators", "", nil), &out)
	if len(out.Orchestrators) != 1 || !strings.Contains(string(out.Orchestrators[0].LastHealth), "degraded") ||
		!strings.Contains(string(out.Orchestrators[0].LastMetrics), `"jobsProcessed":3`) {
		t.Errorf("orchestrators: %+v", out)
	}
}

// testPrivateKey returns a fresh unencrypted ed25519 key in OpenSSH form,
// trailing newline included, as ssh-keygen writes it.
func testPrivateKey(t testing.TB) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "devserver test")
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(blk))
}

func TestServers(t *testing.T) {
	e := newTestEnv(t)
	key := testPrivateKey(t)
	const password = "pw-Never-Listed-7f3a"
	var reg struct {
		ID     string
		Server ServerView
	}
	body := e.must(201, "POST", "/api/dev/servers", "", map[string]any{"name": "web-1", "host": "127.0.0.1", "port": 2222, "username": "deploy", "privateKey": key})
	decode(t, body, &reg)
	if reg.ID != "1" || reg.Server != (ServerView{ID: "1", Name: "web-1", Host: "127.0.0.1", Port: 2222, Username: "deploy", HasKey: true, CreatedAt: reg.Server.CreatedAt}) ||
		strings.Contains(string(body), "PRIVATE KEY") {
		t.Errorf("add answer: %s", body)
	}
	var pwReg struct{ ID string }
	decode(t, e.must(201, "POST", "/api/dev/servers", "", map[string]any{"host": "db.example.test", "username": "ops", "password": password}), &pwReg)

	// servers/{id} (§6): address, never a secret.
	var sv struct{ Server map[string]any }
	decode(t, e.must(200, "GET", "/api/internal/servers/"+reg.ID, "a", nil), &sv)
	if sv.Server["address"] != "127.0.0.1" || sv.Server["port"] != 2222.0 || sv.Server["name"] != "web-1" || sv.Server["privateKey"] != nil {
		t.Errorf("server: %v", sv.Server)
	}
	// servers/{id}/credentials: the key byte for byte; the password too
	// (the deployed backend leaves it out).
	var cr struct{ Credentials map[string]any }
	decode(t, e.must(200, "GET", "/api/internal/servers/"+reg.ID+"/credentials", "a", nil), &cr)
	if cr.Credentials["privateKey"] != key || cr.Credentials["username"] != "deploy" || cr.Credentials["host"] != "127.0.0.1" || cr.Credentials["password"] != nil {
		t.Errorf("credentials: %v", cr.Credentials)
	}
	cr.Credentials = nil
	decode(t, e.must(200, "GET", "/api/internal/servers/"+pwReg.ID+"/credentials", "a", nil), &cr)
	if cr.Credentials["password"] != password || cr.Credentials["port"] != 22.0 || cr.Credentials["privateKey"] != nil {
		t.Errorf("password credentials: %v", cr.Credentials)
	}
	if code, _ := e.call("GET", "/api/internal/servers/999", "a", nil); code != 404 {
		t.Errorf("unknown server: %d", code)
	}

	// The list has flags, never the secrets.
	list := e.must(200, "GET", "/api/dev/servers", "", nil)
	for _, secret := range []string{key, password, "PRIVATE KEY", strings.Split(key, "\n")[1], "privateKey", `"password"`} {
		if strings.Contains(string(list), secret) {
			t.Errorf("server list holds %.40q: %s", secret, list)
		}
	}
	var ls struct {
		Servers []ServerView
		Count   int
	}
	decode(t, list, &ls)
	if ls.Count != 2 || len(ls.Servers) != 2 || !ls.Servers[0].HasKey || ls.Servers[0].HasPassword || ls.Servers[0].Auth() != "key" ||
		ls.Servers[1].ID != pwReg.ID || ls.Servers[1].HasKey || !ls.Servers[1].HasPassword || ls.Servers[1].Auth() != "password" ||
		ls.Servers[1].Name != "server-"+pwReg.ID || ls.Servers[1].Port != 22 {
		t.Errorf("server list: %+v", ls)
	}

	// DELETE: gone from the list and from the internal API; 404 after.
	e.must(200, "DELETE", "/api/dev/servers/"+pwReg.ID, "", nil)
	for _, p := range []string{"/api/internal/servers/" + pwReg.ID, "/api/internal/servers/" + pwReg.ID + "/credentials"} {
		if code, _ := e.call("GET", p, "a", nil); code != 404 {
			t.Errorf("GET %s of a removed server: %d", p, code)
		}
	}
	for _, id := range []string{pwReg.ID, "999", "web-1"} {
		if code, b := e.call("DELETE", "/api/dev/servers/"+id, "", nil); code != 404 || !strings.Contains(string(b), "Server not found") {
			t.Errorf("DELETE server %s: %d %s", id, code, b)
		}
	}
	decode(t, e.must(200, "GET", "/api/dev/servers", "", nil), &ls)
	if ls.Count != 1 || ls.Servers[0].ID != reg.ID {
		t.Errorf("after rm: %+v", ls)
	}
	// A new server never reuses a removed one's id.
	var again struct{ ID string }
	decode(t, e.must(201, "POST", "/api/dev/servers", "", map[string]any{"host": "h", "username": "u", "password": "p"}), &again)
	if again.ID != "3" {
		t.Errorf("next id %q, want 3", again.ID)
	}
	// Servers survive a restart.
	e.reopen()
	decode(t, e.must(200, "GET", "/api/dev/servers", "", nil), &ls)
	if ls.Count != 2 || ls.Servers[0].ID != "1" || ls.Servers[1].ID != "3" {
		t.Errorf("after reopen: %+v", ls)
	}
}

func TestServerAddValidation(t *testing.T) {
	e := newTestEnv(t)
	key := testPrivateKey(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	encBlk, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	encrypted := string(pem.EncodeToMemory(encBlk))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	pkcs8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	pubOnly := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJhXbWk145AFc+0kFMuwXPSRNj46jfREFJzCQlZM5N9b test\n"

	ok := map[string]any{"host": "127.0.0.1", "username": "deploy", "privateKey": key}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range ok {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name string
		body any
		want string // a fragment of the 400's error; "" for a 201
	}{
		{"key", ok, ""},
		{"password", with("privateKey", nil, "password", "pw"), ""},
		{"PKCS#8 EC key", with("privateKey", pkcs8), ""},
		{"given id", with("id", "42"), ""},
		{"no host", with("host", nil), "host is required"},
		{"blank host", with("host", "  "), "host is required"},
		{"host with a blank", with("host", "a b"), "host must not hold blanks"},
		{"no username", with("username", nil), "username is required"},
		{"port too high", with("port", 65536), "port must be between 1 and 65535, got 65536"},
		{"negative port", with("port", -1), "port must be between 1 and 65535, got -1"},
		{"port as text", with("port", "22"), "invalid body"},
		{"no secret", with("privateKey", nil), "privateKey or password is required"},
		{"both secrets", with("password", "pw"), "give privateKey or password, not both"},
		{"not a key", with("privateKey", "KEY"), "privateKey: not a private key (ssh: no key found)"},
		{"a public key", with("privateKey", pubOnly), "privateKey: not a private key"},
		{"encrypted key", with("privateKey", encrypted), "privateKey: protected by a passphrase"},
		{"id not a number", with("id", "web-1"), `id must be a positive integer`},
		{"id zero", with("id", "0"), `id must be a positive integer`},
		{"name with a control character", with("name", "a\x1b[2Jb"), "name must not hold control characters"},
		{"everything missing", map[string]any{"port": 70000}, "host is required; port must be between 1 and 65535, got 70000; username is required; privateKey or password is required"},
		{"not JSON", "{", "invalid body"},
		{"no body", "", "request body required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.call("POST", "/api/dev/servers", "", tc.body)
			if tc.want == "" {
				if code != 201 {
					t.Errorf("%d %s", code, body)
				}
				return
			}
			var out struct{ Error string }
			decode(t, body, &out)
			if code != 400 || !strings.Contains(out.Error, tc.want) {
				t.Errorf("%d %q, want 400 and %q", code, out.Error, tc.want)
			}
			if strings.Contains(out.Error, "BEGIN") || strings.Contains(out.Error, "pw") && tc.name != "both secrets" {
				t.Errorf("the error quotes a secret: %q", out.Error)
			}
		})
	}
	// The given id was kept; posting it again replaces that server.
	e.must(201, "POST", "/api/dev/servers", "", with("id", "42", "name", "replaced", "privateKey", nil, "password", "pw2"))
	var ls struct{ Servers []ServerView }
	decode(t, e.must(200, "GET", "/api/dev/servers", "", nil), &ls)
	var ids []string
	for _, s := range ls.Servers {
		ids = append(ids, s.ID)
	}
	if !slices.Equal(ids, []string{"1", "2", "3", "42"}) || ls.Servers[3].Name != "replaced" || !ls.Servers[3].HasPassword || ls.Servers[3].HasKey {
		t.Errorf("servers %v: %+v", ids, ls.Servers)
	}
}

// claimDecoded claims every queued job and decodes the batch as the agent
// does.
func (e *testEnv) claimDecoded() map[string]*api.Job {
	e.t.Helper()
	body := e.must(200, "GET", "/api/internal/jobs/queue?batchSize=50&jobTypes=SCRIPT", "agent-ssh", nil)
	items, err := api.DecodeQueue(body, api.DecodeOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]*api.Job{}
	for _, it := range items {
		if it.Err != nil {
			e.t.Fatalf("job %s: %v", it.ID, it.Err)
		}
		out[it.ID] = it.Job
	}
	return out
}

// keyShape is the set of keys of a JSON object, and of its objects and
// arrays' objects, as "path.key" (array elements as "path[]").
func keyShape(t *testing.T, raw []byte) []string {
	t.Helper()
	var v any
	decode(t, raw, &v)
	var out []string
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if p == ".execution.environment" {
				return // names of the job's own
			}
			for k, c := range x {
				out = append(out, p+"."+k)
				walk(p+"."+k, c)
			}
		case []any:
			for _, c := range x {
				walk(p+"[]", c)
			}
		}
	}
	walk("", v)
	sort.Strings(out)
	return slices.Compact(out)
}

func TestSSHJobs(t *testing.T) {
	e := newTestEnv(t)
	key := testPrivateKey(t)
	var a, b struct{ ID string }
	decode(t, e.must(201, "POST", "/api/dev/servers", "", map[string]any{"name": "ssh-key server", "host": "127.0.0.1", "port": 57827, "username": "cronium-remote", "privateKey": key}), &a)
	decode(t, e.must(201, "POST", "/api/dev/servers", "", map[string]any{"name": "ssh-password server", "host": "127.0.0.1", "port": 57827, "username": "cronium-remote", "password": "cronium-remote-pw"}), &b)
	srvA := api.Server{ID: a.ID, Name: "ssh-key server", Host: "127.0.0.1", Port: 57827, Username: "cronium-remote", PrivateKey: key}
	srvB := api.Server{ID: b.ID, Name: "ssh-password server", Host: "127.0.0.1", Port: 57827, Username: "cronium-remote", Password: "cronium-remote-pw"}

	one := e.submit(SubmitRequest{Runtime: "bash", Script: "hostname", Env: map[string]string{"G": "hi"}, ServerIDs: []string{a.ID}})
	legacy := e.submit(SubmitRequest{Runtime: "bash", Script: "hostname", ServerID: a.ID})
	two := e.submit(SubmitRequest{Runtime: "python", Script: "print(1)", ServerIDs: []string{a.ID, b.ID}})
	reversed := e.submit(SubmitRequest{Runtime: "bash", Script: "true", ServerIDs: []string{b.ID, a.ID}})
	omitted := e.submit(SubmitRequest{Runtime: "bash", Script: "true", ServerIDs: []string{a.ID, b.ID}, OmitServerDetails: true})
	omittedOne := e.submit(SubmitRequest{Runtime: "bash", Script: "true", ServerIDs: []string{b.ID}, OmitServerDetails: true})

	// The wire jobs have the deployed backend's shape (queue-deployed-ssh.json):
	// the same keys at every level, single- and multi-server.
	var fx struct{ Jobs []json.RawMessage }
	decode(t, contracttest.Fixture(t, "queue-deployed-ssh.json"), &fx)
	for id, want := range map[string]json.RawMessage{one: fx.Jobs[0], two: fx.Jobs[1]} {
		got := keyShape(t, e.job(id).Job)
		if w := keyShape(t, want); !slices.Equal(got, w) {
			t.Errorf("job %s has the keys\n%v\nthe deployed backend's have\n%v", id, got, w)
		}
	}

	jobs := e.claimDecoded()
	if len(jobs) != 6 {
		t.Fatalf("claimed %d jobs", len(jobs))
	}
	for _, id := range []string{one, legacy} {
		j := jobs[id]
		if j.Type != api.WireSSH || j.Target.Type != "server" || j.Target.ServerID != a.ID || j.Target.Server == nil || *j.Target.Server != srvA {
			t.Errorf("%s: %+v target %+v", id, j, j.Target)
		}
		md := j.Metadata
		if md.MultiServer || md.Servers != nil || md.Raw["serverId"] != a.ID || md.Raw["eventVersion"] != 1.0 || md.EventID == "" {
			t.Errorf("%s: metadata %+v", id, md)
		}
		if _, isText := md.Raw["eventId"].(string); !isText {
			t.Errorf("%s: eventId %v, want a string as the deployed backend sends", id, md.Raw["eventId"])
		}
		for _, k := range []string{"servers", "multiServer", "serverCount"} {
			if _, ok := md.Raw[k]; ok {
				t.Errorf("%s: a single-server job has metadata.%s", id, k)
			}
		}
	}
	if env := jobs[one].Environment; env["G"] != "hi" || jobs[one].Script.Runtime != api.RuntimeBash {
		t.Errorf("one: %+v", jobs[one])
	}
	for _, tc := range []struct {
		id      string
		first   api.Server
		servers []api.Server
		details bool
	}{
		{two, srvA, []api.Server{srvA, srvB}, true},
		{reversed, srvB, []api.Server{srvB, srvA}, true},
		{omitted, srvA, []api.Server{srvA, srvB}, false},
	} {
		j := jobs[tc.id]
		md := j.Metadata
		if j.Type != api.WireSSH || j.Target.ServerID != tc.first.ID || !md.MultiServer || !slices.Equal(md.Servers, tc.servers) ||
			md.Raw["serverCount"] != 2.0 || md.Raw["serverId"] != tc.first.ID {
			t.Errorf("%s: target %+v metadata %+v", tc.id, j.Target, md)
		}
		switch {
		case tc.details && (j.Target.Server == nil || *j.Target.Server != tc.first):
			t.Errorf("%s: serverDetails %+v, want the first server", tc.id, j.Target.Server)
		case !tc.details && j.Target.Server != nil:
			t.Errorf("%s: serverDetails sent with OmitServerDetails", tc.id)
		}
	}
	if j := jobs[omittedOne]; j.Target.ServerID != b.ID || j.Target.Server != nil || j.Metadata.Servers != nil {
		t.Errorf("omitted one: %+v %+v", j.Target, j.Metadata)
	}
	// The key is sent byte for byte, trailing newline included.
	if wire := string(e.job(one).Job); !strings.HasSuffix(key, "\n") || !strings.Contains(wire, `"privateKey":`+strconv.Quote(key)+"}") {
		t.Errorf("key changed on the way: %s", wire)
	}
}

func TestSSHJobRefusals(t *testing.T) {
	e := newTestEnv(t)
	var a struct{ ID string }
	decode(t, e.must(201, "POST", "/api/dev/servers", "", map[string]any{"host": "h", "username": "u", "password": "p"}), &a)
	for _, tc := range []struct {
		name string
		req  SubmitRequest
		want string
	}{
		{"unknown id", SubmitRequest{Script: "true", ServerIDs: []string{a.ID, "99"}}, "server 99 is not registered"},
		{"unknown ids", SubmitRequest{Script: "true", ServerIDs: []string{"98", a.ID, "99"}}, "servers 98, 99 are not registered"},
		{"unknown legacy id", SubmitRequest{Script: "true", ServerID: "97"}, "server 97 is not registered"},
		{"unknown id without details", SubmitRequest{Script: "true", ServerID: "96", OmitServerDetails: true}, "server 96 is not registered"},
		{"both fields", SubmitRequest{Script: "true", ServerID: a.ID, ServerIDs: []string{a.ID}}, "give serverId or serverIds, not both"},
		{"twice", SubmitRequest{Script: "true", ServerIDs: []string{a.ID, a.ID}}, "server " + a.ID + " is named twice"},
		{"empty id", SubmitRequest{Script: "true", ServerIDs: []string{a.ID, " "}}, "empty id"},
		{"HTTP job", SubmitRequest{Type: "HTTP_REQUEST", HTTP: &HTTPSpec{URL: "http://x.test/"}, ServerIDs: []string{a.ID}}, "servers apply to SCRIPT jobs only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.call("POST", "/api/dev/jobs", "", tc.req)
			var out struct{ Error string }
			decode(t, body, &out)
			if code != 400 || !strings.Contains(out.Error, tc.want) {
				t.Errorf("%d %q, want 400 and %q", code, out.Error, tc.want)
			}
		})
	}
	if st := e.claim("a", "batchSize=10"); len(st) != 0 {
		t.Errorf("refused jobs were queued: %v", st)
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	e := newTestEnv(t)
	a := e.submit(bashJob(5, "echo a"))
	b := e.submit(bashJob(1, "echo b"))
	c := e.submit(bashJob(3, "echo c"))
	e.claim("agent", "batchSize=1") // a
	e.must(200, "POST", "/api/internal/jobs/"+a+"/logs", "agent", `{"executionId":"x","entries":[{"seq":1,"stream":"stdout","line":"a"}]}`)
	e.must(200, "POST", "/api/internal/jobs/"+a+"/complete", "agent", complete("completed", 0))
	e.must(200, "PUT", "/api/internal/variables/u/k", "agent", `{"value":"v"}`)
	e.must(201, "POST", "/api/internal/executions/exec_1/create", "agent", `{"jobId":"`+a+`"}`)
	e.must(200, "POST", "/api/dev/jobs/"+c+"/cancel", "", nil)

	e.reopen()

	v := e.job(a)
	if v.Status != StatusCompleted || v.Completions != 1 || v.LogLines != 1 || v.Output.Stdout != "out" {
		t.Errorf("a after reopen: %+v", v)
	}
	if v := e.job(c); v.Status != StatusCancelled {
		t.Errorf("c after reopen: %s", v.Status)
	}
	var val struct{ Value string }
	decode(t, e.must(200, "GET", "/api/internal/variables/u/k", "", nil), &val)
	if val.Value != "v" {
		t.Errorf("variable after reopen: %q", val.Value)
	}
	e.must(200, "GET", "/api/dev/executions/exec_1", "", nil)
	// The queue index survived: b (and only b) is still claimable, after a new job.
	d := e.submit(bashJob(9, "echo d"))
	if got := e.claim("agent", "batchSize=10"); !slices.Equal(got, []string{d, b}) {
		t.Errorf("claim after reopen: %v, want [%s %s]", got, d, b)
	}
	var page LogPage
	decode(t, e.must(200, "GET", "/api/dev/jobs/"+a+"/logs", "", nil), &page)
	if len(page.Entries) != 1 || page.Status != StatusCompleted {
		t.Errorf("logs after reopen: %+v", page)
	}
}

func TestSecondOpenOfTheSameDirFails(t *testing.T) {
	e := newTestEnv(t)
	if _, err := New(e.dir, "t"); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second open: %v", err)
	}
}

func TestUnknownRoutesAreJSON404(t *testing.T) {
	e := newTestEnv(t)
	for _, r := range []struct{ method, path string }{{"GET", "/api/internal/nope"}, {"DELETE", "/api/internal/jobs/queue"}, {"GET", "/"}} {
		code, body := e.call(r.method, r.path, "a", nil)
		if code != 404 || !strings.HasPrefix(string(body), `{"error":`) {
			t.Errorf("%s %s: %d %s", r.method, r.path, code, body)
		}
	}
}

func TestDevJobsList(t *testing.T) {
	e := newTestEnv(t)
	a := e.submit(bashJob(0, "true"))
	b := e.submit(SubmitRequest{Runtime: "python", Script: "print(1)"})
	e.claim("x", "batchSize=1")
	var out struct {
		Jobs  []JobSummary
		Count int
	}
	decode(t, e.must(200, "GET", "/api/dev/jobs", "", nil), &out)
	if out.Count != 2 || out.Jobs[0].ID != a || out.Jobs[1].ID != b || out.Jobs[1].Runtime != "python" || out.Jobs[0].Status != StatusClaimed {
		t.Errorf("list: %+v", out)
	}
	decode(t, e.must(200, "GET", "/api/dev/jobs?status=queued", "", nil), &out)
	if out.Count != 1 || out.Jobs[0].ID != b {
		t.Errorf("list queued: %+v", out)
	}
	if code, _ := e.call("GET", "/api/dev/jobs/job_None00000000", "", nil); code != 404 {
		t.Errorf("unknown job: %d", code)
	}
}
