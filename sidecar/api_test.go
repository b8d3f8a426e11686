package sidecar_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/sidecar"
	"github.com/cronium/cronium-agent/state"
)

var _ sidecar.Store = (*state.Local)(nil)

func TestHealthNeedsNoAuth(t *testing.T) {
	e := newEnv(t)
	s := e.start(t, testExec("job1"))
	got := e.do(t, "GET", s.base+"/health", "", nil)
	expect(t, got, 200, `{"status":"healthy","time":"2026-03-01T12:00:00Z"}`)
}

func TestEndpoints(t *testing.T) {
	e := newEnv(t)
	s := e.start(t, testExec("job1"))
	tok := s.Token()
	tests := []struct {
		name, method, path, body string
		want                     string
	}{
		{"input", "GET", "/input", "", `{"success":true,"data":{"n":1,"items":["a","b"]}}`},
		{"context", "GET", "/context", "", `{"success":true,"data":{"executionId":"exec_job1_1772366400","jobId":"job1","eventId":"event-job1","eventName":"Nightly job1","eventType":"PYTHON","userId":"user-1","startTime":"2026-03-01T12:00:00.000Z","trigger":"schedule","metadata":{"attempt":2,"workflowId":"wf-1"}}}`},
		{"output", "POST", "/output", `{"data": {"result": [1, 2]}}`, `{"success":true}`},
		{"condition", "POST", "/condition", `{"condition":true}`, `{"success":true}`},
		{"put variable", "PUT", "/variables/greeting", `{"value":"hello"}`, `{"success":true}`},
		{"get variable", "GET", "/variables/greeting", "", `{"success":true,"data":{"key":"greeting","value":"hello"}}`},
		{"missing variable", "GET", "/variables/nope", "", `{"success":true,"data":{"key":"nope","value":null}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			var got reply
			if body != nil {
				got = e.do(t, tt.method, s.url(tt.path), tok, body)
			} else {
				got = e.do(t, tt.method, s.url(tt.path), tok, nil)
			}
			expect(t, got, 200, tt.want)
		})
	}
	if out, ok := s.Output(); !ok || string(out) != `{"result":[1,2]}` {
		t.Fatalf("Output() = %s, %v", out, ok)
	}
	if string(e.store.outputs[s.id]) != `{"result":[1,2]}` || !e.store.conditions[s.id] {
		t.Fatalf("store: output %s condition %v", e.store.outputs[s.id], e.store.conditions[s.id])
	}
	if c, ok := s.Condition(); !ok || !c {
		t.Fatalf("Condition() = %v, %v", c, ok)
	}
}

func TestInputAndContextDefaults(t *testing.T) {
	e := newEnv(t)
	exec := testExec("job2")
	exec.Input, exec.Metadata, exec.EventID = nil, nil, ""
	s := e.start(t, exec)
	expect(t, e.do(t, "GET", s.url("/input"), s.Token(), nil), 200, `{"success":true,"data":null}`)
	got := e.do(t, "GET", s.url("/context"), s.Token(), nil)
	if got.status != 200 || !strings.Contains(got.body, `"eventId":""`) || !strings.Contains(got.body, `"metadata":{}`) {
		t.Fatalf("context: %d %s", got.status, got.body)
	}
}

func TestOutputAndConditionLastWins(t *testing.T) {
	e := newEnv(t)
	s := e.start(t, testExec("job1"))
	if _, ok := s.Output(); ok {
		t.Fatal("output set before any call")
	}
	if _, ok := s.Condition(); ok {
		t.Fatal("condition set before any call")
	}
	steps := []struct {
		path, body string
		wantOut    string
		wantCond   bool
	}{
		{"/output", `{"data":1}`, `1`, false},
		{"/output", `{"data":null}`, `null`, false},
		{"/output", `{"data":false}`, `false`, false},
		{"/condition", `{"condition":true}`, `false`, true},
		{"/condition", `{"condition":false}`, `false`, false},
		{"/output", `{"data":"text","extra":1}`, `"text"`, false},
	}
	for _, st := range steps {
		expect(t, e.do(t, "POST", s.url(st.path), s.Token(), strings.NewReader(st.body)), 200, `{"success":true}`)
		out, ok := s.Output()
		cond, _ := s.Condition()
		if !ok || string(out) != st.wantOut || cond != st.wantCond {
			t.Fatalf("after %s %s: output %s, condition %v", st.path, st.body, out, cond)
		}
	}
}

func TestVariableRoundTrip(t *testing.T) {
	e := newEnv(t)
	s := e.start(t, testExec("job1"))
	tests := []struct {
		name   string
		put    string // JSON of "value"
		stored string // the string the store gets
		get    string // JSON of "value" read back
	}{
		{"zero", `0`, "0", `0`},
		{"empty string", `""`, "", `""`},
		{"false", `false`, "false", `false`},
		{"true", `true`, "true", `true`},
		{"null", `null`, "null", `null`},
		{"empty array", `[]`, "[]", `[]`},
		{"empty object", `{}`, "{}", `{}`},
		{"object compacted", `{ "a" : 1 }`, `{"a":1}`, `{"a":1}`},
		{"nested", `{"a":[1,{"b":null}]}`, `{"a":[1,{"b":null}]}`, `{"a":[1,{"b":null}]}`},
		{"plain string", `"hello world"`, "hello world", `"hello world"`},
		{"string with spaces", `" padded "`, " padded ", `" padded "`},
		{"unicode string", `"h\u00e9llo ✓"`, "héllo ✓", `"héllo ✓"`},
		{"string of JSON is parsed back", `"{\"a\":1}"`, `{"a":1}`, `{"a":1}`},
		{"string of a number reads as a number", `"0"`, "0", `0`},
		{"big number keeps its digits", `12345678901234567890123`, "12345678901234567890123", `12345678901234567890123`},
		{"float", `-1.5e3`, "-1.5e3", `-1.5e3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := strings.ReplaceAll(tt.name, " ", "_")
			expect(t, e.do(t, "PUT", s.url("/variables/"+key), s.Token(), strings.NewReader(`{"value":`+tt.put+`}`)), 200, `{"success":true}`)
			if v, ok := e.store.variable("user-1", key); !ok || v != tt.stored {
				t.Fatalf("stored %q, %v; want %q", v, ok, tt.stored)
			}
			expect(t, e.do(t, "GET", s.url("/variables/"+key), s.Token(), nil), 200,
				`{"success":true,"data":{"key":"`+key+`","value":`+tt.get+`}}`)
		})
	}
}

