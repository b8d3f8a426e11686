// Package hoststats samples the figures of the agent's host that the
// backend's metrics call carries: CPU utilisation, memory in use and the
// fullness of the filesystem holding the agent's state. It reads /proc and
// statfs only; every path can be pointed elsewhere, so that tests read
// files of their own.
package hoststats

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Reading is one sample of the host, each figure in percent (0–100).
type Reading struct {
	// CPUPercent is the utilisation of all CPUs together since the
	// previous sample (since boot for the first one).
	CPUPercent float64
	// MemoryPercent is (MemTotal - MemAvailable) / MemTotal.
	MemoryPercent float64
	// DiskPercent is the used share of the filesystem holding DiskPath,
	// as df counts it: used / (used + available to unprivileged users).
	DiskPercent float64
}

// Sampler reads the host's figures. It keeps the CPU counters of its
// previous sample, so that each sample covers the interval since then;
// it is safe for concurrent use.
type Sampler struct {
	procStat string
	meminfo  string
	diskPath string
	statfs   func(path string, st *unix.Statfs_t) error

	mu      sync.Mutex
	last    cpuTimes
	hasLast bool
	lastPct float64
}

// Option configures a Sampler.
type Option func(*Sampler)

// WithProcStat reads the CPU counters from path (default /proc/stat).
func WithProcStat(path string) Option { return func(s *Sampler) { s.procStat = path } }

// WithMeminfo reads memory figures from path (default /proc/meminfo).
func WithMeminfo(path string) Option { return func(s *Sampler) { s.meminfo = path } }

// WithDiskPath measures the filesystem holding path, the agent's state
// directory (default /).
func WithDiskPath(path string) Option { return func(s *Sampler) { s.diskPath = path } }

// withStatfs replaces the statfs call, for tests of the arithmetic.
func withStatfs(fn func(string, *unix.Statfs_t) error) Option {
	return func(s *Sampler) { s.statfs = fn }
}

// New returns a Sampler of this host, or of the files opts name.
func New(opts ...Option) *Sampler {
	s := &Sampler{procStat: "/proc/stat", meminfo: "/proc/meminfo", diskPath: "/", statfs: unix.Statfs}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Sample reads every figure. A figure that cannot be read is zero and its
// error is joined into err; the others are still good.
func (s *Sampler) Sample() (Reading, error) {
	var r Reading
	var errs []error
	var err error
	if r.CPUPercent, err = s.cpu(); err != nil {
		errs = append(errs, err)
	}
	if r.MemoryPercent, err = memoryPercent(s.meminfo); err != nil {
		errs = append(errs, err)
	}
	if r.DiskPercent, err = s.disk(); err != nil {
		errs = append(errs, err)
	}
	return r, errors.Join(errs...)
}

// cpuTimes are the aggregate counters of /proc/stat's "cpu" line, in
// clock ticks.
type cpuTimes struct{ total, idle uint64 }

// cpu is the utilisation since the previous sample. The first sample has
// no previous one and gives the average since boot, which is a real figure
// where a zero would claim an idle host.
func (s *Sampler) cpu() (float64, error) {
	now, err := readCPUTimes(s.procStat)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, hadPrev := s.last, s.hasLast
	s.last, s.hasLast = now, true
	switch {
	case !hadPrev || now.total < prev.total:
		// No previous sample, or counters that went back (the file was
		// swapped under a test): the counters alone.
		s.lastPct = busyPercent(now.total, now.idle)
	case now.total > prev.total:
		s.lastPct = busyPercent(now.total-prev.total, max(now.idle, prev.idle)-prev.idle)
	}
	// Samples within one clock tick keep the previous figure.
	return s.lastPct, nil
}

func busyPercent(total, idle uint64) float64 {
	if total == 0 {
		return 0
	}
	return clampPercent(float64(total-min(idle, total)) / float64(total) * 100)
}

// readCPUTimes parses the first line of /proc/stat:
//
//	cpu  user nice system idle iowait irq softirq steal guest guest_nice
//
// guest and guest_nice are already counted in user and nice, so the total
// stops at steal; iowait counts as idle, as top does.
func readCPUTimes(path string) (cpuTimes, error) {
	f, err := os.Open(path)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read CPU counters: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "cpu" {
			continue
		}
		return parseCPULine(path, fields[1:])
	}
	if err := sc.Err(); err != nil {
		return cpuTimes{}, fmt.Errorf("read CPU counters from %s: %w", path, err)
	}
	return cpuTimes{}, fmt.Errorf("read CPU counters: no cpu line in %s", path)
}

func parseCPULine(path string, fields []string) (cpuTimes, error) {
	const idleField, iowaitField, counted = 3, 4, 8
	if len(fields) < iowaitField+1 {
		return cpuTimes{}, fmt.Errorf("read CPU counters: %s has %d counters on its cpu line, want at least 5", path, len(fields))
	}
	var t cpuTimes
	for i, f := range fields[:min(len(fields), counted)] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("read CPU counters from %s: counter %d: %w", path, i+1, err)
		}
		t.total += n
		if i == idleField || i == iowaitField {
			t.idle += n
		}
	}
	return t, nil
}

// memoryPercent reads /proc/meminfo. Kernels before 3.14 have no
// MemAvailable: MemFree + Buffers + Cached stands in for it there.
func memoryPercent(path string) (float64, error) {
	kb, err := readMeminfo(path)
	if err != nil {
		return 0, err
	}
	total, ok := kb["MemTotal"]
	if !ok || total == 0 {
		return 0, fmt.Errorf("read memory figures: no MemTotal in %s", path)
	}
	avail, ok := kb["MemAvailable"]
	if !ok {
		avail = kb["MemFree"] + kb["Buffers"] + kb["Cached"]
	}
	avail = min(avail, total)
	return clampPercent(float64(total-avail) / float64(total) * 100), nil
}

// readMeminfo returns the fields of /proc/meminfo in kB ("Name:  123 kB").
func readMeminfo(path string) (map[string]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read memory figures: %w", err)
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		if n, err := strconv.ParseUint(fields[0], 10, 64); err == nil {
			out[strings.TrimSpace(name)] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read memory figures from %s: %w", path, err)
	}
	return out, nil
}

// disk is the used share of the filesystem holding diskPath. Blocks kept
// for root are left out of the total, as df does: the agent runs as root
// but a full disk for everyone else is what an operator needs to see.
func (s *Sampler) disk() (float64, error) {
	var st unix.Statfs_t
	if err := s.statfs(s.diskPath, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", s.diskPath, err)
	}
	used := st.Blocks - min(st.Bfree, st.Blocks)
	if used+st.Bavail == 0 {
		return 0, nil
	}
	return clampPercent(float64(used) / float64(used+st.Bavail) * 100), nil
}

func clampPercent(p float64) float64 { return min(max(p, 0), 100) }
