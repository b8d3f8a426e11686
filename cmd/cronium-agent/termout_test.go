package main

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/internal/ptytest"
	"github.com/cronium/cronium-agent/state/admin"
	"github.com/cronium/cronium-agent/state/admin/admintest"
)

// hostileLine is what a job may print to attack an operator's terminal:
// NUL, clear screen, a window title (OSC), a C1 CSI and a lone carriage
// return that would hide the start of the line.
const (
	hostileLine   = "a\x00b\x1b[2J\x1b]0;pwned\x07 \u009b6n rm -rf /\rok"
	hostileEscape = `a\x00b\x1b[2J\x1b]0;pwned\x07 \u009b6n rm -rf /\x0dok`
)

// runOn runs the command in-process with stdout and stderr on a
// pseudo-terminal (tty) or a buffer, and returns the exit code and what
// they got together.
func runOn(t *testing.T, tty bool, environ []string, args ...string) (int, string) {
	t.Helper()
	env := &cliEnv{environ: environ, log: slog.New(slog.DiscardHandler)}
	if !tty {
		var buf syncBuffer
		env.stdout, env.stderr = &buf, &buf
		return run(env, args), buf.String()
	}
	p := ptytest.Open(t)
	env.stdout, env.stderr = p.TTY, p.TTY
	code := run(env, args)
	return code, p.Output(t)
}

// checkTerminalOutput wants the hostile line escaped on a terminal and
// exact with --raw or without a terminal, n times each.
func checkTerminalOutput(t *testing.T, environ []string, n int, args ...string) {
	t.Helper()
	for _, tc := range []struct {
		name string
		tty  bool
		raw  bool
		want string
	}{
		{"terminal", true, false, hostileEscape},
		{"terminal --raw", true, true, hostileLine},
		{"buffer", false, false, hostileLine},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := args
			if tc.raw {
				a = append(append([]string(nil), args...), "--raw")
			}
			code, out := runOn(t, tc.tty, environ, a...)
			if code != 0 {
				t.Fatalf("%v: exit code %d: %q", a, code, out)
			}
			if got := strings.Count(out, tc.want); got != n {
				t.Errorf("%v: %q appears %d times, want %d:\n%q", a, tc.want, got, n, out)
			}
			if !tc.raw && tc.tty && strings.ContainsAny(out, "\x00\x1b\x07\u009b\r") {
				t.Errorf("%v: control characters reached the terminal: %q", a, out)
			}
		})
	}
}

func TestTerminalBackendLogsAndShow(t *testing.T) {
	ts := cliDevBackend(t)
	a := cliFakeAgent{t, ts.URL, "agent-term"}
	done := make(chan string, 1)
	go func() {
		id := a.claimOne()
		a.logs(id, 1, [2]string{"stdout", hostileLine}, [2]string{"stderr", hostileLine})
		a.complete(id, "completed", 0, hostileLine+"\n", hostileLine+"\n")
		done <- id
	}()
	environ := []string{"CRONIUM_BACKEND_URL=" + ts.URL, "CRONIUM_BACKEND_TOKEN=" + cliDevToken}
	// submit --wait follows the job's lines: escaped on a terminal too.
	code, out := runOn(t, true, environ, "backend", "submit", "-c", "true", "--wait")
	id := <-done
	if code != 0 || strings.Count(out, hostileEscape) != 2 || strings.ContainsAny(out, "\x00\x1b\x07\u009b\r") {
		t.Errorf("submit --wait on a terminal: exit code %d, %q", code, out)
	}
	t.Run("logs", func(t *testing.T) { checkTerminalOutput(t, environ, 2, "backend", "logs", id) })
	t.Run("logs -f", func(t *testing.T) { checkTerminalOutput(t, environ, 2, "backend", "logs", "-f", id) })
	t.Run("show", func(t *testing.T) { checkTerminalOutput(t, environ, 2, "backend", "show", id) })
}

func TestTerminalAgentLogs(t *testing.T) {
	src := admintest.New(admin.Status{})
	src.Append("job-1", admin.LogLine{Stream: "stdout", Line: hostileLine}, admin.LogLine{Stream: "stderr", Line: hostileLine})
	src.Complete("job-1")
	environ := []string{"CRONIUM_ADMIN_SOCKET=" + serveAdmin(t, src)}
	t.Run("logs", func(t *testing.T) { checkTerminalOutput(t, environ, 2, "logs", "job-1") })
	t.Run("logs -f", func(t *testing.T) { checkTerminalOutput(t, environ, 2, "logs", "-f", "job-1") })
}
