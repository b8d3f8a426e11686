package sshexec

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The upload script, run by a local sh as a server's shell would: it
// refuses a missing interpreter with a clear message before writing
// anything, and writes every file at its exact size otherwise.
func TestUploadScript(t *testing.T) {
	files := []upload{
		{name: "script.sh", data: []byte("echo hi\n")},
		{name: "env", data: []byte("A='b'\n")},
		{name: "empty"},
		{name: "lib/cronium.sh", data: bytes.Repeat([]byte("x"), 100_000)},
	}
	for _, tc := range []struct {
		name, interpreter string
		wantCode          int
		wantErr           string
	}{
		{"interpreter installed", "sh", 0, ""},
		{"interpreter missing", "no-such-interpreter-4471", 127, "no-such-interpreter-4471 is not installed on this server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			cmd, stdin := uploadScript("cronium-test-run", tc.interpreter, files)
			c := exec.Command("sh", "-c", cmd)
			c.Env = append(os.Environ(), "TMPDIR="+tmp)
			c.Stdin = stdin
			var stderr bytes.Buffer
			c.Stderr = &stderr
			err := c.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.wantCode, tc.wantErr)
			}
			dir := filepath.Join(tmp, "cronium-test-run")
			if tc.wantCode != 0 {
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("the work directory was made for a job that cannot run")
				}
				return
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("work directory: %v %v", fi, err)
			}
			for _, f := range files {
				got, err := os.ReadFile(filepath.Join(dir, f.name))
				if err != nil || !bytes.Equal(got, f.data) {
					t.Errorf("%s: %d bytes (%v), want %d", f.name, len(got), err, len(f.data))
				}
			}
		})
	}
}

// stateCmd, run by a local sh, answers in the three fields parseState
// reads, whatever the work directory holds.
func TestStateCmd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(dir string)
		want  runState
	}{
		{"no work directory", nil, runState{state: "gone"}},
		{"launched, running", func(d string) {
			write(t, d, "pid", fmt.Sprint(os.Getpid()))
			write(t, d, "port", "41234\n")
		}, runState{state: "running", port: 41234}},
		{"ended with its status", func(d string) {
			write(t, d, "pid", "2147483646")
			write(t, d, "status", "7\n")
			write(t, d, "port", "0\n")
		}, runState{state: "ended", status: 7, hasStatus: true}},
		{"never launched, no port file", func(d string) {}, runState{state: "ended"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			if tc.setup != nil {
				dir := filepath.Join(tmp, "cronium-test-run")
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				tc.setup(dir)
			}
			c := exec.Command("sh", "-c", stateCmd("cronium-test-run"))
			c.Env = append(os.Environ(), "TMPDIR="+tmp)
			out, err := c.Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := parseState(out); got != tc.want {
				t.Errorf("state %q parsed %+v, want %+v", out, got, tc.want)
			}
		})
	}
}

func write(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
