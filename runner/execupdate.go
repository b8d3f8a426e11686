package runner

import (
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/state"
)

// ms is t as the wire carries it (milliseconds): durations are computed
// from the same values, so that they add up and match the timestamps.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

// span is b-a, never negative (the wall clock may step back meanwhile, and
// the backend refuses a negative duration).
func span(a, b time.Time) time.Duration { return max(ms(b).Sub(ms(a)), 0) }

// startUpdate is the update journaled with the script's start (with the
// request's, for an HTTP job): the execution is running, and its setup
// went from the attempt's start to startedAt. "running" is the one status
// an update may carry (§3 rule).
func startUpdate(attemptStart, startedAt time.Time) api.ExecutionUpdate {
	return api.ExecutionUpdate{
		Running:            true,
		StartedAt:          attemptStart,
		SetupStartedAt:     attemptStart,
		SetupCompletedAt:   startedAt,
		ExecutionStartedAt: startedAt,
	}
}

// startItem journals startUpdate for execution exec.
func startItem(exec string, attemptStart, startedAt time.Time) (journalItem, error) {
	return state.Item(state.KindExecutionUpdate, state.ExecutionUpdateItem{ExecutionID: exec, Update: startUpdate(attemptStart, startedAt)})
}

// endUpdate is the update that closes an execution: how its run ended,
// its capped output, and how long each phase took. p is the attempt's
// journaled progress, whose times the start update sent, so the two agree.
// It never carries completedAt or a terminal status (§3 rule): the end of
// the job goes through its completing call only.
func endUpdate(p state.Progress, o outcome) api.ExecutionUpdate {
	u := api.ExecutionUpdate{ExitCode: api.Ptr(o.ExitCode), Output: api.Ptr(o.stdout)}
	errText := o.stderr
	if o.Err != "" {
		if errText != "" && errText[len(errText)-1] != '\n' {
			errText += "\n"
		}
		errText += o.Err
	}
	if errText != "" {
		u.Error = &errText
	}
	phases := map[string]any{}
	var total time.Duration
	switch {
	case !p.StartedAt.IsZero():
		// Its start was journaled (and reported): setup, execution and,
		// for a container, the removal of what the run created.
		setup, exec := span(p.AttemptStart, p.StartedAt), span(p.StartedAt, o.End)
		u.ExecutionCompletedAt = o.End
		u.SetupDuration, u.ExecutionDuration = &setup, &exec
		phases["setupMs"], phases["executionMs"] = setup.Milliseconds(), exec.Milliseconds()
		total = setup + exec
		if !o.Cleaned.IsZero() {
			cleanup := span(o.End, o.Cleaned)
			u.CleanupStartedAt, u.CleanupCompletedAt, u.CleanupDuration = o.End, o.Cleaned, &cleanup
			phases["cleanupMs"] = cleanup.Milliseconds()
			total += cleanup
		}
	case !p.AttemptStart.IsZero() && !o.End.IsZero():
		// It failed before its script started: setup only.
		setup := span(p.AttemptStart, o.End)
		u.SetupStartedAt, u.SetupCompletedAt, u.SetupDuration = p.AttemptStart, o.End, &setup
		phases["setupMs"] = setup.Milliseconds()
		total = setup
	}
	if len(phases) > 0 {
		u.TotalDuration = &total
		phases["totalMs"] = total.Milliseconds()
	}
	u.ExecutionMetadata = map[string]any{
		"executorType": string(o.executor),
		"attempt":      p.Attempt,
		"attempts":     p.Attempts,
		// How the run ended in the agent's terms; informational only
		// (inside the metadata it completes nothing).
		"outcome": string(o.Status),
		"phases":  phases,
	}
	if o.adopted {
		u.ExecutionMetadata["adopted"] = true
	}
	addUsage(u.ExecutionMetadata, o.Usage)
	return u
}

// endItems returns the end update of the current attempt's execution, or
// nothing when there is none to send: no execution (a job refused before
// any attempt), or its end already journaled (before a retry).
func endItems(p state.Progress, o outcome) ([]journalItem, error) {
	if p.ExecutionID == "" || p.ExecutionEnded {
		return nil, nil
	}
	it, err := state.Item(state.KindExecutionUpdate, state.ExecutionUpdateItem{ExecutionID: p.ExecutionID, Update: endUpdate(p, o)})
	if err != nil {
		return nil, err
	}
	return []journalItem{it}, nil
}
