// Command cronium-agent executes Cronium jobs in containers created directly
// through containerd.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/runner/sshexec/sshworker"
	"github.com/cronium/cronium-agent/runtimes/helpercli"
	"github.com/cronium/cronium-agent/runtimes/jobinit"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit code out of a subcommand. It is the type the
// cronium-backend commands use too, so that one Exit reports both.
type exitError = command.ExitError

// Exit codes of the agent's own failures, as docker and GNU timeout use them.
const (
	exitUsage   = command.ExitUsage
	exitAgent   = command.ExitFailure
	exitTimeout = 124
	exitOOM     = 137
	// exitConfig (EX_CONFIG of sysexits.h): `run` has no backend to take jobs
	// from. The systemd unit does not restart on it (RestartPreventExitStatus).
	exitConfig = 78
)

type subcommand struct {
	name    string
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv is what every subcommand gets: its streams and the process environment.
type cliEnv struct {
	stdout, stderr io.Writer
	environ        []string
	log            *slog.Logger
}

func commands() []subcommand {
	return []subcommand{
		{"run", "run the agent: take jobs from the Cronium backend and report them back", runAgent},
		{"status", "show the running agent's backend, backlog, running jobs and journal (status [--json])", runStatus},
		{"hand-over", "make the running agent's next stop leave its running jobs running for the next start (hand-over [--within D])", runHandOver},
		{"jobs", "list the running agent's recent jobs and their delivery (jobs [--limit N] [--json])", runJobs},
		{"logs", "print a job's log from the running agent's journal (logs [-f] [--raw] JOB); stdout lines as they are, others prefixed [stderr] / [system]", runLogs},
		{"exec", "run one script job in a container and stream its output", runExec},
		{"backend", "alias of cronium-backend (the development backend: serve, submit, jobs, show, logs, cancel), kept for one release", runBackend},
		{"images", "import and list runtime images (images import ARCHIVE..., images list)", runImages},
		{"gc", "remove containers, snapshots, files and cgroups no run owns", runGC},
		{"doctor", "check this host for what jobs need, with a fix for each problem (doctor [--json])", runDoctor},
		{"ssh", "trust and list the host keys of SSH jobs' servers (ssh trust HOST[:PORT] [--yes] [--replace], ssh known [--json])", runSSH},
		{"version", "print the version", runVersion},
		{"shim-logger", "(internal) capture a container's output; started by the containerd shim", runShimLogger},
	}
}

func main() {
	// Mounted into every job as /cronium/bin/cronium, this binary is the
	// helper program the bash helper calls.
	switch filepath.Base(os.Args[0]) {
	case "cronium":
		if len(os.Args) > 1 && os.Args[1] == sshworker.Command {
			// On an SSH job's server: the worker that runs its jobs.
			os.Exit(sshworker.Main(os.Stdin, os.Stdout, os.Stderr, os.Environ()))
		}
		os.Exit(helpercli.Main(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	case jobinit.Name:
		// Mounted as /cronium/bin/cronium-init, it is PID 1 of every job.
		os.Exit(jobinit.Main(os.Args[1:], os.Stderr))
	}
	env := &cliEnv{stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ()}
	env.log = command.NewLogger(os.Stderr, env.environ)
	os.Exit(run(env, os.Args[1:]))
}

func run(env *cliEnv, args []string) int {
	if len(args) > 1 && args[0] == "help" {
		// `help COMMAND...` is `COMMAND... --help`.
		args = append(slices.Clone(args[1:]), "--help")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return command.Exit(env.stderr, "cronium-agent "+c.name, c.run(ctx, env, args[1:]))
	}
	fmt.Fprintf(env.stderr, "cronium-agent: unknown command %q\n", args[0])
	usage(env.stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: cronium-agent <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nstatus, jobs and logs ask the running agent through its admin socket (admin.socket, root only).")
	fmt.Fprintln(w, "Every command takes --config FILE (default /etc/cronium/agent.yaml); every key can also be set by a CRONIUM_* variable.")
	fmt.Fprintln(w, "Run `cronium-agent COMMAND --help` (or `cronium-agent help COMMAND`) for a command's manual page.")
}

func runVersion(_ context.Context, env *cliEnv, args []string) error {
	// Parsed, though version takes nothing, for its --help.
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	fmt.Fprintf(env.stdout, "cronium-agent %s\n", version)
	return nil
}
