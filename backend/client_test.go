package backend

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/internal/contracttest"
)

const (
	testToken = "tok-SECRET-0123456789"
	testOrch  = "agent-test-01"
)

// seen is one request as the test server received it.
type seen struct {
	Method string
	Path   string // escaped, as on the wire
	Query  string
	Header http.Header
	Body   []byte
}

// recorder is a test backend on 127.0.0.1 that records every request and
// answers with respond.
type recorder struct {
	mu      sync.Mutex
	reqs    []seen
	respond func(w http.ResponseWriter, r *http.Request, n int) // n: 1-based request count
	srv     *httptest.Server
}

func newRecorder(t *testing.T, respond func(w http.ResponseWriter, r *http.Request, n int)) *recorder {
	t.Helper()
	rec := &recorder{respond: respond}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), body})
		n := len(rec.reqs)
		rec.mu.Unlock()
		if rec.respond != nil {
			rec.respond(w, r, n)
			return
		}
		io.WriteString(w, `{"success":true}`)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) requests() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

func (r *recorder) count() int { return len(r.requests()) }

func (r *recorder) last(t *testing.T) seen {
	t.Helper()
	reqs := r.requests()
	if len(reqs) == 0 {
		t.Fatal("no request")
	}
	return reqs[len(reqs)-1]
}

