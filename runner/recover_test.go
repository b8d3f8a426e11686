package runner_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/state"
)

// linesUpTo is "line 1".."line n", as the fake's `lines` prints them.
func linesUpTo(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("line %d", i))
	}
	return out
}

// TestRecover kills an agent at each phase of a job's life, leaving its
// journal as SIGKILL would, starts the next agent on that journal (Recover,
// then Run, as Agent.Run does) and checks that the backend ends with what the
// job really did: one completing call with its real status, exit code and
// output, the live log whole and in order, and the job released only when
// its script never started.
func TestRecover(t *testing.T) {
	t.Parallel()
	// HTTP requests caught in flight go to this server, on loopback only;
	// it answers none, and counts them (one case sends any).
	var hookCalls atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hookCalls.Add(1)
		<-r.Context().Done()
	}))
	t.Cleanup(hook.Close) // after the parallel subtests
	retry := func(n int, delay float64) map[string]any {
		return map[string]any{"retryPolicy": map[string]any{"maxAttempts": n, "backoffType": "fixed", "backoffDelay": delay}}
	}
	logSeqAt := func(n uint64) func(a *agent, w *world, id string) bool {
		return func(a *agent, w *world, id string) bool {
			p, ok := a.progress(id)
			return ok && p.LogSeq >= n
		}
	}

	for _, tc := range []struct {
		name string
		job  json.RawMessage
		req  *devserver.SubmitRequest
		// The kill: at a fault point (parking the job there after skip
		// arrivals), or once ready holds; logSeq live lines are journaled then.
		killAt  string
		skip    int
		ready   func(a *agent, w *world, id string) bool
		prepare func(t *testing.T, a *agent, w *world, id string)
		logSeq  uint64
		// What happens while no agent runs, and once the next one recovered.
		whileDown    func(t *testing.T, w *world, id string)
		afterRecover func(w *world)

		recovered int // jobs Recover finds unfinished
		status    string
		exit      int
		stdout    []string // the live stdout lines, also the completion's stdout
		stderr    string   // in the completion's stderr
		system    []string // the live system lines, when set
		inSystem  string   // in one live system line
		releases  int
		runs      int  // scripts started, both agents together
		execs     int  // executions on the backend; 0: not checked
		adopted   bool // the next agent took the run over through Adopt
	}{
		{
			name: "claimed, never started: released, then run again",
			job:  rawScript("out hello", 5, nil), killAt: "claimed",
			recovered: 1, status: "completed", exit: 0, stdout: []string{"hello"}, releases: 1, runs: 1, execs: 1,
		},
		{
			// Executions not counted: the re-run's execution id is the
			// abandoned attempt's when both start in the same second
			// (exec_<job>_<unix seconds>), and the backend then merges them.
			name: "set up, script not started: released, then run again",
			job:  rawScript("out hello", 5, nil), killAt: "network",
			recovered: 1, status: "completed", exit: 0, stdout: []string{"hello"}, releases: 1, runs: 1,
		},
		{
			name: "running: adopted, its output continues",
			job:  rawScript("lines 3; gate more; lines 3", 5, nil), ready: logSeqAt(3), logSeq: 3,
			afterRecover: func(w *world) { w.open("more") },
			recovered:    1, status: "completed", exit: 0, stdout: linesUpTo(6), runs: 1, execs: 1, adopted: true,
		},
		{
			name: "ended while the agent was down: its real exit code and output",
			job:  rawScript("lines 3; gate more; lines 2; err oops; exit 7", 5, nil), ready: logSeqAt(3), logSeq: 3,
			whileDown: func(t *testing.T, w *world, id string) {
				w.open("more")
				waitFor(t, "the task to exit", func() bool { tk := w.taskOf(id); return tk != nil && w.state(tk) == taskExited })
			},
			recovered: 1, status: "failed", exit: 7, stdout: linesUpTo(5), stderr: "oops\n", runs: 1, execs: 1, adopted: true,
		},
		{
			name: "killed as its task exited: completed with the task's exit code",
			job:  rawScript("lines 3; exit 4", 5, nil), killAt: "exited",
			recovered: 1, status: "failed", exit: 4, stdout: linesUpTo(3), runs: 1, execs: 1, adopted: true,
		},
		{
			name: "lost with the host: failed, with the output it printed",
			job:  rawScript("lines 3; wait", 5, nil), ready: logSeqAt(3), logSeq: 3,
			whileDown: func(t *testing.T, w *world, id string) { w.lose(t, id) },
			recovered: 1, status: "failed", exit: 255, stdout: linesUpTo(3), stderr: lostReason, inSystem: lostReason,
			runs: 1, execs: 1, adopted: true,
		},
		{
			// The backend still lists the job as this agent's: the journal's
			// record wins, the job is not released.
			name: "completion journaled, not delivered: delivered once, not released",
			job:  rawScript("lines 2; gate end; exit 3", 5, nil), killAt: "finished",
			prepare: func(t *testing.T, a *agent, w *world, id string) {
				waitFor(t, "two lines journaled", func() bool { return logSeqAt(2)(a, w, id) })
				a.net.cut()
				w.open("end")
			},
			recovered: 0, status: "failed", exit: 3, stdout: linesUpTo(2), runs: 1, execs: 1,
		},
		{
			// Killed while it waits for its retry: the next attempt runs.
			name: "waiting to retry: the next attempt runs",
			job:  rawScript("failfirst 1 3; lines 2", 5, retry(2, 2)),
			ready: func(a *agent, w *world, id string) bool {
				p, ok := a.progress(id)
				return ok && p.State == state.Running && p.Attempt == 1 && p.ExecutionEnded
			},
			logSeq: 1, recovered: 1, status: "completed", exit: 0, stdout: linesUpTo(2),
			system: []string{"attempt 1 of 2", "attempt 2 of 2"}, runs: 2, execs: 2,
		},
		{
			// The attempt's execution stays on the backend as created, and
			// the attempt runs again as an execution of its own.
			name: "a retry set up, its script not started: that attempt runs again",
			job:  rawScript("failfirst 1 3; lines 2", 5, retry(3, 0.05)), killAt: "network", skip: 1, logSeq: 2,
			recovered: 1, status: "completed", exit: 0, stdout: linesUpTo(2),
			system: []string{"attempt 1 of 3", "attempt 2 of 3", "attempt 2 of 3"}, runs: 2, execs: 3,
		},
		{
			name: "HTTP request in flight: failed, not sent again",
			req:  &devserver.SubmitRequest{HTTP: &devserver.HTTPSpec{URL: hook.URL + "/hang"}},
			ready: func(a *agent, w *world, id string) bool {
				p, ok := a.progress(id)
				return ok && !p.StartedAt.IsZero() && hookCalls.Load() > 0
			},
			recovered: 1, status: "failed", exit: 1, stderr: "is not sent again", inSystem: "is not sent again", execs: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, w := startBackend(t), newWorld(t)
			first := newAgent(t, b, w, t.TempDir(), agentConfig{faults: newFaultGate(tc.killAt, tc.skip)}).start()
			var id string
			if tc.req != nil {
				id = b.submit(t, *tc.req)
			} else {
				id = b.submitRaw(t, tc.job)
			}
			if tc.prepare != nil {
				tc.prepare(t, first, w, id)
			}
			if tc.killAt != "" {
				waitFor(t, "the job to reach "+tc.killAt, func() bool { return first.faults.arrivals() == 1 })
			} else {
				waitFor(t, "the job to be where the agent is killed", func() bool { return tc.ready(first, w, id) })
			}
			dir := first.kill(id, tc.logSeq)
			if tc.whileDown != nil {
				tc.whileDown(t, w, id)
			}

			second := newAgent(t, b, w, dir, agentConfig{})
			if n := second.recover(); n != tc.recovered {
				t.Errorf("Recover found %d unfinished jobs, want %d", n, tc.recovered)
			}
			second.start()
			if tc.afterRecover != nil {
				tc.afterRecover(w)
			}
			v := b.waitDone(t, id)
			if v.Status != tc.status || exitCode(v) != tc.exit || v.Completions != 1 {
				t.Errorf("job ended %s exit %d with %d completing calls; want %s %d once (error %q)",
					v.Status, exitCode(v), v.Completions, tc.status, tc.exit, v.Error)
			}
			if v.Releases != tc.releases {
				t.Errorf("released %d times, want %d", v.Releases, tc.releases)
			}
			stdout, _, system := b.liveLog(t, id)
			if !slices.Equal(stdout, tc.stdout) {
				t.Errorf("live stdout %q, want %q", stdout, tc.stdout)
			}
			wantStdout := ""
			if len(tc.stdout) > 0 {
				wantStdout = strings.Join(tc.stdout, "\n") + "\n"
			}
			if v.Output == nil || v.Output.Stdout != wantStdout || !strings.Contains(v.Output.Stderr, tc.stderr) {
				t.Errorf("completion output %+v; want stdout %q, stderr with %q", v.Output, wantStdout, tc.stderr)
			}
			if tc.system != nil && !slices.Equal(system, tc.system) {
				t.Errorf("system lines %q, want %q", system, tc.system)
			}
			if tc.inSystem != "" && !slices.ContainsFunc(system, func(l string) bool { return strings.Contains(l, tc.inSystem) }) {
				t.Errorf("system lines %q, want one with %q", system, tc.inSystem)
			}
			if n := w.runsOf(id); n != tc.runs {
				t.Errorf("the script started %d times, want %d", n, tc.runs)
			}
			execs := b.executions(t, id)
			if tc.execs > 0 && len(execs) != tc.execs {
				t.Errorf("%d executions, want %d", len(execs), tc.execs)
			}
			if len(execs) == 0 {
				t.Fatal("no execution")
			}
			// The run the completion reports has its start and its end,
			// whichever agent journaled them.
			last := execs[len(execs)-1]
			_, started := last.Time("executionStartedAt")
			_, ended := last.Time("executionCompletedAt")
			if last.ExitCode() == nil || *last.ExitCode() != tc.exit || !started || !ended || last.Updates < 2 {
				t.Errorf("last execution %s: exit %v, %d updates, fields %v", last.ID, last.ExitCode(), last.Updates, last.Fields)
			}
			adopts := w.adoptCalls()
			wantAdopts := 0
			if tc.adopted || tc.killAt == "network" {
				wantAdopts = 1 // a run set up but not started is handed to Adopt too, which removes it
			}
			if len(adopts) != wantAdopts {
				t.Errorf("adoptions %+v, want %d", adopts, wantAdopts)
			}
			if tc.adopted {
				// Adopted with the start the first agent journaled, so that
				// its timeout counts from the script's real start.
				runs := w.runHistory()
				if len(adopts) != 1 || len(runs) == 0 || adopts[0].jobID != id || !adopts[0].startedAt.Equal(runs[0].started) {
					t.Errorf("adoptions %+v of the run started %+v", adopts, runs)
				}
				if got := string(last.ExecutionMetadata["adopted"]); got != "true" {
					t.Errorf("last execution's metadata says adopted %q", got)
				}
			}
			if tc.req != nil && hookCalls.Load() != 1 {
				t.Errorf("the HTTP request was sent %d times, want once", hookCalls.Load())
			}
			b.assertOnce(t)
		})
	}
}
