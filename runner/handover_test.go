package runner_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
)

// A hand-over stop leaves every running job running: a started run at
// once, one being set up once its start is journaled, one waiting to retry
// as it waits; an HTTP request, which the agent makes itself, is waited
// for. Nothing is journaled as ended. The next agent on the same state
// directory adopts each run (no script starts twice), reads the output it
// missed, and each job completes once with all of its output.
func TestDispatcherHandOver(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			_, _ = w.Write([]byte("answered"))
		case <-r.Context().Done():
		}
	}))
	defer hook.Close()

	b, w, dir := startBackend(t), newWorld(t), t.TempDir()
	a1 := newAgent(t, b, w, dir, agentConfig{maxConcurrent: 4, drainTimeout: time.Hour}).start()
	running := b.submit(t, devserver.SubmitRequest{Script: "out before; gate finish; out after; exit 3", Priority: 9})
	settingUp := b.submit(t, devserver.SubmitRequest{Script: "setup s1; out set up; gate finish; out done", Priority: 9})
	retrying := b.submitRaw(t, rawScript("failfirst 1 3; out ok", 9, map[string]any{"retryPolicy": map[string]any{"maxAttempts": 2, "backoffType": "fixed", "backoffDelay": 2}}))
	request := b.submit(t, devserver.SubmitRequest{HTTP: &devserver.HTTPSpec{URL: hook.URL + "/wait"}, Priority: 9})
	waitFor(t, "a job running, one in its setup, one waiting to retry, a request in flight", func() bool {
		return w.isRunning(running) && len(w.runHistory()) >= 2 && w.runsOf(retrying) == 1 && w.taskOf(retrying) == nil &&
			b.job(t, request).Status == devserver.StatusRunning && w.taskOf(settingUp) == nil
	})

	until := time.Now().Add(time.Minute)
	if n := a1.d.ArmHandOver(until); n != 4 {
		t.Errorf("ArmHandOver: %d running jobs, want 4", n)
	}
	a1.drain()
	a1.waitLog("handing over: no new claims")
	waitFor(t, "the running job and the one waiting to retry to be handed over", func() bool { return a1.d.HandedOver() == 2 })
	// The job in its setup and the request hold the stop.
	select {
	case <-a1.runDone:
		t.Fatal("the dispatcher stopped while a job was being set up and a request was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	w.open("s1")
	waitFor(t, "the job set up to start and be handed over", func() bool { return a1.d.HandedOver() == 3 })
	close(release)
	a1.waitStopped()
	a1.stop()
	if !strings.Contains(a1.log.String(), "handed over: every running job is left to the next start") {
		t.Errorf("the agent did not log the hand-over:\n%s", a1.log.String())
	}

	// Handed over: still running, nothing reported as ended.
	for _, id := range []string{running, settingUp} {
		if !w.isRunning(id) {
			t.Errorf("job %s: its script no longer runs after the hand-over", id)
		}
	}
	for _, id := range []string{running, settingUp, retrying} {
		if v := b.job(t, id); v.Status != devserver.StatusRunning || v.Completions != 0 {
			t.Errorf("job %s after the hand-over: %s with %d completing calls; want running, none", id, v.Status, v.Completions)
		}
	}
	if v := b.job(t, request); v.Status != devserver.StatusCompleted || v.Completions != 1 || stdoutOf(v) != "answered" {
		t.Errorf("the HTTP request after the hand-over: %s, %d completing calls, stdout %q; want completed by the old agent", v.Status, v.Completions, stdoutOf(v))
	}

	a2 := newAgent(t, b, w, dir, agentConfig{maxConcurrent: 4, drainTimeout: time.Hour})
	if n := a2.recover(); n != 3 {
		t.Errorf("the next agent recovered %d jobs from the journal, want 3", n)
	}
	a2.start()
	w.open("finish")
	for _, tc := range []struct {
		id     string
		status string
		exit   int
		stdout []string
		runs   int
	}{
		{running, devserver.StatusFailed, 3, []string{"before", "after"}, 1},
		{settingUp, devserver.StatusCompleted, 0, []string{"set up", "done"}, 1},
		{retrying, devserver.StatusCompleted, 0, []string{"ok"}, 2},
	} {
		v := b.waitDone(t, tc.id)
		if v.Status != tc.status || exitCode(v) != tc.exit || v.Completions != 1 {
			t.Errorf("job %s: %s exit %d with %d completing calls; want %s %d once", tc.id, v.Status, exitCode(v), v.Completions, tc.status, tc.exit)
		}
		if n := w.runsOf(tc.id); n != tc.runs {
			t.Errorf("job %s: its script started %d times, want %d", tc.id, n, tc.runs)
		}
		stdout, _, _ := b.liveLog(t, tc.id)
		if tc.id != retrying && !slices.Equal(stdout, tc.stdout) {
			t.Errorf("job %s: live stdout %q, want %q (each line once)", tc.id, stdout, tc.stdout)
		}
		if !strings.HasSuffix(stdoutOf(v), strings.Join(tc.stdout, "\n")+"\n") {
			t.Errorf("job %s: stdout %q, want it to end with %q", tc.id, stdoutOf(v), tc.stdout)
		}
	}
	adopted := map[string]bool{}
	for _, c := range w.adoptCalls() {
		adopted[c.jobID] = true
	}
	if !adopted[running] || !adopted[settingUp] {
		t.Errorf("adopted %v; want the two handed-over runs", adopted)
	}
	b.assertOnce(t)
}

// Armed, a hand-over applies to a stop before its time only: a later
// stop drains.
func TestDispatcherHandOverLapses(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	a := newAgent(t, b, w, t.TempDir(), agentConfig{drainTimeout: time.Hour}).start()
	id := b.submit(t, devserver.SubmitRequest{Script: "out up; gate finish; out finished"})
	waitFor(t, "the job to run", func() bool { return w.isRunning(id) })
	a.d.ArmHandOver(time.Now().Add(-time.Second))
	a.drain()
	a.waitLog("draining: no new claims")
	w.open("finish")
	a.waitStopped()
	a.stop()
	if v := b.job(t, id); v.Status != devserver.StatusCompleted || v.Completions != 1 || a.d.HandedOver() != 0 {
		t.Errorf("after a lapsed hand-over: %s with %d completing calls, %d handed over; want a drain", v.Status, v.Completions, a.d.HandedOver())
	}
}
