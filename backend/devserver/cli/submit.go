package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/command"
)

// pollInterval is how often waiting and following commands poll.
const pollInterval = 200 * time.Millisecond

// runSubmit submits a job, and with --wait follows it to its end.
func runSubmit(ctx context.Context, s session, args []string) error {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	cf := addClientFlags(fs)
	rt := fs.String("runtime", "bash", "the `RUNTIME` that runs the script: bash, python or node")
	file := fs.String("file", "", "script `FILE`")
	code := fs.String("c", "", "script `CODE`")
	raw := fs.String("raw", "", "`FILE` holding a complete wire job (JSON, as in the contract's fixtures), submitted as it is")
	vars := command.EnvFlag{}
	fs.Var(vars, "env", "environment variable `KEY=VALUE` (repeatable)")
	input := fs.String("input", "", "the job's input as `JSON`")
	timeout := fs.Duration("timeout", 0, "job timeout, e.g. 30s (default: the agent's)")
	priority := fs.Int("priority", 0, "priority (higher runs first)")
	user := fs.String("user", "", "user `ID` (variables are per user)")
	name := fs.String("name", "", "event `NAME`")
	server := fs.String("server", "", "run the script over SSH on these registered servers: `ID[,ID...]` (see servers list); several make a multi-server job")
	wait := fs.Bool("wait", false, "follow the job's live log until it ends and exit with its exit code")
	tool := fs.String("tool", "", "submit a TOOL_ACTION job for `TOOL` (webhook, slack, discord, teams, email) instead of a script")
	action := fs.String("action", "", "the tool's `ACTION` (default send-message)")
	var params, creds listFlag
	fs.Var(&params, "param", "a parameter of the tool action, `KEY=VALUE` (repeatable; a JSON object or array VALUE is sent as JSON)")
	fs.Var(&creds, "credential", "the agent's tools.credentials entry `NAME`, or a credential field of the job's own KEY=VALUE (repeatable)")
	if _, err := s.args(fs, args); err != nil {
		return err
	}
	given := 0
	for _, v := range []string{*file, *code, *raw, *tool} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		return command.Usage(errors.New("give exactly one of --file FILE, -c CODE, --raw FILE or --tool TOOL"))
	}
	if *tool == "" && (*action != "" || len(params) > 0 || len(creds) > 0) {
		return command.Usage(errors.New("--action, --param and --credential apply to --tool jobs"))
	}
	if *tool != "" && *server != "" {
		return command.Usage(errors.New("--server applies to script jobs, not to --tool"))
	}
	if *raw != "" && *server != "" {
		return command.Usage(errors.New("--server applies to script jobs, not to --raw (a wire job names its own target)"))
	}
	var req devserver.SubmitRequest
	if *raw != "" {
		b, err := os.ReadFile(*raw)
		if err != nil {
			return command.Usage(err)
		}
		if !json.Valid(b) {
			return command.Usage(fmt.Errorf("--raw %s is not valid JSON", *raw))
		}
		req.Raw = b
	} else {
		script := *code
		if *file != "" {
			b, err := os.ReadFile(*file)
			if err != nil {
				return command.Usage(fmt.Errorf("read script: %w", err))
			}
			script = string(b)
		}
		if *input != "" && !json.Valid([]byte(*input)) {
			return command.Usage(fmt.Errorf("--input is not valid JSON: %.80q", *input))
		}
		if *timeout < 0 {
			return command.Usage(errors.New("--timeout must not be negative"))
		}
		req = devserver.SubmitRequest{
			Runtime: *rt, Script: script, Env: vars, Priority: *priority, UserID: *user, EventName: *name,
		}
		if *tool != "" {
			ta, err := toolActionJSON(*tool, *action, params, creds)
			if err != nil {
				return command.Usage(err)
			}
			req.Type, req.Runtime, req.ToolAction = "TOOL_ACTION", "", ta
		}
		if *server != "" {
			ids, err := serverIDs(*server)
			if err != nil {
				return command.Usage(err)
			}
			req.ServerIDs = ids
		}
		if *input != "" {
			req.Input = json.RawMessage(*input)
		}
		if *timeout > 0 {
			req.Timeout = timeout.String()
		}
	}
	c, err := cf.client(s)
	if err != nil {
		return err
	}
	id, err := c.Submit(ctx, req)
	if err != nil {
		return clientError(c, err)
	}
	if !*wait {
		fmt.Fprintln(s.Stdout, id)
		return nil
	}
	fmt.Fprintf(s.Stderr, "submitted %s\n", id)
	// The job's lines are escaped on a terminal and exact through a pipe;
	// submit has no --raw for them (that flag names a job file).
	v, err := followJob(ctx, s.jobOutput(false), c, id, 0, true)
	if err != nil {
		if ctx.Err() != nil {
			return &command.ExitError{Code: exitJobCancelled, Err: fmt.Errorf("stopped waiting; job %s goes on (%s cancel %s)", id, s.prog, id)}
		}
		return clientError(c, err)
	}
	return jobExit(v)
}

