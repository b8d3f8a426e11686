package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/journal"
	"github.com/cronium/cronium-agent/state/syncer"
)

const fleetToken = "fleet-token"

// noopExecutor runs every job at once, successfully: the fleet benchmark
// measures the claim and report path, not containers.
type noopExecutor struct{}

func (noopExecutor) Run(_ context.Context, a *runner.Attempt) runner.Result {
	now := time.Now()
	if err := a.Started(now); err != nil {
		return runner.NeverRan(now, err)
	}
	return runner.Result{Status: api.StatusCompleted, Start: now, End: time.Now()}
}

func (noopExecutor) Adopt(_ context.Context, a *runner.Attempt) runner.Result {
	return runner.Result{NotStarted: true}
}

// countingTransport counts the requests of every agent of the fleet.
type countingTransport struct {
	base http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.base.RoundTrip(r)
}

// fleetAgent is one agent of the fleet: the real client, journal, syncer
// and dispatcher (as Agent.Run wires them), in the benchmark's process,
// with the no-op executor.
type fleetAgent struct {
	jr   *journal.Journal
	stop context.CancelFunc
	done chan struct{}
}

func startFleetAgent(b *testing.B, url, id, dir string, requests *atomic.Int64) *fleetAgent {
	b.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	client, err := backend.NewClient(url, fleetToken, id,
		backend.WithHTTPClient(&http.Client{Transport: countingTransport{tr, requests}}),
		backend.WithLongPoll(20*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	jr, err := journal.Open(filepath.Join(dir, "journal.db"), journal.WithSecretKey(key))
	if err != nil {
		b.Fatal(err)
	}
	jobs, err := state.NewJobs(jr)
	if err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	sy := syncer.New(jr, client, syncer.WithLogger(quiet))
	jobs.OnAppend(sy.Notify)
	// The agent's defaults: 1 s polls while the backend does not hold
	// claims, a heartbeat every 10 s, metrics every minute.
	d := runner.NewDispatcher(client, jobs, sy, runner.Executors{runner.TargetContainer: noopExecutor{}}, runner.DispatchConfig{
		OrchestratorID: id, MaxConcurrent: 4,
		PollInterval: time.Second, PollMaxInterval: 10 * time.Second,
		Heartbeat: 10 * time.Second, Metrics: time.Minute,
	}, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	a := &fleetAgent{jr: jr, stop: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = sy.Run(ctx) }()
	go func() {
		defer wg.Done()
		if _, err := d.Recover(ctx); err == nil {
			_ = d.Run(ctx, make(chan struct{}))
		}
	}()
	go func() { wg.Wait(); close(a.done) }()
	return a
}

func (a *fleetAgent) close() {
	a.stop()
	<-a.done
	a.jr.Close()
}

// procCPU is a process's user+system CPU time in seconds (/proc/PID/stat
// counts in USER_HZ, 100 on Linux).
func procCPU(b *testing.B, pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// serveBackend runs cronium-backend serve (a process, as an operator runs
// it) on a fresh data directory, with token; it is killed at the end.
func serveBackend(b *testing.B, bin, token string) (*exec.Cmd, string) {
	b.Helper()
	var sout, serr testenv.Buffer
	serve := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data", b.TempDir())
	serve.Env = append(os.Environ(), "CRONIUM_BACKEND_TOKEN="+token)
	serve.Stdout, serve.Stderr = &sout, &serr
	if err := serve.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { serve.Process.Kill(); serve.Wait() })
	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	for range 200 {
		if m := re.FindStringSubmatch(sout.String()); m != nil {
			return serve, m[1]
		}
		time.Sleep(25 * time.Millisecond)
	}
	b.Fatalf("no listen line: %s", serr.String())
	return nil, ""
}

// BenchmarkFleet runs one cronium-backend with 10, 100 and 500 agents
// (the real dispatcher, journal and syncer each, and a no-op executor) and
// reports, per fleet size:
//
//   - idle-req/s/agent and idle-backend-cpu-%: what idle agents cost the
//     backend, over 15 s after every agent's first heartbeat;
//   - steady: 1000 jobs submitted at 100 jobs/s: jobs/s from the first
//     submission to the last completion, claim latency p50/p99 (claimed −
//     created), backend CPU seconds per 1000 jobs, backend RSS;
//   - burst: 1000 jobs submitted at once: jobs/s to the last completion;
//   - duplicates: jobs with more than one completing call (must be 0).
//
// b.N is not used: each size is one run of this fixed work (-benchtime 1x).
func BenchmarkFleet(b *testing.B) {
	bin := build(b)
	for _, n := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			for b.Loop() {
				fleetRun(b, bin, n)
			}
		})
	}
}

