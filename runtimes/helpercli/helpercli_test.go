package helpercli_test

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/runtimes/helpercli"
	"github.com/cronium/cronium-agent/runtimes/helpercli/fakeapi"
)

// fast retries, so the retry cases take milliseconds
var fast = helpercli.CLI{Backoff: []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}}

type result struct {
	code           int
	stdout, stderr string
}

func run(cli helpercli.CLI, env []string, args ...string) result {
	var out, errb bytes.Buffer
	code := cli.Main(args, env, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// sameJSON compares two JSON texts by value.
func sameJSON(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Errorf("not JSON: %q: %v", got, err)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func TestDefaultBackoff(t *testing.T) {
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	if got := helpercli.DefaultBackoff(); !reflect.DeepEqual(got, want) {
		t.Fatalf("DefaultBackoff() = %v, want %v", got, want)
	}
}

func TestInput(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	for _, tc := range []struct{ input, stdout string }{
		{`{"a": 1, "b": [true, null]}`, `{"a":1,"b":[true,null]}` + "\n"},
		{`[1, "two", {"three": 3}]`, `[1,"two",{"three":3}]` + "\n"},
		{`"hello world"`, `"hello world"` + "\n"},
		{`42.5`, "42.5\n"},
		{`12345678901234567890`, "12345678901234567890\n"}, // no float rounding
		{`0`, "0\n"},
		{`""`, `""` + "\n"},
		{`false`, "false\n"},
		{`null`, "null\n"},
	} {
		srv.SetInput(tc.input)
		r := run(fast, srv.Env(), "input")
		if r.code != 0 || r.stdout != tc.stdout || r.stderr != "" {
			t.Errorf("input %s: got %+v, want stdout %q", tc.input, r, tc.stdout)
		}
	}
	reqs := srv.Requests()
	if len(reqs) == 0 || reqs[0].Method != "GET" || reqs[0].RequestURI != "/executions/"+srv.ExecutionID+"/input" {
		t.Fatalf("requests: %+v", reqs)
	}
	if reqs[0].Auth != "Bearer "+srv.Token {
		t.Fatalf("Authorization = %q", reqs[0].Auth)
	}
}

func TestEvent(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	srv.SetContext(`{"executionId": "exec_job1_1700000000", "eventName": "demo", "metadata": {"k": "v"}}`)
	for _, name := range []string{"event", "context"} {
		r := run(fast, srv.Env(), name)
		want := `{"executionId":"exec_job1_1700000000","eventName":"demo","metadata":{"k":"v"}}` + "\n"
		if r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Errorf("%s: got %+v", name, r)
		}
	}
	for _, rq := range srv.Requests() {
		if rq.RequestURI != "/executions/"+srv.ExecutionID+"/context" {
			t.Errorf("request %+v", rq)
		}
	}
}

func TestOutput(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	for _, tc := range []struct{ arg, want string }{
		{`{"a": 1}`, `{"a":1}`},
		{`[1, 2]`, `[1,2]`},
		{`42`, `42`},
		{`0`, `0`},
		{`false`, `false`},
		{`null`, `null`},
		{`"quoted"`, `"quoted"`},
		{`hello world`, `"hello world"`},
		{`{"broken": `, `"{\"broken\": "`},
		{``, `""`},
		{`  7 `, `7`},
		{"line1\nline2", `"line1\nline2"`},
	} {
		r := run(fast, srv.Env(), "output", tc.arg)
		if r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("output %q: %+v", tc.arg, r)
			continue
		}
		if got := srv.Output(); got != tc.want {
			t.Errorf("output %q: server got %s, want %s", tc.arg, got, tc.want)
		}
	}
	if rq := srv.Requests()[0]; rq.Method != "POST" || rq.RequestURI != "/executions/"+srv.ExecutionID+"/output" || rq.Body != `{"data":{"a":1}}` {
		t.Fatalf("request %+v", rq)
	}
}

func TestGetVariable(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	for _, tc := range []struct {
		value  string // stored JSON; "" = not set
		stdout string
	}{
		{`"plain text"`, "plain text\n"},
		{`"{\"looks\":\"like json\"}"`, `{"looks":"like json"}` + "\n"},
		{`{"a": [1, 2]}`, `{"a":[1,2]}` + "\n"},
		{`[1, "x"]`, `[1,"x"]` + "\n"},
		{`3.25`, "3.25\n"},
		{`0`, "0\n"},
		{`""`, "\n"},
		{`false`, "false\n"},
		{`true`, "true\n"},
		{`null`, ""},
		{"", ""},
	} {
		for _, name := range []string{"get-variable", "get_variable", "getVariable"} {
			key := "k"
			if tc.value == "" {
				key = "missing"
			} else {
				srv.SetVariable(key, tc.value)
			}
			r := run(fast, srv.Env(), name, key)
			if r.code != 0 || r.stdout != tc.stdout || r.stderr != "" {
				t.Errorf("%s of %s: got %+v, want stdout %q", name, tc.value, r, tc.stdout)
			}
		}
	}
	// A 404 for the variable reads as missing too.
	srv.Queue(fakeapi.Reply{Status: 404, Body: `{"error":"Not Found","message":"variable not found"}`})
	if r := run(fast, srv.Env(), "get-variable", "gone"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("404: %+v", r)
	}
}

func TestSetVariable(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	for _, tc := range []struct{ arg, want string }{
		{`{"a": 1}`, `{"a":1}`},
		{`12`, `12`},
		{`0`, `0`},
		{`false`, `false`},
		{`""`, `""`},
		{``, `""`},
		{`some text`, `"some text"`},
		{`2025-06-17T10:30:00Z`, `"2025-06-17T10:30:00Z"`},
	} {
		for _, name := range []string{"set-variable", "set_variable", "setVariable"} {
			r := run(fast, srv.Env(), name, "K", tc.arg)
			if r.code != 0 || r.stdout != "" || r.stderr != "" {
				t.Errorf("%s %q: %+v", name, tc.arg, r)
			}
			if got, _ := srv.Variable("K"); got != tc.want {
				t.Errorf("%s %q: stored %s, want %s", name, tc.arg, got, tc.want)
			}
		}
	}
	if rq := srv.Requests()[0]; rq.Method != "PUT" || rq.RequestURI != "/executions/"+srv.ExecutionID+"/variables/K" || rq.Body != `{"value":{"a":1}}` {
		t.Fatalf("request %+v", rq)
	}
}

func TestKeyEncoding(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	key := "a/b c?d#e%f+ü!*'()~._-"
	const enc = "a%2Fb%20c%3Fd%23e%25f%2B%C3%BC%21%2A%27%28%29~._-"
	if r := run(fast, srv.Env(), "set-variable", key, "v"); r.code != 0 {
		t.Fatalf("set: %+v", r)
	}
	r := run(fast, srv.Env(), "get-variable", key)
	if r.code != 0 || r.stdout != "v\n" {
		t.Fatalf("get: %+v", r)
	}
	for _, rq := range srv.Requests() {
		if want := "/executions/" + srv.ExecutionID + "/variables/" + enc; rq.RequestURI != want || rq.Key != key {
			t.Errorf("%s %s (key %q), want %s", rq.Method, rq.RequestURI, rq.Key, want)
		}
	}
	if got := helpercli.EscapeKey(key); got != enc {
		t.Errorf("EscapeKey = %s", got)
	}
}

func TestSetCondition(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	for _, tc := range []struct {
		arg  string
		want bool
	}{
		{"true", true}, {"TRUE", true}, {"True", true}, {"1", true}, {"yes", true}, {"Yes", true}, {"on", true}, {"ON", true},
		{"false", false}, {"FALSE", false}, {"0", false}, {"no", false}, {"NO", false}, {"off", false}, {"Off", false},
	} {
		for _, name := range []string{"set-condition", "set_condition", "setCondition"} {
			srv.Reset()
			r := run(fast, srv.Env(), name, tc.arg)
			c := srv.Condition()
			if r.code != 0 || r.stderr != "" || c == nil || *c != tc.want {
				t.Errorf("%s %s: %+v, condition %v", name, tc.arg, r, c)
			}
		}
	}
	if rq := srv.Requests()[0]; rq.Method != "POST" || rq.RequestURI != "/executions/"+srv.ExecutionID+"/condition" || rq.Body != `{"condition":false}` {
		t.Fatalf("request %+v", rq)
	}
	for _, bad := range []string{"maybe", "", "2", "y", "truee"} {
		srv.Reset()
		r := run(fast, srv.Env(), "set-condition", bad)
		if r.code != 2 || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "cronium: ") || r.stdout != "" {
			t.Errorf("set-condition %q: %+v", bad, r)
		}
		if n := len(srv.Requests()); n != 0 {
			t.Errorf("set-condition %q sent %d requests", bad, n)
		}
	}
}

