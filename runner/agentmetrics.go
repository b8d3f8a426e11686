package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/cronium/cronium-agent/runner/metrics"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/syncer"
)

// metricsObserver feeds the dispatcher's claims and job ends to the
// metrics.
type metricsObserver struct{ m *metrics.Metrics }

func (o metricsObserver) Claimed(t Target, waiting time.Duration) { o.m.Claimed(string(t), waiting) }

func (o metricsObserver) JobEnded(e JobEnd) {
	o.m.JobEnded(string(e.Target), string(e.Status), e.Setup, e.Run, e.Cleanup)
}

// metricsSource reads the agent's state for the gauges; d is set once the
// dispatcher exists (nothing scrapes before).
type metricsSource struct {
	d    *Dispatcher
	jobs *state.Jobs
	sy   *syncer.Syncer
}

func (s *metricsSource) Snapshot(ctx context.Context) (metrics.Snapshot, error) {
	jr := s.jobs.Journal()
	u, err := jr.Usage(ctx)
	if err != nil {
		return metrics.Snapshot{}, err
	}
	out := metrics.Snapshot{
		UndeliveredItems: u.PendingItems, UndeliveredBytes: u.PendingBytes,
		JournalFileBytes: u.FileSize, JournalUsedBytes: u.Used, JournalBudget: u.Budget,
		BackendReachable: s.sy.Reachable(), SyncErrors: s.sy.Errors(),
	}
	if s.d != nil {
		out.Running, out.Capacity = s.d.runningCount(), s.d.cfg.MaxConcurrent
	}
	if u.PendingItems > 0 {
		streams, err := jr.Streams(ctx)
		if err != nil {
			return out, fmt.Errorf("journal streams: %w", err)
		}
		for _, st := range streams {
			if !st.OldestPending.IsZero() && (out.OldestUndelivered.IsZero() || st.OldestPending.Before(out.OldestUndelivered)) {
				out.OldestUndelivered = st.OldestPending
			}
		}
	}
	return out, nil
}
