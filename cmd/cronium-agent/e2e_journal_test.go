package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/state/admin"
)

// outageDuration is how long the backend is away in TestE2EBackendOutage
// (the issue asks for 60 s; CRONIUM_TEST_OUTAGE shortens it locally).
func outageDuration() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CRONIUM_TEST_OUTAGE")); err == nil {
		return d
	}
	return 60 * time.Second
}

// printer is a bash script printing n numbered lines, one every `every`.
func printer(n int, every string, exit int) string {
	return fmt.Sprintf("for i in $(seq 1 %d); do echo \"n $i\"; sleep %s; done; exit %d", n, every, exit)
}

// assertNumbered checks a job's live lines: seq 1..n with no gap or copy,
// and its stdout lines "n 1".."n want" each once, in order.
func assertNumbered(t *testing.T, b *devBackend, id string, want int) {
	t.Helper()
	lines := assertLogsInOrder(t, b, id)
	next := 1
	for _, l := range lines {
		if !strings.HasPrefix(l, "stdout:") {
			continue
		}
		if l != fmt.Sprintf("stdout:n %d", next) {
			t.Fatalf("job %s: stdout line %q where \"n %d\" was due", id, l, next)
		}
		next++
	}
	if next-1 != want {
		t.Fatalf("job %s: %d numbered lines, want %d", id, next-1, want)
	}
}

// assertNumberedPerServer checks a multi-server job's live lines: each of
// the servers' stdout lines (prefixed "[name] ") is "n 1".."n want", each
// once, in order.
func assertNumberedPerServer(t *testing.T, b *devBackend, id string, want int, servers ...string) {
	t.Helper()
	perServer := map[string][]string{}
	for _, l := range assertLogsInOrder(t, b, id) {
		if name, line, ok := strings.Cut(strings.TrimPrefix(l, "stdout:["), "] "); ok && strings.HasPrefix(l, "stdout:[") {
			perServer[name] = append(perServer[name], line)
		}
	}
	var lines []string
	for i := 1; i <= want; i++ {
		lines = append(lines, fmt.Sprintf("n %d", i))
	}
	for _, name := range servers {
		if got := perServer[name]; strings.Join(got, "|") != strings.Join(lines, "|") {
			t.Errorf("live lines of %s: %q, want n 1..n %d once each", name, got, want)
		}
	}
}

// waitLines waits until the backend holds at least n live lines of a job.
func waitLines(t *testing.T, b *devBackend, id string, n int) {
	t.Helper()
	waitFor(t, time.Minute, func() bool {
		v, err := b.Client.Job(context.Background(), id)
		return err == nil && v.LogLines >= n
	})
}

// waitDead waits for an agent to exit by itself (a fault kills it).
func (a *agentProc) waitDead(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(within):
		t.Fatalf("agent still running after %s:\n%s", within, a.stderr.String())
	}
}

// waitReady waits until the agent serves its admin socket: it has then
// recovered the journal and swept what nothing owns.
func waitReady(t *testing.T, state string) {
	t.Helper()
	c := admin.Dial(filepath.Join(state, "admin.sock"))
	waitFor(t, time.Minute, func() bool {
		_, err := c.Status(context.Background())
		return err == nil
	})
}

// assertNothingLeft runs gc after the agent stopped and checks it found
// nothing of the job (other packages' tests may leave their own runs to it).
func assertNothingLeft(t *testing.T, state, jobID string) {
	t.Helper()
	r := agent(t, state, "gc")
	if r.code != 0 {
		t.Fatalf("gc: %s", r.stderr)
	}
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, jobID) {
			t.Errorf("left behind after the job: %s", l)
		}
	}
}

