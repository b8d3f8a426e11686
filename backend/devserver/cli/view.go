package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/termsafe"
)

func runJobs(ctx context.Context, s session, args []string) error {
	fs := flag.NewFlagSet("jobs", flag.ContinueOnError)
	cf := addClientFlags(fs)
	status := fs.String("status", "", "only jobs with this `STATUS`")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := s.args(fs, args); err != nil {
		return err
	}
	c, err := cf.client(s)
	if err != nil {
		return err
	}
	jobs, err := c.Jobs(ctx)
	if err != nil {
		return clientError(c, err)
	}
	list := jobs[:0]
	for _, j := range jobs {
		if *status == "" || j.Status == *status {
			list = append(list, j)
		}
	}
	if *asJSON {
		return command.PrintJSON(s.Stdout, list)
	}
	tw := tabwriter.NewWriter(s.Stdout, 0, 4, 2, ' ', 0)
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

func runShow(ctx context.Context, s session, args []string) error {
	fs := flag.NewFlagSet("show", flag.ContinueOnError)
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print everything the backend knows, as JSON")
	raw := fs.Bool("raw", false, termsafe.RawUsage)
	id, c, err := s.jobArgs(fs, cf, args)
	if err != nil {
		return err
	}
	s = s.jobOutput(*raw)
	v, err := c.Job(ctx, id)
	if err != nil {
		return clientError(c, err)
	}
	if *asJSON {
		return command.PrintJSON(s.Stdout, v)
	}
	var execs []devserver.ExecutionView
	if len(v.Executions) > 0 {
		if execs, err = c.Executions(ctx, id); err != nil {
			return clientError(c, err)
		}
	}
	printJobView(s.Stdout, v, execs)
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

func runLogs(ctx context.Context, s session, args []string) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	cf := addClientFlags(fs)
	follow := fs.Bool("f", false, "follow: keep printing new lines until the job ends")
	fs.BoolVar(follow, "follow", false, "same as -f")
	after := fs.Uint64("after", 0, "only lines with a seq above `SEQ`")
	raw := fs.Bool("raw", false, termsafe.RawUsage)
	id, c, err := s.jobArgs(fs, cf, args)
	if err != nil {
		return err
	}
	s = s.jobOutput(*raw)
	if *follow {
		_, err := followJob(ctx, s, c, id, *after, false)
		if err != nil && ctx.Err() != nil {
			return nil // Ctrl-C ends following
		}
		return clientError(c, err)
	}
	lines, err := c.Logs(ctx, id, *after)
	if err != nil {
		return clientError(c, err)
	}
	for _, l := range lines {
		printLine(s, devserver.LogLine{LogEntry: l})
	}
	return nil
}

func runCancel(ctx context.Context, s session, args []string) error {
	fs := flag.NewFlagSet("cancel", flag.ContinueOnError)
	cf := addClientFlags(fs)
	id, c, err := s.jobArgs(fs, cf, args)
	if err != nil {
		return err
	}
	res, err := c.Cancel(ctx, id)
	if err != nil {
		return clientError(c, err)
	}
	if res.Status == devserver.StatusCancelled {
		fmt.Fprintf(s.Stdout, "%s cancelled\n", res.ID)
	} else {
		fmt.Fprintf(s.Stdout, "%s: cancel requested; its agent stops it at its next heartbeat\n", res.ID)
	}
	return nil
}
