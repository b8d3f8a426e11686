// Package metrics is the agent's Prometheus metrics and health endpoints:
// counters and histograms fed as jobs are claimed and end, gauges read
// from the agent's state at each scrape, /healthz (the process serves)
// and /readyz (containerd and the journal usable). It knows nothing of the
// runner: the agent feeds it through Claimed and JobEnded and gives it a
// Source.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Snapshot is the agent's state as the gauges show it.
type Snapshot struct {
	Running, Capacity int
	// Undelivered journal items and their bytes; OldestUndelivered is
	// when the oldest of them was journaled (zero: none).
	UndeliveredItems, UndeliveredBytes int64
	OldestUndelivered                  time.Time
	JournalFileBytes, JournalUsedBytes int64
	JournalBudget                      int64
	BackendReachable                   bool
	// SyncErrors counts the deliveries that failed since the start.
	SyncErrors int64
}

// Source gives the gauges their values at each scrape.
type Source interface {
	Snapshot(ctx context.Context) (Snapshot, error)
}

// Check is one readiness condition: nil when it holds.
type Check func(ctx context.Context) error

// Option configures Metrics.
type Option func(*Metrics)

// WithReadyCheck adds a condition /readyz checks (and the
// cronium_component_up gauge shows), by name.
func WithReadyCheck(name string, c Check) Option {
	return func(m *Metrics) { m.checks[name] = c }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Metrics) { m.log = l } }

// Metrics holds the registry and what feeds it.
type Metrics struct {
	reg    *prometheus.Registry
	src    Source
	checks map[string]Check
	log    *slog.Logger

	jobs   *prometheus.CounterVec
	phases *prometheus.HistogramVec
	claims *prometheus.HistogramVec
}

// Buckets of the job phases and claim latencies: 1 ms to about 17 min.
var secondsBuckets = prometheus.ExponentialBuckets(0.001, 4, 11)

// New returns the metrics of an agent whose state src gives.
func New(src Source, opts ...Option) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), src: src, checks: map[string]Check{}, log: slog.Default()}
	for _, o := range opts {
		o(m)
	}
	m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cronium_jobs_total", Help: "Jobs ended, by executor target (container, http, ssh, tool) and result (completed, failed, timeout, cancelled).",
	}, []string{"target", "status"})
	m.phases = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cronium_job_phase_seconds", Help: "Duration of each phase of a job's last attempt: setup (claim of the attempt to the script's start), run, cleanup.",
		Buckets: secondsBuckets,
	}, []string{"target", "phase"})
	m.claims = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "cronium_claim_latency_seconds", Help: "From when a job was due (created, or scheduled for) to its claim by this agent.",
		Buckets: secondsBuckets,
	}, []string{"target"})
	m.reg.MustRegister(m.jobs, m.phases, m.claims, &stateCollector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Claimed counts a claim that came waiting after the job was due.
func (m *Metrics) Claimed(target string, waiting time.Duration) {
	m.claims.WithLabelValues(target).Observe(waiting.Seconds())
}

// JobEnded counts a job's end and its last attempt's phases (zero: the
// phase did not happen and is not observed).
func (m *Metrics) JobEnded(target, status string, setup, run, cleanup time.Duration) {
	m.jobs.WithLabelValues(target, status).Inc()
	for _, p := range []struct {
		name string
		d    time.Duration
	}{{"setup", setup}, {"run", run}, {"cleanup", cleanup}} {
		if p.d > 0 {
			m.phases.WithLabelValues(target, p.name).Observe(p.d.Seconds())
		}
	}
}

// Handler serves /metrics, /healthz and /readyz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slogAdapter{m.log}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", m.readyz)
	return mux
}

