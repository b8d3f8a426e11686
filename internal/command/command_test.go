package command

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestExit(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   int
		stderr string
	}{
		{nil, 0, ""},
		{&ExitError{Code: 0}, 0, ""}, // -h
		{&ExitError{Code: 3}, 3, ""}, // a job's own exit code: nothing to say
		{Usage(errors.New("no token")), 2, "prog sub: no token\n"},
		{errors.New("disk full"), 125, "prog sub: disk full\n"},
		{context.Canceled, 125, "prog sub: context canceled\n"},
	} {
		var stderr bytes.Buffer
		if code := Exit(&stderr, "prog sub", tc.err); code != tc.code || stderr.String() != tc.stderr {
			t.Errorf("Exit(%v) = %d, %q; want %d, %q", tc.err, code, stderr.String(), tc.code, tc.stderr)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	newFS := func() (*flag.FlagSet, *bool, EnvFlag) {
		fs := flag.NewFlagSet("show", flag.ContinueOnError)
		env := EnvFlag{}
		fs.Var(env, "env", "")
		return fs, fs.Bool("json", false, "print JSON"), env
	}
	var stderr bytes.Buffer
	fs, asJSON, env := newFS()
	pos, err := ParseInterspersed(&stderr, "prog", fs, []string{"--env", "A=1=2", "JOB", "--json", "X"})
	if err != nil || !*asJSON || strings.Join(pos, ",") != "JOB,X" || env["A"] != "1=2" {
		t.Errorf("got %v %v %t %v", pos, err, *asJSON, env)
	}
	if err := WantArgs("prog", fs, pos, "JOB"); err == nil || err.Error() != `unexpected argument "X"` {
		t.Errorf("WantArgs, one too many: %v", err)
	}
	if err := WantArgs("prog", fs, nil, "JOB"); err == nil || err.Error() != "missing JOB (see prog show -h)" {
		t.Errorf("WantArgs, one missing: %v", err)
	}

	fs, _, _ = newFS()
	_, err = ParseInterspersed(&stderr, "prog", fs, []string{"--nope"})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitUsage || !strings.Contains(err.Error(), "(see prog show -h)") || stderr.Len() != 0 {
		t.Errorf("bad flag: %v, stderr %q", err, stderr.String())
	}
	fs, _, _ = newFS()
	_, err = ParseInterspersed(&stderr, "prog", fs, []string{"-h"})
	if !errors.As(err, &ee) || ee.Code != 0 || ee.Err != nil || !strings.HasPrefix(stderr.String(), "usage of prog show:\n") {
		t.Errorf("-h: %v, stderr %q", err, stderr.String())
	}
	fs, _, _ = newFS()
	if _, err := ParseInterspersed(&stderr, "prog", fs, []string{"--env", "novalue"}); err == nil {
		t.Error("--env without = accepted")
	}
}

func TestGetenv(t *testing.T) {
	env := Env{Environ: []string{"A=1", "AB=2", "A=3"}}
	if got := env.Getenv("A"); got != "3" {
		t.Errorf("Getenv(A) = %q, want the last one", got)
	}
	if got := env.Getenv("B"); got != "" {
		t.Errorf("Getenv(B) = %q", got)
	}
}

func TestNewLogger(t *testing.T) {
	for level, want := range map[string]string{"": "", "info": "level=INFO", "debug": "level=DEBUG"} {
		var stderr bytes.Buffer
		log := NewLogger(&stderr, []string{"CRONIUM_LOG_LEVEL=" + level})
		log.Debug("x")
		log.Info("x")
		if want == "" && stderr.Len() != 0 || !strings.Contains(stderr.String(), want) {
			t.Errorf("level %q: %q", level, stderr.String())
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"}, {5 << 20, "5.0 MiB"}, {3 << 30, "3.0 GiB"}, {2 << 40, "2.0 TiB"}, {2 << 50, "2.0 PiB"}, {2 << 60, "2048.0 PiB"},
	} {
		if got := HumanBytes(tc.n); got != tc.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
