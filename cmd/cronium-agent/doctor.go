package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/doctor"
)

// exitChecksFailed is doctor's code for a host with a failed check: not
// exitAgent (125), which says doctor itself could not run.
const exitChecksFailed = 1

func runDoctor(parent context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	asJSON := fs.Bool("json", false, `print the results as one JSON object: {"ok": no check failed, "checks": [{"name", "status", "detail", "fix"}]}`)
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("unexpected argument %q (see cronium-agent doctor --help)", fs.Arg(0))}
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		return err
	}
	checks := doctor.Checks(cfg,
		doctor.WithConfigPath(*cfgPath),
		doctor.WithPath(command.Env{Environ: env.environ}.Getenv("PATH")))
	reports := doctor.Run(parent, checks)
	write := doctor.WriteText
	if *asJSON {
		write = doctor.WriteJSON
	}
	if err := write(env.stdout, reports); err != nil {
		return fmt.Errorf("print the checks: %w", err)
	}
	if doctor.Failed(reports) {
		return &exitError{Code: exitChecksFailed}
	}
	return nil
}
