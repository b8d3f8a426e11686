package runner_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/hoststats"
)

// fakeHost is a hoststats sampler reading /proc files of the test's own:
// 30 % CPU, 75 % memory; the disk is the filesystem of dir.
func fakeHost(t *testing.T, dir string) *hoststats.Sampler {
	t.Helper()
	proc := t.TempDir()
	files := map[string]string{
		"stat":    "cpu  300 0 0 700 0 0 0 0 0 0\ncpu0 300 0 0 700 0 0 0 0 0 0\n",
		"meminfo": "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(proc, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return hoststats.New(hoststats.WithProcStat(filepath.Join(proc, "stat")),
		hoststats.WithMeminfo(filepath.Join(proc, "meminfo")), hoststats.WithDiskPath(dir))
}

// The metrics call carries the host's figures, the container jobs running
// and the jobs claimed but not started.
func TestDispatcherSendsHostMetrics(t *testing.T) {
	t.Parallel()
	b, w, dir := startBackend(t), newWorld(t), t.TempDir()
	// The second job to reach "claimed" waits there: claimed and
	// journaled, not started.
	faults := newFaultGate("claimed", 1)
	newAgent(t, b, w, dir, agentConfig{maxConcurrent: 2, faults: faults, host: fakeHost(t, dir)}).start()

	running := b.submit(t, devserver.SubmitRequest{Script: "out started; gate go"})
	waitFor(t, "the first job to run", func() bool { return w.runningJobs() == 1 })
	queued := b.submit(t, devserver.SubmitRequest{Script: "out second"})
	waitFor(t, "the second job to be held after its claim", func() bool { return faults.arrivals() == 1 })

	var m struct{ cpu, mem, disk float64 }
	waitFor(t, "metrics with one container running and one job queued", func() bool {
		got := metricsOf(t, b)
		m.cpu, m.mem, m.disk = got.CPUUsage, got.MemoryUsage, got.DiskUsage
		return got.ActiveContainers == 1 && got.QueueDepth == 1
	})
	if m.cpu != 30 || m.mem != 75 {
		t.Errorf("cpuUsage %v, memoryUsage %v; want 30 and 75 from the fake /proc files", m.cpu, m.mem)
	}
	if m.disk <= 0 || m.disk > 100 {
		t.Errorf("diskUsage %v, want the used share of the state directory's filesystem", m.disk)
	}

	faults.open()
	w.open("go")
	for _, id := range []string{running, queued} {
		if v := b.waitDone(t, id); v.Status != devserver.StatusCompleted {
			t.Errorf("job %s: %s", id, v.Status)
		}
	}
	waitFor(t, "metrics with nothing running or queued", func() bool {
		got := metricsOf(t, b)
		return got.JobsProcessed == 2 && got.ActiveContainers == 0 && got.QueueDepth == 0 && got.MemoryUsage == 75
	})
}

// usageRunner is the fake container executor with the cgroup figures a
// real run reports.
type usageRunner struct {
	runner.ScriptRunner
	usage container.Usage
}

func (u usageRunner) Run(ctx context.Context, req container.Request, onEntry container.EntryFunc) (container.Result, error) {
	res, err := u.ScriptRunner.Run(ctx, req, onEntry)
	if err == nil {
		res.Usage = u.usage
	}
	return res, err
}

// What a container run consumed reaches the execution's metadata and the
// journaled progress, which `cronium-agent jobs` shows.
func TestDispatcherJournalsUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		usage     container.Usage
		cpu, peak string // in the execution's metadata, as JSON
		cpuS      *float64
		peakB     *int64
	}{
		{name: "both figures", usage: container.Usage{CPUSeconds: new(0.75), PeakMemoryBytes: new(int64(64 << 20))},
			cpu: "0.75", peak: "67108864", cpuS: new(0.75), peakB: new(int64(64 << 20))},
		{name: "peak unknown", usage: container.Usage{CPUSeconds: new(0.5)},
			cpu: "0.5", peak: "", cpuS: new(0.5)}, // left out of the metadata
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, w := startBackend(t), newWorld(t)
			scripts := usageRunner{ScriptRunner: newFakeExecutor(w), usage: tc.usage}
			a := newAgent(t, b, w, t.TempDir(), agentConfig{executors: runner.Executors{
				runner.TargetContainer: runner.NewContainerExecutor(scripts, runner.DefaultPolicy()),
			}}).start()
			id := b.submit(t, devserver.SubmitRequest{Script: "out hello"})
			if v := b.waitDone(t, id); v.Status != devserver.StatusCompleted {
				t.Fatalf("job %s: %s", id, v.Status)
			}
			execs := b.executions(t, id)
			if len(execs) != 1 {
				t.Fatalf("%d executions, want 1", len(execs))
			}
			meta := execs[0].ExecutionMetadata
			if string(meta["cpuSeconds"]) != tc.cpu || string(meta["peakMemoryBytes"]) != tc.peak {
				t.Errorf("metadata cpuSeconds %s, peakMemoryBytes %s; want %s and %s", meta["cpuSeconds"], meta["peakMemoryBytes"], tc.cpu, tc.peak)
			}
			// Done on the backend: the end is journaled (and delivered).
			pr, ok := a.progress(id)
			got, _ := json.Marshal(pr.Usage)
			want, _ := json.Marshal(runner.Usage{CPUSeconds: tc.cpuS, PeakMemoryBytes: tc.peakB})
			if !ok || string(got) != string(want) {
				t.Errorf("journaled usage %s (found %v), want %s", got, ok, want)
			}
			jobs, err := runner.NewInspector(a.d, a.jobs, nil).Jobs(context.Background(), 10)
			if err != nil || len(jobs) != 1 {
				t.Fatalf("inspector: %d jobs, %v", len(jobs), err)
			}
			if j := jobs[0]; !j.Measured || !reflect.DeepEqual(j.CPUSeconds, tc.cpuS) || !reflect.DeepEqual(j.PeakMemoryBytes, tc.peakB) {
				t.Errorf("inspector: measured %v, CPU %v, peak %v", j.Measured, j.CPUSeconds, j.PeakMemoryBytes)
			}
		})
	}
}
