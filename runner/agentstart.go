package runner

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/cronium/cronium-agent/sidecar"
	"github.com/cronium/cronium-agent/state/journal"
)

// openJournal opens the jobs journal in the state directory, sealed with
// a key of its own kept beside it (0600).
func openJournal(stateDir string, budget int64) (*journal.Journal, error) {
	key, err := sidecar.LoadOrCreateSecret(filepath.Join(stateDir, "journal.key"))
	if err != nil {
		return nil, fmt.Errorf("journal key: %w", err)
	}
	// Head and tail are kept as two log items each: under heavy output an
	// item holds up to 16 Ki lines, so more would keep most of a big log.
	j, err := journal.Open(filepath.Join(stateDir, "journal.db"), journal.WithSecretKey(key),
		journal.WithBudget(budget), journal.WithKeepLogs(2, 2))
	if err != nil {
		return nil, fmt.Errorf("open the journal: %w", err)
	}
	return j, nil
}

// prepare readies the host before the first claim. What a previous agent
// process left running is taken over first, so that the sweeps find it
// owned again; then what nothing owns any more (the runs of a host that
// restarted) goes; then the runtime images are remapped before any job
// needs them. Only the recovery is required: the rest is retried by runs
// and the next start.
func (a *Agent) prepare(ctx context.Context, d *Dispatcher, ex LocalRuntime) error {
	if n, err := d.Recover(ctx); err != nil {
		return err
	} else if n > 0 {
		a.log.Info("recovered unfinished jobs from the journal", "jobs", n)
	}
	if rep, err := ex.GC(ctx); err != nil {
		a.log.Warn("start-up sweep incomplete", "error", err)
	} else if !rep.Empty() {
		a.log.Info("removed leftovers of earlier runs", "containers", len(rep.Containers), "snapshots", len(rep.Snapshots), "runDirs", len(rep.RunDirs), "cgroups", len(rep.Cgroups))
	}
	if rep, err := a.cfg.SweepNetworks(ctx); err != nil {
		a.log.Warn("start-up network sweep incomplete", "error", err)
	} else if n := len(rep.Networks) + len(rep.NetNS) + len(rep.Bridges) + len(rep.Veths); n > 0 {
		a.log.Info("removed leftover job networks", "count", n)
	}
	for _, img := range a.cfg.RuntimeImages {
		if _, err := ex.PrepareImage(ctx, img); err != nil {
			a.log.Warn("runtime image not ready; its jobs will fail until it is imported", "image", img, "error", err)
		}
	}
	return nil
}