func (r *recorder) client(t *testing.T, opts ...ClientOption) *Client {
	t.Helper()
	opts = append([]ClientOption{WithRetry(4, time.Millisecond, 4*time.Millisecond), WithUserAgentVersion("1.2.3")}, opts...)
	c, err := NewClient(r.srv.URL, testToken, testOrch, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func bodyMap(t *testing.T, s seen) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(s.Body, &m); err != nil {
		t.Fatalf("body %q: %v", s.Body, err)
	}
	return m
}

func jsonAnswer(status int, body string) func(w http.ResponseWriter, r *http.Request, n int) {
	return func(w http.ResponseWriter, r *http.Request, n int) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// everyCall calls every method of the client once.
func everyCall(c *Client) []struct {
	name, method, path string
	call               func(ctx context.Context) error
} {
	ts := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	return []struct {
		name, method, path string
		call               func(ctx context.Context) error
	}{
		{"ClaimJobs", "GET", "/api/internal/jobs/queue", func(ctx context.Context) error { _, err := c.ClaimJobs(ctx, 2, nil); return err }},
		{"Acknowledge", "POST", "/api/internal/jobs/job_1/acknowledge", func(ctx context.Context) error { return c.Acknowledge(ctx, "job_1", ts) }},
		{"SetStatus", "PUT", "/api/internal/jobs/job_1/status", func(ctx context.Context) error { return c.SetStatus(ctx, "job_1", "running", "started") }},
		{"Complete", "POST", "/api/internal/jobs/job_1/complete", func(ctx context.Context) error {
			return c.Complete(ctx, "job_1", api.Completion{Status: "completed", Metrics: api.RunMetrics{StartTime: ts, EndTime: ts.Add(time.Second), Duration: 1000}})
		}},
		{"Fail", "POST", "/api/internal/jobs/job_1/fail", func(ctx context.Context) error { return c.Fail(ctx, "job_1", "bad payload", 1) }},
		{"SendLogs", "POST", "/api/internal/jobs/job_1/logs", func(ctx context.Context) error {
			return c.SendLogs(ctx, "job_1", "exec_job_1_1", []api.LogEntry{{Seq: 1, Stream: "stdout", Line: "hi", Timestamp: ts}})
		}},
		{"Release", "POST", "/api/internal/jobs/job_1/release", func(ctx context.Context) error { return c.Release(ctx, "job_1", "shutting down") }},
		{"Orphaned", "GET", "/api/internal/jobs/orphaned", func(ctx context.Context) error { _, err := c.Orphaned(ctx); return err }},
		{"CreateExecution", "POST", "/api/internal/executions/exec_1/create", func(ctx context.Context) error {
			return c.CreateExecution(ctx, "exec_1", api.CreateExecution{JobID: "job_1"})
		}},
		{"UpdateExecution", "PUT", "/api/internal/executions/exec_1/update", func(ctx context.Context) error {
			return c.UpdateExecution(ctx, "exec_1", api.ExecutionUpdate{StartedAt: ts})
		}},
		{"SetExecutionOutput", "POST", "/api/internal/executions/exec_1/output", func(ctx context.Context) error {
			return c.SetExecutionOutput(ctx, "exec_1", json.RawMessage(`{"a":1}`))
		}},
		{"SetExecutionCondition", "POST", "/api/internal/executions/exec_1/condition", func(ctx context.Context) error {
			return c.SetExecutionCondition(ctx, "exec_1", true)
		}},
		{"GetVariable", "GET", "/api/internal/variables/user_1/k", func(ctx context.Context) error { _, _, err := c.GetVariable(ctx, "user_1", "k"); return err }},
		{"SetVariable", "PUT", "/api/internal/variables/user_1/k", func(ctx context.Context) error { return c.SetVariable(ctx, "user_1", "k", "v") }},
		{"Heartbeat", "POST", "/api/internal/orchestrator/heartbeat", func(ctx context.Context) error { _, err := c.Heartbeat(ctx, api.Heartbeat{}); return err }},
		{"SendMetrics", "POST", "/api/internal/orchestrator/metrics", func(ctx context.Context) error { return c.SendMetrics(ctx, api.AgentMetrics{JobsProcessed: 3}) }},
		{"BackendHealth", "GET", "/api/internal/orchestrator/health", func(ctx context.Context) error { return c.BackendHealth(ctx) }},
		{"GetServer", "GET", "/api/internal/servers/7", func(ctx context.Context) error { _, err := c.GetServer(ctx, "7"); return err }},
		{"ServerCredentials", "GET", "/api/internal/servers/7/credentials", func(ctx context.Context) error { _, err := c.ServerCredentials(ctx, "7"); return err }},
	}
}

// answerAll answers every endpoint with a valid body.
func answerAll(w http.ResponseWriter, r *http.Request, _ int) {
	w.Header().Set("Content-Type", "application/json")
	p := r.URL.Path
	switch {
	case strings.HasSuffix(p, "/jobs/queue"):
		io.WriteString(w, `{"jobs":[],"count":0}`)
	case strings.HasSuffix(p, "/jobs/orphaned"):
		io.WriteString(w, `[]`)
	case strings.HasPrefix(p, "/api/internal/variables/") && r.Method == "GET":
		io.WriteString(w, `{"key":"k","value":"v","updatedAt":"2026-11-20T10:00:00Z"}`)
	case strings.HasSuffix(p, "/credentials"):
		io.WriteString(w, `{"credentials":{"host":"192.0.2.5","port":22,"username":"deploy","privateKey":"KEY-MATERIAL"}}`)
	case strings.HasPrefix(p, "/api/internal/servers/"):
		io.WriteString(w, `{"server":{"id":7,"name":"web-1","address":"192.0.2.5","port":22,"username":"deploy","online":true}}`)
	case r.Method == "GET" && strings.HasSuffix(p, "/orchestrator/health"):
		io.WriteString(w, `{"status":"healthy"}`)
	default:
		io.WriteString(w, `{"success":true}`)
	}
}

func TestEveryCallPathsAndHeaders(t *testing.T) {
	rec := newRecorder(t, answerAll)
	c := rec.client(t)
	calls := everyCall(c)
	for _, call := range calls {
		if err := call.call(context.Background()); err != nil {
			t.Errorf("%s: %v", call.name, err)
		}
	}
	reqs := rec.requests()
	if len(reqs) != len(calls) {
		t.Fatalf("%d requests for %d calls", len(reqs), len(calls))
	}
	for i, r := range reqs {
		name := calls[i].name
		if r.Method != calls[i].method || r.Path != calls[i].path {
			t.Errorf("%s: %s %s, want %s %s", name, r.Method, r.Path, calls[i].method, calls[i].path)
		}
		want := map[string]string{
			"Authorization":     "Bearer " + testToken,
			"X-Orchestrator-Id": testOrch,
			"Accept":            "application/json",
			"User-Agent":        "cronium-agent/1.2.3",
		}
		if len(r.Body) > 0 {
			want["Content-Type"] = "application/json"
		} else if ct := r.Header.Get("Content-Type"); ct != "" {
			t.Errorf("%s: Content-Type %q without a body", name, ct)
		}
		for k, v := range want {
			if got := r.Header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", name, k, got, v)
			}
		}
		if r.Method != "GET" && !json.Valid(r.Body) {
			t.Errorf("%s: body %q", name, r.Body)
		}
	}

	// A few bodies in detail.
	byName := map[string]map[string]any{}
	for i, r := range reqs {
		if len(r.Body) > 0 {
			byName[calls[i].name] = bodyMap(t, r)
		}
	}
	eq(t, byName["Acknowledge"], map[string]any{"orchestratorId": testOrch, "timestamp": "2026-11-20T10:00:00.000Z"})
	eq(t, byName["SetStatus"]["details"], any(map[string]any{"message": "started"}))
	eq(t, byName["Fail"]["error"], any("bad payload"))
	eq(t, byName["Fail"]["exitCode"], any(1.0))
	eq(t, byName["SendLogs"]["entries"], any([]any{map[string]any{"seq": 1.0, "stream": "stdout", "line": "hi", "timestamp": "2026-11-20T10:00:00Z"}}))
	eq(t, byName["Heartbeat"]["orchestratorId"], any(testOrch))
	eq(t, byName["Heartbeat"]["runningJobs"], any([]any{}))
	eq(t, byName["SendMetrics"]["period"], any("minute"))
	eq(t, byName["CreateExecution"], map[string]any{"jobId": "job_1"})
	eq(t, byName["SetExecutionOutput"]["output"], any(map[string]any{"a": 1.0}))
	comp := byName["Complete"]
	if _, ok := comp["scriptOutput"]; ok {
		t.Errorf("complete sent scriptOutput unset: %v", comp)
	}
	if _, ok := comp["condition"]; ok {
		t.Errorf("complete sent condition unset: %v", comp)
	}
	eq(t, comp["metrics"], any(map[string]any{"startTime": "2026-11-20T10:00:00.000Z", "endTime": "2026-11-20T10:00:01.000Z", "duration": 1000.0}))
	for _, name := range []string{"SetStatus", "Fail", "Complete", "SetExecutionCondition"} {
		ts, _ := byName[name]["timestamp"].(string)
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("%s timestamp %q: %v", name, ts, err)
		}
	}
}

