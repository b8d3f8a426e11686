package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runtimes/helpers"
	"github.com/cronium/cronium-agent/sidecar"
	"github.com/cronium/cronium-agent/state"
)

func networkConfig(cfg config.Config) cni.Config {
	return cni.Config{
		PluginDirs: cfg.Network.PluginDirs,
		StateDir:   cfg.Network.RunDir,
		Pool:       netip.MustParsePrefix(cfg.Network.Pool), // validated with the config
		Egress:     cfg.Network.Egress,
		APIPort:    cfg.Network.APIPort,
	}
}

// runOptions gives runs what they need beyond containerd: their networks,
// the runtime API with its secret and store (the local file when store is
// nil), and the helpers.
func runOptions(env *cliEnv, cfg config.Config, store sidecar.Store) ([]container.Option, error) {
	nm, err := cni.New(networkConfig(cfg), cni.WithLogger(env.log))
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
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the agent executable for the helper program: %w", err)
	}
	api := sidecar.New(secret, store, sidecar.WithLogger(env.log))
	return []container.Option{
		container.WithNetwork(nm),
		container.WithRuntimeAPI(api, cfg.Network.APIPort),
		container.WithHelpers(helperDir, exe),
		container.WithOutputBudget(int64(cfg.Jobs.OutputBudget)),
	}, nil
}
