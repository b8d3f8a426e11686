package ptytest

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// HostileLine is what a job may print to attack an operator's terminal:
// NUL, clear screen, a window title (OSC), a C1 CSI and a lone carriage
// return that would hide the start of the line. HostileEscape is how it
// must show on a terminal.
const (
	HostileLine   = "a\x00b\x1b[2J\x1b]0;pwned\x07 \u009b6n rm -rf /\rok"
	HostileEscape = `a\x00b\x1b[2J\x1b]0;pwned\x07 \u009b6n rm -rf /\x0dok`
)

// A Command runs a command line in-process with these streams and returns
// its exit code; it is done writing when it returns.
type Command func(stdout, stderr io.Writer, args []string) int

// Run runs the command with stdout and stderr on a pseudo-terminal (tty)
// or a buffer, and returns the exit code and what they got together.
func Run(t *testing.T, tty bool, cmd Command, args ...string) (int, string) {
	t.Helper()
	if !tty {
		var buf bytes.Buffer
		return cmd(&buf, &buf, args), buf.String()
	}
	p := Open(t)
	code := cmd(p.TTY, p.TTY, args)
	return code, p.Output(t)
}

// CheckEscaping wants HostileLine, which the command prints n times,
// escaped on a terminal and exact with --raw or without a terminal.
func CheckEscaping(t *testing.T, cmd Command, n int, args ...string) {
	t.Helper()
	for _, tc := range []struct {
		name string
		tty  bool
		raw  bool
		want string
	}{
		{"terminal", true, false, HostileEscape},
		{"terminal --raw", true, true, HostileLine},
		{"buffer", false, false, HostileLine},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := args
			if tc.raw {
				a = append(append([]string(nil), args...), "--raw")
			}
			code, out := Run(t, tc.tty, cmd, a...)
			if code != 0 {
				t.Fatalf("%v: exit code %d: %q", a, code, out)
			}
			if got := strings.Count(out, tc.want); got != n {
				t.Errorf("%v: %q appears %d times, want %d:\n%q", a, tc.want, got, n, out)
			}
			if !tc.raw && tc.tty && ContainsControl(out) {
				t.Errorf("%v: control characters reached the terminal: %q", a, out)
			}
		})
	}
}

// ContainsControl reports whether s holds one of the control characters of
// HostileLine.
func ContainsControl(s string) bool { return strings.ContainsAny(s, "\x00\x1b\x07\u009b\r") }
