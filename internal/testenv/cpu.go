package testenv

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// HostBusy is the host's busy CPU time since boot, in seconds, over all
// CPUs: user+nice+system+irq+softirq+steal of /proc/stat's first line
// (guest time is already within user; idle and iowait are left out), for
// benchmarks that count every process's CPU. /proc/stat counts in
// USER_HZ, 100 on Linux.
func HostBusy() (float64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: %q", line)
	}
	var ticks float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %q", line)
		}
		ticks += v
	}
	return ticks / 100, nil
}

// RSSMiB is a process's resident memory (VmRSS) in MiB, or 0 when it
// cannot be read.
func RSSMiB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}
