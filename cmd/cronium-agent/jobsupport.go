package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/internal/jobprog"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/netpolicy"
	"github.com/cronium/cronium-agent/runtimes/helpers"
	"github.com/cronium/cronium-agent/sidecar"
	"github.com/cronium/cronium-agent/state"
)

// networkConfig is the job networks' configuration without the outbound
// policy: enough to sweep and tear down (their rules are in their records).
func networkConfig(cfg config.Config) cni.Config {
	return cni.Config{
		PluginDirs: cfg.Network.PluginDirs,
		StateDir:   cfg.Network.RunDir,
		Pool:       netip.MustParsePrefix(cfg.Network.Pool), // validated with the config
		Egress:     cni.Egress(cfg.Network.Egress),
		APIPort:    cfg.Network.APIPort,
	}
}

// jobNetworkConfig is the configuration of the networks of scripts:
// networkConfig with the scripts' outbound policy (network.egress, allow,
// deny; allowlisted names resolved with the host's resolver at each job's
// start) and their DNS servers.
func jobNetworkConfig(cfg config.Config) (cni.Config, error) {
	c := networkConfig(cfg)
	if !cfg.Network.Egress.ScriptRoute() {
		return c, nil
	}
	p, err := netpolicy.New(netpolicy.Mode(cfg.Network.Egress), cfg.Network.Allow, cfg.Network.Deny, netpolicy.WithJobPool(c.Pool))
	if err != nil {
		return cni.Config{}, fmt.Errorf("outbound policy of scripts: %w", err)
	}
	c.Outbound = container.OutboundOf(p, net.DefaultResolver)
	c.DNS, err = jobDNS(cfg.Network.DNS, "/etc/resolv.conf")
	return c, err
}

// jobDNS is network.dns, or when it is empty the host's nameservers that a
// job can reach (none when the host has only a local stub resolver: the
// network manager then says so).
func jobDNS(configured []string, resolvConf string) ([]netip.Addr, error) {
	if len(configured) == 0 {
		// An unreadable file is a host without resolvers: the network
		// manager warns that jobs get none.
		usable, _, _ := cni.HostNameservers(resolvConf)
		return usable, nil
	}
	out := make([]netip.Addr, 0, len(configured))
	for _, s := range configured {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("network.dns: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// runOptions gives runs what they need beyond containerd: their networks,
// the runtime API with its secret and store (the local file when store is
// nil), and the helpers.
func runOptions(env *cliEnv, cfg config.Config, store sidecar.Store) ([]container.Option, error) {
	ncfg, err := jobNetworkConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("job networks: %w", err)
	}
	nm, err := cni.New(ncfg, cni.WithLogger(env.log), cni.WithOwner(cfg.State.Dir))
	if err != nil {
		return nil, fmt.Errorf("job networks: %w", err)
	}
	if err := os.MkdirAll(cfg.State.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	secret, err := sidecar.LoadOrCreateSecret(filepath.Join(cfg.State.Dir, "runtime-api.key"))
	if err != nil {
		return nil, err
	}
	// exec runs are short and may run side by side: the store opens its
	// file per call.
	if store == nil {
		store = state.NewShared(filepath.Join(cfg.State.Dir, "local.db"))
	}
	helperDir := filepath.Join(cfg.State.Dir, "helpers", helpers.Version())
	if err := helpers.WriteTo(helperDir); err != nil {
		return nil, fmt.Errorf("install helpers: %w", err)
	}
	prog, err := jobProgram()
	if err != nil {
		return nil, err
	}
	api := sidecar.New(secret, store, append([]sidecar.Option{sidecar.WithLogger(env.log)}, toolAPI(env, cfg)...)...)
	return []container.Option{
		container.WithNetwork(nm),
		container.WithRuntimeAPI(api, cfg.Network.APIPort),
		container.WithHelpers(helperDir, prog),
		container.WithLoggerBinary(prog),
		container.WithOutputBudget(int64(cfg.Jobs.OutputBudget)),
	}, nil
}

// warmPool keeps warm sandboxes as jobs.warm* say. Only the long-running
// agent takes it: for a one-shot `cronium-agent exec` a pool would only
// cost.
func warmPool(cfg config.Config) container.Option {
	return container.WithWarmPool(container.WarmPool{
		Size:         cfg.Jobs.WarmSandboxes,
		IdleAfter:    time.Duration(cfg.Jobs.WarmIdleTimeout),
		MaxAge:       time.Duration(cfg.Jobs.WarmIdleTimeout),
		MinAvailable: int64(cfg.Jobs.WarmMinAvailable),
	})
}

// jobProgram is the program run inside jobs (their init and the bash
// helpers' program), as their output logger and as the SSH worker:
// cronium-job, else the agent's own binary (internal/jobprog).
func jobProgram() (string, error) {
	p, _, err := jobprog.Find()
	if err != nil {
		return "", fmt.Errorf("the jobs' program: %w", err)
	}
	return p, nil
}
