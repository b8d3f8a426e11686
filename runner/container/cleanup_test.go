package container_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/output"
)

// After 200 runs ending every way a run can end (success, failure, timeout,
// cancellation, out of memory, killed while its network was being set up),
// nothing is left: the harness's cleanup checks containers, tasks,
// snapshots, cgroups, mounts, processes, files, namespaces, bridges, network
// records, leases and runtime API listeners; veths are counted here.
func TestNothingLeftAfter200Runs(t *testing.T) {
	h := newHarness(t, container.WithKillGrace(500*time.Millisecond))
	type kind struct {
		name   string
		run    func(ctx context.Context) *result
		status api.Status
	}
	kinds := []kind{
		{"ok", func(ctx context.Context) *result { return h.run(ctx, t, "bash", "echo ok") }, api.StatusCompleted},
		{"fail", func(ctx context.Context) *result { return h.run(ctx, t, "bash", "exit 7") }, api.StatusFailed},
		{"timeout", func(ctx context.Context) *result {
			return h.run(ctx, t, "bash", "sleep 60", withTimeout(time.Second))
		}, api.StatusTimeout},
		{"cancelled", func(ctx context.Context) *result {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			return h.runWith(ctx, t, "bash", "echo up; sleep 60", func(e output.Entry) { cancel() })
		}, api.StatusCancelled},
		{"oom", func(ctx context.Context) *result {
			return h.run(ctx, t, "python", "b = bytearray(256 << 20)", withMemory(32<<20))
		}, api.StatusFailed},
		{"killed in setup", func(ctx context.Context) *result {
			ctx, cancel := context.WithTimeout(ctx, time.Duration(rand.IntN(60))*time.Millisecond)
			defer cancel()
			return h.run(ctx, t, "bash", "echo too late")
		}, ""},
	}
	const runs, workers = 200, 4
	var wg sync.WaitGroup
	jobs := make(chan int)
	var mu sync.Mutex
	counts := map[string]int{}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				k := kinds[i%len(kinds)]
				r := k.run(context.Background())
				mu.Lock()
				counts[k.name]++
				mu.Unlock()
				if k.status == "" {
					// Stopped before or during setup: an error saying so, or,
					// when setup won the race, a cancelled run.
					if r.err == nil && r.Status != api.StatusCancelled && r.Status != api.StatusCompleted {
						t.Errorf("run %d (%s): status %s", i, k.name, r.Status)
					}
					if r.err != nil && !errors.Is(r.err, context.DeadlineExceeded) && !strings.Contains(r.err.Error(), "context deadline exceeded") {
						t.Errorf("run %d (%s): %v", i, k.name, r.err)
					}
					continue
				}
				if r.err != nil {
					t.Errorf("run %d (%s): %v", i, k.name, r.err)
					continue
				}
				if r.Status != k.status {
					t.Errorf("run %d (%s): status %s, want %s", i, k.name, r.Status, k.status)
				}
			}
		}()
	}
	for i := range runs {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	t.Logf("runs by kind: %v", counts)
	if fmt.Sprint(counts) != "map[cancelled:33 fail:34 killed in setup:33 ok:34 oom:33 timeout:33]" {
		t.Errorf("counts %v", counts)
	}
}
