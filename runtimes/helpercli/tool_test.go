package helpercli_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/runtimes/helpercli"
	"github.com/cronium/cronium-agent/runtimes/helpercli/fakeapi"
)

// toolRequest checks that the server got exactly one tool action request
// and that its body is want (compared as JSON).
func toolRequest(t *testing.T, srv *fakeapi.Server, name, want string) {
	t.Helper()
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Errorf("%s: %d requests, want 1", name, len(reqs))
		return
	}
	rq := reqs[0]
	if rq.Method != "POST" || rq.RequestURI != "/tool-actions/execute" || rq.Auth != "Bearer "+srv.Token {
		t.Errorf("%s: request %s %s (auth %q)", name, rq.Method, rq.RequestURI, rq.Auth)
	}
	if !sameJSON(t, rq.Body, want) {
		t.Errorf("%s: body %s, want %s", name, rq.Body, want)
	}
}

func TestToolActionRequests(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	srv.SetToolResult(`{"success": true, "data": {"ts": "1.2", "n": 12345678901234567890}}`)
	const result = `{"success":true,"data":{"ts":"1.2","n":12345678901234567890}}` + "\n"
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		body  string
	}{
		{"json object", []string{"execute-tool-action", "slack", "send-message", `{"text": "hi", "channel": "#ops", "blocks": [{"type": "section"}]}`}, "",
			`{"tool":"slack","action":"send-message","params":{"text":"hi","channel":"#ops","blocks":[{"type":"section"}]}}`},
		{"no params", []string{"execute-tool-action", "webhook", "send"}, "", `{"tool":"webhook","action":"send","params":{}}`},
		{"empty action left out", []string{"execute-tool-action", "webhook", ""}, "", `{"tool":"webhook","params":{}}`},
		{"pairs", []string{"execute_tool_action", "webhook", "send", "url=https://example.com/h?a=b", "method=PUT", "body:={\"a\": [1, 2]}", "text=42", "n:=42", "empty="}, "",
			`{"tool":"webhook","action":"send","params":{"url":"https://example.com/h?a=b","method":"PUT","body":{"a":[1,2]},"text":"42","n":42,"empty":""}}`},
		{"object then pairs", []string{"executeToolAction", "email", "send-message", `{"to": "a@example.com", "subject": "old"}`, "subject=new", "html:=true"}, "",
			`{"tool":"email","action":"send-message","params":{"to":"a@example.com","subject":"new","html":true}}`},
		{"stdin", []string{"tool-action", "discord", "send-message", "-", "username=bot"}, `{"content": "from stdin", "embeds": [{"title": "x"}]}`,
			`{"tool":"discord","action":"send-message","params":{"content":"from stdin","embeds":[{"title":"x"}],"username":"bot"}}`},
		{"short name", []string{"tool", "teams", "send-message", "text=hi"}, "", `{"tool":"teams","action":"send-message","params":{"text":"hi"}}`},
		{"send-email", []string{"send-email", "a@example.com, b@example.com", "Report: 42", "line 1\nline 2"}, "",
			`{"tool":"email","action":"send-message","params":{"to":"a@example.com, b@example.com","subject":"Report: 42","body":"line 1\nline 2"}}`},
		{"send_email text stays text", []string{"sendEmail", "a@example.com", "true", `{"not": "json"}`}, "",
			`{"tool":"email","action":"send-message","params":{"to":"a@example.com","subject":"true","body":"{\"not\": \"json\"}"}}`},
		{"send-slack-message", []string{"send-slack-message", "backup done"}, "", `{"tool":"slack","action":"send-message","params":{"text":"backup done"}}`},
		{"send-slack-message channel", []string{"send_slack_message", "backup done", "#ops"}, "", `{"tool":"slack","action":"send-message","params":{"text":"backup done","channel":"#ops"}}`},
		{"send-slack-message empty channel", []string{"sendSlackMessage", "x", ""}, "", `{"tool":"slack","action":"send-message","params":{"text":"x"}}`},
		{"send-discord-message", []string{"send-discord-message", "deployed"}, "", `{"tool":"discord","action":"send-message","params":{"content":"deployed"}}`},
		{"send-teams-message", []string{"send-teams-message", "deployed"}, "", `{"tool":"teams","action":"send-message","params":{"text":"deployed"}}`},
		{"send-teams-message title", []string{"send_teams_message", "deployed", "CI a=b"}, "", `{"tool":"teams","action":"send-message","params":{"text":"deployed","title":"CI a=b"}}`},
		{"sendTeamsMessage", []string{"sendTeamsMessage", "x", ""}, "", `{"tool":"teams","action":"send-message","params":{"text":"x"}}`},
		{"sendDiscordMessage", []string{"sendDiscordMessage", "x"}, "", `{"tool":"discord","action":"send-message","params":{"content":"x"}}`},
	} {
		srv.Reset()
		cli := fast
		cli.Stdin = strings.NewReader(tc.stdin)
		r := run(cli, srv.Env(), tc.args...)
		if r.code != 0 || r.stdout != result || r.stderr != "" {
			t.Errorf("%s: %+v", tc.name, r)
		}
		toolRequest(t, srv, tc.name, tc.body)
	}
}

