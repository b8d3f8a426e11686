package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/internal/termsafe"
	"github.com/cronium/cronium-agent/state/admin"
)

// The commands in this file ask the running agent through its admin
// socket: the journal they report on is locked by the agent's process.

func runStatus(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	c, _, err := adminArgs(env, fs, args)
	if err != nil {
		return err
	}
	st, err := c.Status(ctx)
	return show(env, st, err, *asJSON, printStatus)
}

// runHandOver arms the running agent's hand-over: a package upgrade runs
// it before the restart, so that the restart does not wait for the
// running jobs (the next start adopts them).
func runHandOver(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("hand-over", flag.ContinueOnError)
	within := fs.Duration("within", admin.DefaultHandOverWithin, "how long the arming lasts: a stop later than this drains as usual")
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	c, _, err := adminArgs(env, fs, args)
	if err != nil {
		return err
	}
	if *within <= 0 || *within > admin.MaxHandOverWithin {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("--within must be above 0 and at most %s", admin.MaxHandOverWithin)}
	}
	h, err := c.HandOver(ctx, *within)
	return show(env, h, err, *asJSON, func(w io.Writer, h admin.HandOver, now time.Time) error {
		_, err := fmt.Fprintf(w, "the agent's next stop before %s (in %s) leaves its %d running job(s) running for the next start to adopt; stop or restart it now (systemctl restart cronium-agent)\n",
			h.Until.Local().Format(time.TimeOnly), h.Until.Sub(now).Round(time.Second), h.Running)
		return err
	})
}

func runJobs(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("jobs", flag.ContinueOnError)
	limit := fs.Int("limit", admin.DefaultJobs, fmt.Sprintf("how many of the most recent jobs to list (1 to %d)", admin.MaxJobs))
	asJSON := fs.Bool("json", false, "print the jobs as JSON")
	c, _, err := adminArgs(env, fs, args)
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > admin.MaxJobs {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("--limit must be from 1 to %d", admin.MaxJobs)}
	}
	jobs, err := c.Jobs(ctx, *limit)
	return show(env, jobs, err, *asJSON, printJobs)
}

// show prints what an admin command got, as JSON with --json.
func show[T any](env *cliEnv, v T, err error, asJSON bool, print func(io.Writer, T, time.Time) error) error {
	if err != nil {
		return adminError(err)
	}
	if asJSON {
		return command.PrintJSON(env.stdout, v)
	}
	return print(env.stdout, v, time.Now())
}

func runLogs(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	follow := fs.Bool("f", false, "follow: print lines as they come until the job's log is complete")
	fs.BoolVar(follow, "follow", false, "same as -f")
	raw := fs.Bool("raw", false, termsafe.RawUsage)
	c, pos, err := adminArgs(env, fs, args, "JOB")
	if err != nil {
		return err
	}
	buf := bufio.NewWriter(env.stdout)
	defer buf.Flush()
	// The escaping sits above the buffer so that it sees a whole line per
	// write: the buffer's flushes could split a character.
	var out io.Writer = buf
	if !*raw && termsafe.IsTerminal(env.stdout) {
		out = termsafe.NewWriter(buf)
	}
	err = c.Logs(ctx, pos[0], 0, *follow, func(l admin.LogLine) error {
		if err := printLogLine(out, l); err != nil || !*follow {
			return err
		}
		return buf.Flush() // a followed line is shown when it comes
	})
	if err != nil && ctx.Err() != nil {
		return nil // Ctrl-C ends following
	}
	return adminError(err)
}

// adminArgs parses an admin command's flags (--config added) and its
// positional arguments, which must be names, and returns a client of the
// configured socket.
func adminArgs(env *cliEnv, fs *flag.FlagSet, args []string, names ...string) (*admin.Client, []string, error) {
	cfgPath := configFlag(fs)
	pos, err := parseArgs(env, fs, args, names...)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		return nil, nil, err
	}
	return admin.Dial(cfg.Admin.Socket), pos, nil
}

// adminError adds to "not running" where the socket comes from, since a
// wrong admin.socket looks just like a stopped agent.
func adminError(err error) error {
	if errors.Is(err, admin.ErrNotRunning) {
		return &exitError{Code: exitAgent, Err: fmt.Errorf("%w (start it with `systemctl start cronium-agent`, or point admin.socket / %s at its socket)",
			err, config.EnvName("admin", "socket"))}
	}
	return err
}

