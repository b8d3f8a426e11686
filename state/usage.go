package state

// Usage is what a run consumed, as its executor measured it (the container
// executor reads the job's cgroup). A nil figure is unknown: the kernel
// does not keep it, or the run was lost with its cgroup.
type Usage struct {
	CPUSeconds      *float64 `json:"cpuSeconds,omitempty"`
	PeakMemoryBytes *int64   `json:"peakMemoryBytes,omitempty"`
}
