package container_test

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/cronium/cronium-agent/internal/ociruntime"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner/container"
)

// The benchmarks here put every figure of the agent beside its floor, a
// plain `runc run` of the same remapped root filesystem with the same spec,
// measured in the same run: machines differ twofold and drift, ratios hold.
// hack/bench.sh turns their lines into bench/latest.md.

// BenchmarkTrivialJob measures a trivial bash job from "start requested" to
// "exit captured and cleaned up", and, as the baseline, a plain `runc run` of
// the same remapped root filesystem with the same spec. Both report the
// whole host's CPU per job (cpu-ms/job: every process, see cpuMeter).
func BenchmarkTrivialJob(b *testing.B) {
	// agent: each job finds a warm sandbox ready, as on a host that had a
	// moment between jobs (the wait for it is not timed; its CPU counts).
	// agent-cold: no pool, every job makes its run.
	h := newHarness(b)
	cold := newHarnessWith(b, []harnessOpt{coldStarts()})
	for _, v := range []struct {
		name string
		h    *harness
	}{{"agent", h}, {"agent-cold", cold}} {
		b.Run(v.name, func(b *testing.B) { trivialJobs(b, v.h) })
	}
	// runc: the floor. crun: the same bundle under crun, the runtime the
	// agent prefers where it can run jobs (internal/ociruntime).
	for _, rt := range []string{ociruntime.Runc, ociruntime.Crun} {
		b.Run(rt, func(b *testing.B) {
			if rt == ociruntime.Crun {
				if _, err := ociruntime.Choose(ociruntime.Crun, "/sys/fs/cgroup", exec.LookPath); err != nil {
					b.Skip(err)
				}
			}
			bundle := runcBundle(b, h)
			lat := make([]time.Duration, 0, b.N)
			cpu := startCPU(b)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				ociRun(b, rt, bundle, i)
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			cpu.report(b, b.N)
			reportLatency(b, lat)
		})
	}
}

// trivialJobs runs b.N trivial jobs one after another and reports their
// latency from "start requested" to "result", the time until their
// removal is done too, and the host's CPU per job.
func trivialJobs(b *testing.B, h *harness) {
	ctx := context.Background()
	first := h.run(ctx, b, "bash", "echo hi")
	if first.err != nil {
		b.Fatal(first.err)
	}
	if err := h.ex.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	cleaned := make([]time.Duration, 0, b.N)
	before := h.ex.PoolStats()
	cpu := startCPU(b)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		req := h.request(b, "bash", "echo hi") // a warm harness waits for its sandbox here
		b.StartTimer()
		start := time.Now()
		r := h.runRequest(ctx, b, req, nil)
		lat = append(lat, time.Since(start))
		if r.err != nil || r.stdout.String() != "hi\n" {
			b.Fatalf("%v %q", r.err, r.stdout.String())
		}
		// The run's removal finishes in the background.
		if err := h.ex.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		cleaned = append(cleaned, time.Since(start))
	}
	b.StopTimer()
	cpu.report(b, b.N)
	reportLatency(b, lat)
	b.ReportMetric(ms(percentile(cleaned, 0.50)), "cleaned-p50-ms")
	if after := h.ex.PoolStats(); after.Made > 0 {
		// A sandbox made and not taken is CPU spent for nothing.
		b.ReportMetric(float64(after.Made-before.Made)/float64(b.N), "sandboxes-made/job")
		b.ReportMetric(float64(after.Taken-before.Taken)/float64(b.N), "sandboxes-taken/job")
	}
}

// BenchmarkThroughput runs trivial jobs 1, 4 and 8 at a time (c=N): N
// workers, each starting its next job when its last one has ended, through
// the executor in the test process (agent) and as `runc run`s of the same
// bundle (runc), back to back at each concurrency. Each reports jobs/s, the
// p50 and p99 of a job's latency and the host's CPU per job.
func BenchmarkThroughput(b *testing.B) {
	// As the agent runs by default: one warm sandbox per image, taken
	// when ready, a cold start otherwise.
	h := warmHarness(b, container.WarmPool{Size: 1})
	ctx := context.Background()
	if r := h.run(ctx, b, "bash", "true"); r.err != nil {
		b.Fatal(r.err)
	}
	bundle := runcBundle(b, h)
	var seq atomic.Int64
	for _, workers := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("c=%d", workers), func(b *testing.B) {
			b.Run("agent", func(b *testing.B) {
				if err := h.ex.Wait(ctx); err != nil {
					b.Fatal(err)
				}
				throughput(b, workers, func() {
					if r := h.run(ctx, b, "bash", "echo hi"); r.err != nil || r.ExitCode != 0 || r.stdout.String() != "hi\n" {
						b.Errorf("%v exit %d %q", r.err, r.ExitCode, r.stdout.String())
					}
				}, func() {
					// Count the last networks' teardown too.
					if err := h.ex.Wait(ctx); err != nil {
						b.Error(err)
					}
				})
			})
			b.Run("runc", func(b *testing.B) {
				throughput(b, workers, func() { runcRun(b, bundle, int(seq.Add(1))) }, func() {})
			})
		})
	}
}