func TestToolActionFailed(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	for _, tc := range []struct{ result, stdout, stderr string }{
		{`{"success": false, "error": "slack: POST hooks.slack.com: HTTP 500 Internal Server Error:\nboom"}`,
			`{"success":false,"error":"slack: POST hooks.slack.com: HTTP 500 Internal Server Error:\nboom"}`,
			"cronium: tool action failed: slack: POST hooks.slack.com: HTTP 500 Internal Server Error: boom\n"},
		{`{"success": false}`, `{"success":false}`, "cronium: tool action failed\n"},
		{`{"data": 1}`, `{"data":1}`, "cronium: tool action failed\n"},
	} {
		srv.Reset()
		srv.SetToolResult(tc.result)
		for _, args := range [][]string{{"send-slack-message", "hi", "#ops"}, {"execute-tool-action", "slack", "send-message", "text=hi"}} {
			r := run(fast, srv.Env(), args...)
			if r.code != 1 || r.stdout != tc.stdout+"\n" || r.stderr != tc.stderr {
				t.Errorf("%s %v: got %+v", tc.result, args, r)
			}
		}
		if n := len(srv.Requests()); n != 2 {
			t.Errorf("%s: %d requests, want 2 (one per call: never retried)", tc.result, n)
		}
	}
	// A reply without a result object is an error, not a success.
	for _, bad := range []string{`null`, `"text"`, `[1]`} {
		srv.Reset()
		srv.SetToolResult(bad)
		r := run(fast, srv.Env(), "send-discord-message", "x")
		if r.code != 1 || r.stdout != "" || r.stderr != "cronium: invalid reply from runtime API: no tool action result\n" {
			t.Errorf("result %s: %+v", bad, r)
		}
	}
}

func TestToolActionRefused(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)

	// 400: the agent cannot run it (nothing was sent).
	r := run(fast, srv.Env(), "execute-tool-action", "fax", "send")
	if r.code != 1 || r.stdout != "" || r.stderr != "cronium: tool: unknown tool \"fax\": want one of webhook, slack, discord, teams, email\n" || len(srv.Requests()) != 1 {
		t.Errorf("400: %+v", r)
	}

	// 501: tool actions are off on the agent.
	srv.Reset()
	srv.SetToolActions(false)
	for _, args := range [][]string{{"send-email", "a@example.com", "s", "b"}, {"send-slack-message", "x"}, {"send-discord-message", "x"}, {"send-teams-message", "x"}, {"tool", "webhook", "send"}} {
		r := run(fast, srv.Env(), args...)
		if r.code != 1 || r.stdout != "" || r.stderr != "cronium: "+fakeapi.NoTools+"\n" {
			t.Errorf("501 %v: %+v", args, r)
		}
	}
	if n := len(srv.Requests()); n != 5 {
		t.Errorf("501: %d requests, want 5", n)
	}
	srv.SetToolActions(true)
}