// counting wraps a transport and counts the attempts.
type counting struct {
	n    atomic.Int32
	next http.RoundTripper
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func TestRetries(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	unavailable := fakeapi.Reply{Status: 503, Body: `{"error":"Service Unavailable","message":"backend down"}`}
	for _, tc := range []struct {
		name     string
		queue    []fakeapi.Reply
		code     int
		stderr   string
		requests int
	}{
		{"503 twice then ok", []fakeapi.Reply{unavailable, unavailable}, 0, "", 3},
		{"503 three times then ok", []fakeapi.Reply{unavailable, unavailable, unavailable}, 0, "", 4},
		{"5xx four times fails", []fakeapi.Reply{unavailable, unavailable, {Status: 500, Body: `{}`}, unavailable}, 1, "cronium: backend down\n", 4},
		{"dropped connections then ok", []fakeapi.Reply{{Drop: true}, {Drop: true}}, 0, "", 3},
		{"400 at once", []fakeapi.Reply{{Status: 400, Body: `{"error":"Bad Request","message":"value is not valid"}`}}, 1, "cronium: value is not valid\n", 1},
		{"401 at once", []fakeapi.Reply{{Status: 401, Body: `{"error":"Unauthorized","message":"token expired"}`}}, 1, "cronium: token expired\n", 1},
		{"429 at once", []fakeapi.Reply{{Status: 429, Body: `{"error":"Too Many Requests","message":"rate limit"}`}}, 1, "cronium: rate limit\n", 1},
		{"4xx without body", []fakeapi.Reply{{Status: 413}}, 1, "cronium: HTTP 413 Request Entity Too Large\n", 1},
		{"multi-line message", []fakeapi.Reply{{Status: 400, Body: `{"message":"line one\nline two"}`}}, 1, "cronium: line one line two\n", 1},
	} {
		srv.Reset()
		srv.Queue(tc.queue...)
		r := run(fast, srv.Env(), "output", `{"x":1}`)
		if r.code != tc.code || r.stderr != tc.stderr || r.stdout != "" {
			t.Errorf("%s: got %+v, want code %d stderr %q", tc.name, r, tc.code, tc.stderr)
		}
		if n := len(srv.Requests()); n != tc.requests {
			t.Errorf("%s: %d requests, want %d", tc.name, n, tc.requests)
		}
		if tc.code == 0 && srv.Output() != `{"x":1}` {
			t.Errorf("%s: output %q", tc.name, srv.Output())
		}
	}

	// 403: wrong execution id.
	env := append(srv.Env(), "CRONIUM_EXECUTION_ID=exec_other_1")
	if r := run(fast, env, "input"); r.code != 1 || r.stderr != "cronium: execution ID mismatch\n" {
		t.Errorf("403: %+v", r)
	}
}

func TestTransportErrorRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	ct := &counting{next: &http.Transport{Proxy: nil}}
	cli := fast
	cli.Client = &http.Client{Transport: ct, Timeout: 5 * time.Second}
	env := []string{"CRONIUM_RUNTIME_API=http://" + addr, "CRONIUM_EXECUTION_ID=exec_1", "CRONIUM_EXECUTION_TOKEN=t"}
	r := run(cli, env, "get-variable", "k")
	if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "cronium: GET http://"+addr+"/executions/exec_1/variables/k: ") {
		t.Fatalf("got %+v", r)
	}
	if n := ct.n.Load(); n != 4 {
		t.Fatalf("%d attempts, want 4 (1 + 3 retries)", n)
	}

	// No retries at all with an empty backoff.
	ct.n.Store(0)
	cli.Backoff = []time.Duration{}
	if r := run(cli, env, "input"); r.code != 1 || ct.n.Load() != 1 {
		t.Fatalf("empty backoff: %+v after %d attempts", r, ct.n.Load())
	}
}

