package main

import (
	"context"

	"github.com/cronium/cronium-agent/backend/devserver/cli"
	"github.com/cronium/cronium-agent/internal/command"
)

// backendAlias is how `cronium-agent backend` presents the development
// backend's commands, which are cronium-backend's.
var backendAlias = cli.Program{
	Name: "cronium-agent backend",
	Note: "`cronium-agent backend` is an alias of cronium-backend, kept for one release: use cronium-backend.",
}

// runBackend runs `cronium-agent backend ...` as `cronium-backend ...`: the
// same commands, flags, environment variables and exit codes. It prints its
// own errors, so only the exit code goes on.
func runBackend(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		return printHelp(env, "backend", nil)
	}
	code := cli.Main(ctx, command.Env{Stdout: env.stdout, Stderr: env.stderr, Environ: env.environ, Log: env.log}, backendAlias, args)
	if code == 0 {
		return nil
	}
	return &exitError{Code: code}
}

// backendCommands are the COMMANDS of the alias's page: cronium-backend's,
// from its package, so that the page lists what the alias runs.
func backendCommands() []helpItem {
	var items []helpItem
	for _, c := range cli.Commands(backendAlias) {
		items = append(items, helpItem{c.Name, c.Summary})
	}
	return items
}
