package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

type fixedSource struct {
	s   Snapshot
	err error
}

func (f fixedSource) Snapshot(context.Context) (Snapshot, error) { return f.s, f.err }

func scrape(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestMetrics(t *testing.T) {
	down := errors.New("connection refused")
	var containerd error
	m := New(fixedSource{s: Snapshot{
		Running: 2, Capacity: 5, UndeliveredItems: 7, UndeliveredBytes: 900,
		OldestUndelivered: time.Now().Add(-time.Minute), JournalFileBytes: 1 << 20, BackendReachable: true, SyncErrors: 3,
	}}, WithReadyCheck("containerd", func(context.Context) error { return containerd }),
		WithReadyCheck("journal", func(context.Context) error { return nil }))
	m.Claimed("container", 20*time.Millisecond)
	m.JobEnded("container", "completed", time.Second, 2*time.Second, 0)
	m.JobEnded("ssh", "failed", 0, 0, 0)
	h := m.Handler()
	code, body := scrape(t, h, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`cronium_jobs_total{status="completed",target="container"} 1`,
		`cronium_jobs_total{status="failed",target="ssh"} 1`,
		`cronium_job_phase_seconds_count{phase="run",target="container"} 1`,
		`cronium_claim_latency_seconds_count{target="container"} 1`,
		"cronium_running_jobs 2", "cronium_free_slots 3", "cronium_undelivered_items 7", "cronium_undelivered_bytes 900",
		"cronium_backend_reachable 1", "cronium_sync_errors_total 3", `cronium_component_up{component="containerd"} 1`,
		"cronium_state_scrape_error 0", "go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in /metrics", want)
		}
	}
	// A phase that did not happen is not observed.
	if strings.Contains(body, `phase="cleanup",target="container"`) {
		t.Error("a zero cleanup was observed")
	}
	if !strings.Contains(body, "cronium_oldest_undelivered_age_seconds 6") && !strings.Contains(body, "cronium_oldest_undelivered_age_seconds 5") {
		t.Errorf("oldest undelivered age not about a minute:\n%s", grep(body, "oldest"))
	}
	if code, body := scrape(t, h, "/readyz"); code != 200 || !strings.Contains(body, "containerd: ok") {
		t.Errorf("/readyz: %d %s", code, body)
	}
	containerd = down
	if code, body := scrape(t, h, "/readyz"); code != 503 || !strings.Contains(body, "containerd: FAIL: connection refused") || !strings.Contains(body, "journal: ok") {
		t.Errorf("/readyz with containerd down: %d %s", code, body)
	}
	if _, body := scrape(t, h, "/metrics"); !strings.Contains(body, `cronium_component_up{component="containerd"} 0`) {
		t.Error("component up stays 1 with containerd down")
	}
	if code, _ := scrape(t, h, "/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
}

func TestMetricsStateUnreadable(t *testing.T) {
	m := New(fixedSource{err: errors.New("journal closed")})
	if _, body := scrape(t, m.Handler(), "/metrics"); !strings.Contains(body, "cronium_state_scrape_error 1") {
		t.Errorf("no scrape error gauge:\n%s", grep(body, "cronium_"))
	}
}

func grep(body, s string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The sample Grafana dashboard queries only metrics the agent exports.
func TestDashboardNamesExist(t *testing.T) {
	data, err := os.ReadFile("../../packaging/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	m := New(fixedSource{}, WithReadyCheck("journal", func(context.Context) error { return nil }))
	m.Claimed("container", time.Millisecond)
	m.JobEnded("container", "completed", time.Millisecond, time.Millisecond, time.Millisecond)
	_, body := scrape(t, m.Handler(), "/metrics")
	names := regexp.MustCompile(`\b(?:cronium|process)_[a-z_]+`).FindAllString(string(data), -1)
	if len(names) == 0 {
		t.Fatal("no metric in the dashboard")
	}
	for _, n := range names {
		base := strings.TrimSuffix(n, "_bucket")
		if !strings.Contains(body, "\n"+base) && !strings.HasPrefix(body, base) {
			t.Errorf("the dashboard queries %s, which /metrics does not have", n)
		}
	}
}
