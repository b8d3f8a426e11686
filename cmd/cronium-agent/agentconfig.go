package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/internal/sdnotify"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/hoststats"
	"github.com/cronium/cronium-agent/runner/sshexec"
	"github.com/cronium/cronium-agent/runner/toolexec"
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
		HTTP:            httpOptions(env, cfg),
		Dispatch: runner.DispatchConfig{
			OrchestratorID:  orchID,
			MaxConcurrent:   cfg.Jobs.MaxConcurrent,
			PollInterval:    time.Duration(cfg.Jobs.PollInterval),
			PollMaxInterval: time.Duration(cfg.Jobs.PollMaxInterval),
			Heartbeat:       time.Duration(cfg.Jobs.HeartbeatInterval),
			Metrics:         time.Duration(cfg.Jobs.MetricsInterval),
			DrainTimeout:    time.Duration(cfg.Jobs.DrainTimeout),
			OutputCap:       int(cfg.Jobs.OutputCap),
			Masking:         masking(cfg.Logs),
			Fault:           faultHook(env),
			Host:            hoststats.New(hoststats.WithDiskPath(cfg.State.Dir)),
		},
		RuntimeImages: []string{cfg.Runtimes.Bash.Image, cfg.Runtimes.Python.Image, cfg.Runtimes.Node.Image},
		OpenExecutor: func(ctx context.Context, store sidecar.Store) (runner.LocalRuntime, func(), error) {
			ex, release, err := openExecutor(ctx, env, cfg, true, store, warmPool(cfg))
			if err != nil {
				return nil, nil, err
			}
			oci := ex.OCIRuntime()
			env.log.Info("jobs run under "+oci.Name, "why", oci.Why)
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
			xs := runner.Executors{runner.TargetServer: x}
			if tx := toolExecutor(env, cfg); tx != nil {
				xs[runner.TargetTool] = tx // the agent then asks for TOOL_ACTION jobs
			}
			return xs, release, nil
		},
		SweepNetworks: func(ctx context.Context) (cni.SweepReport, error) { return sweepNetworks(ctx, env, cfg, false) },
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

// masking is logs as the runner takes it; an empty logs.maskNames stays
// empty (a nil list would mean the default names).
func masking(l config.Logs) runner.Masking {
	return runner.Masking{Off: !l.Mask, Names: append([]string{}, l.MaskNames...)}
}

// toolExecutor runs tool actions, for TOOL_ACTION jobs and the runtime
// API, when jobs.toolActions is on; nil otherwise. Its HTTP client and SMTP
// dialer are plain ones with timeouts (toolexec.New): the outbound policy
// (runner/netpolicy) plugs in here, as toolexec.WithHTTPClient (a client
// whose transport dials through the policy) and toolexec.WithDialer (the
// policy's DialContext).
func toolExecutor(env *cliEnv, cfg config.Config) *runner.ToolExecutor {
	if !cfg.Jobs.ToolActions {
		return nil
	}
	creds := make(map[string]toolexec.Credential, len(cfg.Tools.Credentials))
	for name, c := range cfg.Tools.Credentials {
		creds[name] = toolexec.Credential(c)
	}
	opts := []toolexec.Option{toolexec.WithCredentials(creds), toolexec.WithLogger(env.log)}
	// Under the HTTP jobs' outbound policy (http.egress, network.allow and
	// deny): a tool action calls out as an HTTP job does. Without one, every
	// action is refused rather than let out unchecked.
	pol, err := outboundPolicy(cfg)
	if err != nil {
		env.log.Error("no outbound policy: every tool action will be refused", "error", err)
	}
	connect := time.Duration(cfg.HTTP.ConnectTimeout)
	opts = append(opts,
		toolexec.WithDialer(func(ctx context.Context, network, addr string) (net.Conn, error) {
			if pol == nil {
				return nil, errors.New("refused: the agent has no outbound policy (see its log)")
			}
			return pol.Dial(ctx, pol.Dialer(connect), network, addr)
		}),
		toolexec.WithHTTPClient(&http.Client{
			Transport: &http.Transport{
				Proxy: nil,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					if pol == nil {
						return nil, errors.New("refused: the agent has no outbound policy (see its log)")
					}
					return pol.Dial(ctx, pol.Dialer(connect), network, addr)
				},
				TLSHandshakeTimeout: connect,
				MaxIdleConns:        16,
				IdleConnTimeout:     30 * time.Second,
			},
			// A redirect would be a request to where the service, not
			// the action, says.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}))
	tools := toolexec.New(opts...)
	return runner.NewToolExecutor(tools, policyFromConfig(cfg), env.log)
}

// toolAPI is the runtime API's option for tool actions: none when they are
// off (the endpoint then answers 501 naming jobs.toolActions).
func toolAPI(env *cliEnv, cfg config.Config) []sidecar.Option {
	if x := toolExecutor(env, cfg); x != nil {
		return []sidecar.Option{sidecar.WithToolRunner(x)}
	}
	return nil
}
