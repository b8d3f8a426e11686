package devserver

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
)

// A claim with wait is held until a job is queued, and answers with it.
func TestQueueLongPoll(t *testing.T) {
	e := newTestEnv(t)
	type answer struct {
		ids []string
		at  time.Time
	}
	got := make(chan answer, 1)
	go func() {
		ids := e.claim("agent-1", "batchSize=2&wait=30s")
		got <- answer{ids, time.Now()}
	}()
	// The claim is held: nothing to hand out yet.
	select {
	case a := <-got:
		t.Fatalf("answered %v before any job was queued", a.ids)
	case <-time.After(300 * time.Millisecond):
	}
	submitted := time.Now()
	id := e.submit(bashJob(0, "echo hi"))
	var a answer
	select {
	case a = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the held claim did not take the job queued meanwhile")
	}
	if len(a.ids) != 1 || a.ids[0] != id {
		t.Fatalf("claimed %v, want [%s]", a.ids, id)
	}
	t.Logf("claimed %v after the submit", a.at.Sub(submitted))
	if v := e.job(id); v.Status != StatusClaimed || v.Orchestrator != "agent-1" {
		t.Errorf("job after the held claim: %+v", v.JobSummary)
	}
}

func TestQueueLongPollEnds(t *testing.T) {
	e := newTestEnv(t)
	// The header offers it on every queue answer, waiting or not.
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/internal/jobs/queue?wait=200ms", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("X-Orchestrator-ID", "agent-1")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(api.QueueWaitHeader) != maxQueueWait.String() {
		t.Errorf("status %d, %s %q", resp.StatusCode, api.QueueWaitHeader, resp.Header.Get(api.QueueWaitHeader))
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("an empty queue answered after %v, before the wait ended", d)
	}
	for _, q := range []string{"wait=x", "wait=-1s"} {
		if code, body := e.call("GET", "/api/internal/jobs/queue?"+q, "a", nil); code != 400 || !strings.Contains(string(body), "wait") {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
	if d, err := parseWait("10m"); err != nil || d != maxQueueWait {
		t.Errorf("wait 10m = %v, %v; want the bound %v", d, err, maxQueueWait)
	}
	if d, err := parseWait("5"); err != nil || d != 5*time.Second {
		t.Errorf("wait 5 = %v, %v", d, err)
	}
}

// A job scheduled for later is handed to a waiting claim when it comes
// due; a claim whose caller went away claims nothing.
func TestQueueLongPollScheduledAndGone(t *testing.T) {
	e := newTestEnv(t)
	req := bashJob(0, "echo later")
	req.Delay = "1s"
	id := e.submit(req)
	got := make(chan []string, 1)
	go func() { got <- e.claim("agent-1", "wait=30s") }()
	// The server's clock is the test's: move it past the job's time.
	time.Sleep(100 * time.Millisecond)
	e.advance(2 * time.Second)
	select {
	case ids := <-got:
		if len(ids) != 1 || ids[0] != id {
			t.Fatalf("claimed %v, want [%s]", ids, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the scheduled job was not handed to the waiting claim")
	}

	ctx, cancel := context.WithCancel(context.Background())
	hreq, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/api/internal/jobs/queue?wait=30s", nil)
	hreq.Header.Set("Authorization", "Bearer "+testToken)
	hreq.Header.Set("X-Orchestrator-ID", "agent-2")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(hreq); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-done
	time.Sleep(100 * time.Millisecond)
	later := e.submit(bashJob(0, "echo after"))
	if v := e.job(later); v.Status != StatusQueued {
		t.Errorf("a job queued after its claim's caller went away: %+v", v.JobSummary)
	}
}

// EndWaits (a shutting down server) answers the held claims at once.
func TestQueueLongPollEndWaits(t *testing.T) {
	e := newTestEnv(t)
	got := make(chan []string, 1)
	go func() { got <- e.claim("agent-1", "wait=60s") }()
	time.Sleep(100 * time.Millisecond)
	e.srv.EndWaits()
	select {
	case ids := <-got:
		if len(ids) != 0 {
			t.Errorf("claimed %v from an empty queue", ids)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held claim was not answered by EndWaits")
	}
	// And none is held any more.
	start := time.Now()
	e.claim("agent-1", "wait=60s")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a claim after EndWaits was held %v", d)
	}
}
