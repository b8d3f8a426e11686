package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/command"
)

// submit --tool queues a TOOL_ACTION job whose execution.toolAction is the
// contract's shape, and which the agent's decoding reads back.
func TestBackendSubmitTool(t *testing.T) {
	ts := cliDevBackend(t)
	r := runBackendCLI(t, ts.URL, "submit", "--tool", "slack", "--param", "channel=#ops", "--param", "text=backup done",
		"--param", `blocks=[{"type":"divider"}]`, "--credential", "ops-slack", "--credential", "baseUrl=http://127.0.0.1:9/api", "--priority", "3")
	if r.code != 0 {
		t.Fatalf("submit --tool: %+v", r)
	}
	c, _ := devserver.NewDevClient(ts.URL, cliDevToken)
	v, err := c.Job(context.Background(), strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		Execution struct {
			ToolAction json.RawMessage `json:"toolAction"`
			Script     json.RawMessage `json:"script"`
		} `json:"execution"`
		Metadata struct {
			OriginalType string `json:"originalType"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(v.Job, &wire); err != nil {
		t.Fatal(err)
	}
	const want = `{"config":{"actionId":"send-message","credential":"ops-slack","credentials":{"baseUrl":"http://127.0.0.1:9/api"},"parameters":{"blocks":[{"type":"divider"}],"channel":"#ops","text":"backup done"}},"toolType":"SLACK"}`
	if string(wire.Execution.ToolAction) != want || wire.Metadata.OriginalType != api.TypeToolAction || wire.Execution.Script != nil {
		t.Errorf("wire job %s", v.Job)
	}
	items, err := api.DecodeQueue([]byte(`{"jobs":[`+string(v.Job)+`]}`), api.DecodeOptions{})
	if err != nil || len(items) != 1 || items[0].Err != nil || items[0].Job.ToolAction == nil ||
		items[0].Job.ToolAction.ToolType != "SLACK" || items[0].Job.ToolAction.ActionID != "send-message" {
		t.Fatalf("decoded %+v %v", items, err)
	}

	for _, bad := range [][]string{
		{"submit", "--tool", "slack", "-c", "echo"},
		{"submit", "-c", "echo", "--param", "a=b"},
		{"submit", "--tool", "slack", "--param", "novalue"},
		{"submit", "--tool", "slack", "--credential", "a", "--credential", "b"},
		{"submit", "--tool", "slack", "--server", "1"},
	} {
		if r := runBackendCLI(t, ts.URL, bad...); r.code != command.ExitUsage {
			t.Errorf("%q: exit %d %q", bad, r.code, r.stderr)
		}
	}
}
