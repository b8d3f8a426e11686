package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
)

// overDeliverer is a backend that answers the first claim with n jobs,
// whatever batch size was asked, and records what the agent then does.
type overDeliverer struct {
	n        int
	mu       sync.Mutex
	served   bool
	asked    string
	acked    []string
	released []string
	finished []string
}

func (o *overDeliverer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/internal/"), "/")
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/api/internal/jobs/queue":
		if o.served {
			fmt.Fprint(w, `{"jobs":[],"count":0}`)
			return
		}
		o.served, o.asked = true, r.URL.Query().Get("batchSize")
		var jobs []string
		for i := range o.n {
			jobs = append(jobs, fmt.Sprintf(`{"id":"job_over%04d","type":"container","priority":5,"createdAt":"2026-11-20T10:00:00.000Z",
				"execution":{"timeout":30000000000,"target":{"type":"local"},"script":{"type":"BASH","content":"echo ran %d; sleep 1"}},
				"metadata":{"originalType":"SCRIPT","eventId":1,"userId":"u"}}`, i, i))
		}
		fmt.Fprintf(w, `{"jobs":[%s],"count":%d}`, strings.Join(jobs, ","), o.n)
	case r.URL.Path == "/api/internal/jobs/orphaned":
		fmt.Fprint(w, `[]`)
	case len(parts) == 3 && parts[0] == "jobs":
		switch parts[2] {
		case "acknowledge":
			o.acked = append(o.acked, parts[1])
		case "release":
			o.released = append(o.released, parts[1])
		case "complete", "fail":
			o.finished = append(o.finished, parts[1])
		}
		fmt.Fprint(w, `{"success":true}`)
	default:
		fmt.Fprint(w, `{"success":true}`)
	}
}

// A backend that hands out 60 jobs to an agent with 2 free slots gets 58
// back unstarted; the 2 run, and nothing of the others is left behind.
func TestE2EOverDeliveryIsReleased(t *testing.T) {
	testenv.Containerd(t)
	o := &overDeliverer{n: 60}
	hs := httptest.NewServer(o)
	defer hs.Close()
	a := startAgent(t, hs.URL, stateDir(t), "CRONIUM_JOBS_MAX_CONCURRENT=2")
	waitFor(t, time.Minute, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.finished) == 2 && len(o.released) == 58
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.asked != "2" {
		t.Errorf("asked for batchSize=%s, want 2", o.asked)
	}
	slices.Sort(o.acked)
	slices.Sort(o.finished)
	if len(o.acked) != 2 || !slices.Equal(o.acked, o.finished) {
		t.Errorf("acknowledged %v, finished %v: want the same 2 jobs", o.acked, o.finished)
	}
	for _, id := range o.released {
		if slices.Contains(o.acked, id) {
			t.Errorf("%s was both run and released", id)
		}
	}
	if !strings.Contains(a.stderr.String(), "more jobs than asked for") {
		t.Errorf("the agent did not say why it released them:\n%s", a.stderr.String())
	}
}

// BenchmarkIdleClaimLatency measures how long a job waits for its claim
// when the agent has been idle for a while, with the default poll settings
// (1 s while idle; it used to back off to 10 s).
func BenchmarkIdleClaimLatency(b *testing.B) {
	testenv.Containerd(b)
	be := startDevBackend(b, "")
	// The defaults, over the fast ones the other tests use.
	startAgent(b, be.URL, stateDir(b), "CRONIUM_JOBS_POLL_INTERVAL=1s", "CRONIUM_JOBS_POLL_MAX_INTERVAL=10s")
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		time.Sleep(4*time.Second + time.Duration(i%4)*250*time.Millisecond) // idle, past where the old backoff reached 8 s
		b.StartTimer()
		id, err := be.Client.Submit(b.Context(), devserver.SubmitRequest{Runtime: "bash", Script: "true"})
		if err != nil {
			b.Fatal(err)
		}
		v, err := be.Client.Wait(b.Context(), id, 20*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		if v.ClaimedAt == nil {
			b.Fatalf("job %s has no claim time: %+v", id, v)
		}
		lat = append(lat, v.ClaimedAt.Sub(v.CreatedAt))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "claim-p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "claim-max-ms")
	out, _ := json.Marshal(lat)
	b.Logf("claim latencies after idling: %s", out)
}
