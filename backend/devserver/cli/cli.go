// Package cli is the command line of the development backend: `serve`,
// which runs it, and the operator commands that speak to it (submit, jobs,
// show, logs, cancel, servers). It is a library so that two binaries can run it:
// cronium-backend, and cronium-agent, whose `backend` command is an alias
// kept for one release.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/command"
)

// Environment variables of the commands.
const (
	EnvURL   = "CRONIUM_BACKEND_URL"
	EnvToken = "CRONIUM_BACKEND_TOKEN"
)

// Exit codes beyond command's: those of `submit --wait` for a job that
// ended without an exit code of its own, as GNU timeout and a shell
// interrupted by Ctrl-C use them.
const (
	exitTimeout      = 124
	exitJobCancelled = 130
	exitJobFailed    = 1
)

// Program is how a binary presents the commands.
type Program struct {
	// Name is what the usage and the messages call the program:
	// "cronium-backend", or "cronium-agent backend" for the alias.
	Name string
	// Version is what `version` prints; without it there is no `version`
	// command (the alias: cronium-agent has its own).
	Version string
	// Note is a paragraph printed at the end of the usage.
	Note string
	// Stdin is what `servers add --password-stdin` reads; nil means
	// os.Stdin.
	Stdin io.Reader
}

// session is one run of a command: the program's name, for its messages,
// and its streams.
type session struct {
	command.Env
	prog  string
	stdin io.Reader
}

type subcommand struct {
	name, args, summary string
	run                 func(ctx context.Context, s session, args []string) error
}

// Command is one of a program's commands, as its usage lists it.
type Command struct{ Name, Args, Summary string }

// Commands lists the program's commands, for a page that names them (the
// alias's, in cronium-agent).
func Commands(p Program) []Command {
	var list []Command
	for _, c := range subcommands(p) {
		list = append(list, Command{c.name, c.args, c.summary})
	}
	return list
}

func subcommands(p Program) []subcommand {
	subs := []subcommand{
		{"serve", "--token T --data DIR [--listen ADDR]", "run the development backend until interrupted", runServe},
		{"submit", "(-c CODE | --file F | --raw F) [--wait]", "submit a job; with --wait, follow it and exit with its exit code", runSubmit},
		{"jobs", "", "list the jobs", runJobs},
		{"show", "JOB [--json] [--raw]", "show a job: status, exit code, output, condition, timings", runShow},
		{"logs", "JOB [-f] [--raw]", "print a job's live log lines (-f: follow until it ends)", runLogs},
		{"cancel", "JOB", "cancel a job (a running one stops at its agent's next heartbeat)", runCancel},
		{"agents", "[--json]", "list the agents: host, version, instance, state, last heartbeat, running jobs, free slots", runAgents},
		{"servers", "(add ... | list | rm ID)", "register, list and remove the SSH servers of `submit --server`", runServers},
	}
	if p.Version != "" {
		subs = append(subs, subcommand{"version", "", "print the version", func(_ context.Context, s session, args []string) error {
			// Parsed, though version takes nothing, for its --help.
			if _, err := s.args(flag.NewFlagSet("version", flag.ContinueOnError), args); err != nil {
				return err
			}
			_, err := fmt.Fprintf(s.Stdout, "%s %s\n", p.Name, p.Version)
			return err
		}})
	}
	return subs
}

// Main runs the command args[0] with the rest of args as its arguments, and
// returns the exit code. ctx ends serving and following (the caller cancels
// it on SIGINT and SIGTERM).
func Main(ctx context.Context, env command.Env, p Program, args []string) int {
	if len(args) > 1 && args[0] == "help" {
		// `help COMMAND...` is `COMMAND... --help`.
		args = append(slices.Clone(args[1:]), "--help")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr, p)
		if len(args) == 0 {
			return command.ExitUsage
		}
		return 0
	}
	stdin := p.Stdin
	if stdin == nil {
		stdin = os.Stdin
	}
	for _, c := range subcommands(p) {
		if c.name == args[0] {
			return command.Exit(env.Stderr, p.Name+" "+c.name, c.run(ctx, session{env, p.Name, stdin}, args[1:]))
		}
	}
	fmt.Fprintf(env.Stderr, "%s: unknown command %q\n", p.Name, args[0])
	usage(env.Stderr, p)
	return command.ExitUsage
}