func agentStatus(t *testing.T, state string) admin.Status {
	t.Helper()
	st, err := admin.Dial(filepath.Join(state, "admin.sock")).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestE2EBackendOutage(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	state := stateDir(t)
	startAgent(t, b.URL, state)
	outage := outageDuration()
	// Each job prints for the whole outage and a while after.
	lines := int((outage + 15*time.Second) / (100 * time.Millisecond))
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(lines, "0.1", 0)}))
	}
	for _, id := range ids {
		waitLines(t, b, id, 5)
	}
	b.Down()
	waitFor(t, 30*time.Second, func() bool { return !agentStatus(t, state).BackendReachable })
	time.Sleep(outage / 2)
	st := agentStatus(t, state)
	if len(st.Running) != 5 || st.Backlog.Items == 0 || st.Backlog.LogLines == 0 || !st.ClaimsPaused {
		t.Errorf("status during the outage: %+v", st)
	}
	time.Sleep(outage - outage/2)
	b.Up(t)
	for _, id := range ids {
		v := waitJob(t, b, id, 3*time.Minute)
		if v.Status != "completed" || v.Completions != 1 {
			t.Errorf("job %s: %s with %d completing calls", id, v.Status, v.Completions)
		}
		assertNumbered(t, b, id, lines)
	}
	assertOneCompletion(t, b)
}

// TestE2ECrashAtEachPhase kills the agent (SIGKILL, through the test
// binary's fault hook) at each phase of a run, starts it again on the same
// state, and checks the backend ends with one completion and the full log.
func TestE2ECrashAtEachPhase(t *testing.T) {
	testenv.Containerd(t)
	for _, tc := range []struct {
		point  string
		status string
		exit   int
	}{
		{"claimed", "completed", 0},           // journaled, not acknowledged: released, run again
		{"execution-created", "completed", 0}, // the backend has the execution: adopted
		{"network", "completed", 0},           // during network setup: removed, released, run again
		{"container", "completed", 0},         // container made, no task: removed, released, run again
		{"logs#3", "failed", 3},               // while the script prints: adopted, output continues
		{"exited", "failed", 3},               // task exited, completion not journaled
		{"ran", "failed", 3},                  // task deleted, its exit journaled, completion not
		{"finished", "failed", 3},             // completion journaled, not delivered
		{"completed", "failed", 3},            // completion delivered: never sent again
	} {
		t.Run(strings.ReplaceAll(tc.point, "#", "-"), func(t *testing.T) {
			b := startDevBackend(t, "")
			state := stateDir(t)
			const n = 40
			id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(n, "0.05", tc.exit)})
			first := startAgent(t, b.URL, state, "CRONIUM_FAULT_KILL_AT="+tc.point)
			first.waitDead(t, time.Minute)
			if !strings.Contains(first.stderr.String(), "fault injection") {
				t.Fatalf("the agent died, but not at %s:\n%s", tc.point, first.stderr.String())
			}
			second := startAgent(t, b.URL, state)
			waitReady(t, state)
			v := waitJob(t, b, id, 2*time.Minute)
			if v.Status != tc.status || exitCode(v) != tc.exit || v.Completions != 1 {
				t.Errorf("job ended %s exit %d with %d completing calls, want %s %d once (error %q)\nfirst agent:\n%s",
					v.Status, exitCode(v), v.Completions, tc.status, tc.exit, v.Error, first.stderr.String())
			}
			if v.Output == nil || strings.Count(v.Output.Stdout, "\n") != n {
				t.Errorf("completion stdout: %+v", v.Output)
			}
			// The run the completion reports has its start and its end,
			// from the journal, whichever process sent them.
			if execs := executions(t, b, id); len(execs) == 0 {
				t.Error("no execution")
			} else {
				last := execs[len(execs)-1]
				_, started := last.Time("executionStartedAt")
				_, ended := last.Time("executionCompletedAt")
				if last.Status != tc.status || last.ExitCode() == nil || *last.ExitCode() != tc.exit || !started || !ended || last.Updates < 2 {
					t.Errorf("last execution %s: %s exit %v, %d updates, fields %v", last.ID, last.Status, last.ExitCode(), last.Updates, last.Fields)
				}
			}
			assertNumbered(t, b, id, n)
			second.signal(syscall.SIGTERM)
			second.wait(t, time.Minute)
			assertNothingLeft(t, state, id)
		})
	}
}

