package runner

import (
	"context"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/hoststats"
	"github.com/cronium/cronium-agent/state"
)

// HostSampler reads the host's figures for the backend's metrics call;
// *hoststats.Sampler is the agent's.
type HostSampler interface {
	Sample() (hoststats.Reading, error)
}

// hostFigures fills in the host's CPU, memory and disk percentages. A
// figure that cannot be read stays zero: the metrics call is informational
// and goes out with the others.
func (d *Dispatcher) hostFigures(m *api.AgentMetrics) {
	if d.cfg.Host == nil {
		return
	}
	r, err := d.cfg.Host.Sample()
	if err != nil {
		d.log.Debug("host figures for the metrics incomplete", "error", err)
	}
	m.CPUUsage, m.MemoryUsage, m.DiskUsage = r.CPUPercent, r.MemoryPercent, r.DiskPercent
}

// jobFigures counts, among the jobs the dispatcher holds, those running in
// a container and those claimed but not started.
//
// The dispatcher has no queue of its own: it claims only as many jobs as
// it has free slots and starts each at once. Its queue depth is therefore
// the jobs it holds whose first attempt has not begun: being journaled
// (no record yet) or journaled as claimed (being acknowledged). The
// backend's queue is the backend's to count.
//
// A container job counts as active from its attempt's start (the setup
// creates the container) to the end of that attempt's execution; one
// waiting to retry has no container.
func (d *Dispatcher) jobFigures(ctx context.Context) (active, queued int) {
	for _, r := range d.Running() {
		p, target, ok := d.heldJob(ctx, r.JobID)
		switch {
		case !ok || p.State == state.Claimed:
			queued++
		case p.State == state.Running && !p.ExecutionEnded && target == TargetContainer:
			active++
		}
	}
	return active, queued
}

// heldJob returns the progress and target of a job the dispatcher holds;
// ok is false while its claim is not journaled yet.
func (d *Dispatcher) heldJob(ctx context.Context, jobID string) (p state.Progress, target Target, ok bool) {
	if jb := d.env.jobs.Live(jobID); jb != nil {
		target, _ = TargetOf(jb.Backend())
		return jb.Progress(), target, true
	}
	// Not live: being journaled, or just ended (its slot is freed right
	// after); the journal tells which.
	p, ok, err := d.env.jobs.Get(ctx, jobID)
	if err != nil {
		return state.Progress{}, "", true // unknown: counted as neither
	}
	return p, "", ok
}
