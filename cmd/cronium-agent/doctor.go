package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/internal/doctor"
)

// exitChecksFailed is doctor's code for a host with a failed check: not
// exitAgent (125), which says doctor itself could not run.
const exitChecksFailed = 1

func runDoctor(parent context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	asJSON := fs.Bool("json", false, `print the results as one JSON object: {"ok": no check failed, "checks": [{"name", "status", "detail", "fix"}]}`)
	// Handled here rather than by the flag package, so that help is the
	// manual page below and not only the flags.
	help := fs.Bool("help", false, "print this help")
	fs.BoolVar(help, "h", false, "print this help")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if *help {
		printDoctorHelp(env.stderr, fs)
		return nil
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

// printDoctorHelp prints doctor's manual page; the checks come from the
// doctor package, so that the page lists what really runs.
func printDoctorHelp(w io.Writer, fs *flag.FlagSet) {
	var checks strings.Builder
	for _, c := range doctor.Checks(config.Default()) {
		fmt.Fprintf(&checks, "    %-12s %s\n", c.Name, c.About)
	}
	var flags strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "h" || f.Name == "help" {
			return
		}
		arg := ""
		if f.Name == "config" {
			arg = " FILE"
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(&flags, "    %-16s %s%s\n", "--"+f.Name+arg, f.Usage, def)
	})
	fmt.Fprintf(w, `NAME
    cronium-agent doctor - check this host for what jobs need, with a fix for each problem

SYNOPSIS
    cronium-agent doctor [--json] [--config FILE]

DESCRIPTION
    doctor checks this host against the agent's configuration (the file, then
    the CRONIUM_* variables) and prints one table: a row per check with its
    status and what it found, and under every WARN or FAIL the fix.

    PASS  all is well.
    WARN  jobs run, but something will bite, or was not checked because
          another check failed.
    FAIL  jobs cannot run, or would run unsafely.

    doctor only looks: it creates no file or directory, loads no module,
    imports no image, and sends the backend two reads (its health probe and
    a variable that does not exist), never a heartbeat or a claim. It is safe
    to run beside a running agent. Run it as root, as the agent runs: as
    another user, containerd's socket and the state directory fail.

CHECKS
%s
OPTIONS
%s    -h, --help       print this help

EXIT STATUS
    0    no check failed (warnings allowed)
    1    at least one check failed
    2    bad arguments or a configuration that does not load
    125  doctor itself could not run

EXAMPLES
    cronium-agent doctor
    cronium-agent doctor --json | jq '.checks[] | select(.status != "PASS")'
    CRONIUM_CONTAINERD_ADDRESS=/run/cronium-containerd/containerd.sock cronium-agent doctor

SEE ALSO
    docs/operations.md (Checking a host), docs/configuration.md
`, checks.String(), flags.String())
}