func TestVariableKeys(t *testing.T) {
	e := newEnv(t)
	s := e.start(t, testExec("job1"))
	long := strings.Repeat("k", 255)
	tests := []struct {
		name, escaped, key string // key "" expects 400
	}{
		{"encoded slash", "dir%2Fname", "dir/name"},
		{"raw slash", "dir/name", "dir/name"},
		{"unicode", url.PathEscape("clé ✓/ü"), "clé ✓/ü"},
		{"space and percent", url.PathEscape("50% off"), "50% off"},
		{"dots inside", "a.b..c", "a.b..c"},
		{"three dots", "...", "..."},
		{"dot prefix", "%2eenv", ".env"},
		{"dot dot in a path", "a/..", "a/.."},
		{"255 bytes", long, long},
		{"256 bytes", long + "k", ""},
		{"empty", "", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := s.url("/variables/" + tt.escaped)
			val := strings.Repeat("v", i+1)
			put := e.do(t, "PUT", u, s.Token(), strings.NewReader(`{"value":"`+val+`"}`))
			get := e.do(t, "GET", u, s.Token(), nil)
			if tt.key == "" {
				expectError(t, put, 400, "1 to 255 bytes")
				expectError(t, get, 400, "1 to 255 bytes")
				return
			}
			expect(t, put, 200, `{"success":true}`)
			if v, ok := e.store.variable("user-1", tt.key); !ok || v != val {
				t.Fatalf("store[%q] = %q, %v", tt.key, v, ok)
			}
			k, _ := json.Marshal(tt.key)
			expect(t, get, 200, `{"success":true,"data":{"key":`+string(k)+`,"value":"`+val+`"}}`)
		})
	}
}

// The keys "." and "..", however encoded, are refused before the store sees
// them: the backend refuses them, so a write accepted here would be lost
// (and served back from a cache meanwhile).
func TestVariableDotKeys(t *testing.T) {
	e := newEnv(t)
	s := e.start(t, testExec("job1"))
	tests := []struct{ escaped, key string }{
		{".", "."},
		{"..", ".."},
		{"%2e", "."},
		{"%2E", "."},
		{"%2e%2e", ".."},
		{"%2E%2e", ".."},
		{"%2E%2E", ".."},
		{".%2e", ".."},
		{"%2e.", ".."},
	}
	for _, tt := range tests {
		t.Run(tt.escaped, func(t *testing.T) {
			u := s.url("/variables/" + tt.escaped)
			k, _ := json.Marshal(tt.key)
			want := "variable key " + string(k) + " is reserved"
			expectError(t, e.do(t, "PUT", u, s.Token(), strings.NewReader(`{"value":"lost"}`)), 400, want)
			expectError(t, e.do(t, "GET", u, s.Token(), nil), 400, want)
		})
	}
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	if len(e.store.vars) != 0 {
		t.Fatalf("the store got %v", e.store.vars)
	}
}