// A tool action is sent once: 5xx replies and lost connections may come
// after the action ran, so unlike every other call they are not retried.
func TestToolActionNotRetried(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	for _, tc := range []struct {
		name   string
		reply  fakeapi.Reply
		stderr string
	}{
		{"503", fakeapi.Reply{Status: 503, Body: `{"error":"Service Unavailable","message":"try later"}`}, "cronium: try later\n"},
		{"500", fakeapi.Reply{Status: 500, Body: `{"error":"Internal Server Error","message":"the tool action's result could not be encoded"}`}, "cronium: the tool action's result could not be encoded\n"},
		{"502 no body", fakeapi.Reply{Status: 502}, "cronium: HTTP 502 Bad Gateway\n"},
		{"dropped connection", fakeapi.Reply{Drop: true}, ""},
	} {
		srv.Reset()
		srv.Queue(tc.reply, tc.reply, tc.reply, tc.reply)
		r := run(fast, srv.Env(), "send-slack-message", "hi")
		if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || (tc.stderr != "" && r.stderr != tc.stderr) {
			t.Errorf("%s: %+v", tc.name, r)
		}
		if strings.Contains(r.stderr, "attempts") {
			t.Errorf("%s: %q says it retried", tc.name, r.stderr)
		}
		if n := len(srv.Requests()); n != 1 {
			t.Errorf("%s: %d requests, want 1", tc.name, n)
		}
	}

	// The same replies are retried for other calls (unchanged).
	srv.Reset()
	srv.Queue(fakeapi.Reply{Status: 503, Body: `{}`}, fakeapi.Reply{Drop: true})
	if r := run(fast, srv.Env(), "output", "1"); r.code != 0 || len(srv.Requests()) != 3 {
		t.Errorf("output: %+v after %d requests", r, len(srv.Requests()))
	}

	// A reply that does not come in time: one attempt.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server sees the client go
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	ct := &counting{next: &http.Transport{Proxy: nil}}
	cli := fast
	cli.Client = &http.Client{Transport: ct, Timeout: 100 * time.Millisecond}
	env := []string{"CRONIUM_RUNTIME_API=" + slow.URL, "CRONIUM_EXECUTION_ID=exec_1", "CRONIUM_EXECUTION_TOKEN=t"}
	r := run(cli, env, "send-discord-message", "x")
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "cronium: POST "+slow.URL+"/tool-actions/execute: ") || strings.Contains(r.stderr, "attempts") {
		t.Errorf("timeout: %+v", r)
	}
	if n := ct.n.Load(); n != 1 {
		t.Errorf("timeout: %d attempts, want 1", n)
	}
}

