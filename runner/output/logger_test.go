package output

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitReady blocks until the ready pipe is closed, as the shim does.
func waitReady(t *testing.T, r *os.File) {
	t.Helper()
	if err := r.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("ready pipe: read %d, %v; want it closed", n, err)
	}
}

// TestLoggerDrainsAfterTerminate starts a logger on pipes, checks ready
// comes before any data, delivers SIGTERM while data still flows, and
// checks that everything is captured anyway.
func TestLoggerDrainsAfterTerminate(t *testing.T) {
	outR, outW := mustPipe(t)
	errR, errW := mustPipe(t)
	readyR, readyW := mustPipe(t)
	term := make(chan os.Signal, 1)
	path := filepath.Join(t.TempDir(), "run.out")
	l := Logger{Path: path, Stdout: outR, Stderr: errR, Ready: readyW, Terminate: term}

	type result struct {
		sum Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := l.Run(context.Background())
		done <- result{s, err}
	}()
	waitReady(t, readyR)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("output file missing once ready: %v", err)
	}

	rng := rand.New(rand.NewPCG(11, 12))
	stdout := genStream(rng, 8<<20, 100<<10, true)
	stderr := genStream(rng, 1<<20, 1<<10, false)
	var wg sync.WaitGroup
	for _, p := range []struct {
		w    *os.File
		data []byte
	}{{outW, stdout}, {errW, stderr}} {
		wg.Go(func() {
			defer p.w.Close()
			for i := 0; i < len(p.data); i += 32 << 10 {
				if i == len(p.data)/2 && p.w == outW {
					term <- syscall.SIGTERM
				}
				if _, err := p.w.Write(p.data[i:min(i+32<<10, len(p.data))]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	res := <-done
	if res.err != nil {
		t.Fatalf("Run: %v", res.err)
	}
	es, sum := readAllEntries(t, path)
	if !sum.Complete || sum != res.sum {
		t.Fatalf("end record %+v, Run returned %+v", sum, res.sum)
	}
	checkEntries(t, es, sum, MaxLine)
	gotOut, gotErr := rebuild(es)
	equalBytes(t, "stdout", gotOut, stdout)
	equalBytes(t, "stderr", gotErr, stderr)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("output file mode: %v, %v", fi.Mode(), err)
	}
}

// TestLoggerDrainTimeout keeps a pipe open after SIGTERM: the logger stops
// after the drain timeout with what it has, and says so.
func TestLoggerDrainTimeout(t *testing.T) {
	outR, outW := mustPipe(t)
	errR, errW := mustPipe(t)
	_, readyW := mustPipe(t)
	defer outW.Close()
	errW.Close()
	term := make(chan os.Signal, 1)
	path := filepath.Join(t.TempDir(), "run.out")
	l := Logger{Path: path, Stdout: outR, Stderr: errR, Ready: readyW, Terminate: term, DrainTimeout: 50 * time.Millisecond}
	if _, err := outW.Write([]byte("before\nunfinished")); err != nil {
		t.Fatal(err)
	}
	term <- syscall.SIGTERM
	start := time.Now()
	sum, err := l.Run(context.Background())
	if !errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("Run: %v, want ErrDrainTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Run took %v after a 50ms drain timeout", d)
	}
	es, fileSum := readAllEntries(t, path)
	if fileSum.Complete || fileSum != sum {
		t.Fatalf("end record %+v, Run returned %+v", fileSum, sum)
	}
	out, _ := rebuild(es)
	equalBytes(t, "stdout", out, []byte("before\nunfinished"))
}

// TestLoggerRefusesExistingFile: an existing capture is never overwritten,
// and ready is still closed so the shim does not wait for nothing.
func TestLoggerRefusesExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.out")
	if err := os.WriteFile(path, []byte("earlier capture"), 0o600); err != nil {
		t.Fatal(err)
	}
	readyR, readyW := mustPipe(t)
	outR, _ := mustPipe(t)
	errR, _ := mustPipe(t)
	l := Logger{Path: path, Stdout: outR, Stderr: errR, Ready: readyW}
	if _, err := l.Run(context.Background()); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Run: %v, want os.ErrExist", err)
	}
	waitReady(t, readyR)
	if b, _ := os.ReadFile(path); string(b) != "earlier capture" {
		t.Fatalf("existing file changed to %q", b)
	}
}

