// Package command holds what the project's binaries (cronium-agent,
// cronium-backend) share between their subcommands: the streams and
// environment a subcommand runs with, exit codes, and flag parsing. It lives
// here rather than in one binary because two main packages cannot share
// code, and both must report usage errors and bad flags the same way.
package command

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Exit codes shared by the binaries. Usage errors exit 2, as flag and most
// Unix tools do; a failure of the tool itself (not of a job) exits 125, as
// docker does, so that it is never mistaken for a job's own exit code.
const (
	ExitUsage   = 2
	ExitFailure = 125
)

// Env is what a subcommand gets: its streams, the process environment and
// the logger.
type Env struct {
	Stdout, Stderr io.Writer
	Environ        []string
	Log            *slog.Logger
}

// Getenv returns the value of key in Env's environment, the last one if it
// is set more than once (as the process environment resolves it).
func (e Env) Getenv(key string) string {
	for i := len(e.Environ) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(e.Environ[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// ExitError carries an exit code out of a subcommand; Err, when set, is
// printed as one line.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

// Usage is an ExitError for bad arguments.
func Usage(err error) error { return &ExitError{Code: ExitUsage, Err: err} }

// Exit returns the exit code for what a subcommand returned and prints its
// error on stderr as "name: error". An error that carries no code is a
// failure of the tool: ExitFailure.
func Exit(stderr io.Writer, name string, err error) int {
	var ee *ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.Err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, ee.Err)
		}
		return ee.Code
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitFailure
	}
}

// ParseFlags parses a subcommand's flags: -h prints its usage, a bad flag is
// one line of error (the usage is there with -h). prog names the binary in
// those messages, before the flag set's name.
func ParseFlags(stderr io.Writer, prog string, fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stderr)
		fmt.Fprintf(stderr, "usage of %s %s:\n", prog, fs.Name())
		fs.PrintDefaults()
		return &ExitError{Code: 0}
	}
	if err != nil {
		return Usage(fmt.Errorf("%v (see %s %s -h)", err, prog, fs.Name()))
	}
	return nil
}

// ParseInterspersed parses flags that may come before, between and after
// the positional arguments (`show JOB --json`), and returns the positionals.
func ParseInterspersed(stderr io.Writer, prog string, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := ParseFlags(stderr, prog, fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// WantArgs checks that the positional arguments are exactly those named.
func WantArgs(prog string, fs *flag.FlagSet, pos []string, names ...string) error {
	if len(pos) == len(names) {
		return nil
	}
	if len(pos) < len(names) {
		return Usage(fmt.Errorf("missing %s (see %s %s -h)", names[len(pos)], prog, fs.Name()))
	}
	return Usage(fmt.Errorf("unexpected argument %q", pos[len(names)]))
}

// PrintJSON prints v as indented JSON, leaving <, > and & as they are for
// the person reading it.
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// EnvFlag is a repeatable KEY=VALUE flag (a job's environment variables).
type EnvFlag map[string]string

func (e EnvFlag) String() string { return "" }

func (e EnvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	e[k] = v
	return nil
}

// NewLogger returns the logger of a binary: text on stderr, warnings and
// errors only unless CRONIUM_LOG_LEVEL is info or debug.
func NewLogger(stderr io.Writer, environ []string) *slog.Logger {
	level := slog.LevelWarn
	switch (Env{Environ: environ}).Getenv("CRONIUM_LOG_LEVEL") {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// HumanBytes is n in binary units for a person: "512 B", "1.5 MiB".
func HumanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, 0
	for v >= 1024 && unit < 4 {
		v /= 1024
		unit++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[unit])
}
