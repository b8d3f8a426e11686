package container_test

import (
	"context"
	"testing"
)

// A run reports the CPU time and peak memory its job used, read from its
// cgroup before the cgroup is removed.
func TestRunUsage(t *testing.T) {
	h := newHarness(t)
	// Spins until the process itself has used 0.3 s of CPU (not of wall
	// time, which the job's CPU quota would stretch), and fills 64 MiB
	// (b"x" * n writes every byte, so the pages are really held).
	script := `import time
while time.process_time() < 0.3:
    pass
data = b"x" * (64 << 20)
print(len(data))
`
	r := h.run(context.Background(), t, "python", script)
	if r.err != nil || r.ExitCode != 0 {
		t.Fatalf("run: %v, exit %d, stderr %q", r.err, r.ExitCode, r.stderr.String())
	}
	u := r.Usage
	t.Logf("CPU %v s, peak memory %v bytes", deref(u.CPUSeconds), deref(u.PeakMemoryBytes))
	if u.CPUSeconds == nil || *u.CPUSeconds <= 0.1 {
		t.Errorf("CPU seconds %v, want more than 0.1", deref(u.CPUSeconds))
	}
	if u.PeakMemoryBytes == nil || *u.PeakMemoryBytes <= 20<<20 {
		t.Errorf("peak memory %v bytes, want more than 20 MiB", deref(u.PeakMemoryBytes))
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "unknown"
	}
	return *p
}