func TestCompleteScriptOutputAndCondition(t *testing.T) {
	rec := newRecorder(t, nil)
	c := rec.client(t)
	yes := false
	if err := c.Complete(context.Background(), "j", api.Completion{Status: "failed", ExitCode: 3, ScriptOutput: json.RawMessage(`null`), Condition: &yes}); err != nil {
		t.Fatal(err)
	}
	m := bodyMap(t, rec.last(t))
	if v, ok := m["scriptOutput"]; !ok || v != nil {
		t.Errorf("scriptOutput null must be sent: %v", m)
	}
	if m["condition"] != false || m["exitCode"] != 3.0 {
		t.Errorf("body %v", m)
	}
	if _, ok := m["metrics"].(map[string]any)["startTime"]; ok {
		t.Errorf("zero start time sent: %v", m["metrics"])
	}
	for _, bad := range []api.Completion{{Status: "queued"}, {Status: "completed", ScriptOutput: json.RawMessage(`{`)}} {
		if err := c.Complete(context.Background(), "j", bad); !errors.Is(err, ErrInvalidArgument) || IsTransient(err) {
			t.Errorf("Complete(%+v) = %v", bad, err)
		}
	}
	if rec.count() != 1 {
		t.Errorf("%d requests", rec.count())
	}
}

