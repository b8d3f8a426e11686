package container

import (
	"fmt"
	"time"
)

// Phase is a point in a run that the caller is told about through
// Request.OnPhase, so that it can journal it before the run goes on.
type Phase int

// The phases (numbered as they were added; a run passes network,
// created, starting, exited, or Adopt's adopted).
const (
	// PhaseNetwork: the run's network setup has begun (it runs meanwhile).
	PhaseNetwork Phase = iota + 1
	// PhaseStarting: the task exists and is about to start; at is the
	// StartedAt its timeout counts from. An error returned here aborts the
	// run before the script starts.
	PhaseStarting
	// PhaseExited: the task's exit status is known; at is FinishedAt.
	PhaseExited
	// PhaseCreated: a cold run's container exists, its task not yet (the
	// caller's fault-injection point; its error is ignored).
	PhaseCreated
	// PhaseAdopted: Adopt holds the run (its directory and network locks):
	// from now on no sweep takes it for a leftover. Its error is ignored.
	PhaseAdopted
)

func (p Phase) String() string {
	switch p {
	case PhaseNetwork:
		return "network"
	case PhaseStarting:
		return "starting"
	case PhaseExited:
		return "exited"
	case PhaseCreated:
		return "created"
	case PhaseAdopted:
		return "adopted"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// phase tells the caller that the run reached p, if it asked to be told.
func (r Request) phase(p Phase, at time.Time) error {
	if r.OnPhase == nil {
		return nil
	}
	if err := r.OnPhase(p, at); err != nil {
		return fmt.Errorf("phase %s of job %s: %w", p, r.JobID, err)
	}
	return nil
}