func fleetRun(b *testing.B, bin string, n int) {
	serve, url := serveBackend(b, bin, fleetToken)
	pid := serve.Process.Pid
	dev, err := devserver.NewDevClient(url, fleetToken)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var requests atomic.Int64
	agents := make([]*fleetAgent, n)
	root := b.TempDir()
	for i := range agents {
		dir := filepath.Join(root, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		agents[i] = startFleetAgent(b, url, fmt.Sprintf("fleet-%03d", i), dir, &requests)
	}
	defer func() {
		var wg sync.WaitGroup
		for _, a := range agents {
			wg.Add(1)
			go func() { defer wg.Done(); a.close() }()
		}
		wg.Wait()
	}()
	waitUntil(b, time.Minute, "every agent's first heartbeat", func() bool {
		orchs, err := dev.Orchestrators(ctx)
		heard := 0
		for _, o := range orchs {
			if o.HeartbeatAt != nil {
				heard++
			}
		}
		return err == nil && heard == n
	})

	// Idle.
	const idle = 15 * time.Second
	time.Sleep(2 * time.Second) // the first claims are held by now
	r0, c0 := requests.Load(), procCPU(b, pid)
	time.Sleep(idle)
	r1, c1 := requests.Load(), procCPU(b, pid)
	b.ReportMetric(float64(r1-r0)/idle.Seconds()/float64(n), "idle-req/s/agent")
	b.ReportMetric(100*(c1-c0)/idle.Seconds(), "idle-backend-cpu-%")

	// Steady stream: 1000 jobs at 100 jobs/s.
	const jobs = 1000
	self := os.Getpid()
	c0, a0 := procCPU(b, pid), procCPU(b, self)
	h0, _ := testenv.HostBusy()
	start := time.Now()
	ids := submitJobs(b, dev, jobs, 10*time.Millisecond)
	waitCompleted(b, dev, jobs)
	took := time.Since(start)
	c1, a1 := procCPU(b, pid), procCPU(b, self)
	h1, _ := testenv.HostBusy()
	b.ReportMetric(jobs/took.Seconds(), "steady-jobs/s")
	b.ReportMetric((c1-c0)*1000/jobs, "backend-cpu-s/1000jobs")
	// The agents (and the submitting client) share this process: what is
	// left of the host's two cores for the backend shows here.
	b.ReportMetric((a1-a0)*1000/jobs, "agents-cpu-s/1000jobs")
	b.ReportMetric(100*(h1-h0)/took.Seconds(), "host-busy-%")
	b.ReportMetric(testenv.RSSMiB(pid), "backend-rss-MiB")
	var lat []time.Duration
	for _, id := range ids {
		v, err := dev.Job(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if v.ClaimedAt != nil {
			lat = append(lat, v.ClaimedAt.Sub(v.CreatedAt))
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "claim-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "claim-p99-ms")

	// Burst: 1000 jobs at once.
	start = time.Now()
	submitJobs(b, dev, jobs, 0)
	waitCompleted(b, dev, 2*jobs)
	b.ReportMetric(jobs/time.Since(start).Seconds(), "burst-jobs/s")

	st, err := dev.Stats(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(st.Duplicates)), "duplicates")
	if len(st.Duplicates) > 0 || st.ByStatus[devserver.StatusCompleted] != 2*jobs {
		b.Errorf("%d agents: %v completed, duplicates %v", n, st.ByStatus, st.Duplicates)
	}
}

// submitJobs submits trivial jobs, one every `every` (0: as fast as 8
// submitters go), and returns their ids.
func submitJobs(b *testing.B, dev *devserver.DevClient, n int, every time.Duration) []string {
	ids := make([]string, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id, err := dev.Submit(context.Background(), devserver.SubmitRequest{Runtime: "bash", Script: "true"})
				if err != nil {
					b.Error(err)
					continue
				}
				ids[i] = id
			}
		}()
	}
	var tick *time.Ticker
	if every > 0 {
		tick = time.NewTicker(every)
		defer tick.Stop()
	}
	for i := range n {
		if tick != nil {
			<-tick.C
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return ids
}

func waitCompleted(b *testing.B, dev *devserver.DevClient, n int) {
	waitUntil(b, 5*time.Minute, fmt.Sprintf("%d jobs completed", n), func() bool {
		st, err := dev.Stats(context.Background())
		return err == nil && st.ByStatus[devserver.StatusCompleted] >= n
	})
}

func waitUntil(b *testing.B, within time.Duration, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