// throughput runs job b.N times on workers goroutines and reports jobs/s,
// the p50 and p99 of one job's duration and the host's CPU per job; settle
// runs once all have ended, inside the CPU measurement.
func throughput(b *testing.B, workers int, job, settle func()) {
	jobs := make(chan struct{})
	lats := make(chan time.Duration, b.N)
	var wg sync.WaitGroup
	cpu := startCPU(b)
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				t := time.Now()
				job()
				lats <- time.Since(t)
			}
		}()
	}
	for range b.N {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	settle()
	b.StopTimer()
	cpu.report(b, b.N)
	close(lats)
	var lat []time.Duration
	for l := range lats {
		lat = append(lat, l)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
	reportLatency(b, lat)
}

// runcRun runs the bundle's trivial job once, as container i.
func runcRun(b *testing.B, bundle string, i int) { ociRun(b, ociruntime.Runc, bundle, i) }

// ociRun runs the bundle's trivial job once with the OCI runtime bin, as
// container i.
func ociRun(b *testing.B, bin, bundle string, i int) {
	cmd := exec.Command(bin, "--root", filepath.Join(bundle, "state"), "run", "--bundle", bundle, fmt.Sprintf("cronium-bench-%d-%d", os.Getpid(), i))
	out, err := cmd.Output()
	if err != nil || string(out) != "hi\n" {
		b.Errorf("%s run: %v %q", bin, err, out)
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	b.ReportMetric(ms(percentile(lat, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 0.99)), "p99-ms")
}

// percentile is the nearest-rank percentile p (0 < p ≤ 1) of lat, which it
// sorts.
func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	i := int(math.Ceil(p*float64(len(lat)))) - 1
	return lat[min(max(i, 0), len(lat)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuIdleWindow is how long a cpuMeter watches the idle host before a run.
const cpuIdleWindow = 3 * time.Second

// cpuMeter measures the CPU a run costs the whole host: every process
// involved (the test process, containerd, shims, runc, CNI plugins,
// iptables, the output logger) counts. It reads the host's busy time from
// /proc/stat (user, nice, system, irq, softirq and steal of all CPUs) and
// subtracts what the host used while idle: its rate over cpuIdleWindow just
// before the run, times the run's duration.
type cpuMeter struct {
	skip     bool
	idleRate float64 // busy seconds per second while idle
	busy0    float64
	t0       time.Time
}

// startCPU measures the idle rate, then starts. Go first runs a benchmark
// once (b.N 1) to size it: unless -benchtime is 1x, that probe skips the
// idle window and reports nothing.
func startCPU(b *testing.B) *cpuMeter {
	if b.N == 1 {
		if f := flag.Lookup("test.benchtime"); f == nil || f.Value.String() != "1x" {
			return &cpuMeter{skip: true}
		}
	}
	t0, busy0 := time.Now(), hostBusy(b)
	time.Sleep(cpuIdleWindow)
	t1, busy1 := time.Now(), hostBusy(b)
	return &cpuMeter{idleRate: (busy1 - busy0) / t1.Sub(t0).Seconds(), busy0: busy1, t0: t1}
}

// report reports the run's CPU per job, in ms, as cpu-ms/job.
func (m *cpuMeter) report(b *testing.B, jobs int) {
	if m.skip {
		return
	}
	busy := hostBusy(b) - m.busy0 - m.idleRate*time.Since(m.t0).Seconds()
	b.ReportMetric(busy*1000/float64(jobs), "cpu-ms/job")
}

// hostBusy is testenv.HostBusy, failing the benchmark on an error.
func hostBusy(b *testing.B) float64 {
	v, err := testenv.HostBusy()
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// runcBundle mounts a view of the remapped bash image and writes the spec
// the agent would use, so runc runs exactly what a job runs.
func runcBundle(b *testing.B, h *harness) string {
	ctx := context.Background()
	key, err := h.ex.PrepareImage(ctx, h.policy.Images["bash"])
	if err != nil {
		b.Fatal(err)
	}
	bundle := testenv.StateDir(b)
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		b.Fatal(err)
	}
	sn := h.client.SnapshotService(h.ex.Snapshotter())
	viewKey := "cronium-bench-" + filepath.Base(bundle)
	mounts, err := sn.View(ctx, viewKey, key, snapshots.WithLabels(map[string]string{container.LabelAgent: "bench"}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sn.Remove(ctx, viewKey) })
	if err := mount.All(mounts, rootfs); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = mount.UnmountAll(rootfs, 0) })
	spec, err := oci.Spec(oci.Job{
		ID: "bench", Hostname: "bench", Args: []string{"bash", "-c", "echo hi"}, Env: []string{"PATH=/usr/bin:/bin"},
		Resources:    oci.Resources{CPU: 0.5, MemoryBytes: 512 << 20, Pids: 100, TmpBytes: 64 << 20, WorkspaceBytes: 256 << 20},
		CgroupParent: container.CgroupParent, IDMap: oci.IDMap{HostUID: 100000, HostGID: 100000, Size: 65536},
	})
	if err != nil {
		b.Fatal(err)
	}
	spec.Root.Path = rootfs
	// A view is already read-only; runc must not try to create the
	// workspace mount point in it, so work in /tmp as any image allows.
	spec.Process.Cwd = "/tmp"
	spec.Linux.CgroupsPath = "" // runc picks a cgroup per container id
	writeJSON(b, filepath.Join(bundle, "config.json"), spec)
	return bundle
}
