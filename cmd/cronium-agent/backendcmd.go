package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
)

// Environment variables of the backend commands.
const (
	envBackendURL   = "CRONIUM_BACKEND_URL"
	envBackendToken = "CRONIUM_BACKEND_TOKEN"
)

// Exit codes of `backend submit --wait` beyond the job's own exit code.
const (
	exitJobCancelled = 130
	exitJobFailed    = 1
)

// devPollInterval is how often waiting and following commands poll.
const devPollInterval = 200 * time.Millisecond

type backendSub struct {
	name, args, summary string
	run                 func(ctx context.Context, env *cliEnv, args []string) error
}

func backendSubs() []backendSub {
	return []backendSub{
		{"serve", "--token T --data DIR [--listen ADDR]", "run the development backend until interrupted", runBackendServe},
		{"submit", "(-c CODE | --file F | --raw F) [--wait]", "submit a job; with --wait, follow it and exit with its exit code", runBackendSubmit},
		{"jobs", "", "list the jobs", runBackendJobs},
		{"show", "JOB [--json] [--raw]", "show a job: status, exit code, output, condition, timings", runBackendShow},
		{"logs", "JOB [-f] [--raw]", "print a job's live log lines (-f: follow until it ends)", runBackendLogs},
		{"cancel", "JOB", "cancel a job (a running one stops at its agent's next heartbeat)", runBackendCancel},
	}
}

// runBackend runs the development backend and the operator commands that
// speak to it.
func runBackend(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		backendUsage(env.stderr)
		if len(args) == 0 {
			return &exitError{code: exitUsage}
		}
		return nil
	}
	for _, s := range backendSubs() {
		if s.name == args[0] {
			return s.run(ctx, env, args[1:])
		}
	}
	backendUsage(env.stderr)
	return &exitError{code: exitUsage, err: fmt.Errorf("unknown subcommand %q", args[0])}
}

func backendUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: cronium-agent backend <subcommand> [flags]\n\nsubcommands:")
	for _, s := range backendSubs() {
		fmt.Fprintf(w, "  %-7s %-42s %s\n", s.name, s.args, s.summary)
	}
	fmt.Fprintf(w, "\nThe client subcommands take --backend URL and --token T (default $%s, $%s).\n", envBackendURL, envBackendToken)
}

