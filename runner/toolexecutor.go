package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/runner/toolexec"
	"github.com/cronium/cronium-agent/sidecar"
)

// ToolActionTimeout bounds a tool action a script asks for through the
// runtime API (a TOOL_ACTION job has its own timeout).
const ToolActionTimeout = 60 * time.Second

// maxToolLine bounds the data shown in a tool action's stdout line (the
// whole of it is the job's output).
const maxToolLine = 1024

// ToolActions prepares tool actions; *toolexec.Runner is the agent's.
type ToolActions interface {
	Prepare(req toolexec.Request) (*toolexec.Action, error)
}

// ToolExecutor runs TOOL_ACTION jobs, and serves the runtime API's tool
// actions (it is the sidecar's ToolRunner) through the same tools.
type ToolExecutor struct {
	tools  ToolActions
	policy Policy
	log    *slog.Logger
}

// NewToolExecutor returns the executor of TargetTool; the policy gives the
// timeouts.
func NewToolExecutor(tools ToolActions, policy Policy, log *slog.Logger) *ToolExecutor {
	if log == nil {
		log = slog.Default()
	}
	return &ToolExecutor{tools: tools, policy: policy, log: log}
}

var _ sidecar.ToolRunner = (*ToolExecutor)(nil)

// Run implements Executor: the action's result ({success, data, error}) is
// the job's output (scriptOutput), and a line on stdout or stderr says how
// it went.
func (x *ToolExecutor) Run(ctx context.Context, a *Attempt) Result {
	start := time.Now()
	// A request that cannot run fails the job before anything is sent.
	req, err := toolexec.FromJob(a.Job.ToolAction)
	if err != nil {
		return NeverRan(start, err)
	}
	act, err := x.tools.Prepare(req)
	if err != nil {
		return NeverRan(start, err)
	}
	// The credential (the agent's, or one the job carries) is masked in
	// everything of the job, as its secret environment values are.
	a.AddSecrets(act.Secrets()...)
	// Journaled as started first: after a crash the action is not sent
	// again (it may have reached its service already).
	if err := a.Started(start); err != nil {
		return NeverRan(start, err)
	}
	tctx, cancel := context.WithTimeout(ctx, x.policy.Timeout(a.Job.Timeout))
	defer cancel()
	res := act.Do(tctx)
	r := Result{Start: start, End: time.Now()}
	r.Output, _ = json.Marshal(res)
	switch {
	case ctx.Err() != nil:
		r.Status, r.ExitCode = api.StatusCancelled, ExitCancelled
	case res.Success:
		r.Status, r.ExitCode = api.StatusCompleted, 0
		a.Text(output.Stdout, []byte(toolLine(act, res)+"\n"))
	case errors.Is(tctx.Err(), context.DeadlineExceeded):
		r.Status, r.ExitCode = api.StatusTimeout, ExitTimeout
		a.Text(output.Stderr, []byte(toolLine(act, res)+"\n"))
	default:
		r.Status, r.ExitCode = api.StatusFailed, 1
		a.Text(output.Stderr, []byte(toolLine(act, res)+"\n"))
	}
	return r
}

// toolLine is the readable line of an action's outcome.
func toolLine(act *toolexec.Action, res toolexec.Result) string {
	if !res.Success {
		return fmt.Sprintf("tool action %s %s failed: %s", act.Tool, act.Name, res.Error)
	}
	line := fmt.Sprintf("tool action %s %s done", act.Tool, act.Name)
	if res.Data != nil {
		b, _ := json.Marshal(res.Data)
		if len(b) > maxToolLine {
			b = append(b[:maxToolLine:maxToolLine], "…"...)
		}
		line += ": " + string(b)
	}
	return line
}

// Adopt implements Executor: an action a previous process sent is not sent
// again, since it may have reached its service.
func (x *ToolExecutor) Adopt(_ context.Context, a *Attempt) Result {
	if a.StartedAt.IsZero() {
		return Result{NotStarted: true}
	}
	msg := "the agent restarted while the tool action was in flight; it is not sent again (it may have reached its service)"
	a.System(msg)
	a.Stderr(msg + "\n")
	return Result{Status: api.StatusFailed, ExitCode: 1, Start: a.StartedAt, End: time.Now()}
}

// ExecuteTool implements sidecar.ToolRunner: a script's POST
// /tool-actions/execute, in any of the request shapes, bounded by
// ToolActionTimeout. Neither the request nor the data is logged.
func (x *ToolExecutor) ExecuteTool(ctx context.Context, exec sidecar.Execution, body json.RawMessage) (json.RawMessage, error) {
	req, err := toolexec.Parse(body)
	if err != nil {
		return nil, err
	}
	act, err := x.tools.Prepare(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, ToolActionTimeout)
	defer cancel()
	start := time.Now()
	res := act.Do(ctx)
	x.log.Info("tool action from the runtime api", "execution", exec.ExecutionID, "tool", act.Tool, "action", act.Name,
		"success", res.Success, "duration", time.Since(start))
	return json.Marshal(res)
}