func TestUnknownPathAndWrongMethod(t *testing.T) {
	e := newEnv(t)
	s := e.start(t, testExec("job1"))
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/", 404, ""},
		{"GET", "/nope", 404, ""},
		{"GET", "/executions", 404, ""},
		{"GET", "/executions/" + s.id, 404, ""},
		{"GET", "/executions/" + s.id + "/unknown", 404, ""},
		{"GET", "/executions/" + s.id + "/input/", 404, ""},
		{"GET", "/executions/" + s.id + "/variables", 404, ""},
		{"POST", "/health", 405, "GET"},
		{"POST", "/executions/" + s.id + "/input", 405, "GET"},
		{"GET", "/executions/" + s.id + "/output", 405, "POST"},
		{"PUT", "/executions/" + s.id + "/condition", 405, "POST"},
		{"DELETE", "/executions/" + s.id + "/variables/k", 405, "GET, PUT"},
		{"POST", "/executions/" + s.id + "/variables/k", 405, "GET, PUT"},
		{"GET", "/tool-actions/execute", 405, "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			for _, tok := range []string{"", s.Token()} { // answered the same with or without a token
				got := e.do(t, tt.method, s.base+tt.path, tok, nil)
				want := "no such endpoint"
				if tt.status == 405 {
					want = "not allowed"
				}
				expectError(t, got, tt.status, want)
				if a := got.header.Get("Allow"); a != tt.allow {
					t.Fatalf("Allow = %q, want %q", a, tt.allow)
				}
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t)
	s := e.start(t, testExec("job1"))
	tests := []struct {
		name, method, path, body, msg string
	}{
		{"output not JSON", "POST", "/output", `not json`, "JSON object"},
		{"output truncated", "POST", "/output", `{"data":1`, "JSON object"},
		{"output trailing garbage", "POST", "/output", `{"data":1} x`, "JSON object"},
		{"output array", "POST", "/output", `[1]`, "JSON object"},
		{"output null body", "POST", "/output", `null`, "JSON object"},
		{"output empty body", "POST", "/output", ``, "JSON object"},
		{"output missing data", "POST", "/output", `{"value":1}`, `"data"`},
		{"condition string", "POST", "/condition", `{"condition":"true"}`, "true or false"},
		{"condition number", "POST", "/condition", `{"condition":1}`, "true or false"},
		{"condition null", "POST", "/condition", `{"condition":null}`, "true or false"},
		{"condition missing", "POST", "/condition", `{}`, `"condition"`},
		{"variable missing value", "PUT", "/variables/k", `{"data":1}`, `"value"`},
		{"variable not JSON", "PUT", "/variables/k", `{value:1}`, "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectError(t, e.do(t, tt.method, s.url(tt.path), s.Token(), strings.NewReader(tt.body)), 400, tt.msg)
		})
	}
	if _, ok := s.Output(); ok {
		t.Fatal("a bad request recorded an output")
	}
	if _, ok := s.Condition(); ok {
		t.Fatal("a bad request recorded a condition")
	}
}

// Without a tool runner (jobs.toolActions off) the endpoint says which
// setting turns it on; a token is still required first.
func TestToolActionsNotEnabled(t *testing.T) {
	e := newEnv(t)
	s := e.start(t, testExec("job1"))
	body := `{"tool":"slack","action":"send-message","params":{}}`
	expectError(t, e.do(t, "POST", s.base+"/tool-actions/execute", s.Token(), strings.NewReader(body)), 501, "jobs.toolActions: true")
	expectError(t, e.do(t, "POST", s.base+"/tool-actions/execute", "", strings.NewReader(body)), 401, "missing bearer token")
}

// fakeTools is a ToolRunner that records what it is asked.
type fakeTools struct {
	mu     sync.Mutex
	execs  []string
	bodies []string
	result string
	err    error
}

func (f *fakeTools) ExecuteTool(_ context.Context, exec sidecar.Execution, req json.RawMessage) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.execs = append(f.execs, exec.ExecutionID)
	f.bodies = append(f.bodies, string(req))
	return json.RawMessage(f.result), f.err
}

