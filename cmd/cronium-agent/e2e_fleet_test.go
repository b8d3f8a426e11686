package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/state/admin"
	"github.com/cronium/cronium-agent/state/identity"
)

// An agent that goes silent (SIGSTOP: a host frozen or cut off) for longer
// than the backend's lost-after is lost: its running job's attempt fails
// "agent lost" and, with a retry left, runs again on the other agent. When
// the lost agent comes back, its late reports are refused, it stops its
// copy of the run and keeps it in its journal as superseded, and nothing
// is counted twice: one completing call, the new run's lines after the
// line telling of the loss, none of the old run's after it.
func TestE2ELostAgentReturns(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "", devserver.WithLostAfter(3*time.Second))
	stateA, stateB := stateDir(t), stateDir(t)
	a := startAgent(t, b.URL, stateA)
	const lines = 80
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(lines, "0.1", 0),
		RetryPolicy: json.RawMessage(`{"maxAttempts":2,"backoffType":"fixed","backoffDelay":1}`)})
	waitLines(t, b, id, 5)
	idA, _, err := identity.Peek(stateA)
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, b.URL, stateB)
	a.signal(syscall.SIGSTOP)
	stopped := time.Now()
	// Given back once A is lost, then claimed and run by B.
	waitFor(t, time.Minute, func() bool {
		v, _ := b.Client.Job(context.Background(), id)
		return v.Orchestrator != "" && v.Orchestrator != idA && v.Status == "running" && len(v.LostFrom) == 1
	})
	t.Logf("A lost and its job running on B %s after A stopped", time.Since(stopped).Round(time.Millisecond))
	a.signal(syscall.SIGCONT)
	waitFor(t, time.Minute, func() bool {
		return strings.Contains(a.stderr.String(), "kept in the journal as superseded")
	})

	v := waitJob(t, b, id, 2*time.Minute)
	idB, _, _ := identity.Peek(stateB)
	if v.Status != "completed" || v.Completions != 1 || v.Orchestrator != idB || v.Claims != 2 {
		t.Errorf("job: %s, %d completing calls, by %s (B is %s), %d claims", v.Status, v.Completions, v.Orchestrator, idB, v.Claims)
	}
	if l := v.LostFrom; len(l) != 1 || l[0].Orchestrator != idA || l[0].Attempt != 1 || l[0].Status != "running" {
		t.Errorf("lostFrom %+v", l)
	}
	var attempts struct{ Attempts int }
	if err := json.Unmarshal(v.Job, &attempts); err != nil || attempts.Attempts != 1 {
		t.Errorf("wire attempts %d (%v), want 1", attempts.Attempts, err)
	}
	events := map[string]bool{}
	for _, h := range v.History {
		events[h.Event] = true
	}
	if !events["agent lost, retrying"] {
		t.Errorf("history %+v", v.History)
	}

	// The log: A's lines, the loss, then B's whole run, seq without gap.
	all := assertLogsInOrder(t, b, id)
	marker := -1
	for i, l := range all {
		if strings.HasPrefix(l, "system:cronium-backend: agent lost: "+idA) {
			marker = i
		}
	}
	if marker < 5 {
		t.Fatalf("no loss line after A's lines:\n%s", strings.Join(all, "\n"))
	}
	next := 1
	for _, l := range all[marker+1:] {
		if !strings.HasPrefix(l, "stdout:") {
			continue
		}
		if l != fmt.Sprintf("stdout:n %d", next) {
			t.Fatalf("after the loss, stdout line %q where \"n %d\" was due (A's late lines must be refused)", l, next)
		}
		next++
	}
	if next-1 != lines {
		t.Errorf("B's run: %d lines after the loss, want %d", next-1, lines)
	}

	// A stopped its run and keeps it as superseded; it reported nothing.
	logA := a.stderr.String()
	if n, m := strings.Count(logA, "kept in the journal as superseded"), strings.Count(logA, "what is left of its reports is kept"); n != 1 || m > 1 {
		t.Errorf("A ended its run %d times, told of dropped reports %d times:\n%s", n, m, logA)
	}
	r := agentEnv(t, []string{"CRONIUM_ADMIN_SOCKET=" + filepath.Join(stateA, "admin.sock")}, "jobs", "--json")
	var jobs []admin.JobSummary
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil || len(jobs) != 1 || jobs[0].JobID != id || jobs[0].State != "superseded" {
		t.Errorf("A's jobs: %v, exit %d\n%s%s", err, r.code, r.stdout, r.stderr)
	}
	orchs, err := b.Client.Orchestrators(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range orchs {
		if o.ID == idA && (o.StateNow != devserver.AgentOnline || o.Returns != 1 || o.LostJobs != 1) {
			t.Errorf("A's record: %+v", o)
		}
	}
}