func TestRetries(t *testing.T) {
	for _, c := range []struct {
		status int
		retry  bool
	}{
		{500, true}, {502, true}, {503, true}, {429, true},
		{400, false}, {401, false}, {403, false}, {404, false}, {409, false},
	} {
		t.Run(http.StatusText(c.status), func(t *testing.T) {
			// Fails twice, then succeeds.
			rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n <= 2 {
					w.WriteHeader(c.status)
					io.WriteString(w, `{"error":"nope"}`)
					return
				}
				io.WriteString(w, `{"success":true}`)
			})
			err := rec.client(t).Release(context.Background(), "j", "m")
			if c.retry {
				if err != nil || rec.count() != 3 {
					t.Errorf("err %v after %d attempts, want success after 3", err, rec.count())
				}
				return
			}
			if rec.count() != 1 {
				t.Errorf("%d attempts, want 1", rec.count())
			}
			if !IsStatus(err, c.status) || IsTransient(err) {
				t.Errorf("err %v: want a final APIError %d", err, c.status)
			}
		})
	}

	t.Run("exhausted", func(t *testing.T) {
		rec := newRecorder(t, jsonAnswer(503, `{"error":"Service Unavailable"}`))
		err := rec.client(t).SetVariable(context.Background(), "u", "k", "v")
		if rec.count() != 4 || !IsStatus(err, 503) || !IsTransient(err) {
			t.Errorf("err %v after %d attempts, want transient 503 after 4", err, rec.count())
		}
	})

	t.Run("transport errors", func(t *testing.T) {
		// The connection is dropped without an answer twice.
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n <= 2 {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			io.WriteString(w, `{"success":true}`)
		})
		if err := rec.client(t).SetExecutionCondition(context.Background(), "e", true); err != nil || rec.count() != 3 {
			t.Errorf("err %v after %d attempts", err, rec.count())
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		var dials atomic.Int32
		tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, a)
		}}
		c, err := NewClient("http://"+addr, testToken, testOrch, WithRetry(3, time.Millisecond, time.Millisecond), WithHTTPClient(&http.Client{Transport: tr}))
		if err != nil {
			t.Fatal(err)
		}
		err = c.Release(context.Background(), "j", "m")
		var te *TransportError
		if !errors.As(err, &te) || !IsTransient(err) || dials.Load() != 3 {
			t.Errorf("err %v (%T) after %d dials", err, err, dials.Load())
		}
	})

	t.Run("context ends the backoff", func(t *testing.T) {
		rec := newRecorder(t, jsonAnswer(500, `{"error":"x"}`))
		c := rec.client(t, WithRetry(10, time.Hour, time.Hour))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := c.Release(ctx, "j", "m")
		if time.Since(start) > 5*time.Second || !IsTransient(err) || rec.count() != 1 {
			t.Errorf("err %v after %v and %d attempts", err, time.Since(start), rec.count())
		}
	})

	t.Run("Retry-After", func(t *testing.T) {
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(429)
				return
			}
			io.WriteString(w, `{}`)
		})
		c := rec.client(t, WithRetry(2, time.Millisecond, 20*time.Millisecond))
		start := time.Now()
		if err := c.Release(context.Background(), "j", "m"); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 20*time.Millisecond {
			t.Errorf("retried after %v; Retry-After (capped at 20ms) ignored", d)
		}
	})

	t.Run("health probe is not retried", func(t *testing.T) {
		rec := newRecorder(t, jsonAnswer(503, `{"status":"unhealthy"}`))
		if err := rec.client(t).BackendHealth(context.Background()); !IsStatus(err, 503) || rec.count() != 1 {
			t.Errorf("err %v after %d attempts", err, rec.count())
		}
	})
}

func TestUnauthorized(t *testing.T) {
	rec := newRecorder(t, jsonAnswer(401, `{"error":"Unauthorized"}`))
	_, err := rec.client(t).ClaimJobs(context.Background(), 1, nil)
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err %v (%T)", err, err)
	}
	if ae.Status != 401 || ae.Message != "Unauthorized" || IsTransient(err) || rec.count() != 1 {
		t.Errorf("APIError %+v after %d attempts", ae, rec.count())
	}
	if !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("Error() = %q", err)
	}
}

func TestErrorMessages(t *testing.T) {
	for _, c := range []struct {
		body, want string
	}{
		{`{"error":"Invalid status","details":"queued is not allowed"}`, "Invalid status: queued is not allowed"},
		{`{"message":"Job not found"}`, "Job not found"},
		{`{"error":{"message":"nested"}}`, "nested"},
		{`{"error":"x","details":{"field":"status"}}`, `x: {"field":"status"}`},
		{`<html>Bad Gateway</html>`, "Bad Request"},
		{``, "Bad Request"},
	} {
		rec := newRecorder(t, jsonAnswer(400, c.body))
		err := rec.client(t).Release(context.Background(), "j", "m")
		var ae *APIError
		if !errors.As(err, &ae) || ae.Message != c.want || ae.Body != c.body {
			t.Errorf("body %q: %+v, want message %q", c.body, ae, c.want)
		}
	}
}

func TestBaseURLPathIgnored(t *testing.T) {
	rec := newRecorder(t, answerAll)
	c, err := NewClient(rec.srv.URL+"/cronium/app/?x=1#f", testToken, testOrch)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Release(context.Background(), "job_1", "m"); err != nil {
		t.Fatal(err)
	}
	if p := rec.last(t).Path; p != "/api/internal/jobs/job_1/release" {
		t.Errorf("path %q", p)
	}
	if c.BaseURL() != rec.srv.URL {
		t.Errorf("BaseURL %q", c.BaseURL())
	}
}