func TestE2EJobEndsWhileAgentIsDown(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	state := stateDir(t)
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: "echo before; sleep 2; echo after; echo oops >&2; exit 7"})
	first := startAgent(t, b.URL, state)
	waitLines(t, b, id, 1)
	first.signal(syscall.SIGKILL)
	first.waitDead(t, 10*time.Second)
	time.Sleep(4 * time.Second) // the script ends meanwhile
	startAgent(t, b.URL, state)
	v := waitJob(t, b, id, time.Minute)
	if v.Status != "failed" || exitCode(v) != 7 || v.Completions != 1 {
		t.Errorf("job: %s exit %d, %d completing calls; want failed 7 once", v.Status, exitCode(v), v.Completions)
	}
	if v.Output == nil || v.Output.Stdout != "before\nafter\n" || v.Output.Stderr != "oops\n" {
		t.Errorf("output: %+v", v.Output)
	}
	// The two streams are two pipes: their order against each other is
	// the logger's reading order, within a stream it is the script's.
	var out, errs []string
	for _, l := range assertLogsInOrder(t, b, id) {
		if strings.HasPrefix(l, "stderr:") {
			errs = append(errs, l)
		} else {
			out = append(out, l)
		}
	}
	if strings.Join(out, "|") != "stdout:before|stdout:after" || strings.Join(errs, "|") != "stderr:oops" {
		t.Errorf("live lines: %q %q", out, errs)
	}
}

// gc after an agent was killed leaves the runs its journal will adopt; the
// next start then completes them whole.
func TestE2EGCSparesAdoptableRuns(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	state := stateDir(t)
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(40, "0.1", 0)})
	first := startAgent(t, b.URL, state)
	waitLines(t, b, id, 5)
	first.signal(syscall.SIGKILL)
	first.waitDead(t, 10*time.Second)
	r := agent(t, state, "gc")
	// The killed agent's warm sandbox (made while the job ran) is its
	// garbage and goes; nothing else does.
	removedOther := false
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "removed") && !strings.Contains(l, "warm-") {
			removedOther = true
		}
	}
	if r.code != 0 || !strings.Contains(r.stdout, "kept run cronium-"+id) || removedOther {
		t.Fatalf("gc after the agent was killed: %d %q %q", r.code, r.stdout, r.stderr)
	}
	startAgent(t, b.URL, state)
	v := waitJob(t, b, id, time.Minute)
	if v.Status != "completed" || v.Completions != 1 {
		t.Errorf("job: %s, %d completing calls", v.Status, v.Completions)
	}
	assertNumbered(t, b, id, 40)
}

func TestE2EJournalBudget(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	state := stateDir(t)
	startAgent(t, b.URL, state, "CRONIUM_JOURNAL_BUDGET=2MiB")
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: "sleep 1; for i in $(seq 1 200000); do echo \"line $i of the output that will not fit\"; done; echo last"})
	waitFor(t, time.Minute, func() bool {
		v, err := b.Client.Job(context.Background(), id)
		return err == nil && v.Status == "running"
	})
	b.Down()
	// The job ends during the outage; its 9 MB of lines meet a 2 MiB budget.
	waitFor(t, 2*time.Minute, func() bool {
		st, err := admin.Dial(filepath.Join(state, "admin.sock")).Jobs(context.Background(), 10)
		return err == nil && len(st) == 1 && st[0].State == "finished"
	})
	time.Sleep(3 * time.Second) // a prune round
	b.Up(t)
	v := waitJob(t, b, id, time.Minute)
	if v.Status != "completed" || v.Completions != 1 {
		t.Fatalf("job: %s, %d completing calls", v.Status, v.Completions)
	}
	logs, err := b.Client.Logs(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	var notice string
	for _, l := range logs {
		if l.Stream == "system" && strings.Contains(l.Line, "dropped") {
			notice = l.Line
		}
	}
	if len(logs) == 0 || logs[0].Line != "line 1 of the output that will not fit" || logs[len(logs)-1].Line != "last" || notice == "" {
		t.Errorf("%d lines kept: first %+v, last %+v, notice %q", len(logs), logs[0], logs[len(logs)-1], notice)
	}
	if len(logs) >= 200001 {
		t.Errorf("all %d lines kept under a 2 MiB budget", len(logs))
	}
	t.Logf("budget: %d of 200001 lines kept; %s", len(logs), notice)
}

