package main

import (
	"context"
	"time"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/internal/sdnotify"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/hoststats"
	"github.com/cronium/cronium-agent/runner/sshexec"
	"github.com/cronium/cronium-agent/sidecar"
)

// agentConfig translates the configuration into the agent's settings, and
// gives it what connects to the host (containerd, the job networks), which
// the configuration describes too.
func agentConfig(env *cliEnv, cfg config.Config, orchID string, creds sshexec.Credentials) runner.AgentConfig {
	return runner.AgentConfig{
		StateDir:        cfg.State.Dir,
		JournalBudget:   int64(cfg.Journal.Budget),
		SyncConcurrency: cfg.Journal.SyncConcurrency,
		Retain:          time.Duration(cfg.Journal.Retain),
		AdminSocket:     cfg.Admin.Socket,
		Version:         version,
		Policy:          policyFromConfig(cfg),
		Dispatch: runner.DispatchConfig{
			OrchestratorID:  orchID,
			MaxConcurrent:   cfg.Jobs.MaxConcurrent,
			PollInterval:    time.Duration(cfg.Jobs.PollInterval),
			PollMaxInterval: time.Duration(cfg.Jobs.PollMaxInterval),
			Heartbeat:       time.Duration(cfg.Jobs.HeartbeatInterval),
			Metrics:         time.Duration(cfg.Jobs.MetricsInterval),
			DrainTimeout:    time.Duration(cfg.Jobs.DrainTimeout),
			OutputCap:       int(cfg.Jobs.OutputCap),
			Fault:           faultHook(env),
			Host:            hoststats.New(hoststats.WithDiskPath(cfg.State.Dir)),
		},
		RuntimeImages: []string{cfg.Runtimes.Bash.Image, cfg.Runtimes.Python.Image, cfg.Runtimes.Node.Image},
		OpenExecutor: func(ctx context.Context, store sidecar.Store) (runner.LocalRuntime, func(), error) {
			ex, release, err := openExecutor(ctx, env, cfg, true, store)
			if err != nil {
				return nil, nil, err
			}
			// Packaged runtime images (cronium-runtimes), for a host with
			// no registry: imported once, when one is missing.
			want := []string{cfg.Runtimes.Bash.Image, cfg.Runtimes.Python.Image, cfg.Runtimes.Node.Image}
			if names, err := ex.Images().ImportMissing(ctx, cfg.Runtimes.ArchiveDir, want); err != nil {
				env.log.Warn("importing the packaged runtime images failed", "dir", cfg.Runtimes.ArchiveDir, "error", err)
			} else if len(names) > 0 {
				env.log.Info("imported the packaged runtime images", "dir", cfg.Runtimes.ArchiveDir, "images", names)
			}
			return ex, release, nil
		},
		OpenExecutors: func(_ context.Context, store sidecar.Store) (runner.Executors, func(), error) {
			x, release, err := openSSH(env, cfg, store, creds)
			if err != nil {
				return nil, nil, err
			}
			return runner.Executors{runner.TargetServer: x}, release, nil
		},
		SweepNetworks: func(ctx context.Context) (cni.SweepReport, error) { return sweepNetworks(ctx, env, cfg) },
		MetricsListen: cfg.Metrics.Listen,
		ContainerdReady: func(ctx context.Context) error {
			client, err := connect(ctx, cfg)
			if err != nil {
				return err
			}
			defer client.Close()
			_, err = client.Version(ctx)
			return err
		},
		Notify: sdnotify.New(env.environ).Notify,
		Log:    env.log,
	}
}