func TestNewClientValidation(t *testing.T) {
	for _, c := range []struct{ url, token, id string }{
		{"ftp://x", testToken, testOrch},
		{"127.0.0.1:8080", testToken, testOrch},
		{"http://", testToken, testOrch},
		{"http://x", "", testOrch},
		{"http://x", "a\nb", testOrch},
		{"http://x", testToken, ""},
		{"http://x", testToken, "a\x01"},
	} {
		if _, err := NewClient(c.url, c.token, c.id); err == nil {
			t.Errorf("NewClient(%q, %q, %q) accepted", c.url, c.token, c.id)
		} else if strings.Contains(err.Error(), testToken) {
			t.Errorf("error shows the token: %v", err)
		}
	}
	if _, err := NewClient("http://x", testToken, testOrch, WithEnvKey(make([]byte, 16))); err == nil {
		t.Error("a 16-byte env key was accepted")
	}
}

func TestClaimJobs(t *testing.T) {
	rec := newRecorder(t, jsonAnswer(200, string(contracttest.Fixture(t, "queue-mixed-batch.json"))))
	items, err := rec.client(t).ClaimJobs(context.Background(), 3, []string{"SCRIPT", "HTTP_REQUEST"})
	if err != nil {
		t.Fatal(err)
	}
	if q := rec.last(t).Query; q != "batchSize=3&jobTypes=SCRIPT,HTTP_REQUEST" {
		t.Errorf("query %q", q)
	}
	if len(items) != 5 || items[4].Err == nil {
		t.Errorf("items %v", items)
	}
	if _, err := rec.client(t).ClaimJobs(context.Background(), 0, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("batch size 0: %v", err)
	}
	rec.client(t).ClaimJobs(context.Background(), 1, nil)
	if q := rec.last(t).Query; q != "batchSize=1" {
		t.Errorf("query without types %q", q)
	}

	// The deployed backend's encrypted environment, with the key option.
	var fx struct {
		Key      string          `json:"encryptionKeyHex"`
		Response json.RawMessage `json:"response"`
	}
	_ = json.Unmarshal(contracttest.Fixture(t, "queue-deployed-backend.json"), &fx)
	key, _ := api.ParseEnvKey(fx.Key)
	dep := newRecorder(t, jsonAnswer(200, string(fx.Response)))
	items, err = dep.client(t, WithEnvKey(key)).ClaimJobs(context.Background(), 2, []string{"SCRIPT"})
	if err != nil || items[0].Job == nil || items[0].Job.Environment["API_TOKEN"] != "s3cr3t" {
		t.Errorf("items %v err %v", items, err)
	}

	bad := newRecorder(t, jsonAnswer(200, `<html>`))
	if _, err := bad.client(t).ClaimJobs(context.Background(), 1, nil); err == nil || IsTransient(err) {
		t.Errorf("unreadable queue: %v", err)
	}
}

func TestSendLogsNoEndpoint(t *testing.T) {
	entries := []api.LogEntry{{Seq: 1, Stream: "stdout", Line: "x"}}
	for _, status := range []int{404, 405} {
		rec := newRecorder(t, jsonAnswer(status, `{"error":"Not Found"}`))
		err := rec.client(t).SendLogs(context.Background(), "j", "e", entries)
		if !errors.Is(err, ErrNoLogEndpoint) || !IsStatus(err, status) || IsTransient(err) || rec.count() != 1 {
			t.Errorf("%d: err %v after %d attempts", status, err, rec.count())
		}
	}
	rec := newRecorder(t, jsonAnswer(500, `{"error":"boom"}`))
	if err := rec.client(t).SendLogs(context.Background(), "j", "e", entries); errors.Is(err, ErrNoLogEndpoint) || !IsTransient(err) {
		t.Errorf("500: %v", err)
	}
	if err := rec.client(t).SendLogs(context.Background(), "j", "e", nil); err != nil {
		t.Errorf("no entries: %v", err)
	}
}

func TestAcknowledgeNotClaimed(t *testing.T) {
	rec := newRecorder(t, jsonAnswer(403, `{"error":"Job not claimed by this orchestrator"}`))
	err := rec.client(t).Acknowledge(context.Background(), "j", time.Now())
	if !errors.Is(err, ErrNotClaimed) || !IsStatus(err, 403) || IsTransient(err) || rec.count() != 1 {
		t.Errorf("err %v after %d attempts", err, rec.count())
	}
}