func TestE2EAdminCommands(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	state := stateDir(t)
	startAgent(t, b.URL, state)
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(30, "0.1", 0)})
	env := []string{"CRONIUM_ADMIN_SOCKET=" + filepath.Join(state, "admin.sock")}
	waitLines(t, b, id, 1)
	r := agentEnv(t, env, "logs", "-f", id)
	if r.code != 0 {
		t.Fatalf("logs -f: %d %s", r.code, r.stderr)
	}
	for i := 1; i <= 30; i++ {
		if !strings.Contains(r.stdout, fmt.Sprintf("n %d\n", i)) {
			t.Fatalf("logs -f lacks line %d:\n%s", i, r.stdout)
		}
	}
	waitJob(t, b, id, time.Minute)
	r = agentEnv(t, env, "jobs", "--json")
	var jobs []admin.JobSummary
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil || len(jobs) != 1 || jobs[0].JobID != id || jobs[0].State != "finished" {
		t.Errorf("jobs --json: %v %s", err, r.stdout)
	}
	r = agentEnv(t, env, "status")
	if r.code != 0 || !strings.Contains(r.stdout, b.URL) {
		t.Errorf("status: %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// agentEnv runs the binary with extra environment (the tests of this
// package do not run in parallel).
func agentEnv(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return agent(t, t.TempDir(), args...)
}

// BenchmarkE2EJournal measures, through the agent binary, a job printing
// about 100 MiB (1 Mi lines) while the backend is away: how fast its output
// goes into the journal (script start to completion journaled, the
// script's own printing included), then how long the backend takes to
// receive the whole backlog once it is back.
func BenchmarkE2EJournal(b *testing.B) {
	testenv.Containerd(b)
	const lines = 1 << 20
	for i := 0; i < b.N; i++ {
		be := startDevBackend(b, "")
		state := testenv.StateDir(b)
		startAgent(b, be.URL, state, "CRONIUM_LOG_LEVEL=warn")
		ctx := context.Background()
		id, err := be.Client.Submit(ctx, devserver.SubmitRequest{Runtime: "python",
			Script: fmt.Sprintf("import sys\nline = 'x' * 99\nw = sys.stdout.write\nfor i in range(%d):\n    w('%%07d %%s\\n' %% (i, line))\n", lines)})
		if err != nil {
			b.Fatal(err)
		}
		c := admin.Dial(filepath.Join(state, "admin.sock"))
		waitFor(b, time.Minute, func() bool {
			js, err := c.Jobs(ctx, 1)
			return err == nil && len(js) == 1 && js[0].State == "running"
		})
		be.Down()
		var job admin.JobSummary
		waitFor(b, 5*time.Minute, func() bool {
			js, err := c.Jobs(ctx, 1)
			if err == nil && len(js) == 1 {
				job = js[0]
			}
			return job.State == "finished"
		})
		capture := job.FinishedAt.Sub(job.StartedAt)
		st, _ := c.Status(ctx)
		be.Up(b)
		start := time.Now()
		v, err := be.Client.Wait(ctx, id, 50*time.Millisecond)
		drained := time.Since(start)
		if err != nil || v.Status != "completed" || v.LogLines != lines {
			b.Fatalf("job: %v %s, %d lines on the backend", err, v.Status, v.LogLines)
		}
		mib := float64(lines*108) / (1 << 20)
		b.ReportMetric(mib/capture.Seconds(), "journal-MiB/s")
		b.ReportMetric(drained.Seconds(), "drain-s")
		b.ReportMetric(float64(st.Journal.UsedBytes)/(1<<20), "journal-used-MiB")
	}
}
