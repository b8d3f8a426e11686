package main

import (
	"bytes"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/internal/command/helptest"
)

// runHelpCLI runs `cronium-agent ARGS` in-process, with no environment.
func runHelpCLI(args ...string) cliResult {
	var stdout, stderr bytes.Buffer
	code := run(&cliEnv{stdout: &stdout, stderr: &stderr, log: slog.New(slog.DiscardHandler)}, args)
	return cliResult{code, stdout.String(), stderr.String()}
}

// Every command's --help and -h print its manual page on stderr and exit 0,
// before any argument or configuration is looked at; the page's OPTIONS are
// the flags the command parses (the table pins them: a new flag must come
// with a look at the page's SYNOPSIS and DESCRIPTION).
func TestHelpPages(t *testing.T) {
	for _, tc := range []struct {
		args  []string // the command
		flags []string // the flags its flag set defines
		group bool     // a command of commands
	}{
		{args: []string{"run"}, flags: []string{"config"}},
		{args: []string{"status"}, flags: []string{"config", "json"}},
		{args: []string{"jobs"}, flags: []string{"config", "json", "limit"}},
		{args: []string{"logs"}, flags: []string{"config", "f", "follow", "raw"}},
		{args: []string{"exec"}, flags: []string{"c", "config", "cpus", "env", "file", "image", "input", "json", "memory", "pids", "runtime", "timeout"}},
		{args: []string{"backend"}, group: true},
		{args: []string{"images"}, group: true},
		{args: []string{"images", "import"}, flags: []string{"config"}},
		{args: []string{"images", "list"}, flags: []string{"config"}},
		{args: []string{"gc"}, flags: []string{"all", "config"}},
		{args: []string{"doctor"}, flags: []string{"config", "json"}},
		{args: []string{"ssh"}, group: true},
		{args: []string{"ssh", "trust"}, flags: []string{"config", "replace", "yes"}},
		{args: []string{"ssh", "known"}, flags: []string{"config", "json"}},
		{args: []string{"version"}},
		{args: []string{"shim-logger"}},
	} {
		name := strings.Join(tc.args, " ")
		t.Run(name, func(t *testing.T) {
			if _, ok := helpPages[name]; !ok {
				t.Errorf("no page %q in helpPages", name)
			}
			long := runHelpCLI(append(slices.Clone(tc.args), "--help")...)
			if long.code != 0 || long.stdout != "" {
				t.Fatalf("--help: exit %d, stdout %q, stderr %q", long.code, long.stdout, long.stderr)
			}
			p := helptest.Check(t, long.stderr, "cronium-agent "+name, tc.flags, tc.group)
			if slices.Contains(tc.flags, "config") && p.Sections["ENVIRONMENT"] == "" {
				t.Errorf("reads the configuration, but has no ENVIRONMENT")
			}
			if short := runHelpCLI(append(slices.Clone(tc.args), "-h")...); short != long {
				t.Errorf("-h: %+v, unlike --help", short)
			}
			if help := runHelpCLI(append([]string{"help"}, tc.args...)...); help != long {
				t.Errorf("help %s: %+v, unlike --help", name, help)
			}
		})
	}

	// Every command and page is in the table above.
	t.Run("all", func(t *testing.T) {
		var names []string
		for _, c := range commands() {
			names = append(names, c.name)
		}
		for name := range helpPages {
			names = append(names, name)
		}
		for _, name := range names {
			if r := runHelpCLI(append(strings.Fields(name), "--help")...); r.code != 0 || !strings.HasPrefix(r.stderr, "NAME\n    cronium-agent "+name+" - ") {
				t.Errorf("%s --help: exit %d, %q", name, r.code, r.stderr)
			}
		}
	})
}

// The alias's commands have cronium-backend's pages, under the alias's name.
func TestHelpBackendAlias(t *testing.T) {
	r := runHelpCLI("backend", "serve", "--help")
	if r.code != 0 {
		t.Fatalf("exit %d, %q", r.code, r.stderr)
	}
	p := helptest.Check(t, r.stderr, "cronium-agent backend serve", []string{"allow-remote", "data", "listen", "lost-after", "no-logs-endpoint", "token"}, false)
	if !strings.Contains(p.Sections["EXAMPLES"], "cronium-agent backend serve --token T") {
		t.Errorf("EXAMPLES do not name the alias:\n%s", p.Sections["EXAMPLES"])
	}
	alias := helptest.Parse(runHelpCLI("backend", "--help").stderr)
	for _, c := range []string{"serve", "submit", "jobs", "show", "logs", "cancel", "servers"} {
		if !regexp.MustCompile(`(?m)^    ` + c + ` `).MatchString(alias.Sections["COMMANDS"]) {
			t.Errorf("the alias's page does not list %s:\n%s", c, alias.Sections["COMMANDS"])
		}
	}
}