// With a tool runner the endpoint hands it the request of the token's
// execution and serves its outcome as the data, failure included (200:
// helpers retry 5xx, and a failed action may have had an effect); a
// request it refuses is a 400 with its message.
func TestToolActionsExecute(t *testing.T) {
	tools := &fakeTools{}
	e := newEnv(t, sidecar.WithToolRunner(tools))
	s := e.start(t, testExec("job1"))
	tests := []struct {
		name, body, result string
		err                error
		status             int
		want               string
	}{
		{"params", `{"tool":"slack","action":"send_message","params":{"text":"hi"}}`, `{"success":true,"data":{"ts":"1.2"}}`, nil,
			200, `{"success":true,"data":{"success":true,"data":{"ts":"1.2"}}}`},
		{"config", `{"tool":"discord","action":"send_message","config":{"content":"x"}}`, `{"success": false, "error": "discord: HTTP 500"}`, nil,
			200, `{"success":true,"data":{"success":false,"error":"discord: HTTP 500"}}`},
		{"refused", `{"tool":"fax"}`, ``, errors.New(`unknown tool "fax"`), 400, ""},
		{"not an object", `[1]`, ``, nil, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tools.result, tools.err = tt.result, tt.err
			got := e.do(t, "POST", s.base+"/tool-actions/execute", s.Token(), strings.NewReader(tt.body))
			if tt.status == 200 {
				expect(t, got, 200, tt.want)
				return
			}
			msg := "request body must be a JSON object"
			if tt.err != nil {
				msg = tt.err.Error()
			}
			expectError(t, got, tt.status, msg)
		})
	}
	tools.mu.Lock()
	defer tools.mu.Unlock()
	if len(tools.bodies) != 3 || tools.bodies[0] != `{"action":"send_message","params":{"text":"hi"},"tool":"slack"}` ||
		tools.bodies[1] != `{"action":"send_message","config":{"content":"x"},"tool":"discord"}` {
		t.Errorf("the runner got %q", tools.bodies)
	}
	for _, id := range tools.execs {
		if id != s.id {
			t.Errorf("the runner ran for execution %s, want %s", id, s.id)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	s := e.start(t, testExec("job1"))
	big := bytes.Repeat([]byte("a"), 20<<20)
	chunked := struct{ *bytes.Reader }{bytes.NewReader(append(append([]byte(`{"data":"`), big[:11<<20]...), `"}`...))}
	tests := []struct {
		name, method, path string
		body               io.Reader
	}{
		{"20 MiB output with Content-Length", "POST", "/output", bytes.NewReader(big)},
		{"20 MiB variable with Content-Length", "PUT", "/variables/k", bytes.NewReader(big)},
		{"11 MiB output chunked (no Content-Length)", "POST", "/output", chunked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, s.url(tt.path), tt.body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+s.Token())
			res, err := e.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var env struct{ Error string }
			if err := json.NewDecoder(res.Body).Decode(&env); err != nil || res.StatusCode != 413 || env.Error != "Request Entity Too Large" {
				t.Fatalf("got %d %+v %v", res.StatusCode, env, err)
			}
		})
	}
	// Exactly at the limit is accepted.
	e2 := newEnv(t, sidecar.WithMaxBody(64))
	s2 := e2.start(t, testExec("job2"))
	body := `{"data":"` + strings.Repeat("x", 64-len(`{"data":""}`)) + `"}`
	expect(t, e2.do(t, "POST", s2.url("/output"), s2.Token(), strings.NewReader(body)), 200, `{"success":true}`)
	expectError(t, e2.do(t, "POST", s2.url("/output"), s2.Token(), strings.NewReader(body+" ")), 413, "exceeds 64 bytes")
}

