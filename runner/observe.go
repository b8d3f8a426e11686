package runner

import (
	"time"

	"github.com/cronium/cronium-agent/backend/api"
)

// Observer hears what the dispatcher does, for metrics. Its methods must
// not block: they are called on the jobs' paths.
type Observer interface {
	// Claimed: a job was claimed, waiting has passed since it was due.
	Claimed(target Target, waiting time.Duration)
	// JobEnded: a job's one completing item is journaled.
	JobEnded(e JobEnd)
}

// JobEnd is a job's end as metrics count it.
type JobEnd struct {
	Target Target
	// Status is the job's: completed, failed, timeout or cancelled
	// (failed too for a job that never ran).
	Status api.Status
	// Setup, Run and Cleanup are the last attempt's phases (zero when it
	// never started).
	Setup, Run, Cleanup time.Duration
}

func (o outcome) end() JobEnd {
	e := JobEnd{Target: o.executor, Status: o.Status}
	if o.NeverRan || e.Status == "" {
		e.Status = api.StatusFailed
	}
	if o.NeverRan || o.Start.IsZero() {
		return e
	}
	if !o.attemptStart.IsZero() && o.Start.After(o.attemptStart) {
		e.Setup = o.Start.Sub(o.attemptStart)
	}
	if o.End.After(o.Start) {
		e.Run = o.End.Sub(o.Start)
	}
	if o.Cleaned.After(o.End) {
		e.Cleanup = o.Cleaned.Sub(o.End)
	}
	return e
}
