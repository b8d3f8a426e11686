package sshworker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFrameRoundTrip(t *testing.T) {
	var b bytes.Buffer
	in := []Frame{
		{Type: Prepare, Run: 1, Payload: []byte(`{"dir":"x"}`)},
		{Type: Go, Run: 1, Payload: []byte{}},
		{Type: Exit, Run: 4294967295, Payload: ExitPayload(-2)},
	}
	for _, f := range in {
		if err := WriteFrame(&b, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range in {
		got, err := ReadFrame(&b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Type != want.Type || got.Run != want.Run || !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("read %+v, wrote %+v", got, want)
		}
	}
	if st, err := ExitStatus(ExitPayload(-2)); err != nil || st != -2 {
		t.Errorf("ExitStatus = %d, %v", st, err)
	}
	if _, err := ReadFrame(&b); !errors.Is(err, io.EOF) {
		t.Errorf("read past the end: %v", err)
	}
	// A length past the bound is refused before anything is allocated.
	bad := []byte{'O', 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}
	if _, err := ReadFrame(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("huge frame: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{'O', 0, 0, 0, 1, 0, 0, 0, 5, 'a'})); err == nil {
		t.Errorf("short payload read without error")
	}
}

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name, in string
		want     [][2]string
		err      bool
	}{
		{name: "empty", in: ""},
		{name: "plain", in: "A='1'\nB='two words'\n", want: [][2]string{{"A", "1"}, {"B", "two words"}}},
		{name: "quote", in: `Q='it'\''s'` + "\n", want: [][2]string{{"Q", "it's"}}},
		{name: "newline and empty", in: "M='a\nb'\nE=''\n", want: [][2]string{{"M", "a\nb"}, {"E", ""}}},
		{name: "no final newline", in: "A='1'", want: [][2]string{{"A", "1"}}},
		{name: "shell syntax", in: "A=$(id)\n", err: true},
		{name: "unterminated", in: "A='1\n", err: true},
		{name: "no name", in: "='1'\n", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEnvFile(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if !tt.err && len(got)+len(tt.want) > 0 && !equalPairs(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func equalPairs(a, b [][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// worker is a worker served in-process over pipes, as the agent sees it.
type testWorker struct {
	t     *testing.T
	tmp   string
	in    *io.PipeWriter
	out   *io.PipeReader
	ended chan int
}

func startWorker(t *testing.T) *testWorker {
	t.Helper()
	tmp := t.TempDir()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	w := &testWorker{t: t, tmp: tmp, in: inW, out: outR, ended: make(chan int, 1)}
	environ := []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmp, "HOME=" + tmp}
	go func() {
		w.ended <- Main(inR, outW, io.Discard, environ)
		outW.Close()
	}()
	if f := w.read(); f.Type != Ready || f.Run != 0 {
		t.Fatalf("first frame %q %d, want the hello", f.Type, f.Run)
	}
	t.Cleanup(func() {
		inW.Close()
		go func() { _, _ = io.Copy(io.Discard, outR) }()
		select {
		case <-w.ended:
		case <-time.After(20 * time.Second):
			t.Error("the worker did not end after its stdin closed")
		}
	})
	return w
}

func (w *testWorker) send(typ byte, id uint32, payload any) {
	w.t.Helper()
	var p []byte
	switch v := payload.(type) {
	case nil:
	case []byte:
		p = v
	default:
		var err error
		if p, err = json.Marshal(v); err != nil {
			w.t.Fatal(err)
		}
	}
	if err := WriteFrame(w.in, Frame{Type: typ, Run: id, Payload: p}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *testWorker) read() Frame {
	w.t.Helper()
	f, err := ReadFrame(w.out)
	if err != nil {
		w.t.Fatal(err)
	}
	return f
}

// until reads frames until an Exit or NoStatus, returning the output.
func (w *testWorker) until(id uint32) (stdout, stderr string, last Frame) {
	w.t.Helper()
	var o, e strings.Builder
	for {
		f := w.read()
		if f.Run != id {
			w.t.Fatalf("frame %q for run %d, want %d", f.Type, f.Run, id)
		}
		switch f.Type {
		case Stdout:
			o.Write(f.Payload)
		case Stderr:
			e.Write(f.Payload)
		case Exit, NoStatus:
			return o.String(), e.String(), f
		default:
			w.t.Fatalf("unexpected frame %q", f.Type)
		}
	}
}

func prepare(dir, script string, env string) PrepareRun {
	return PrepareRun{Dir: dir, Interpreter: "bash", Args: []string{"script.sh", "bash"}, Files: []File{
		{Name: "script.sh", Data: []byte(script)},
		{Name: "env", Data: []byte(env)},
		{Name: "lib/cronium.sh", Data: []byte("cronium_loaded=yes\n")},
	}}
}

func TestWorkerRun(t *testing.T) {
	w := startWorker(t)
	script := `echo "out $FOO $cronium_loaded $PWD"; printf 'err\n' >&2; printf 'no newline'; exit 3`
	w.send(Prepare, 7, prepare("run_a", script, "FOO='it'\\''s'\nCRONIUM_WATCHDOG='60'\n"))
	if f := w.read(); f.Type != Ready || f.Run != 7 {
		t.Fatalf("prepare answered %q %s", f.Type, f.Payload)
	}
	d := filepath.Join(w.tmp, "run_a")
	if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("work directory: %v, %v", st, err)
	}
	w.send(Go, 7, nil)
	stdout, stderr, last := w.until(7)
	if last.Type != Exit {
		t.Fatalf("ended with %q", last.Type)
	}
	if st, _ := ExitStatus(last.Payload); st != 3 {
		t.Errorf("status %d, want 3", st)
	}
	if want := "out it's yes " + d + "\nno newline"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if stderr != "err\n" {
		t.Errorf("stderr %q", stderr)
	}
	// The directory stays, with the status, for the agent to remove once
	// it has journaled it.
	if st, err := os.ReadFile(filepath.Join(d, "status")); err != nil || string(st) != "3\n" {
		t.Errorf("status file %q, %v", st, err)
	}
}

func TestWorkerRefusals(t *testing.T) {
	w := startWorker(t)
	tests := []struct {
		name string
		p    PrepareRun
		want string
	}{
		{"missing interpreter", PrepareRun{Dir: "run_b", Interpreter: "no-such-interpreter", Args: []string{"s", "no-such-interpreter"}}, "no-such-interpreter is not installed on this server"},
		{"directory outside", PrepareRun{Dir: "../etc", Interpreter: "bash", Args: []string{"s", "bash"}}, "bad prepare frame"},
		{"file outside", PrepareRun{Dir: "run_c", Interpreter: "bash", Args: []string{"s", "bash"}, Files: []File{{Name: "../x", Data: []byte("x")}}}, `file name "../x"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uint32(i + 1)
			w.send(Prepare, id, tt.p)
			f := w.read()
			if f.Type != Failed || f.Run != id || !strings.Contains(string(f.Payload), tt.want) {
				t.Errorf("answer %q %q, want Failed with %q", f.Type, f.Payload, tt.want)
			}
		})
	}
	// A directory already there (someone else's under /tmp) is not used.
	if err := os.Mkdir(filepath.Join(w.tmp, "run_d"), 0o777); err != nil {
		t.Fatal(err)
	}
	w.send(Prepare, 9, prepare("run_d", "true", ""))
	if f := w.read(); f.Type != Failed || !strings.Contains(string(f.Payload), "exists") {
		t.Errorf("existing directory: %q %q", f.Type, f.Payload)
	}
	// A go for nothing prepared, and an abandoned run: refused, forgotten.
	w.send(Prepare, 10, prepare("run_e", "echo never", ""))
	if f := w.read(); f.Type != Ready {
		t.Fatalf("prepare: %q %q", f.Type, f.Payload)
	}
	w.send(Abandon, 10, nil)
	w.send(Go, 10, nil)
	if f := w.read(); f.Type != Failed || f.Run != 10 {
		t.Errorf("go after abandon: %q %q", f.Type, f.Payload)
	}
	if out, _ := os.ReadFile(filepath.Join(w.tmp, "run_e", "out")); len(out) != 0 {
		t.Errorf("an abandoned run ran: %q", out)
	}
}

// The agent goes away mid-run: the run goes on, writes its status and
// leaves its work directory (with all its output) to the next agent.
func TestWorkerAgentGone(t *testing.T) {
	tmp := t.TempDir()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ended := make(chan int, 1)
	go func() {
		ended <- Main(inR, outW, io.Discard, []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmp})
	}()
	w := &testWorker{t: t, tmp: tmp, in: inW, out: outR}
	if f := w.read(); f.Type != Ready {
		t.Fatalf("hello: %q", f.Type)
	}
	w.send(Prepare, 1, prepare("run_f", "echo one; sleep 0.5; echo two", ""))
	if f := w.read(); f.Type != Ready {
		t.Fatalf("prepare: %q %q", f.Type, f.Payload)
	}
	w.send(Go, 1, nil)
	if f := w.read(); f.Type != Stdout || string(f.Payload) != "one\n" {
		t.Fatalf("first output %q %q", f.Type, f.Payload)
	}
	// The agent's connection drops: both ways.
	inW.Close()
	outR.Close()
	select {
	case code := <-ended:
		if code != 0 {
			t.Errorf("worker exit %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the worker did not end once its run had")
	}
	d := filepath.Join(tmp, "run_f")
	for name, want := range map[string]string{"out": "one\ntwo\n", "status": "0\n"} {
		if got, err := os.ReadFile(filepath.Join(d, name)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(d, "env")); !os.IsNotExist(err) {
		t.Errorf("the environment file is still there: %v", err)
	}
}

// The watchdog ends a run at its time, and what a run leaves in the
// background goes with it: no process of its group is left.
func TestWorkerWatchdogAndLeftovers(t *testing.T) {
	w := startWorker(t)
	tests := []struct {
		name, script, env string
		want              int
	}{
		{"watchdog", "sleep 303.25 & echo started; wait", "CRONIUM_WATCHDOG='1'\n", 128 + 15},
		{"leftovers", "(sleep 304.5 &); echo started", "", 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uint32(i + 1)
			w.send(Prepare, id, prepare(fmt.Sprintf("run_w%d", i), tt.script, tt.env))
			if f := w.read(); f.Type != Ready {
				t.Fatalf("prepare: %q %q", f.Type, f.Payload)
			}
			w.send(Go, id, nil)
			stdout, _, last := w.until(id)
			if st, _ := ExitStatus(last.Payload); last.Type != Exit || st != tt.want || stdout != "started\n" {
				t.Errorf("ended %q status %d, stdout %q; want status %d", last.Type, st, stdout, tt.want)
			}
			// SIGKILL takes effect when the process next runs: on a loaded
			// host that may be a moment after the exit frame.
			marker := strings.Fields(tt.script)[1]
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				out, _ := exec.Command("pgrep", "-f", "sleep "+marker).Output()
				if len(out) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("left running: %s", out)
					break
				}
			}
		})
	}
}