func TestOrphaned(t *testing.T) {
	rec := newRecorder(t, jsonAnswer(200, string(contracttest.Fixture(t, "orphaned.json"))))
	rows, err := rec.client(t).Orphaned(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if q := rec.last(t).Query; q != "orchestratorId="+testOrch {
		t.Errorf("query %q", q)
	}
	if len(rows) != 2 || rows[0].Status != "running" || rows[0].StartedAt.IsZero() || rows[1].Status != "claimed" || !rows[1].StartedAt.IsZero() {
		t.Errorf("rows %+v", rows)
	}
}

func TestVariables(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case r.Method == "PUT":
			io.WriteString(w, `{"success":true}`)
		case strings.HasSuffix(r.URL.Path, "/missing"):
			w.WriteHeader(404)
			io.WriteString(w, `{"error":"Variable not found"}`)
		case strings.HasSuffix(r.URL.Path, "/num"):
			io.WriteString(w, `{"key":"num","value":42}`)
		default:
			io.WriteString(w, `{"key":"x","value":"the value","updatedAt":"2026-11-20T10:00:00Z"}`)
		}
	})
	c := rec.client(t)
	ctx := context.Background()

	v, found, err := c.GetVariable(ctx, "user_1", "missing")
	if err != nil || found || v != "" || rec.count() != 1 {
		t.Errorf("missing: %q %v %v after %d requests", v, found, err, rec.count())
	}

	v, found, err = c.GetVariable(ctx, "user 1", "a/b c?d#e")
	if err != nil || !found || v != "the value" {
		t.Errorf("got %q %v %v", v, found, err)
	}
	if p := rec.last(t).Path; p != "/api/internal/variables/user%201/a%2Fb%20c%3Fd%23e" {
		t.Errorf("escaped path %q", p)
	}
	if _, found, _ := c.GetVariable(ctx, "u", "num"); !found {
		t.Error("numeric value not found")
	}

	if err := c.SetVariable(ctx, "user_1", "dir/key name", `{"n":1}`); err != nil {
		t.Fatal(err)
	}
	last := rec.last(t)
	if last.Path != "/api/internal/variables/user_1/dir%2Fkey%20name" || !reflect.DeepEqual(bodyMap(t, last), map[string]any{"value": `{"n":1}`}) {
		t.Errorf("set: %s %s", last.Path, last.Body)
	}

	n := rec.count()
	for _, key := range []string{"", ".", ".."} {
		if _, _, err := c.GetVariable(ctx, "u", key); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("key %q: %v", key, err)
		}
	}
	if rec.count() != n {
		t.Error("invalid keys reached the backend")
	}
}

