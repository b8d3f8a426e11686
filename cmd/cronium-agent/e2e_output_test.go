package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
)

// gib1 prints 1 GiB of 99-character lines as fast as bash can, then exits
// with the given status.
const gib1 = `yes "$(head -c 99 /dev/zero | tr '\0' a)" | head -c 1G; exit `

// lastLine ends gib1's output: head cuts the last of its 100-byte lines
// short, without a newline.
var lastLine = "\n" + strings.Repeat("a", (1<<30)%100)

// A job that prints fast ends with its own exit code and every byte, however
// long the capture lags behind its exit: here the reader of exec's stdout
// takes 64 MiB at 2 MiB/s, 30 s after the script ended (it used to end in
// 125, "output capture did not finish within 15s: %!w(<nil>)").
func TestE2EFastOutputKeepsExitCode(t *testing.T) {
	testenv.Containerd(t)
	cmd := exec.Command(agentBin, "exec", "--runtime", "bash", "--timeout", "10m", "-c",
		`yes "$(head -c 99 /dev/zero | tr '\0' a)" | head -c 64M; exit 3`)
	cmd.Env = append(os.Environ(), "CRONIUM_CONTAINERD_ADDRESS="+testenv.Address(), "CRONIUM_STATE_DIR="+stateDir(t), e2ePool)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var n int64
	buf := make([]byte, 64<<10)
	for {
		k, err := stdout.Read(buf)
		n += int64(k)
		if err != nil {
			break
		}
		time.Sleep(32 * time.Millisecond) // a slow terminal or consumer
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exec ended with %v, want the script's exit code 3 (stderr %q)", err, stderr.String())
	}
	if n != 64<<20 {
		t.Errorf("captured %d bytes, want %d", n, 64<<20)
	}
}

// The agent's memory and disk do not grow with a job's output: a job
// printing 1 GiB through the agent to a backend without a live-log endpoint
// (the deployed backend's case; everything goes through the journal)
// completes with its exit code, while the agent's anonymous memory stays
// bounded (it peaked at 400-450 MiB, 215 MiB of it one page of the journal
// backlog) and the run's output file stays within jobs.outputBudget (it
// took 1.28 GB).
func TestE2ELargeOutputBoundedMemory(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "", devserver.WithoutLogEndpoint())
	state := stateDir(t)
	a := startAgent(t, b.URL, state)
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: gib1 + "0", Timeout: "10m"})

	w := watchPeaks(a.cmd.Process.Pid, filepath.Join(state, "runs"))
	v := waitJob(t, b, id, 8*time.Minute)
	anon, disk := w.stop()
	if v.Status != "completed" || exitCode(v) != 0 || v.Output == nil {
		t.Fatalf("status %s exit %d (error %q)", v.Status, exitCode(v), v.Error)
	}
	// The completion carries the head and the tail, and says how much
	// lies between.
	if !regexp.MustCompile(`\[\.\.\. \d+ bytes omitted \.\.\.\]`).MatchString(v.Output.Stdout) ||
		!strings.HasSuffix(v.Output.Stdout, lastLine) {
		t.Errorf("stdout in the completion (%d bytes) lacks the marker or the last line", len(v.Output.Stdout))
	}
	t.Logf("agent RssAnon peak %d MiB, run files peak %d MiB", anon>>20, disk>>20)
	if anon > 160<<20 {
		t.Errorf("agent RssAnon peaked at %d MiB while the job printed 1 GiB, want under 160 MiB", anon>>20)
	}
	if disk > 1<<30+1<<20 {
		t.Errorf("run files peaked at %d bytes, over the default jobs.outputBudget of 1 GiB", disk)
	}
}

