package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/runner"
)

// runAgent is the agent proper: it takes jobs from the backend until told
// to stop. The first SIGTERM or SIGINT drains (no new claims, running jobs
// finish for up to jobs.drainTimeout), a second one stops at once; every
// job is reported either way. The lifecycle is runner.Agent's; this only
// reads the configuration and wires.
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
		return &exitError{Code: exitConfig, Err: fmt.Errorf("no backend to take jobs from: set backend.url and backend.token in %s, or %s and %s (CRONIUM_API_ENDPOINT and CRONIUM_API_TOKEN are read too)",
			*cfgPath, config.EnvName("backend", "url"), config.EnvName("backend", "token"))}
	}

	ctx, drain, release := stopOnSignals(parent, env, time.Duration(cfg.Jobs.DrainTimeout))
	defer release()
	client, orchID, binding, err := agentClient(env, cfg)
	if err != nil {
		return err
	}
	acfg := agentConfig(env, cfg, orchID, client)
	acfg.Identity = binding
	return runner.NewAgent(client, acfg).Run(ctx, drain)
}