func devGetenv(environ []string, key string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(environ[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// parseDevFlags parses flags that may come before, between and after the
// positional arguments (`show JOB --json`), and returns the positionals.
func parseDevFlags(env *cliEnv, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(env, fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(fs *flag.FlagSet, pos []string, names ...string) error {
	if len(pos) == len(names) {
		return nil
	}
	if len(pos) < len(names) {
		return &exitError{code: exitUsage, err: fmt.Errorf("missing %s (see cronium-agent %s -h)", names[len(pos)], fs.Name())}
	}
	return &exitError{code: exitUsage, err: fmt.Errorf("unexpected argument %q", pos[len(names)])}
}

// devClientFlags are the flags of every client subcommand.
type devClientFlags struct {
	url, token *string
}

func addDevClientFlags(fs *flag.FlagSet) devClientFlags {
	return devClientFlags{
		url:   fs.String("backend", "", "dev backend URL, e.g. http://127.0.0.1:5001 (default $"+envBackendURL+")"),
		token: fs.String("token", "", "service token (default $"+envBackendToken+")"),
	}
}

func (f devClientFlags) client(env *cliEnv) (*devserver.DevClient, error) {
	u, tok := *f.url, *f.token
	if u == "" {
		u = devGetenv(env.environ, envBackendURL)
	}
	if tok == "" {
		tok = devGetenv(env.environ, envBackendToken)
	}
	if u == "" {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("no backend URL: give --backend URL or set %s", envBackendURL)}
	}
	if tok == "" {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("no token: give --token T or set %s", envBackendToken)}
	}
	c, err := devserver.NewDevClient(u, tok)
	if err != nil {
		return nil, &exitError{code: exitUsage, err: err}
	}
	return c, nil
}

// devClientError turns a client error into the command's exit.
func devClientError(c *devserver.DevClient, err error) error {
	var ue *devserver.UnreachableError
	var ae *devserver.APIError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return &exitError{code: exitJobCancelled, err: errors.New("interrupted")}
	case errors.As(err, &ue):
		return &exitError{code: exitAgent, err: err}
	case errors.As(err, &ae) && ae.StatusCode == http.StatusUnauthorized:
		return &exitError{code: exitUsage, err: fmt.Errorf("backend %s refused the token (check --token or %s)", c.URL(), envBackendToken)}
	case errors.As(err, &ae) && ae.StatusCode < 500:
		return &exitError{code: 1, err: fmt.Errorf("%s (%s %s)", ae.Message, ae.Method, ae.Path)}
	default:
		return &exitError{code: exitAgent, err: fmt.Errorf("backend %s: %v", c.URL(), err)}
	}
}

// runBackendServe runs the development backend.
func runBackendServe(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("backend serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:5001", "address to listen on (loopback only unless --allow-remote)")
	token := fs.String("token", "", "service token the agents must send (default $"+envBackendToken+")")
	data := fs.String("data", "", "data directory (holds "+devserver.DBFile+")")
	noLogs := fs.Bool("no-logs-endpoint", false, "answer 404 on jobs/{id}/logs, like the deployed backend")
	allowRemote := fs.Bool("allow-remote", false, "allow a non-loopback listen address (plain HTTP, one shared token)")
	pos, err := parseDevFlags(env, fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	if *token == "" {
		*token = devGetenv(env.environ, envBackendToken)
	}
	switch {
	case *token == "":
		return &exitError{code: exitUsage, err: fmt.Errorf("no token: give --token T or set %s", envBackendToken)}
	case *data == "":
		return &exitError{code: exitUsage, err: errors.New("no data directory: give --data DIR")}
	}
	if err := checkLoopback(*listen); err != nil && !*allowRemote {
		return &exitError{code: exitUsage, err: err}
	}
	opts := []devserver.Option{devserver.WithLogger(env.log)}
	if *noLogs {
		opts = append(opts, devserver.WithoutLogEndpoint())
	}
	srv, err := devserver.New(*data, *token, opts...)
	if err != nil {
		return &exitError{code: exitAgent, err: err}
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return &exitError{code: exitAgent, err: err}
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	extra := ""
	if *noLogs {
		extra = ", without the log endpoint"
	}
	fmt.Fprintf(env.stdout, "cronium dev backend listening on %s (data %s%s)\n", url, *data, extra)
	env.log.Info("dev backend listening", "url", url, "data", *data, "logEndpoint", !*noLogs)
	select {
	case err := <-served:
		return &exitError{code: exitAgent, err: err}
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	env.log.Info("dev backend stopped")
	return nil
}

// checkLoopback refuses listen addresses reachable from other hosts.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to listen on %q: not a loopback address (the dev backend speaks plain HTTP with one shared token); give --allow-remote to do it anyway", addr)
}

// runBackendSubmit submits a job, and with --wait follows it to its end.
func runBackendSubmit(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("backend submit", flag.ContinueOnError)
	cf := addDevClientFlags(fs)
	rt := fs.String("runtime", "bash", "runtime: bash, python or node")
	file := fs.String("file", "", "script file")
	code := fs.String("c", "", "script code")
	raw := fs.String("raw", "", "file holding a complete wire job (JSON, as in the contract's fixtures), submitted as it is")
	vars := envFlag{}
	fs.Var(vars, "env", "environment variable KEY=VALUE (repeatable)")
	input := fs.String("input", "", "the job's input as JSON")
	timeout := fs.Duration("timeout", 0, "job timeout, e.g. 30s (default: the agent's)")
	priority := fs.Int("priority", 0, "priority (higher runs first)")
	user := fs.String("user", "", "user id (variables are per user)")
	name := fs.String("name", "", "event name")
	server := fs.String("server", "", "run over SSH on this registered server id")
	wait := fs.Bool("wait", false, "follow the job's live log until it ends and exit with its exit code")
	pos, err := parseDevFlags(env, fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	given := 0
	for _, s := range []string{*file, *code, *raw} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return &exitError{code: exitUsage, err: errors.New("give exactly one of --file FILE, -c CODE or --raw FILE")}
	}
	var req devserver.SubmitRequest
	if *raw != "" {
		b, err := os.ReadFile(*raw)
		if err != nil {
			return &exitError{code: exitUsage, err: err}
		}
		if !json.Valid(b) {
			return &exitError{code: exitUsage, err: fmt.Errorf("--raw %s is not valid JSON", *raw)}
		}
		req.Raw = b
	} else {
		script := *code
		if *file != "" {
			b, err := os.ReadFile(*file)
			if err != nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("read script: %w", err)}
			}
			script = string(b)
		}
		if *input != "" && !json.Valid([]byte(*input)) {
			return &exitError{code: exitUsage, err: fmt.Errorf("--input is not valid JSON: %.80q", *input)}
		}
		if *timeout < 0 {
			return &exitError{code: exitUsage, err: errors.New("--timeout must not be negative")}
		}
		req = devserver.SubmitRequest{
			Runtime: *rt, Script: script, Env: vars, Priority: *priority, UserID: *user, EventName: *name, ServerID: *server,
		}
		if *input != "" {
			req.Input = json.RawMessage(*input)
		}
		if *timeout > 0 {
			req.Timeout = timeout.String()
		}
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	id, err := c.Submit(ctx, req)
	if err != nil {
		return devClientError(c, err)
	}
	if !*wait {
		fmt.Fprintln(env.stdout, id)
		return nil
	}
	fmt.Fprintf(env.stderr, "submitted %s\n", id)
	// The job's lines are escaped on a terminal and exact through a pipe;
	// submit has no --raw for them (that flag names a job file).
	v, err := devFollow(ctx, jobOutputEnv(env, false), c, id, 0, true)
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: exitJobCancelled, err: fmt.Errorf("stopped waiting; job %s goes on (cronium-agent backend cancel %s)", id, id)}
		}
		return devClientError(c, err)
	}
	return devJobExit(v)
}

