package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/sidecar"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/admin"
	"github.com/cronium/cronium-agent/state/journal"
	"github.com/cronium/cronium-agent/state/syncer"
)

// openJournal opens the jobs journal in the state directory, sealed with
// a key of its own kept beside it (0600).
func openJournal(cfg config.Config) (*journal.Journal, error) {
	key, err := sidecar.LoadOrCreateSecret(filepath.Join(cfg.State.Dir, "journal.key"))
	if err != nil {
		return nil, fmt.Errorf("journal key: %w", err)
	}
	// Head and tail are kept as two log items each: under heavy output an
	// item holds up to 16 Ki lines, so more would keep most of a big log.
	j, err := journal.Open(filepath.Join(cfg.State.Dir, "journal.db"), journal.WithSecretKey(key),
		journal.WithBudget(int64(cfg.Journal.Budget)), journal.WithKeepLogs(2, 2))
	if err != nil {
		return nil, fmt.Errorf("open the journal: %w", err)
	}
	return j, nil
}

// runAgent is the agent proper: it takes jobs from the backend until told
// to stop. The first SIGTERM or SIGINT drains (no new claims, running jobs
// finish for up to jobs.drainTimeout), a second one stops at once; every
// job is reported either way.
func runAgent(parent context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		return err
	}
	if cfg.Backend.URL == "" || cfg.Backend.Token == "" {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("no backend to take jobs from: set backend.url and backend.token in %s, or %s and %s (CRONIUM_API_ENDPOINT and CRONIUM_API_TOKEN are read too)",
			*cfgPath, config.EnvName("backend", "url"), config.EnvName("backend", "token"))}
	}

	drain := make(chan struct{})
	ctx, stop := context.WithCancel(context.WithoutCancel(parent))
	defer stop()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		env.log.Warn("stopping: draining running jobs (signal again to stop at once)", "timeout", time.Duration(cfg.Jobs.DrainTimeout))
		close(drain)
		select {
		case <-sigs:
			env.log.Warn("stopping at once: running jobs are cancelled and reported")
			stop()
		case <-ctx.Done():
		}
	}()

	if err := os.MkdirAll(cfg.State.Dir, 0o711); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	orchID := cfg.Backend.OrchestratorID
	if orchID == "" {
		if orchID, err = backend.OrchestratorID(cfg.State.Dir); err != nil {
			return err
		}
	}
	copts := []backend.ClientOption{backend.WithUserAgentVersion(version)}
	if cfg.Backend.EnvEncryptionKey != "" {
		key, err := backend.ParseEnvKey(cfg.Backend.EnvEncryptionKey)
		if err != nil {
			return &exitError{Code: exitUsage, Err: err}
		}
		copts = append(copts, backend.WithEnvKey(key))
	}
	client, err := backend.NewClient(cfg.Backend.URL, cfg.Backend.Token, orchID, copts...)
	if err != nil {
		return &exitError{Code: exitUsage, Err: err}
	}

	jr, err := openJournal(cfg)
	if err != nil {
		return err
	}
	defer jr.Close()
	jobs, err := state.NewJobs(jr)
	if err != nil {
		return err
	}
	fault := faultHook(env)
	sy := syncer.New(jr, client, syncer.WithConcurrency(cfg.Journal.SyncConcurrency), syncer.WithLogger(env.log), syncer.WithFault(fault))
	jobs.OnAppend(sy.Notify)
	defer background(parent, env, "journal delivery", sy.Run)()
	defer background(parent, env, "journal maintenance", func(ctx context.Context) error {
		return jobs.Maintain(ctx, time.Duration(cfg.Journal.Retain), env.log)
	})()

	ex, release, err := openExecutor(ctx, env, cfg, true, runner.NewJournalStore(jobs, client, env.log))
	if err != nil {
		return err
	}
	defer release()
	d := runner.NewDispatcher(client, jobs, sy, ex, runner.PolicyFromConfig(cfg), runner.DispatchConfig{
		OrchestratorID:  orchID,
		MaxConcurrent:   cfg.Jobs.MaxConcurrent,
		PollInterval:    time.Duration(cfg.Jobs.PollInterval),
		PollMaxInterval: time.Duration(cfg.Jobs.PollMaxInterval),
		Heartbeat:       time.Duration(cfg.Jobs.HeartbeatInterval),
		Metrics:         time.Duration(cfg.Jobs.MetricsInterval),
		DrainTimeout:    time.Duration(cfg.Jobs.DrainTimeout),
		OutputCap:       int(cfg.Jobs.OutputCap),
		Fault:           fault,
	}, env.log)
	// What a previous agent process left running is taken over first, so
	// that the sweep below finds it owned again.
	if n, err := d.Recover(ctx); err != nil {
		return err
	} else if n > 0 {
		env.log.Info("recovered unfinished jobs from the journal", "jobs", n)
	}
	// Then what nothing owns any more (the runs of a host that restarted)
	// goes; then the runtime images are remapped before any job needs them.
	if rep, err := ex.GC(ctx); err != nil {
		env.log.Warn("start-up sweep incomplete", "error", err)
	} else if !rep.Empty() {
		env.log.Info("removed leftovers of earlier runs", "containers", len(rep.Containers), "snapshots", len(rep.Snapshots), "runDirs", len(rep.RunDirs), "cgroups", len(rep.Cgroups))
	}
	if rep, err := sweepNetworks(ctx, env, cfg); err != nil {
		env.log.Warn("start-up network sweep incomplete", "error", err)
	} else if n := len(rep.Networks) + len(rep.NetNS) + len(rep.Bridges); n > 0 {
		env.log.Info("removed leftover job networks", "count", n)
	}
	for _, img := range []string{cfg.Runtimes.Bash.Image, cfg.Runtimes.Python.Image, cfg.Runtimes.Node.Image} {
		if _, err := ex.PrepareImage(ctx, img); err != nil {
			env.log.Warn("runtime image not ready; its jobs will fail until it is imported", "image", img, "error", err)
		}
	}

	insp := runner.NewInspector(d, jobs, sy)
	insp.Version, insp.OrchestratorID, insp.Backend = version, orchID, client.BaseURL()
	adm, err := admin.Listen(cfg.Admin.Socket, insp, admin.WithLogger(env.log))
	if err != nil {
		return err
	}
	defer background(parent, env, "admin socket", adm.Serve)()

	env.log.Info("cronium-agent running", "version", version, "backend", client.BaseURL(), "orchestrator", orchID, "journal", jr.Path())
	if err := d.Run(ctx, drain); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	// What the last jobs reported goes out now if the backend takes it;
	// what it does not take is delivered by the next start.
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := sy.Flush(fctx); err != nil {
		env.log.Warn("reports left in the journal for the next start", "error", err)
	}
	fcancel()
	wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ex.Wait(wctx); err != nil {
		env.log.Warn("run cleanup unfinished; the next start removes the rest", "error", err)
	}
	env.log.Info("cronium-agent stopped")
	return nil
}

// background runs fn until the returned stop is called; stop waits for it
// to return. A failure before that is logged.
func background(parent context.Context, env *cliEnv, what string, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			env.log.Error(what+" stopped", "error", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