// Three agents with state directories of their own on one backend, 150
// short jobs. Agent A is SIGKILLed at about a third and restarted 5 s
// later (within lost-after: it stays the holder of its jobs and adopts
// them); agent C is SIGKILLed for good at about half, while it runs jobs,
// and is lost after 10 s. Every job ends completed with one completing
// call; every script ran once (one execution reported started), except the
// jobs C was running: one execution failed "agent lost" and one completed
// retry.
func TestE2EFleetThreeAgents(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "", devserver.WithLostAfter(10*time.Second))
	const total = 150
	ctx := context.Background()
	limit := "CRONIUM_JOBS_MAX_CONCURRENT=3"
	stateA, stateB, stateC := stateDir(t), stateDir(t), stateDir(t)
	a := startAgent(t, b.URL, stateA, limit)
	startAgent(t, b.URL, stateB, limit)
	c := startAgent(t, b.URL, stateC, limit)
	retry := json.RawMessage(`{"maxAttempts":2,"backoffType":"fixed","backoffDelay":1}`)
	var ids []string
	for i := range total {
		ids = append(ids, submit(t, b, devserver.SubmitRequest{Runtime: "bash", RetryPolicy: retry,
			Script: fmt.Sprintf("echo start %d; sleep 1; echo done %d", i, i)}))
	}
	done := func() int {
		st, err := b.Client.Stats(ctx)
		if err != nil {
			return 0
		}
		n := 0
		for s, k := range st.ByStatus {
			if devserver.Terminal(s) {
				n += k
			}
		}
		return n
	}
	waitFor(t, 5*time.Minute, func() bool { return done() >= total/3 })
	a.signal(syscall.SIGKILL)
	a.waitDead(t, 10*time.Second)
	t.Logf("A killed at %d jobs done", done())
	time.Sleep(5 * time.Second)
	startAgent(t, b.URL, stateA, limit)

	idC, _, err := identity.Peek(stateC)
	if err != nil {
		t.Fatal(err)
	}
	// C goes for good at about half, while it runs jobs.
	waitFor(t, 5*time.Minute, func() bool {
		if done() < total/2 {
			return false
		}
		jobs, err := b.Client.Jobs(ctx)
		if err != nil {
			return false
		}
		for _, j := range jobs {
			if j.Orchestrator == idC && j.Status == "running" {
				return true
			}
		}
		return false
	})
	c.signal(syscall.SIGKILL)
	c.waitDead(t, 10*time.Second)
	t.Logf("C killed at %d jobs done", done())

	waitFor(t, 8*time.Minute, func() bool { return done() == total })
	lostRunning := 0
	for _, id := range ids {
		v, err := b.Client.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != "completed" || v.Completions != 1 {
			t.Errorf("job %s: %s, %d completing calls, by %s", id, v.Status, v.Completions, v.Orchestrator)
		}
		all, err := b.Client.Executions(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// The runs that started (their start reported): an execution
		// without was created by an agent killed (or lost) before its
		// script started.
		var execs []devserver.ExecutionView
		for _, e := range all {
			if _, ok := e.Time("executionStartedAt"); ok {
				execs = append(execs, e)
			}
		}
		last := all[len(all)-1]
		running := 0
		for _, l := range v.LostFrom {
			if l.Orchestrator != idC {
				t.Errorf("job %s taken from %s, which was never lost", id, l.Orchestrator)
			}
			if l.Status == "running" {
				running++
			}
		}
		lostRun := slices.ContainsFunc(all, func(e devserver.ExecutionView) bool {
			var why string
			_ = json.Unmarshal(e.Fields["error"], &why)
			return e.Status == "failed" && strings.HasPrefix(why, "agent lost: "+idC)
		})
		switch {
		case running == 0 && len(execs) != 1:
			t.Errorf("job %s ran %d times: %+v", id, len(execs), execs)
		case running == 1 && (len(execs) > 2 || !lostRun || last.Status != "completed"):
			// The lost attempt may not have reported its start before C died.
			t.Errorf("job %s lost while running: executions %+v", id, all)
		case running > 1:
			t.Errorf("job %s lost %d times", id, running)
		}
		lostRunning += running
	}
	if lostRunning == 0 {
		t.Error("no job was lost while running: C's loss was not exercised")
	}
	t.Logf("%d jobs of C's lost while running, retried elsewhere", lostRunning)
	assertOneCompletion(t, b)
}
