package container

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCgroupUsage reads fake cgroup trees of both layouts.
func TestCgroupUsage(t *testing.T) {
	const path = "/cronium/run-1"
	type files map[string]string // below the root
	for _, tc := range []struct {
		name    string
		files   files
		cgroups string
		cpu     *float64
		peak    *int64
	}{
		{
			name: "v2",
			files: files{
				"cgroup.controllers":           "cpu memory pids\n",
				"cronium/run-1/cpu.stat":       "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
				"cronium/run-1/memory.peak":    "52428800\n",
				"cronium/run-1/memory.current": "0\n",
			},
			cpu: new(1.5), peak: new(int64(50 << 20)),
		},
		{
			name: "v2 before Linux 5.19: no memory.peak",
			files: files{
				"cgroup.controllers":     "cpu memory pids\n",
				"cronium/run-1/cpu.stat": "usage_usec 250000\n",
			},
			cpu: new(0.25),
		},
		{
			name: "v1, controllers apart",
			files: files{
				"cpuacct/cronium/run-1/cpuacct.usage":            "2000000000\n",
				"memory/cronium/run-1/memory.max_usage_in_bytes": "1048576\n",
			},
			cpu: new(2.0), peak: new(int64(1 << 20)),
		},
		{
			name: "v1, cpu and cpuacct together",
			files: files{
				"cpu,cpuacct/cronium/run-1/cpuacct.usage":        "500000000\n",
				"memory/cronium/run-1/memory.max_usage_in_bytes": "4096\n",
			},
			cpu: new(0.5), peak: new(int64(4096)),
		},
		{
			name:  "cgroup gone",
			files: files{"memory/cronium/other/memory.max_usage_in_bytes": "1\n"},
		},
		{
			name: "unreadable figures",
			files: files{
				"cpuacct/cronium/run-1/cpuacct.usage":            "lots\n",
				"memory/cronium/run-1/memory.max_usage_in_bytes": "\n",
			},
		},
		{
			// The root's files are the whole host's: never read.
			name:    "no cgroups path",
			cgroups: "/",
			files: files{
				"cpuacct/cpuacct.usage":            "99\n",
				"memory/memory.max_usage_in_bytes": "99\n",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tc.files {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cgroups := path
			if tc.cgroups != "" {
				cgroups = tc.cgroups
			}
			u := cgroupUsage(root, cgroups)
			if !sameValue(u.CPUSeconds, tc.cpu) {
				t.Errorf("CPU seconds %v, want %v", show(u.CPUSeconds), show(tc.cpu))
			}
			if !sameValue(u.PeakMemoryBytes, tc.peak) {
				t.Errorf("peak memory %v, want %v", show(u.PeakMemoryBytes), show(tc.peak))
			}
		})
	}
}

func sameValue[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

func show[T any](p *T) any {
	if p == nil {
		return "unknown"
	}
	return *p
}
