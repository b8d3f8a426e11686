package container_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner/container"
)

// BenchmarkTrivialJob measures a trivial bash job from "start requested" to
// "exit captured and cleaned up", and, as the baseline, a plain `runc run` of
// the same remapped root filesystem with the same spec.
func BenchmarkTrivialJob(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	b.Run("agent", func(b *testing.B) {
		warm := h.run(ctx, b, "bash", "echo hi")
		if warm.err != nil {
			b.Fatal(warm.err)
		}
		lat := make([]time.Duration, 0, b.N)
		cleaned := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			start := time.Now()
			r := h.run(ctx, b, "bash", "echo hi")
			lat = append(lat, time.Since(start))
			if r.err != nil || r.stdout.String() != "hi\n" {
				b.Fatalf("%v %q", r.err, r.stdout.String())
			}
			// The network's teardown finishes in the background.
			if err := h.ex.Wait(ctx); err != nil {
				b.Fatal(err)
			}
			cleaned = append(cleaned, time.Since(start))
		}
		reportLatency(b, lat)
		slices.Sort(cleaned)
		b.ReportMetric(float64(cleaned[len(cleaned)/2].Microseconds())/1000, "cleaned-p50-ms")
	})
	b.Run("runc", func(b *testing.B) {
		bundle := runcBundle(b, h)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			start := time.Now()
			cmd := exec.Command("runc", "--root", filepath.Join(bundle, "state"), "run", "--bundle", bundle, fmt.Sprintf("cronium-bench-%d-%d", os.Getpid(), i))
			out, err := cmd.Output()
			lat = append(lat, time.Since(start))
			if err != nil || string(out) != "hi\n" {
				b.Fatalf("runc run: %v %q", err, out)
			}
		}
		reportLatency(b, lat)
	})
}

// BenchmarkThroughput runs trivial jobs four at a time.
func BenchmarkThroughput(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	if r := h.run(ctx, b, "bash", "true"); r.err != nil {
		b.Fatal(r.err)
	}
	const workers = 4
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if r := h.run(ctx, b, "bash", "echo hi"); r.err != nil || r.ExitCode != 0 {
					b.Errorf("%v exit %d", r.err, r.ExitCode)
				}
			}
		}()
	}
	for range b.N {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
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