// readyz answers 200 when every check holds, else 503, with one line per
// check either way.
func (m *Metrics) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	results := m.runChecks(ctx)
	code := http.StatusOK
	var b strings.Builder
	for _, name := range sortedKeys(results) {
		if err := results[name]; err != nil {
			code = http.StatusServiceUnavailable
			fmt.Fprintf(&b, "%s: FAIL: %v\n", name, err)
		} else {
			fmt.Fprintf(&b, "%s: ok\n", name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprint(w, b.String())
}

func (m *Metrics) runChecks(ctx context.Context) map[string]error {
	type res struct {
		name string
		err  error
	}
	ch := make(chan res, len(m.checks))
	for name, c := range m.checks {
		go func() { ch <- res{name, c(ctx)} }()
	}
	out := make(map[string]error, len(m.checks))
	for range m.checks {
		r := <-ch
		out[r.name] = r.err
	}
	return out
}

func sortedKeys(m map[string]error) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Listen makes the listener before anything serves on it, so that a busy
// address stops the agent's start with a clear error.
func (m *Metrics) Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves Handler on ln until ctx ends.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
	defer stop()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// stateCollector reads the gauges at scrape time.
type stateCollector struct{ m *Metrics }

var (
	descRunning     = prometheus.NewDesc("cronium_running_jobs", "Jobs running now.", nil, nil)
	descFree        = prometheus.NewDesc("cronium_free_slots", "Jobs the agent may still take (jobs.maxConcurrent minus running).", nil, nil)
	descUndelivered = prometheus.NewDesc("cronium_undelivered_items", "Journal items (statuses, log batches, completions) the backend has not received.", nil, nil)
	descUndelBytes  = prometheus.NewDesc("cronium_undelivered_bytes", "Bytes of the undelivered journal items.", nil, nil)
	descOldest      = prometheus.NewDesc("cronium_oldest_undelivered_age_seconds", "Age of the oldest undelivered journal item (0: none).", nil, nil)
	descJournalFile = prometheus.NewDesc("cronium_journal_file_bytes", "Size of the journal's file.", nil, nil)
	descJournalUsed = prometheus.NewDesc("cronium_journal_used_bytes", "Journal bytes counted against journal.budget.", nil, nil)
	descBudget      = prometheus.NewDesc("cronium_journal_budget_bytes", "journal.budget.", nil, nil)
	descReachable   = prometheus.NewDesc("cronium_backend_reachable", "1 when the last call to the backend got an answer.", nil, nil)
	descSyncErrors  = prometheus.NewDesc("cronium_sync_errors_total", "Deliveries to the backend that failed (each is retried).", nil, nil)
	descUp          = prometheus.NewDesc("cronium_component_up", "1 when the component is usable (the /readyz checks: containerd, journal).", []string{"component"}, nil)
	descScrapeErr   = prometheus.NewDesc("cronium_state_scrape_error", "1 when the agent's state could not be read for this scrape.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRunning, descFree, descUndelivered, descUndelBytes, descOldest, descJournalFile, descJournalUsed, descBudget, descReachable, descSyncErrors, descUp, descScrapeErr} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, err := range c.m.runChecks(ctx) {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, boolValue(err == nil), name)
	}
	s, err := c.m.src.Snapshot(ctx)
	ch <- prometheus.MustNewConstMetric(descScrapeErr, prometheus.GaugeValue, boolValue(err != nil))
	if err != nil {
		c.m.log.Warn("metrics: reading the agent's state failed", "error", err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	gauge(descRunning, float64(s.Running))
	gauge(descFree, float64(max(0, s.Capacity-s.Running)))
	gauge(descUndelivered, float64(s.UndeliveredItems))
	gauge(descUndelBytes, float64(s.UndeliveredBytes))
	age := 0.0
	if !s.OldestUndelivered.IsZero() {
		age = max(0, time.Since(s.OldestUndelivered).Seconds())
	}
	gauge(descOldest, age)
	gauge(descJournalFile, float64(s.JournalFileBytes))
	gauge(descJournalUsed, float64(s.JournalUsedBytes))
	gauge(descBudget, float64(s.JournalBudget))
	gauge(descReachable, boolValue(s.BackendReachable))
	ch <- prometheus.MustNewConstMetric(descSyncErrors, prometheus.CounterValue, float64(s.SyncErrors))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// slogAdapter is promhttp's error log.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Println(v ...any) { a.l.Warn("metrics: " + fmt.Sprint(v...)) }