func TestDefaultsWaitBeforeRetry(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	srv.Queue(fakeapi.Reply{Status: 502, Body: `{}`})
	var out, errb bytes.Buffer
	start := time.Now()
	code := helpercli.Main([]string{"input"}, srv.Env(), &out, &errb)
	if code != 0 || errb.Len() != 0 {
		t.Fatalf("code %d, stderr %q", code, errb.String())
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("retried after %v, want at least the default 200ms", d)
	}
}

func TestNotAvailable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    []string
		stderr string
	}{
		{"no env", nil, "cronium runtime not available: CRONIUM_RUNTIME_API is not set\n"},
		{"empty api", []string{"CRONIUM_RUNTIME_API=", "CRONIUM_EXECUTION_ID=e", "CRONIUM_EXECUTION_TOKEN=t"}, "cronium runtime not available: CRONIUM_RUNTIME_API is not set\n"},
		{"no id", []string{"CRONIUM_RUNTIME_API=http://127.0.0.1:1", "CRONIUM_EXECUTION_TOKEN=t"}, "cronium runtime not available: CRONIUM_EXECUTION_ID is not set\n"},
		{"no token", []string{"CRONIUM_RUNTIME_API=http://127.0.0.1:1", "CRONIUM_EXECUTION_ID=e"}, "cronium runtime not available: CRONIUM_EXECUTION_TOKEN is not set\n"},
	} {
		for _, args := range [][]string{{"input"}, {"output", "1"}, {"get-variable", "k"}, {"set-variable", "k", "v"}, {"set-condition", "true"}, {"event"}} {
			r := run(fast, tc.env, args...)
			if r.code != 1 || r.stderr != tc.stderr || r.stdout != "" {
				t.Errorf("%s: %v: %+v", tc.name, args, r)
			}
		}
	}
}

