package runner

import (
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/state"
)

// Usage is what an attempt's run consumed, as its executor measured it; a
// nil figure is one it could not know. It is journaled as it is, with the
// job's progress.
type Usage = state.Usage

// containerUsage is a container run's usage as the runner carries it.
func containerUsage(u container.Usage) *Usage {
	return &Usage{CPUSeconds: u.CPUSeconds, PeakMemoryBytes: u.PeakMemoryBytes}
}

// addUsage puts a run's usage into its execution's metadata, a number per
// figure known. One the executor could not get is left out rather than
// zero (which would claim the job used nothing) or a word (the backend
// may read these as numbers).
func addUsage(meta map[string]any, u *Usage) {
	if u == nil {
		return
	}
	if u.CPUSeconds != nil {
		meta["cpuSeconds"] = *u.CPUSeconds
	}
	if u.PeakMemoryBytes != nil {
		meta["peakMemoryBytes"] = *u.PeakMemoryBytes
	}
}