// --help wins over a missing or surplus argument, and over configuration
// (none is read); a bad flag is still a usage error.
func TestHelpBeforeArguments(t *testing.T) {
	for _, args := range [][]string{
		{"logs", "--help"},
		{"logs", "job_1", "--help"},
		{"ssh", "trust", "--help"},
		{"images", "import", "--help"},
		{"images", "ls", "--help"},
		{"exec", "--help", "--config", "/nonexistent/agent.yaml"},
		{"status", "--config", "/nonexistent/agent.yaml", "--help"},
	} {
		if r := runHelpCLI(args...); r.code != 0 || !strings.HasPrefix(r.stderr, "NAME\n") {
			t.Errorf("%q: exit %d, %q", args, r.code, r.stderr)
		}
	}
	if r := runHelpCLI("exec", "--help", "--bogus"); r.code != exitUsage || !strings.Contains(r.stderr, "flag provided but not defined: -bogus") {
		t.Errorf("bad flag after --help: exit %d, %q", r.code, r.stderr)
	}
	if r := runHelpCLI("version", "extra"); r.code != exitUsage || !strings.Contains(r.stderr, `unexpected argument "extra"`) {
		t.Errorf("version extra: exit %d, %q", r.code, r.stderr)
	}
}

// The top-level usage lists the commands and says where their pages are.
func TestHelpUsage(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := runHelpCLI(args...)
		if r.code != 0 || !strings.Contains(r.stderr, "cronium-agent COMMAND --help") {
			t.Errorf("%q: exit %d, %q", args, r.code, r.stderr)
		}
		for _, c := range commands() {
			if !strings.Contains(r.stderr, "\n  "+c.name+" ") {
				t.Errorf("%q does not list %s", args, c.name)
			}
		}
	}
	if r := runHelpCLI(); r.code != exitUsage || !strings.Contains(r.stderr, "cronium-agent COMMAND --help") {
		t.Errorf("no command: exit %d, %q", r.code, r.stderr)
	}
	if r := runHelpCLI("help", "frobnicate"); r.code != exitUsage || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("help frobnicate: exit %d, %q", r.code, r.stderr)
	}
}

// Every configuration key a page names exists, and its default is the
// configuration's.
func TestHelpEnvironmentKeys(t *testing.T) {
	for name, p := range helpPages {
		for _, e := range p.env {
			if e.key == "" {
				continue
			}
			if _, ok := configDefault(e.key); !ok {
				t.Errorf("%s: %s is no configuration key", name, e.key)
			}
		}
	}
	for key, want := range map[string]string{
		"state.dir":          "/var/lib/cronium-agent",
		"jobs.killGrace":     "10s",
		"journal.budget":     "1GiB",
		"backend.url":        "none",
		"network.egress":     "none",
		"jobs.outputCap":     "1MiB",
		"network.pluginDirs": "/usr/lib/cni,/opt/cni/bin",
	} {
		if got, ok := configDefault(key); !ok || got != want {
			t.Errorf("configDefault(%s) = %q, %t; want %q", key, got, ok, want)
		}
	}
	for _, key := range []string{"jobs", "jobs.nope", "state.dir.x"} {
		if got, ok := configDefault(key); ok {
			t.Errorf("configDefault(%s) = %q, want no key", key, got)
		}
	}
	r := runHelpCLI("run", "--help")
	env := strings.Join(strings.Fields(helptest.Parse(r.stderr).Sections["ENVIRONMENT"]), " ")
	for _, want := range []string{"CRONIUM_BACKEND_URL the backend's base URL (backend.url; default none; also read as CRONIUM_API_ENDPOINT)",
		"CRONIUM_JOBS_DRAIN_TIMEOUT how long the first signal lets running jobs finish (jobs.drainTimeout; default 5m0s)"} {
		if !strings.Contains(env, want) {
			t.Errorf("run --help's ENVIRONMENT does not say %q:\n%s", want, env)
		}
	}
}
