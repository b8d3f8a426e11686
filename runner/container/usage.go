package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Usage is what a run's processes consumed, read from its cgroup when the
// task has exited and before it is deleted (runc removes the cgroup with
// the task). A nil figure is unknown: the kernel does not keep it
// (memory.peak came with Linux 5.19) or it could not be read. A zero would
// claim a job that used nothing.
type Usage struct {
	// CPUSeconds is the CPU time of all the job's processes, every core
	// added up.
	CPUSeconds *float64
	// PeakMemoryBytes is the most memory the job's cgroup held at once,
	// page cache and tmpfs files (/tmp, /workspace) included, as the
	// memory limit counts it.
	PeakMemoryBytes *int64
}

// cgroupUsage reads the usage of the cgroup at cgroupsPath (the spec's
// CgroupsPath) below root, in either layout: v2 has one directory with
// every controller's files, v1 one directory per controller.
func cgroupUsage(root, cgroupsPath string) Usage {
	if strings.Trim(cgroupsPath, "/") == "" {
		// Unknown (an adopted container without it): root's files are
		// the whole host's.
		return Usage{}
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return usageV2(filepath.Join(root, cgroupsPath))
	}
	return usageV1(root, cgroupsPath)
}

// usageV2 reads cpu.stat's usage_usec and memory.peak.
func usageV2(dir string) Usage {
	var u Usage
	if usec, ok := readCounter(filepath.Join(dir, "cpu.stat"), "usage_usec"); ok {
		u.CPUSeconds = new(float64(usec) / 1e6)
	}
	if peak, err := readNumber(filepath.Join(dir, "memory.peak")); err == nil {
		u.PeakMemoryBytes = new(int64(peak))
	}
	return u
}

// usageV1 reads cpuacct.usage (nanoseconds) and memory.max_usage_in_bytes.
// cpuacct is mounted on its own or with cpu ("cpu,cpuacct", often without
// the cpuacct symlink).
func usageV1(root, cgroupsPath string) Usage {
	var u Usage
	for _, ctl := range []string{"cpuacct", "cpu,cpuacct", "cpuacct,cpu"} {
		if ns, err := readNumber(filepath.Join(root, ctl, cgroupsPath, "cpuacct.usage")); err == nil {
			u.CPUSeconds = new(float64(ns) / 1e9)
			break
		}
	}
	if peak, err := readNumber(filepath.Join(root, "memory", cgroupsPath, "memory.max_usage_in_bytes")); err == nil {
		u.PeakMemoryBytes = new(int64(peak))
	}
	return u
}

// readNumber reads a cgroup file holding one unsigned number.
func readNumber(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	return n, nil
}