func TestUsage(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	for _, args := range [][]string{
		nil,
		{"bogus"},
		{"input", "extra"},
		{"event", "x"},
		{"output"},
		{"output", "a", "b"},
		{"get-variable"},
		{"get-variable", "a", "b"},
		{"get-variable", ""},
		{"set-variable", "k"},
		{"set-variable", "", "v"},
		{"set-condition"},
		{"set-condition", "true", "false"},
	} {
		r := run(fast, srv.Env(), args...)
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "cronium: ") {
			t.Errorf("%q: %+v", args, r)
		}
		if len(args) > 0 && strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: stderr is not one line: %q", args, r.stderr)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
	for _, h := range []string{"help", "-h", "--help"} {
		if r := run(fast, nil, h); r.code != 0 || !strings.Contains(r.stdout, "usage: cronium") {
			t.Errorf("%s: %+v", h, r)
		}
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "On": true, " yes ": true, "1": true, "false": false, "OFF": false, "No": false, "0": false} {
		if got, ok := helpercli.ParseBool(in); !ok || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, ok)
		}
	}
	if _, ok := helpercli.ParseBool("nope"); ok {
		t.Error("ParseBool(nope) ok")
	}
}

func TestBaseURLWithPathAndSlash(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	srv.SetInput(`{"ok":true}`)
	env := append(srv.Env(), "CRONIUM_RUNTIME_API="+srv.URL+"/")
	if r := run(fast, env, "input"); r.code != 0 || !sameJSON(t, r.stdout, `{"ok":true}`) {
		t.Fatalf("%+v", r)
	}
}
