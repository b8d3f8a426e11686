package state

import (
	"context"
	"log/slog"
	"time"
)

// maintainEvery is how often Maintain looks at the journal's size: an
// outage with chatty jobs fills it at disk speed.
const maintainEvery = 2 * time.Second

// Maintain keeps the journal within its budget (see journal.Prune) and
// drops what is kept of jobs delivered longer than retain ago, until ctx
// ends.
func (s *Jobs) Maintain(ctx context.Context, retain time.Duration, log *slog.Logger) error {
	t := time.NewTicker(maintainEvery)
	defer t.Stop()
	lastExpire := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		rep, err := s.j.Prune(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error("journal prune failed", "error", err)
		} else if rep.DroppedItems > 0 {
			log.Warn("journal over its budget: undelivered log lines dropped from the middle of the largest logs",
				"droppedBatches", rep.DroppedItems, "droppedBytes", rep.DroppedBytes, "budget", rep.Budget)
		}
		if time.Since(lastExpire) < time.Minute {
			continue
		}
		lastExpire = time.Now()
		if n, err := s.Expire(ctx, s.now().Add(-retain)); err != nil && ctx.Err() == nil {
			log.Error("journal expiry failed", "error", err)
		} else if n > 0 {
			log.Debug("journal: removed delivered jobs past retention", "jobs", n)
		}
	}
}
