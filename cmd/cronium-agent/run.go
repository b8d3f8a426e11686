package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/runner"
)

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
		return &exitError{code: exitUsage, err: fmt.Errorf("no backend to take jobs from: set backend.url and backend.token in %s, or %s and %s (CRONIUM_API_ENDPOINT and CRONIUM_API_TOKEN are read too)",
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
			return &exitError{code: exitUsage, err: err}
		}
		copts = append(copts, backend.WithEnvKey(key))
	}
	client, err := backend.NewClient(cfg.Backend.URL, cfg.Backend.Token, orchID, copts...)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}

	ex, release, err := openExecutor(ctx, env, cfg, true, runner.NewBackendStore(client, env.log))
	if err != nil {
		return err
	}
	defer release()
	// What a previous agent left (it was killed, or the host lost power)
	// goes first; then the runtime images are remapped before any job needs them.
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

	d := runner.NewDispatcher(client, ex, runner.PolicyFromConfig(cfg), runner.DispatchConfig{
		OrchestratorID:  orchID,
		MaxConcurrent:   cfg.Jobs.MaxConcurrent,
		PollInterval:    time.Duration(cfg.Jobs.PollInterval),
		PollMaxInterval: time.Duration(cfg.Jobs.PollMaxInterval),
		Heartbeat:       time.Duration(cfg.Jobs.HeartbeatInterval),
		Metrics:         time.Duration(cfg.Jobs.MetricsInterval),
		DrainTimeout:    time.Duration(cfg.Jobs.DrainTimeout),
		OutputCap:       int(cfg.Jobs.OutputCap),
	}, env.log)
	env.log.Info("cronium-agent running", "version", version, "backend", client.BaseURL(), "orchestrator", orchID)
	if err := d.Run(ctx, drain); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ex.Wait(wctx); err != nil {
		env.log.Warn("run cleanup unfinished; the next start removes the rest", "error", err)
	}
	env.log.Info("cronium-agent stopped")
	return nil
}