// printLogLine prints a line as it is; lines not from stdout get their
// stream as a prefix, so that one stream on stdout keeps their order.
func printLogLine(w io.Writer, l admin.LogLine) error {
	prefix := ""
	if l.Stream != "stdout" {
		prefix = "[" + l.Stream + "] "
	}
	_, err := fmt.Fprintf(w, "%s%s\n", prefix, l.Line)
	return err
}

func printStatus(w io.Writer, st admin.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...)
	}
	row("version:", "%s", st.Version)
	row("orchestrator:", "%s", st.OrchestratorID)
	if st.Identity != "" {
		row("identity:", "%s", st.Identity)
	}
	row("backend:", "%s (%s)", st.Backend, backendState(st, now))
	claims := "active"
	if st.ClaimsPaused {
		claims = "paused"
	}
	if st.ClaimsRefused != "" {
		claims = "refused by the backend: another live agent uses this id (" + st.ClaimsRefused + ")"
	}
	row("claims:", "%s", claims)
	b := st.Backlog
	if b.Jobs == 0 && b.Items == 0 {
		row("backlog:", "nothing undelivered")
	} else {
		row("backlog:", "%s, %d items, %s undelivered (%d log lines)", plural(b.Jobs, "job"), b.Items, command.HumanBytes(b.Bytes), b.LogLines)
	}
	row("running:", "%s", plural(len(st.Running), "job"))
	for _, r := range st.Running {
		row("  "+r.JobID, "execution %s, attempt %d, for %s", r.ExecutionID, r.Attempt, roundDuration(now.Sub(r.StartedAt)))
	}
	j := st.Journal
	row("journal:", "%s used of %s budget, file %s (%s)", command.HumanBytes(j.UsedBytes), command.HumanBytes(j.Budget), command.HumanBytes(j.FileBytes), j.Path)
	return tw.Flush()
}

func backendState(st admin.Status, now time.Time) string {
	contact := "never reached"
	if !st.LastContact.IsZero() {
		contact = "last contact " + roundDuration(now.Sub(st.LastContact)).String() + " ago"
	}
	if st.BackendReachable {
		return "reachable, " + contact
	}
	if st.LastError != "" {
		return "unreachable: " + st.LastError + "; " + contact
	}
	return "unreachable, " + contact
}

func printJobs(w io.Writer, jobs []admin.JobSummary, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tEXECUTION\tSTATE\tSTATUS\tEXIT\tSTARTED\tDURATION\tCPU\tPEAK MEM\tDELIVERY")
	for _, j := range jobs {
		exec := j.ExecutionID
		if j.Attempt > 1 {
			exec += fmt.Sprintf(" (attempt %d)", j.Attempt)
		}
		exit := "-"
		if j.ExitCode != nil {
			exit = fmt.Sprint(*j.ExitCode)
		}
		started, took := "-", "-"
		if !j.StartedAt.IsZero() {
			started = j.StartedAt.Local().Format("2006-01-02 15:04:05")
			end := j.FinishedAt
			if end.IsZero() {
				end = now // still running: how long so far
			}
			took = roundDuration(end.Sub(j.StartedAt)).String()
		}
		delivery := j.Delivery
		if j.PendingItems > 0 {
			delivery += fmt.Sprintf(" (%d items)", j.PendingItems)
		}
		cpu, peak := usageColumns(j)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.JobID, exec, j.State, orDash(j.Status), exit, started, took, cpu, peak, delivery)
	}
	return tw.Flush()
}

// usageColumns are the CPU and PEAK MEM columns: "-" where nothing was
// measured (a job still running, an HTTP request), "unknown" for a figure
// the run's cgroup did not give (memory.peak before Linux 5.19).
func usageColumns(j admin.JobSummary) (cpu, peak string) {
	if !j.Measured {
		return "-", "-"
	}
	cpu, peak = "unknown", "unknown"
	if j.CPUSeconds != nil {
		cpu = roundDuration(time.Duration(*j.CPUSeconds * float64(time.Second))).String()
	}
	if j.PeakMemoryBytes != nil {
		peak = command.HumanBytes(*j.PeakMemoryBytes)
	}
	return cpu, peak
}

// roundDuration keeps about three significant digits, enough for a person.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