func usage(w io.Writer, p Program) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", p.Name)
	for _, c := range subcommands(p) {
		fmt.Fprintf(w, "  %-7s %-42s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nThe client commands take --backend URL and --token T (default $%s, $%s).\n", EnvURL, EnvToken)
	fmt.Fprintf(w, "Run `%s COMMAND --help` (or `%s help COMMAND`) for a command's manual page.\n", p.Name, p.Name)
	if p.Note != "" {
		fmt.Fprintf(w, "\n%s\n", p.Note)
	}
}

// args parses a command's flags, which may come before, between and after
// its positional arguments, and checks that the positionals are exactly
// those named; -h and --help print the command's manual page (helpPages,
// by the flag set's name) and exit 0, whatever the positionals.
func (s session) args(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	help := helpFlags(fs)
	pos, err := command.ParseInterspersed(s.Stderr, s.prog, fs, args)
	if err != nil {
		return nil, err
	}
	if *help {
		return nil, s.printHelp(fs.Name(), fs)
	}
	return pos, command.WantArgs(s.prog, fs, pos, names...)
}

// clientFlags are the flags of every client command.
type clientFlags struct {
	url, token *string
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		url:   fs.String("backend", "", "dev backend `URL`, e.g. http://127.0.0.1:5001 (default $"+EnvURL+")"),
		token: fs.String("token", "", "service `TOKEN` (default $"+EnvToken+")"),
	}
}

func (f clientFlags) client(s session) (*devserver.DevClient, error) {
	u, tok := *f.url, *f.token
	if u == "" {
		u = s.Getenv(EnvURL)
	}
	if tok == "" {
		tok = s.Getenv(EnvToken)
	}
	if u == "" {
		return nil, command.Usage(fmt.Errorf("no backend URL: give --backend URL or set %s", EnvURL))
	}
	if tok == "" {
		return nil, command.Usage(fmt.Errorf("no token: give --token T or set %s", EnvToken))
	}
	c, err := devserver.NewDevClient(u, tok)
	if err != nil {
		return nil, command.Usage(err)
	}
	return c, nil
}

// jobArgs parses the flags of a command that names one job, and returns the
// job's id and a client for the backend.
func (s session) jobArgs(fs *flag.FlagSet, cf clientFlags, args []string) (string, *devserver.DevClient, error) {
	pos, err := s.args(fs, args, "JOB")
	if err != nil {
		return "", nil, err
	}
	c, err := cf.client(s)
	if err != nil {
		return "", nil, err
	}
	return pos[0], c, nil
}

// clientError turns a client error into the command's exit.
func clientError(c *devserver.DevClient, err error) error {
	var ue *devserver.UnreachableError
	var ae *devserver.APIError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return &command.ExitError{Code: exitJobCancelled, Err: errors.New("interrupted")}
	case errors.As(err, &ue):
		return &command.ExitError{Code: command.ExitFailure, Err: err}
	case errors.As(err, &ae) && ae.StatusCode == http.StatusUnauthorized:
		return command.Usage(fmt.Errorf("backend %s refused the token (check --token or %s)", c.URL(), EnvToken))
	case errors.As(err, &ae) && ae.StatusCode < 500:
		return &command.ExitError{Code: 1, Err: fmt.Errorf("%s (%s %s)", ae.Message, ae.Method, ae.Path)}
	default:
		return &command.ExitError{Code: command.ExitFailure, Err: fmt.Errorf("backend %s: %w", c.URL(), err)}
	}
}