// A refused connection never reached the agent (restarting, say): that one
// is retried, as for the other calls.
func TestToolActionConnectionRefusedRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	ct := &counting{next: &http.Transport{Proxy: nil}}
	cli := fast
	cli.Client = &http.Client{Transport: ct, Timeout: 5 * time.Second}
	env := []string{"CRONIUM_RUNTIME_API=http://" + addr, "CRONIUM_EXECUTION_ID=exec_1", "CRONIUM_EXECUTION_TOKEN=t"}
	r := run(cli, env, "send-email", "a@example.com", "s", "b")
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "cronium: POST http://"+addr+"/tool-actions/execute: ") ||
		!strings.Contains(r.stderr, "connection refused") || !strings.HasSuffix(r.stderr, "(after 4 attempts)\n") {
		t.Fatalf("got %+v", r)
	}
	if n := ct.n.Load(); n != 4 {
		t.Fatalf("%d attempts, want 4 (1 + 3 retries)", n)
	}

	// Refused, then the agent is back: the action is sent once.
	srv := fakeapi.New(t.Cleanup)
	var once bool
	ct = &counting{next: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if !once {
			once = true
			r2 := r.Clone(r.Context())
			r2.URL.Host = addr
			return (&http.Transport{Proxy: nil}).RoundTrip(r2)
		}
		return (&http.Transport{Proxy: nil}).RoundTrip(r)
	})}
	cli.Client = &http.Client{Transport: ct, Timeout: 5 * time.Second}
	r = run(cli, srv.Env(), "send-slack-message", "hi")
	if r.code != 0 || r.stdout != `{"success":true,"data":{"ok":true}}`+"\n" || r.stderr != "" {
		t.Fatalf("refused then up: %+v", r)
	}
	if n, got := ct.n.Load(), len(srv.Requests()); n != 2 || got != 1 {
		t.Fatalf("%d attempts, %d requests at the server; want 2 and 1", n, got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestToolActionUsage(t *testing.T) {
	srv := fakeapi.New(t.Cleanup)
	for _, tc := range []struct {
		args  []string
		stdin string
	}{
		{[]string{"execute-tool-action"}, ""},
		{[]string{"execute-tool-action", "slack"}, ""},
		{[]string{"execute-tool-action", "", "send"}, ""},
		{[]string{"execute-tool-action", " ", "send"}, ""},
		{[]string{"execute-tool-action", "slack", "send-message", `{"text": `}, ""},
		{[]string{"execute-tool-action", "slack", "send-message", `{"a":1} trailing`}, ""},
		{[]string{"execute-tool-action", "slack", "send-message", "text"}, ""},
		{[]string{"execute-tool-action", "slack", "send-message", "=x"}, ""},
		{[]string{"execute-tool-action", "slack", "send-message", ":=1"}, ""},
		{[]string{"execute-tool-action", "slack", "send-message", "n:=not json"}, ""},
		{[]string{"execute-tool-action", "slack", "send-message", "n:="}, ""},
		{[]string{"execute-tool-action", "slack", "send-message", "-"}, `[1, 2]`},
		{[]string{"execute-tool-action", "slack", "send-message", "-"}, ``},
		{[]string{"execute-tool-action", "slack", "send-message", "text=x", `{"a": 1}`}, ""}, // an object only first
		{[]string{"execute-tool-action", "slack", "send-message", "text=x", "-"}, `{}`},      // stdin only first
		{[]string{"send-email", "a@example.com", "s"}, ""},
		{[]string{"send-email", "a@example.com", "s", "b", "extra"}, ""},
		{[]string{"send-slack-message"}, ""},
		{[]string{"send-slack-message", "t", "#c", "extra"}, ""},
		{[]string{"send-discord-message"}, ""},
		{[]string{"send-discord-message", "a", "b"}, ""},
		{[]string{"send-teams-message"}, ""},
		{[]string{"send-teams-message", "a", "b", "c"}, ""},
	} {
		cli := fast
		cli.Stdin = strings.NewReader(tc.stdin)
		r := run(cli, srv.Env(), tc.args...)
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "cronium: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%q: %+v", tc.args, r)
		}
	}
	if n := len(srv.Requests()); n != 0 {
		t.Errorf("usage errors sent %d requests", n)
	}
	if r := run(fast, nil, "help"); !strings.Contains(r.stdout, "execute-tool-action") || !strings.Contains(r.stdout, "send-teams-message") {
		t.Errorf("help does not list the tool commands: %q", r.stdout)
	}
}

func TestToolActionNotAvailable(t *testing.T) {
	for _, args := range [][]string{{"execute-tool-action", "slack", "send-message"}, {"send-email", "a", "b", "c"},
		{"send-slack-message", "x"}, {"send-discord-message", "x"}, {"send-teams-message", "x"}} {
		r := run(fast, nil, args...)
		if r.code != 1 || r.stdout != "" || r.stderr != helpercli.NotAvailable+"\n" {
			t.Errorf("%v: %+v", args, r)
		}
	}
	if helpercli.ToolTimeout <= 60*time.Second {
		t.Errorf("ToolTimeout %v must exceed the agent's 60 s bound on an action", helpercli.ToolTimeout)
	}
}