func TestUpdateExecution(t *testing.T) {
	rec := newRecorder(t, nil)
	c := rec.client(t)
	ts := time.Date(2026, 11, 20, 10, 0, 0, 123e6, time.FixedZone("X", 3600))
	err := c.UpdateExecution(context.Background(), "exec_1", api.ExecutionUpdate{
		ExecutionStartedAt: ts,
		ExitCode:           api.Ptr(0),
		Output:             api.Ptr(""),
		SetupDuration:      api.Ptr(1500 * time.Millisecond),
		TotalDuration:      api.Ptr(time.Duration(0)),
		Metadata:           map[string]any{"status": "completed", "attempt": 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := bodyMap(t, rec.last(t))
	want := map[string]any{
		"executionStartedAt": "2026-11-20T09:00:00.123Z",
		"exitCode":           0.0,
		"output":             "",
		"setupDuration":      1500.0,
		"totalDuration":      0.0,
		"metadata":           map[string]any{"status": "completed", "attempt": 1.0},
	}
	eq(t, got, want)
	for _, k := range []string{"completedAt", "status", "startedAt", "setupStartedAt", "error"} {
		if _, ok := got[k]; ok {
			t.Errorf("update sent %q", k)
		}
	}

	// Nothing set: nothing sent.
	n := rec.count()
	if err := c.UpdateExecution(context.Background(), "exec_1", api.ExecutionUpdate{}); err != nil || rec.count() != n {
		t.Errorf("empty update: %v, %d requests", err, rec.count()-n)
	}

	// The type cannot carry completedAt or a status, even through JSON.
	ty := reflect.TypeOf(api.ExecutionUpdate{})
	for i := 0; i < ty.NumField(); i++ {
		if name := strings.ToLower(ty.Field(i).Name); name == "completedat" || name == "status" {
			t.Errorf("ExecutionUpdate has a field %s", ty.Field(i).Name)
		}
	}
	var u api.ExecutionUpdate
	if err := json.Unmarshal([]byte(`{"completedAt":"2026-11-20T10:00:00Z","status":"completed","startedAt":"2026-11-20T10:00:00Z","cleanupDuration":20}`), &u); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(u)
	if string(b) != `{"startedAt":"2026-11-20T10:00:00.000Z","cleanupDuration":20}` {
		t.Errorf("round trip %s", b)
	}

	// "running" is the one status an update carries (the start of a run).
	if err := c.UpdateExecution(context.Background(), "exec_1", api.ExecutionUpdate{Running: true, StartedAt: ts}); err != nil {
		t.Fatal(err)
	}
	eq(t, bodyMap(t, rec.last(t)), map[string]any{"status": "running", "startedAt": "2026-11-20T09:00:00.123Z"})
	u = api.ExecutionUpdate{}
	if err := json.Unmarshal([]byte(`{"status":"running","exitCode":0}`), &u); err != nil || !u.Running || u.ExitCode == nil {
		t.Errorf("running round trip: %+v, %v", u, err)
	}
}

func TestHeartbeatCancelJobs(t *testing.T) {
	rec := newRecorder(t, jsonAnswer(200, `{"success":true,"timestamp":"2026-11-20T10:00:00Z","cancelJobs":["job_a","job_b"],"supersededJobs":["job_c",7,""]}`))
	ans, err := rec.client(t).Heartbeat(context.Background(), api.Heartbeat{RunningJobs: []string{"job_a"}, Capacity: api.Capacity{MaxJobs: 5, CurrentJobs: 1, AvailableSlots: 4}})
	if err != nil || !reflect.DeepEqual(ans.CancelJobs, []string{"job_a", "job_b"}) || !reflect.DeepEqual(ans.SupersededJobs, []string{"job_c", "7"}) {
		t.Errorf("answer %+v err %v", ans, err)
	}
	m := bodyMap(t, rec.last(t))
	eq(t, m["capacity"], any(map[string]any{"maxJobs": 5.0, "currentJobs": 1.0, "availableSlots": 4.0}))

	plain := newRecorder(t, jsonAnswer(200, `{"success":true}`))
	if ans, err := plain.client(t).Heartbeat(context.Background(), api.Heartbeat{}); err != nil || ans.CancelJobs != nil || ans.SupersededJobs != nil {
		t.Errorf("deployed backend heartbeat: %+v %v", ans, err)
	}
}

func TestArgumentValidation(t *testing.T) {
	rec := newRecorder(t, nil)
	c := rec.client(t)
	ctx := context.Background()
	for name, err := range map[string]error{
		"status queued":    c.SetStatus(ctx, "j", "queued", ""),
		"status cancelled": c.SetStatus(ctx, "j", "cancelled", ""),
		"empty job id":     c.Release(ctx, "", "m"),
		"bad output":       c.SetExecutionOutput(ctx, "e", json.RawMessage(`{x`)),
	} {
		if !errors.Is(err, ErrInvalidArgument) || IsTransient(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if rec.count() != 0 {
		t.Errorf("%d requests", rec.count())
	}
	if err := c.SetStatus(ctx, "j", "failed", "boom"); err != nil {
		t.Fatal(err)
	}
	eq(t, bodyMap(t, rec.last(t))["details"], any(map[string]any{"message": "boom", "error": "boom"}))
	if err := c.Fail(ctx, "j", "", 1); err != nil {
		t.Fatal(err)
	}
	eq(t, bodyMap(t, rec.last(t))["error"], any("job failed"))
}

func TestServers(t *testing.T) {
	rec := newRecorder(t, answerAll)
	c := rec.client(t)
	si, err := c.GetServer(context.Background(), "7")
	if err != nil || si.ID != "7" || si.Address != "192.0.2.5" || si.Port != 22 || !si.Online {
		t.Errorf("server %+v err %v", si, err)
	}
	cred, err := c.ServerCredentials(context.Background(), "7")
	if err != nil || cred.ID != "7" || cred.Host != "192.0.2.5" || cred.PrivateKey != "KEY-MATERIAL" {
		t.Fatalf("credentials %v err %v", cred, err)
	}
	if s := cred.String(); strings.Contains(s, "KEY-MATERIAL") {
		t.Errorf("String shows the key: %s", s)
	}

	// An error answer of the credentials endpoint is not kept.
	bad := newRecorder(t, jsonAnswer(400, `{"error":"x","privateKey":"LEAK"}`))
	_, err = bad.client(t).ServerCredentials(context.Background(), "7")
	var ae *APIError
	if !errors.As(err, &ae) || strings.Contains(ae.Body, "LEAK") {
		t.Errorf("err %+v", ae)
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	// A backend that echoes the Authorization header in its errors.
	echo := func(status int) func(w http.ResponseWriter, r *http.Request, n int) {
		return func(w http.ResponseWriter, r *http.Request, n int) {
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": "bad auth " + r.Header.Get("Authorization"), "details": r.Header.Get("Authorization")})
		}
	}
	var errs []error
	for _, status := range []int{400, 401, 403, 404, 500, 503} {
		rec := newRecorder(t, echo(status))
		c := rec.client(t)
		for _, call := range everyCall(c) {
			if err := call.call(context.Background()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Transport errors.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	c, _ := NewClient("http://"+addr, testToken, testOrch, WithRetry(1, time.Millisecond, time.Millisecond))
	for _, call := range everyCall(c) {
		errs = append(errs, call.call(context.Background()))
	}
	if len(errs) < 6*21 {
		t.Fatalf("only %d errors", len(errs))
	}
	for _, err := range errs {
		if err == nil {
			t.Error("nil error")
			continue
		}
		var ae *APIError
		texts := []string{err.Error()}
		if errors.As(err, &ae) {
			texts = append(texts, ae.Message, ae.Body)
		}
		for _, s := range texts {
			if strings.Contains(s, testToken) {
				t.Errorf("the token appears in an error: %s", s)
			}
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n%3 == 0 {
			w.WriteHeader(503)
			return
		}
		answerAll(w, r, n)
	})
	c := rec.client(t, WithRetry(5, time.Microsecond, time.Millisecond))
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, call := range everyCall(c) {
				if err := call.call(context.Background()); err != nil && !IsTransient(err) {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestClaimNotResentAfterLostAnswer(t *testing.T) {
	// The connection drops after the request was read: the jobs may be
	// claimed, so the claim is not sent again.
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
	})
	_, err := rec.client(t).ClaimJobs(context.Background(), 1, nil)
	if !IsTransient(err) || rec.count() != 1 {
		t.Errorf("err %v after %d attempts, want one transient failure", err, rec.count())
	}
	// A 503 is an answer: nothing was claimed, the claim is tried again.
	busy := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, `{"jobs":[],"count":0}`)
	})
	if _, err := busy.client(t).ClaimJobs(context.Background(), 1, nil); err != nil || busy.count() != 2 {
		t.Errorf("err %v after %d attempts", err, busy.count())
	}
}

func eq[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// A claim waits (jobs/queue?wait=) only on a backend that offered it in
// its last answer, never longer than offered nor than WithLongPoll.
func TestClaimJobsLongPoll(t *testing.T) {
	offer := "" // guarded by the test's sequence: one request at a time
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if offer != "" {
			w.Header().Set(api.QueueWaitHeader, offer)
		}
		io.WriteString(w, `{"jobs":[],"count":0}`)
	})
	tests := []struct {
		name     string
		longPoll time.Duration
		offers   string
		// The queries of two ClaimJobs in a row: an empty answer that
		// brings the offer is followed by a held claim in the same call.
		wantQuery []string
	}{
		{"deployed backend", 20 * time.Second, "", []string{"batchSize=1", "batchSize=1"}},
		{"offered", 20 * time.Second, "60s", []string{"batchSize=1", "batchSize=1&wait=20s", "batchSize=1&wait=20s"}},
		{"offered less", 20 * time.Second, "5s", []string{"batchSize=1", "batchSize=1&wait=5s", "batchSize=1&wait=5s"}},
		{"off", 0, "60s", []string{"batchSize=1", "batchSize=1"}},
		{"unreadable offer", 20 * time.Second, "soon", []string{"batchSize=1", "batchSize=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			offer = tt.offers
			c := rec.client(t, WithLongPoll(tt.longPoll))
			before := rec.count()
			for range 2 {
				if _, err := c.ClaimJobs(context.Background(), 1, nil); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, r := range rec.requests()[before:] {
				got = append(got, r.Query)
			}
			if !slices.Equal(got, tt.wantQuery) {
				t.Errorf("queries %q, want %q", got, tt.wantQuery)
			}
		})
	}
}