// Over jobs.outputBudget the output file keeps the head and the tail, and
// the job's log says how much was dropped in between, in its place.
func TestE2EOutputBudget(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	state := stateDir(t)
	a := startAgent(t, b.URL, state, "CRONIUM_JOBS_OUTPUT_BUDGET=16MiB")
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: gib1 + "0", Timeout: "10m"})
	w := watchPeaks(a.cmd.Process.Pid, filepath.Join(state, "runs"))
	v := waitJob(t, b, id, 8*time.Minute)
	_, disk := w.stop()
	if v.Status != "completed" || exitCode(v) != 0 {
		t.Errorf("status %s exit %d (error %q)", v.Status, exitCode(v), v.Error)
	}
	if disk > 17<<20 {
		t.Errorf("run files peaked at %d MiB, budget 16 MiB", disk>>20)
	}
	lines := assertLogsInOrder(t, b, id)
	notices := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "system:[... ") && strings.Contains(l, "dropped: the job's output passed its capture budget of 16777216 bytes") {
			notices++
		}
	}
	if notices != 1 || lines[len(lines)-1] != "stdout:"+lastLine[1:] || lines[0] != "stdout:"+strings.Repeat("a", 99) {
		t.Errorf("%d notices in %d lines; first %.40q last %.40q", notices, len(lines), lines[0], lines[len(lines)-1])
	}
}

// peaks follows a process's anonymous memory and the bytes of the files
// under a directory, keeping the highest of each.
type peaks struct {
	anon, disk atomic.Int64
	done       chan struct{}
	stopped    chan struct{}
}

func watchPeaks(pid int, dir string) *peaks {
	p := &peaks{done: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(p.stopped)
		for {
			if n := rssAnonKiB(pid) << 10; n > p.anon.Load() {
				p.anon.Store(n)
			}
			if n := dirBytes(dir); n > p.disk.Load() {
				p.disk.Store(n)
			}
			select {
			case <-p.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return p
}

func (p *peaks) stop() (anon, disk int64) {
	close(p.done)
	<-p.stopped
	return p.anon.Load(), p.disk.Load()
}

// dirBytes adds up the disk blocks of the files below dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				}
			}
		}
		return nil
	})
	return n
}

// rssAnonKiB reads a process's anonymous resident memory: the agent's own,
// without the journal's memory-mapped file pages (page cache, bounded by
// journal.budget).
func rssAnonKiB(pid int) int64 {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// A cleanup that fails after the script ran never changes the job's result
// (under load, "delete task ...: context deadline exceeded" used to turn
// finished scripts into failed/1): the run directory is pinned with an
// immutable file so that its removal fails.
func TestE2ECleanupFailureKeepsTheResult(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	state := stateDir(t)
	a := startAgent(t, b.URL, state)
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: "echo started; sleep 1; echo done"})
	var pinned string
	waitFor(t, time.Minute, func() bool {
		m, _ := filepath.Glob(filepath.Join(state, "runs", "cronium-job_*", "hosts")) // not a warm sandbox
		if len(m) == 1 && exec.Command("chattr", "+i", m[0]).Run() == nil {
			pinned = m[0]
			return true
		}
		return false
	})
	t.Cleanup(func() {
		// Unpinned and aged past a starting run's grace, the rest is the
		// cleanup's gc --all to remove.
		exec.Command("chattr", "-i", pinned).Run()
		old := time.Now().Add(-time.Hour)
		os.Chtimes(filepath.Dir(pinned), old, old)
	})
	v := waitJob(t, b, id, time.Minute)
	if v.Status != "completed" || exitCode(v) != 0 || v.Output == nil || v.Output.Stdout != "started\ndone\n" {
		t.Errorf("status %s exit %d output %+v (error %q)", v.Status, exitCode(v), v.Output, v.Error)
	}
	if _, err := os.Stat(pinned); err != nil {
		t.Fatalf("the pinned file is gone, so the cleanup did not fail: %v", err)
	}
	// The run's removal goes on after the result.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(a.stderr.String(), "gc will retry") {
		if time.Now().After(deadline) {
			t.Fatalf("the failed cleanup was not logged:\n%s", a.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
