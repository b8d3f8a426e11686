package runner_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/toolexec"
	"github.com/cronium/cronium-agent/sidecar"
)

// TOOL_ACTION jobs through the dispatcher: the agent asks for them once it
// has the tool executor; an action's result is the job's scriptOutput with
// a readable line on stdout; a service failing with 500 fails the job with
// its status and an excerpt; a job without its toolAction (the deployed
// backend's) fails before anything is sent.
func TestDispatcherToolActions(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []map[string]any
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
		if r.URL.Path == "/broken" {
			w.WriteHeader(500)
			io.WriteString(w, "slack is down\n"+strings.Repeat("z", 300))
			return
		}
		io.WriteString(w, "ok")
	}))
	defer slack.Close()

	tools := runner.NewToolExecutor(toolexec.New(), runner.DefaultPolicy(), nil)
	x := runner.Executors{runner.TargetTool: tools}
	if got := x.JobTypes(); !slices.Equal(got, []string{api.TypeToolAction}) {
		t.Errorf("job types %v", got)
	}
	b, w := startBackend(t), newWorld(t)
	a := newAgent(t, b, w, t.TempDir(), agentConfig{executors: x})
	a.start()

	action := func(path string) json.RawMessage {
		return json.RawMessage(`{"toolType":"SLACK","config":{"actionId":"send-message","parameters":{"channel":"#ops","text":"nightly ok"},"credentials":{"webhookUrl":"` + slack.URL + path + `"}}}`)
	}
	ok := b.submit(t, devserver.SubmitRequest{Type: api.TypeToolAction, ToolAction: action("/hook")})
	broken := b.submit(t, devserver.SubmitRequest{Type: api.TypeToolAction, ToolAction: action("/broken")})
	bare := b.submit(t, devserver.SubmitRequest{Type: api.TypeToolAction})

	v := b.waitDone(t, ok)
	if v.Status != devserver.StatusCompleted || exitCode(v) != 0 || v.Completions != 1 {
		t.Errorf("tool job: %s exit %d, %d completions (error %q)", v.Status, exitCode(v), v.Completions, v.Error)
	}
	if string(v.ScriptOutput) != `{"success":true,"data":{"response":"ok","statusCode":200}}` {
		t.Errorf("scriptOutput %s", v.ScriptOutput)
	}
	if v.Output == nil || v.Output.Stdout != "tool action slack send-message done: {\"response\":\"ok\",\"statusCode\":200}\n" {
		t.Errorf("output %+v", v.Output)
	}

	v = b.waitDone(t, broken)
	if v.Status != devserver.StatusFailed || exitCode(v) != 1 || v.Output == nil ||
		!strings.Contains(v.Output.Stderr, ": HTTP 500 Internal Server Error: slack is down zzz") || strings.Contains(v.Output.Stderr, "/broken") {
		t.Errorf("failing tool job: %s exit %d output %+v", v.Status, exitCode(v), v.Output)
	}
	var res toolexec.Result
	if json.Unmarshal(v.ScriptOutput, &res) != nil || res.Success || !strings.Contains(res.Error, "HTTP 500") || len(res.Error) > 300 {
		t.Errorf("failing tool job's scriptOutput %s", v.ScriptOutput)
	}

	v = b.waitDone(t, bare)
	if v.Status != devserver.StatusFailed || !strings.Contains(v.Error, "carries no execution.toolAction") {
		t.Errorf("job without toolAction: %s error %q", v.Status, v.Error)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 || bodies[0]["text"] != "nightly ok" || bodies[0]["channel"] != "#ops" {
		t.Errorf("slack got %v", bodies)
	}
	b.assertOnce(t)
}

// The runtime API's tool actions: the helpers' shapes run through the same
// tools, the outcome is {success, data, error}, and a request that cannot
// run is an error (the API's 400) with nothing sent.
func TestToolExecutorExecuteTool(t *testing.T) {
	t.Parallel()
	var got []string
	var mu sync.Mutex
	discord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.RawQuery+" "+string(b))
		mu.Unlock()
		io.WriteString(w, `{"id":"42","channel_id":"7"}`)
	}))
	defer discord.Close()
	x := runner.NewToolExecutor(toolexec.New(toolexec.WithCredentials(map[string]toolexec.Credential{
		"discord": {URL: discord.URL + "/api/webhooks/1/x"}})), runner.DefaultPolicy(), nil)
	exec := sidecar.Execution{ExecutionID: "exec_j_1", JobID: "j"}
	for _, body := range []string{
		`{"tool":"discord","action":"send_message","config":{"content":"hi"}}`,
		`{"tool":"discord","action":"send-message","params":{"content":"hi"}}`,
	} {
		res, err := x.ExecuteTool(context.Background(), exec, json.RawMessage(body))
		if err != nil || string(res) != `{"success":true,"data":{"channelId":"7","messageId":"42"}}` {
			t.Errorf("%s: %s %v", body, res, err)
		}
	}
	if _, err := x.ExecuteTool(context.Background(), exec, json.RawMessage(`{"tool":"discord","params":{}}`)); err == nil || !strings.Contains(err.Error(), "no content") {
		t.Errorf("bad request error %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != `wait=true {"content":"hi"}` {
		t.Errorf("discord got %q", got)
	}
}
