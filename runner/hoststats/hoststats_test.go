package hoststats

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// write puts content in a file of the test's own and returns its path.
func write(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestMemoryPercent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		meminfo string
		want    float64
		err     string
	}{
		{name: "available", meminfo: "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\nBuffers:  10 kB\n", want: 75},
		{name: "idle host", meminfo: "MemTotal: 2048 kB\nMemAvailable: 2048 kB\n", want: 0},
		{name: "full host", meminfo: "MemTotal: 2048 kB\nMemAvailable: 0 kB\n", want: 100},
		{name: "old kernel without MemAvailable", meminfo: "MemTotal: 1000 kB\nMemFree: 200 kB\nBuffers: 100 kB\nCached: 200 kB\n", want: 50},
		{name: "available beyond total", meminfo: "MemTotal: 1000 kB\nMemAvailable: 5000 kB\n", want: 0},
		{name: "no total", meminfo: "MemFree: 1 kB\n", err: "no MemTotal"},
		{name: "zero total", meminfo: "MemTotal: 0 kB\nMemAvailable: 0 kB\n", err: "no MemTotal"},
		{name: "garbage lines skipped", meminfo: "junk\nMemTotal: 400 kB\nHugePages_Total:\nMemAvailable: 100 kB\n", want: 75},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := memoryPercent(write(t, "meminfo", tc.meminfo))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || !near(got, tc.want) {
				t.Errorf("memoryPercent = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestMemoryPercentMissingFile(t *testing.T) {
	if _, err := memoryPercent(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestCPUTimes(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       cpuTimes
		err        string
	}{
		{name: "modern kernel", stat: "cpu  100 5 50 800 20 3 2 10 40 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n", want: cpuTimes{total: 990, idle: 820}},
		{name: "guest not counted twice", stat: "cpu  100 0 0 100 0 0 0 0 1000 1000\n", want: cpuTimes{total: 200, idle: 100}},
		{name: "old kernel, 5 counters", stat: "cpu 10 0 10 70 10\n", want: cpuTimes{total: 100, idle: 80}},
		{name: "cpu line not first", stat: "intr 1 2 3\ncpu 1 1 1 1 1 1 1 1\n", want: cpuTimes{total: 8, idle: 2}},
		{name: "per-cpu lines only", stat: "cpu0 1 2 3 4 5\n", err: "no cpu line"},
		{name: "too few counters", stat: "cpu 1 2 3\n", err: "at least 5"},
		{name: "not a number", stat: "cpu 1 2 x 4 5\n", err: "counter 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readCPUTimes(write(t, "stat", tc.stat))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("readCPUTimes = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// Each sample covers the interval since the previous one.
func TestCPUPercentBetweenSamples(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stats []string // the file's content at each sample
		want  []float64
	}{
		{
			name:  "first since boot, then deltas",
			stats: []string{"cpu 300 0 0 700 0\n", "cpu 400 0 0 800 0\n", "cpu 400 0 0 900 0\n", "cpu 500 0 100 900 0\n"},
			want:  []float64{30, 50, 0, 100},
		},
		{
			name:  "iowait is idle",
			stats: []string{"cpu 0 0 0 50 50\n", "cpu 25 0 25 100 50\n"},
			want:  []float64{0, 50},
		},
		{
			name:  "same tick keeps the last figure",
			stats: []string{"cpu 10 0 0 30 0\n", "cpu 20 0 0 40 0\n", "cpu 20 0 0 40 0\n"},
			want:  []float64{25, 50, 50},
		},
		{
			name:  "counters going back start over",
			stats: []string{"cpu 500 0 0 500 0\n", "cpu 10 0 0 90 0\n"},
			want:  []float64{50, 10},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "stat")
			s := New(WithProcStat(path), WithMeminfo(write(t, "meminfo", "MemTotal: 1 kB\nMemAvailable: 1 kB\n")), WithDiskPath(t.TempDir()))
			for i, stat := range tc.stats {
				if err := os.WriteFile(path, []byte(stat), 0o644); err != nil {
					t.Fatal(err)
				}
				r, err := s.Sample()
				if err != nil {
					t.Fatalf("sample %d: %v", i, err)
				}
				if !near(r.CPUPercent, tc.want[i]) {
					t.Errorf("sample %d: CPU %v%%, want %v%%", i, r.CPUPercent, tc.want[i])
				}
			}
		})
	}
}

func TestDiskPercent(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		blocks, bfree, bavail uint64
		want                  float64
	}{
		{name: "a quarter used", blocks: 1000, bfree: 750, bavail: 750, want: 25},
		{name: "reserved blocks left out", blocks: 1000, bfree: 600, bavail: 550, want: 400.0 / 950 * 100},
		{name: "full for users", blocks: 1000, bfree: 50, bavail: 0, want: 100},
		{name: "empty filesystem", blocks: 0, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked string
			s := New(WithDiskPath("/state"), withStatfs(func(path string, st *unix.Statfs_t) error {
				asked = path
				st.Blocks, st.Bfree, st.Bavail = tc.blocks, tc.bfree, tc.bavail
				return nil
			}))
			got, err := s.disk()
			if err != nil || !near(got, tc.want) {
				t.Errorf("disk = %v, %v; want %v", got, err, tc.want)
			}
			if asked != "/state" {
				t.Errorf("statfs of %q, want /state", asked)
			}
		})
	}
}

// A figure that cannot be read is zero, with its error; the others stand.
func TestSamplePartial(t *testing.T) {
	dir := t.TempDir()
	s := New(
		WithProcStat(filepath.Join(dir, "missing-stat")),
		WithMeminfo(write(t, "meminfo", "MemTotal: 100 kB\nMemAvailable: 40 kB\n")),
		WithDiskPath(filepath.Join(dir, "missing-dir")),
	)
	r, err := s.Sample()
	if err == nil || !strings.Contains(err.Error(), "CPU counters") || !strings.Contains(err.Error(), "statfs") {
		t.Errorf("error %v, want the CPU and disk failures", err)
	}
	if want := (Reading{MemoryPercent: 60}); !near(r.MemoryPercent, 60) || r.CPUPercent != 0 || r.DiskPercent != 0 {
		t.Errorf("reading %+v, want %+v", r, want)
	}
}

// The real host and filesystem give figures in range.
func TestSampleThisHost(t *testing.T) {
	r, err := New(WithDiskPath(t.TempDir())).Sample()
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"cpu": r.CPUPercent, "memory": r.MemoryPercent, "disk": r.DiskPercent} {
		if v < 0 || v > 100 {
			t.Errorf("%s %v%%, want 0–100", name, v)
		}
	}
	if r.MemoryPercent == 0 {
		t.Error("no memory in use on a running host")
	}
}
