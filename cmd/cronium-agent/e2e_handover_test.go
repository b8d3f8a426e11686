package main

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
)

// A package upgrade's restart, through the agent binary: `hand-over`, then
// SIGTERM. The agent exits without waiting for its running jobs (a
// container job, an SSH job, a job on two servers), which go on; the next
// start on the same state directory adopts each, and each completes once
// with every line, the container job with its exit code and the output it
// set through the runtime API after the restart. A SIGTERM without the
// arming still drains (TestE2EDrain).
func TestE2EHandOver(t *testing.T) {
	testenv.Containerd(t)
	s := testenv.StartSSHD(t)
	b := startDevBackend(t, "")
	key := sshServer(t, b, s, "loopback-sshd", false)
	web1, web2 := sshServer(t, b, s, "web-1", false), sshServer(t, b, s, "web-2", true)
	state := stateDir(t)

	local := submit(t, b, devserver.SubmitRequest{Runtime: "bash",
		Script: `for i in $(seq 1 40); do echo "n $i"; sleep 0.1; done; cronium_output '{"lines":40}' || exit 9; exit 3`})
	remote := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(40, "0.1", 0), ServerID: key})
	multi := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(30, "0.1", 0), ServerIDs: []string{web1, web2}})
	first := startAgent(t, b.URL, state)
	waitLines(t, b, local, 5)
	waitLines(t, b, remote, 5)
	waitLines(t, b, multi, 6)

	r := agentEnv(t, []string{"CRONIUM_ADMIN_SOCKET=" + filepath.Join(state, "admin.sock")}, "hand-over")
	if r.code != 0 || !strings.Contains(r.stdout, "leaves its 3 running job(s) running") {
		t.Fatalf("hand-over: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	stop := time.Now()
	first.signal(syscall.SIGTERM)
	first.wait(t, time.Minute)
	stopped := time.Since(stop)
	log := first.stderr.String()
	for _, want := range []string{"handing over: no new claims", "handed over: every running job is left to the next start", "its running jobs go on"} {
		if !strings.Contains(log, want) {
			t.Errorf("the first agent's log lacks %q", want)
		}
	}
	if strings.Contains(log, "draining: no new claims") {
		t.Error("the first agent drained")
	}
	for _, id := range []string{local, remote, multi} {
		v, err := b.Client.Job(context.Background(), id)
		if err != nil || v.Status != devserver.StatusRunning || v.Completions != 0 {
			t.Errorf("job %s after the hand-over: %s, %d completing calls (%v); want running", id, v.Status, v.Completions, err)
		}
	}

	restart := time.Now()
	second := startAgent(t, b.URL, state)
	waitReady(t, state)
	ready := time.Since(restart)

	v := waitJob(t, b, local, time.Minute)
	if v.Status != "failed" || exitCode(v) != 3 || v.Completions != 1 || string(v.ScriptOutput) != `{"lines":40}` {
		t.Errorf("container job: %s exit %d, %d completing calls, output %s; want failed 3 once with its output", v.Status, exitCode(v), v.Completions, v.ScriptOutput)
	}
	assertNumbered(t, b, local, 40)
	v = waitJob(t, b, remote, time.Minute)
	if v.Status != "completed" || v.Completions != 1 {
		t.Errorf("SSH job: %s, %d completing calls", v.Status, v.Completions)
	}
	assertNumbered(t, b, remote, 40)
	v = waitJob(t, b, multi, time.Minute)
	if v.Status != "completed" || exitCode(v) != 0 || v.Completions != 1 {
		t.Errorf("multi-server job: %s exit %d, %d completing calls", v.Status, exitCode(v), v.Completions)
	}
	assertNumberedPerServer(t, b, multi, 30, "web-1", "web-2")
	for _, id := range []string{local, remote} {
		if execs := executions(t, b, id); len(execs) != 1 {
			t.Errorf("%s: %d executions, want the one the first agent began", id, len(execs))
		}
	}
	if log := second.stderr.String(); strings.Count(log, "recovering a job from the journal") != 3 {
		t.Errorf("the second agent recovered %d jobs, want 3", strings.Count(log, "recovering a job from the journal"))
	}
	assertOneCompletion(t, b)
	t.Logf("hand-over stop: %s from SIGTERM to exit; next start ready (admin socket, jobs adopted) %s after its launch", stopped.Round(time.Millisecond), ready.Round(time.Millisecond))
}