func TestStoreErrorsAre503WithoutDetails(t *testing.T) {
	logs := &lockedBuffer{}
	e := newEnv(t, sidecar.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	s := e.start(t, testExec("job1"))
	e.store.fail = true
	tests := []struct{ method, path, body string }{
		{"GET", "/variables/k", ""},
		{"PUT", "/variables/k", `{"value":1}`},
		{"POST", "/output", `{"data":1}`},
		{"POST", "/condition", `{"condition":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			got := e.do(t, tt.method, s.url(tt.path), s.Token(), strings.NewReader(tt.body))
			expectError(t, got, 503, "temporarily unavailable")
			if strings.Contains(got.body, "fire") || strings.Contains(got.body, "/var/lib") {
				t.Fatalf("store error leaked: %s", got.body)
			}
			if got.header.Get("Retry-After") == "" {
				t.Fatal("no Retry-After")
			}
		})
	}
	if _, ok := s.Output(); ok {
		t.Fatal("output recorded although the store refused it")
	}
	if !strings.Contains(logs.String(), "store call failed") {
		t.Fatalf("store failure not logged: %s", logs.String())
	}
}

func TestLogsNeverHoldTokenOrValues(t *testing.T) {
	logs := &lockedBuffer{}
	e := newEnv(t, sidecar.WithLogger(slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	s := e.start(t, testExec("job1"))
	secretValue := "s3cr3t-variable-value"
	e.do(t, "PUT", s.url("/variables/k"), s.Token(), strings.NewReader(`{"value":"`+secretValue+`"}`))
	e.do(t, "GET", s.url("/variables/k"), s.Token(), nil)
	e.do(t, "POST", s.url("/output"), s.Token(), strings.NewReader(`{"data":"`+secretValue+`"}`))
	e.do(t, "GET", s.url("/input"), s.Token()+"x", nil) // refused token
	e.store.fail = true
	e.do(t, "PUT", s.url("/variables/k"), s.Token(), strings.NewReader(`{"value":"`+secretValue+`"}`))
	s.Close()
	out := logs.String()
	sig := s.Token()[strings.LastIndexByte(s.Token(), '.')+1:]
	for _, leak := range []string{s.Token(), sig, secretValue} {
		if strings.Contains(out, leak) {
			t.Fatalf("logs contain %q:\n%s", leak, out)
		}
	}
	if !strings.Contains(out, "runtime api call") {
		t.Fatalf("no request logged:\n%s", out)
	}
}

func TestWithLocalStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	local, err := state.OpenLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: t0}
	srv := sidecar.New(testSecret, local, sidecar.WithClock(clock.Now))
	e := newEnv(t)
	e.srv = srv
	s1 := e.start(t, testExec("job1"))
	expect(t, e.do(t, "PUT", s1.url("/variables/count"), s1.Token(), strings.NewReader(`{"value":0}`)), 200, `{"success":true}`)
	expect(t, e.do(t, "POST", s1.url("/output"), s1.Token(), strings.NewReader(`{"data":{"ok":true}}`)), 200, `{"success":true}`)
	s1.Close()
	local.Close()

	// The next run, after a restart, reads the variable.
	local, err = state.OpenLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	e.srv = sidecar.New(testSecret, local, sidecar.WithClock(clock.Now))
	s2 := e.start(t, testExec("job2"))
	expect(t, e.do(t, "GET", s2.url("/variables/count"), s2.Token(), nil), 200, `{"success":true,"data":{"key":"count","value":0}}`)
	if out, ok, err := local.Output(context.Background(), s1.id); err != nil || !ok || string(out) != `{"ok":true}` {
		t.Fatalf("journaled output = %s, %v, %v", out, ok, err)
	}
}

func TestStartValidation(t *testing.T) {
	e := newEnv(t)
	e.start(t, testExec("dup"))
	tests := []struct {
		name string
		edit func(*sidecar.Execution)
		want string
	}{
		{"duplicate", func(*sidecar.Execution) {}, "already has a runtime API"},
		{"no execution id", func(x *sidecar.Execution) { x.ExecutionID = "" }, "execution id is required"},
		{"no job id", func(x *sidecar.Execution) { x.JobID = "" }, "job id is required"},
		{"no timeout", func(x *sidecar.Execution) { x.Timeout = 0 }, "timeout must be positive"},
		{"bad input", func(x *sidecar.Execution) { x.Input = json.RawMessage(`{`) }, "not valid JSON"},
		{"bad metadata", func(x *sidecar.Execution) { x.Metadata = map[string]any{"f": func() {}} }, "metadata"},
		{"past its timeout", func(x *sidecar.Execution) { x.StartTime = t0.Add(-time.Hour) }, "past its timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := testExec("dup")
			tt.edit(&x)
			ln := listen(t)
			defer ln.Close()
			if _, err := e.srv.Start(context.Background(), x, ln); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	short := sidecar.New(testSecret[:16], newMemStore())
	ln := listen(t)
	defer ln.Close()
	if _, err := short.Start(context.Background(), testExec("x"), ln); err == nil {
		t.Fatal("a 16-byte secret was accepted")
	}
}

// A job queued without a user still runs and has its runtime API; only its
// variables are refused, with a 4xx that helpers do not retry.
func TestVariablesWithoutUser(t *testing.T) {
	e := newEnv(t)
	x := testExec("job-nouser")
	x.UserID = ""
	s := e.start(t, x)
	want := `{"error":"Conflict","message":"variables are unavailable: this job has no user (metadata.userId)"}`
	expect(t, e.do(t, "GET", s.url("/variables/k"), s.Token(), nil), 409, want)
	expect(t, e.do(t, "PUT", s.url("/variables/k"), s.Token(), strings.NewReader(`{"value":1}`)), 409, want)
	if r := e.do(t, "GET", s.url("/input"), s.Token(), nil); r.status != 200 {
		t.Errorf("input without a user: %d %s", r.status, r.body)
	}
}
