package output

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCaptureFinish holds the pipes' write ends open, as the shim does
// until the task is deleted: once finished, the capture ends when the pipes
// are empty, complete and with everything written before; a blocked read
// is woken. A reader that is not a pipe still ends at its end of file.
func TestCaptureFinish(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before string // written before finishing
	}{
		{"empty pipes", ""},
		{"held output", "one\ntwo\nno newline"},
		{"more than a pipe holds", strings.Repeat("0123456789abcdef\n", 20000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outR, outW := mustPipe(t)
			errR, errW := mustPipe(t)
			defer outW.Close()
			defer errW.Close()
			finish := make(chan struct{})
			var file bytes.Buffer
			type result struct {
				sum Summary
				err error
			}
			done := make(chan result, 1)
			go func() {
				s, err := Capture(context.Background(), outR, errR, &file, WithFinish(finish))
				done <- result{s, err}
			}()
			if _, err := outW.WriteString(tc.before); err != nil {
				t.Fatal(err)
			}
			if _, err := errW.WriteString("warning\n"); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-done:
				t.Fatalf("capture ended before finish: %+v %v", r.sum, r.err)
			case <-time.After(50 * time.Millisecond):
			}
			close(finish)
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("capture did not end after finish")
			}
			if r.err != nil || !r.sum.Complete {
				t.Fatalf("summary %+v, error %v", r.sum, r.err)
			}
			path := filepath.Join(t.TempDir(), "out")
			if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			es, sum := readAllEntries(t, path)
			checkEntries(t, es, sum, MaxLine)
			gotOut, gotErr := rebuild(es)
			equalBytes(t, "stdout", gotOut, []byte(tc.before))
			equalBytes(t, "stderr", gotErr, []byte("warning\n"))
		})
	}
	t.Run("not a pipe", func(t *testing.T) {
		finish := make(chan struct{})
		close(finish)
		var file bytes.Buffer
		sum, err := Capture(context.Background(), strings.NewReader("a\nb\n"), strings.NewReader(""), &file, WithFinish(finish))
		if err != nil || !sum.Complete || sum.Stdout.Entries != 2 {
			t.Fatalf("summary %+v, error %v", sum, err)
		}
	})
}

// TestRunShimLoggerFinish runs the logger as the shim does, keeps the
// pipes' write ends open and tells it to finish through Finish (its pid
// file and a signal): it writes everything and its end record, and exits.
func TestRunShimLoggerFinish(t *testing.T) {
	for _, budget := range []int64{0, 1 << 20} {
		t.Run("budget "+strconv.FormatInt(budget, 10), func(t *testing.T) {
			outR, outW := mustPipe(t)
			errR, errW := mustPipe(t)
			readyR, readyW := mustPipe(t)
			defer outW.Close()
			defer errW.Close()
			path := filepath.Join(t.TempDir(), "output")
			cmd := startShimLogger(t, path, budget, outR, errR, readyW)
			waitReady(t, readyR)
			var want bytes.Buffer
			for i := range 5000 {
				line := strings.Repeat(string(rune('a'+i%26)), i%100) + "\n"
				want.WriteString(line)
				if _, err := outW.WriteString(line); err != nil {
					t.Fatal(err)
				}
			}
			if err := Finish(path); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("logger process: %v", err)
				}
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatal("the logger did not finish with its pipes open")
			}
			es, sum := readAllEntries(t, path)
			if !sum.Complete {
				t.Fatalf("end record %+v", sum)
			}
			gotOut, _ := rebuild(es)
			equalBytes(t, "stdout", gotOut, want.Bytes())
		})
	}
}

// startShimLogger starts the test binary as a shim logger of path, with
// the arguments the shim gives one (which Finish checks) and fds 3, 4, 5.
func startShimLogger(t *testing.T, path string, budget int64, stdout, stderr, ready *os.File) *exec.Cmd {
	t.Helper()
	// The test binary takes the arguments after its flags as its own and
	// ignores them; they make the command line the shim's.
	cmd := exec.Command(os.Args[0], "-test.run=^TestShimLoggerChild$", "shim-logger", ShimArg(path, budget))
	cmd.Env = append(os.Environ(), shimChildEnv+"="+ShimArg(path, budget))
	cmd.ExtraFiles = []*os.File{stdout, stderr, ready}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	// The shim closes its copies after start.
	stdout.Close()
	stderr.Close()
	ready.Close()
	return cmd
}

// Finish signals only the logger of the path it is given: not a process
// whose pid a stale or forged pid file names, nor anything without one.
func TestFinishRefusesOtherProcesses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "output")
	if err := Finish(path); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("without a pid file: %v", err)
	}
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	for _, content := range []string{strconv.Itoa(other.Process.Pid), "1", "x", ""} {
		if err := os.WriteFile(LoggerPIDPath(path), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Finish(path); err == nil {
			t.Errorf("pid file %q: signalled", content)
		}
	}
	// A logger of another output file is not this one's either.
	outR, outW := mustPipe(t)
	errR, errW := mustPipe(t)
	readyR, readyW := mustPipe(t)
	defer outW.Close()
	defer errW.Close()
	otherPath := filepath.Join(dir, "other-output")
	cmd := startShimLogger(t, otherPath, 0, outR, errR, readyW)
	waitReady(t, readyR)
	if err := os.WriteFile(LoggerPIDPath(path), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Finish(path); err == nil || !strings.Contains(err.Error(), "is not the logger of") {
		t.Errorf("another output's logger: %v", err)
	}
	// SIGUSR1 would have killed sleep (a zombie until waited for).
	time.Sleep(50 * time.Millisecond)
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(other.Process.Pid) + "/stat")
	if err != nil || bytes.Contains(stat, []byte(") Z ")) {
		t.Errorf("the other process was signalled: %q %v", stat, err)
	}
}

func TestIsShimLoggerOf(t *testing.T) {
	const path = "/var/lib/cronium-agent/runs/r1/output"
	for _, tc := range []struct {
		cmdline string
		want    bool
	}{
		{"/usr/bin/cronium-agent\x00shim-logger\x00" + path + "\x00", true},
		{"/usr/bin/cronium-agent\x00shim-logger\x00" + ShimArg(path, 8<<20) + "\x00", true},
		{"/usr/bin/cronium-agent\x00shim-logger\x00" + path + "2\x00", false},
		{"/usr/bin/cronium-agent\x00shim-logger\x00", false},
		{"sleep\x00" + path + "\x00", false},
		{"", false},
	} {
		if got := IsShimLoggerOf([]byte(tc.cmdline), path); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.cmdline, got, tc.want)
		}
	}
}
