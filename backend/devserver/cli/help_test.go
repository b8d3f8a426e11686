package cli

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/command/helptest"
	"github.com/cronium/cronium-agent/internal/testenv"
)

// runProgram runs `PROGRAM ARGS` in-process as p, with no environment.
func runProgram(p Program, args ...string) cliResult {
	var out, errb testenv.Buffer
	env := command.Env{Stdout: &out, Stderr: &errb, Log: slog.New(slog.DiscardHandler)}
	p.Stdin = strings.NewReader("")
	code := Main(context.Background(), env, p, args)
	return cliResult{code, out.String(), errb.String()}
}

// Every command's --help and -h print its manual page on stderr and exit 0,
// under either program's name, before any argument or backend is looked
// at; the page's OPTIONS are the flags the command parses (the table pins
// them: a new flag must come with a look at the page's SYNOPSIS and
// DESCRIPTION).
func TestHelpPages(t *testing.T) {
	client := []string{"backend", "token"}
	alias := Program{Name: "cronium-agent backend"}
	for _, tc := range []struct {
		args  []string // the command
		flags []string // the flags its flag set defines
		group bool     // a command of commands
	}{
		{args: []string{"serve"}, flags: []string{"allow-remote", "data", "listen", "lost-after", "no-logs-endpoint", "token"}},
		{args: []string{"submit"}, flags: append([]string{"action", "c", "credential", "env", "file", "input", "name", "param", "priority", "raw", "runtime", "server", "timeout", "tool", "user", "wait"}, client...)},
		{args: []string{"jobs"}, flags: append([]string{"json", "status"}, client...)},
		{args: []string{"show"}, flags: append([]string{"json", "raw"}, client...)},
		{args: []string{"logs"}, flags: append([]string{"after", "f", "follow", "raw"}, client...)},
		{args: []string{"cancel"}, flags: client},
		{args: []string{"servers"}, group: true},
		{args: []string{"servers", "add"}, flags: append([]string{"host", "key", "name", "password-stdin", "port", "user"}, client...)},
		{args: []string{"servers", "list"}, flags: append([]string{"json"}, client...)},
		{args: []string{"servers", "rm"}, flags: client},
		{args: []string{"version"}},
	} {
		name := strings.Join(tc.args, " ")
		t.Run(name, func(t *testing.T) {
			if _, ok := helpPages[name]; !ok {
				t.Errorf("no page %q in helpPages", name)
			}
			for _, p := range []Program{testProgram, alias} {
				if name == "version" && p.Version == "" {
					continue // the alias has no version command
				}
				long := runProgram(p, append(slices.Clone(tc.args), "--help")...)
				if long.code != 0 || long.stdout != "" {
					t.Fatalf("%s --help: exit %d, stdout %q, stderr %q", p.Name, long.code, long.stdout, long.stderr)
				}
				page := helptest.Check(t, long.stderr, p.Name+" "+name, tc.flags, tc.group)
				if strings.Contains(long.stderr, "{prog}") {
					t.Errorf("%s: {prog} left in the page:\n%s", p.Name, long.stderr)
				}
				if slices.Contains(tc.flags, "backend") && !strings.Contains(page.Sections["ENVIRONMENT"], EnvURL) {
					t.Errorf("a client command without %s in ENVIRONMENT", EnvURL)
				}
				if short := runProgram(p, append(slices.Clone(tc.args), "-h")...); short != long {
					t.Errorf("%s -h: %+v, unlike --help", p.Name, short)
				}
				if help := runProgram(p, append([]string{"help"}, tc.args...)...); help != long {
					t.Errorf("%s help %s: %+v, unlike --help", p.Name, name, help)
				}
			}
		})
	}

	// Every command and page is in the table above.
	t.Run("all", func(t *testing.T) {
		names := []string{"servers"}
		for _, c := range subcommands(testProgram) {
			names = append(names, c.name)
		}
		for _, c := range serversCommands {
			names = append(names, "servers "+c.name)
		}
		for name := range helpPages {
			names = append(names, name)
		}
		for _, name := range names {
			if r := runProgram(testProgram, append(strings.Fields(name), "--help")...); r.code != 0 || !strings.HasPrefix(r.stderr, "NAME\n    cronium-backend "+name+" - ") {
				t.Errorf("%s --help: exit %d, %q", name, r.code, r.stderr)
			}
		}
	})
}

// --help wins over a missing or surplus argument and a missing backend; a
// bad flag is still a usage error.
func TestHelpBeforeArguments(t *testing.T) {
	for _, args := range [][]string{
		{"show", "--help"},
		{"show", "job_1", "--help"},
		{"serve", "--help"},
		{"servers", "rm", "--help"},
		{"servers", "add", "--port", "0", "--help"},
	} {
		if r := runCLI(context.Background(), nil, args...); r.code != 0 || !strings.HasPrefix(r.stderr, "NAME\n") {
			t.Errorf("%q: exit %d, %q", args, r.code, r.stderr)
		}
	}
	if r := runCLI(context.Background(), nil, "submit", "--help", "--bogus"); r.code != command.ExitUsage || !strings.Contains(r.stderr, "flag provided but not defined: -bogus") {
		t.Errorf("bad flag after --help: exit %d, %q", r.code, r.stderr)
	}
	if r := runCLI(context.Background(), nil, "version", "extra"); r.code != command.ExitUsage || !strings.Contains(r.stderr, `unexpected argument "extra"`) {
		t.Errorf("version extra: exit %d, %q", r.code, r.stderr)
	}
}

// The top-level usage lists the commands and says where their pages are.
func TestHelpUsage(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := runCLI(context.Background(), nil, args...)
		if r.code != 0 || !strings.Contains(r.stderr, "cronium-backend COMMAND --help") {
			t.Errorf("%q: exit %d, %q", args, r.code, r.stderr)
		}
		for _, c := range Commands(testProgram) {
			if !strings.Contains(r.stderr, "\n  "+c.Name+" ") {
				t.Errorf("%q does not list %s", args, c.Name)
			}
		}
	}
	if r := runCLI(context.Background(), nil, "help", "frobnicate"); r.code != command.ExitUsage || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("help frobnicate: exit %d, %q", r.code, r.stderr)
	}
}