// shimChildEnv makes the test binary act as the logger the shim starts.
const shimChildEnv = "OUTPUT_TEST_SHIM_LOGGER_PATH"

// TestShimLoggerChild is not a test: it is the child of
// TestRunShimLogger, started the way containerd's shim starts a logger.
func TestShimLoggerChild(t *testing.T) {
	path := os.Getenv(shimChildEnv)
	if path == "" {
		t.Skip("only runs as the child of TestRunShimLogger")
	}
	if err := RunShimLogger(context.Background(), path); err != nil {
		os.Stderr.WriteString(err.Error())
		os.Exit(3)
	}
	os.Exit(0)
}

// TestRunShimLogger runs the logger as a separate process with fds 3, 4, 5
// and a real SIGTERM sent while output still flows, like the runc shim.
func TestRunShimLogger(t *testing.T) {
	outR, outW := mustPipe(t)
	errR, errW := mustPipe(t)
	readyR, readyW := mustPipe(t)
	path := filepath.Join(t.TempDir(), "run.out")
	cmd := exec.Command(os.Args[0], "-test.run=^TestShimLoggerChild$")
	cmd.Env = append(os.Environ(), shimChildEnv+"="+path, "CONTAINER_ID=c1", "CONTAINER_NAMESPACE=cronium")
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	var stderrBuf bytes.Buffer
	cmd.Stderr = &stderrBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The shim closes its copies after start.
	outR.Close()
	errR.Close()
	readyW.Close()
	waitReady(t, readyR)

	var want bytes.Buffer
	for i := range 20000 {
		line := bytes.Repeat([]byte{byte('a' + i%26)}, i%300)
		want.Write(line)
		want.WriteByte('\n')
		if _, err := outW.Write(append(line, '\n')); err != nil {
			t.Fatal(err)
		}
		if i == 10000 {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}
	}
	outW.Write([]byte("no newline"))
	want.WriteString("no newline")
	errW.Write([]byte("warning\n"))
	outW.Close()
	errW.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("logger process: %v; stderr: %s", err, stderrBuf.String())
	}
	es, sum := readAllEntries(t, path)
	checkEntries(t, es, sum, MaxLine)
	gotOut, gotErr := rebuild(es)
	equalBytes(t, "stdout", gotOut, want.Bytes())
	equalBytes(t, "stderr", gotErr, []byte("warning\n"))
	if !sum.Complete {
		t.Fatal("capture not complete")
	}
}

// TestRunShimLoggerOutsideShim checks a logger started without the shim's
// descriptors fails instead of taking over descriptors it does not own.
func TestRunShimLoggerOutsideShim(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestShimLoggerChild$")
	cmd.Env = append(os.Environ(), shimChildEnv+"="+filepath.Join(t.TempDir(), "run.out"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !bytes.Contains(out, []byte("not started by a containerd shim")) {
		t.Fatalf("got %v, output %q", err, out)
	}
}

func TestShimArg(t *testing.T) {
	for _, tc := range []struct {
		path   string
		budget int64
	}{{"/var/lib/x/runs/r/output", 0}, {"/var/lib/x/runs/r/output", 1 << 30}, {"/a:b/output", 5 << 20}} {
		p, b, err := parseShimArg(ShimArg(tc.path, tc.budget))
		if err != nil || p != tc.path || b != tc.budget {
			t.Errorf("%q %d: round trip gave %q %d %v", tc.path, tc.budget, p, b, err)
		}
	}
	for _, bad := range []string{"", "relative/output", "12:relative", "x:/abs", "0:/abs", "-5:/abs", "123"} {
		if _, _, err := parseShimArg(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