// devJobExit is the exit of `submit --wait` for a finished job.
func devJobExit(v devserver.JobView) error {
	code := 0
	if v.ExitCode != nil {
		code = *v.ExitCode
	}
	switch v.Status {
	case devserver.StatusTimeout:
		return &exitError{code: exitTimeout, err: fmt.Errorf("job %s timed out", v.ID)}
	case devserver.StatusCancelled:
		return &exitError{code: exitJobCancelled, err: fmt.Errorf("job %s was cancelled", v.ID)}
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
		return &exitError{code: code, err: err}
	}
	switch {
	case code == 0:
		return nil
	case code == -1:
		return &exitError{code: exitTimeout, err: fmt.Errorf("job %s timed out", v.ID)}
	case code == -2:
		return &exitError{code: exitJobCancelled, err: fmt.Errorf("job %s was cancelled", v.ID)}
	case code < 0 || code > 255:
		return &exitError{code: exitJobFailed, err: fmt.Errorf("job %s exited with %d", v.ID, code)}
	}
	return &exitError{code: code}
}

// devFollow prints a job's log lines after seq `after` as they arrive
// (stdout lines on stdout, the others on stderr) until the job ends, and
// returns the finished job. With finalOutput, a job that sent no live line
// (a backend without the log endpoint) has its final output printed.
func devFollow(ctx context.Context, env *cliEnv, c *devserver.DevClient, id string, after uint64, finalOutput bool) (devserver.JobView, error) {
	printed := 0
	failures := 0
	for {
		page, err := c.LogPage(ctx, id, after)
		if err != nil {
			var ue *devserver.UnreachableError
			if errors.As(err, &ue) && failures < 25 && ctx.Err() == nil {
				failures++ // ride out a restart of the backend (about 5 s)
				if !devSleep(ctx, devPollInterval) {
					return devserver.JobView{}, ctx.Err()
				}
				continue
			}
			return devserver.JobView{}, err
		}
		failures = 0
		for _, l := range page.Entries {
			devPrintLine(env, l)
			after = l.Seq
			printed++
		}
		if page.More {
			continue
		}
		if devserver.Terminal(page.Status) {
			break
		}
		if !devSleep(ctx, devPollInterval) {
			return devserver.JobView{}, ctx.Err()
		}
	}
	v, err := c.Job(ctx, id)
	if err != nil {
		return v, err
	}
	if finalOutput && printed == 0 && v.Output != nil {
		io.WriteString(env.stdout, v.Output.Stdout)
		io.WriteString(env.stderr, v.Output.Stderr)
	}
	return v, nil
}

func devPrintLine(env *cliEnv, l devserver.LogLine) {
	switch l.Stream {
	case "stdout":
		fmt.Fprintln(env.stdout, l.Line)
	case "stderr":
		fmt.Fprintln(env.stderr, l.Line)
	default:
		fmt.Fprintf(env.stderr, "[%s] %s\n", l.Stream, l.Line)
	}
}

func devSleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func runBackendJobs(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("backend jobs", flag.ContinueOnError)
	cf := addDevClientFlags(fs)
	status := fs.String("status", "", "only jobs with this status")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseDevFlags(env, fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, pos); err != nil {
		return err
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	jobs, err := c.Jobs(ctx)
	if err != nil {
		return devClientError(c, err)
	}
	list := jobs[:0]
	for _, j := range jobs {
		if *status == "" || j.Status == *status {
			list = append(list, j)
		}
	}
	if *asJSON {
		return devPrintJSON(env, list)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tTYPE\tPRIORITY\tEXIT\tCREATED\tAGENT")
	for _, j := range list {
		typ := j.Type
		if j.Runtime != "" {
			typ += "/" + j.Runtime
		}
		if j.WireType == "ssh" {
			typ += " (ssh)"
		}
		exit := "-"
		if j.ExitCode != nil {
			exit = fmt.Sprint(*j.ExitCode)
		}
		if j.Completions > 1 {
			exit += fmt.Sprintf(" (%d completions!)", j.Completions)
		}
		agent := j.Orchestrator
		if agent == "" {
			agent = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", j.ID, j.Status, typ, j.Priority, exit,
			j.CreatedAt.Local().Format("2006-01-02 15:04:05"), agent)
	}
	return tw.Flush()
}

func devPrintJSON(env *cliEnv, v any) error {
	enc := json.NewEncoder(env.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func runBackendShow(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("backend show", flag.ContinueOnError)
	cf := addDevClientFlags(fs)
	asJSON := fs.Bool("json", false, "print everything the backend knows, as JSON")
	raw := fs.Bool("raw", false, rawUsage)
	id, c, err := jobArgs(env, fs, cf, args)
	if err != nil {
		return err
	}
	env = jobOutputEnv(env, *raw)
	v, err := c.Job(ctx, id)
	if err != nil {
		return devClientError(c, err)
	}
	if *asJSON {
		return devPrintJSON(env, v)
	}
	var execs []devserver.ExecutionView
	if len(v.Executions) > 0 {
		if execs, err = c.Executions(ctx, id); err != nil {
			return devClientError(c, err)
		}
	}
	printJobView(env.stdout, v, execs)
	return nil
}

func printJobView(w io.Writer, v devserver.JobView, execs []devserver.ExecutionView) {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, args...)...)
	}
	status := v.Status
	if v.ExitCode != nil {
		status += fmt.Sprintf(" (exit code %d)", *v.ExitCode)
	}
	if v.CancelRequested && !v.Done() {
		status += ", cancel requested"
		if v.CancelDelivered {
			status += " and delivered"
		}
	}
	row("job", "%s", v.ID)
	row("status", "%s", status)
	typ := v.Type
	if v.Runtime != "" {
		typ += ", " + v.Runtime
	}
	if v.WireType != "" {
		typ += " (" + v.WireType + ")"
	}
	row("type", "%s", typ)
	row("priority", "%d", v.Priority)
	if v.Orchestrator != "" {
		row("agent", "%s", v.Orchestrator)
	}
	if v.StatusMessage != "" {
		row("message", "%s", v.StatusMessage)
	}
	if v.Error != "" {
		row("error", "%s", v.Error)
	}
	ts := func(t *time.Time) string { return t.Local().Format("2006-01-02 15:04:05.000") }
	row("created", "%s", ts(&v.CreatedAt))
	if v.ScheduledFor.After(v.CreatedAt) {
		row("scheduled for", "%s", ts(&v.ScheduledFor))
	}
	if v.ClaimedAt != nil {
		row("claimed", "%s (%s after creation)", ts(v.ClaimedAt), v.ClaimedAt.Sub(v.CreatedAt).Round(time.Millisecond))
	}
	if v.StartedAt != nil {
		row("started", "%s", ts(v.StartedAt))
	}
	if v.CompletedAt != nil {
		took := ""
		if v.StartedAt != nil {
			took = fmt.Sprintf(" (ran %s)", v.CompletedAt.Sub(*v.StartedAt).Round(time.Millisecond))
		}
		row("completed", "%s%s", ts(v.CompletedAt), took)
	}
	if len(v.Metrics) > 0 {
		var m struct {
			Duration *int64 `json:"duration"`
		}
		if json.Unmarshal(v.Metrics, &m) == nil && m.Duration != nil {
			row("duration", "%s (reported)", (time.Duration(*m.Duration) * time.Millisecond).String())
		}
	}
	completions := fmt.Sprint(v.Completions)
	if v.Completions > 1 {
		completions += " (more than one completing call!)"
	}
	row("completions", "%s", completions)
	if len(v.Executions) > 0 && len(execs) == 0 {
		row("executions", "%s", strings.Join(v.Executions, ", "))
	}
	row("log lines", "%d", v.LogLines)
	if v.Condition != nil {
		row("condition", "%t", *v.Condition)
	}
	if len(v.ScriptOutput) > 0 {
		row("output", "%s", v.ScriptOutput)
	}
	tw.Flush()
	printExecutions(w, execs)
	if v.Output != nil {
		for _, s := range []struct{ name, text string }{{"stdout", v.Output.Stdout}, {"stderr", v.Output.Stderr}} {
			if s.text == "" {
				continue
			}
			fmt.Fprintf(w, "--- %s\n%s", s.name, s.text)
			if !strings.HasSuffix(s.text, "\n") {
				fmt.Fprintln(w)
			}
		}
	}
}

// printExecutions prints a job's executions, one a line: status, exit code
// and the phase durations the agent reported ("-": not reported).
func printExecutions(w io.Writer, execs []devserver.ExecutionView) {
	if len(execs) == 0 {
		return
	}
	fmt.Fprintln(w, "executions:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tSTATUS\tEXIT\tSETUP\tEXECUTION\tCLEANUP\tTOTAL")
	for _, e := range execs {
		status, exit := e.Status, "-"
		if status == "" {
			status = devserver.StatusQueued // a row from before statuses were kept
		}
		if c := e.ExitCode(); c != nil {
			exit = fmt.Sprint(*c)
		}
		cols := []string{"  " + e.ID, status, exit}
		for _, f := range []string{"setupDuration", "executionDuration", "cleanupDuration", "totalDuration"} {
			d, ok := e.Duration(f)
			if !ok {
				cols = append(cols, "-")
				continue
			}
			cols = append(cols, d.String())
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	tw.Flush()
}

func runBackendLogs(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("backend logs", flag.ContinueOnError)
	cf := addDevClientFlags(fs)
	follow := fs.Bool("f", false, "follow: keep printing new lines until the job ends")
	fs.BoolVar(follow, "follow", false, "same as -f")
	after := fs.Uint64("after", 0, "only lines with a seq above this")
	raw := fs.Bool("raw", false, rawUsage)
	id, c, err := jobArgs(env, fs, cf, args)
	if err != nil {
		return err
	}
	env = jobOutputEnv(env, *raw)
	if *follow {
		_, err := devFollow(ctx, env, c, id, *after, false)
		if err != nil && ctx.Err() != nil {
			return nil // Ctrl-C ends following
		}
		return devClientError(c, err)
	}
	lines, err := c.Logs(ctx, id, *after)
	if err != nil {
		return devClientError(c, err)
	}
	for _, l := range lines {
		devPrintLine(env, devserver.LogLine{LogEntry: l})
	}
	return nil
}

func runBackendCancel(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("backend cancel", flag.ContinueOnError)
	cf := addDevClientFlags(fs)
	id, c, err := jobArgs(env, fs, cf, args)
	if err != nil {
		return err
	}
	res, err := c.Cancel(ctx, id)
	if err != nil {
		return devClientError(c, err)
	}
	if res.Status == devserver.StatusCancelled {
		fmt.Fprintf(env.stdout, "%s cancelled\n", res.ID)
	} else {
		fmt.Fprintf(env.stdout, "%s: cancel requested; its agent stops it at its next heartbeat\n", res.ID)
	}
	return nil
}

// jobArgs parses the flags of a subcommand that names one job, and returns
// the job's id and a client for the backend.
func jobArgs(env *cliEnv, fs *flag.FlagSet, cf devClientFlags, args []string) (string, *devserver.DevClient, error) {
	pos, err := parseDevFlags(env, fs, args)
	if err != nil {
		return "", nil, err
	}
	if err := wantArgs(fs, pos, "JOB"); err != nil {
		return "", nil, err
	}
	c, err := cf.client(env)
	if err != nil {
		return "", nil, err
	}
	return pos[0], c, nil
}