// jobExit is the exit of `submit --wait` for a finished job.
func jobExit(v devserver.JobView) error {
	code := 0
	if v.ExitCode != nil {
		code = *v.ExitCode
	}
	switch v.Status {
	case devserver.StatusTimeout:
		return &command.ExitError{Code: exitTimeout, Err: fmt.Errorf("job %s timed out", v.ID)}
	case devserver.StatusCancelled:
		return &command.ExitError{Code: exitJobCancelled, Err: fmt.Errorf("job %s was cancelled", v.ID)}
	case devserver.StatusFailed:
		var err error
		if v.Error != "" {
			err = fmt.Errorf("job %s failed: %s", v.ID, v.Error)
		}
		if code <= 0 || code > 255 {
			if err == nil {
				err = fmt.Errorf("job %s failed", v.ID)
			}
			code = exitJobFailed
		}
		return &command.ExitError{Code: code, Err: err}
	}
	switch {
	case code == 0:
		return nil
	case code == -1:
		return &command.ExitError{Code: exitTimeout, Err: fmt.Errorf("job %s timed out", v.ID)}
	case code == -2:
		return &command.ExitError{Code: exitJobCancelled, Err: fmt.Errorf("job %s was cancelled", v.ID)}
	case code < 0 || code > 255:
		return &command.ExitError{Code: exitJobFailed, Err: fmt.Errorf("job %s exited with %d", v.ID, code)}
	}
	return &command.ExitError{Code: code}
}

// followJob prints a job's log lines after seq `after` as they arrive
// (stdout lines on stdout, the others on stderr) until the job ends, and
// returns the finished job. With finalOutput, a job that sent no live line
// (a backend without the log endpoint) has its final output printed.
func followJob(ctx context.Context, s session, c *devserver.DevClient, id string, after uint64, finalOutput bool) (devserver.JobView, error) {
	printed := 0
	failures := 0
	for {
		page, err := c.LogPage(ctx, id, after)
		if err != nil {
			var ue *devserver.UnreachableError
			if errors.As(err, &ue) && failures < 25 && ctx.Err() == nil {
				failures++ // ride out a restart of the backend (about 5 s)
				if !sleep(ctx, pollInterval) {
					return devserver.JobView{}, ctx.Err()
				}
				continue
			}
			return devserver.JobView{}, err
		}
		failures = 0
		for _, l := range page.Entries {
			printLine(s, l)
			after = l.Seq
			printed++
		}
		if page.More {
			continue
		}
		if devserver.Terminal(page.Status) {
			break
		}
		if !sleep(ctx, pollInterval) {
			return devserver.JobView{}, ctx.Err()
		}
	}
	v, err := c.Job(ctx, id)
	if err != nil {
		return v, err
	}
	if finalOutput && printed == 0 && v.Output != nil {
		io.WriteString(s.Stdout, v.Output.Stdout)
		io.WriteString(s.Stderr, v.Output.Stderr)
	}
	return v, nil
}

func printLine(s session, l devserver.LogLine) {
	switch l.Stream {
	case "stdout":
		fmt.Fprintln(s.Stdout, l.Line)
	case "stderr":
		fmt.Fprintln(s.Stderr, l.Line)
	default:
		fmt.Fprintf(s.Stderr, "[%s] %s\n", l.Stream, l.Line)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
