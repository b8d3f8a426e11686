package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
)

// gib1 prints 1 GiB of 99-character lines as fast as bash can, then exits
// with the given status.
const gib1 = `yes "$(head -c 99 /dev/zero | tr '\0' a)" | head -c 1G; exit `

// A job that prints fast ends with its own exit code, every byte captured,
// however long the capture lags behind the exit (it used to end in 125,
// "output capture did not finish within 15s").
func TestE2EFastOutputKeepsExitCode(t *testing.T) {
	testenv.Containerd(t)
	cmd := exec.Command(agentBin, "exec", "--runtime", "bash", "--timeout", "10m", "-c", gib1+"3")
	cmd.Env = append(os.Environ(), "CRONIUM_CONTAINERD_ADDRESS="+testenv.Address(), "CRONIUM_STATE_DIR="+stateDir(t))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exec ended with %v, want the script's exit code 3 (stderr %q)", err, stderr.String())
	}
	if n != 1<<30 {
		t.Errorf("captured %d bytes, want %d", n, 1<<30)
	}
}

// The agent's memory does not grow with a job's output: a job printing
// 1 GiB through the agent to a backend without a live-log endpoint (the
// deployed backend's case; everything goes through the journal) completes
// with its exit code while the agent's anonymous memory stays bounded (it
// peaked at 400-450 MiB, 215 MiB of it one page of the journal backlog).
func TestE2ELargeOutputBoundedMemory(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "", devserver.WithoutLogEndpoint())
	a := startAgent(t, b.url, stateDir(t))
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: gib1 + "0", Timeout: "10m"})

	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			if kib := rssAnonKiB(a.cmd.Process.Pid); kib > peak.Load() {
				peak.Store(kib)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	v := waitJob(t, b, id, 8*time.Minute)
	close(stop)
	if v.Status != "completed" || exitCode(v) != 0 {
		t.Errorf("status %s exit %d (error %q)", v.Status, exitCode(v), v.Error)
	}
	// The completion carries the head and tail of the 1 GiB, and says how
	// much lies between.
	m := regexp.MustCompile(`\[\.\.\. (\d+) bytes omitted \.\.\.\]`).FindStringSubmatch(v.Output.Stdout)
	if m == nil {
		t.Fatalf("stdout in the completion has no omission marker (%d bytes)", len(v.Output.Stdout))
	}
	// jobs.outputCap (1 MiB by default) of head and tail are kept.
	if omitted, _ := strconv.Atoi(m[1]); omitted != 1<<30-1<<20 {
		t.Errorf("%d bytes omitted, want 1 GiB less the 1 MiB kept", omitted)
	}
	const bound = 160 << 10 // KiB
	t.Logf("agent RssAnon peak %d MiB", peak.Load()>>10)
	if peak.Load() > bound {
		t.Errorf("agent RssAnon peaked at %d MiB while the job printed 1 GiB, want under %d MiB", peak.Load()>>10, bound>>10)
	}
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
	a := startAgent(t, b.url, state)
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: "echo started; sleep 1; echo done"})
	var pinned string
	waitFor(t, time.Minute, func() bool {
		m, _ := filepath.Glob(filepath.Join(state, "runs", "*", "hosts"))
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
	if !strings.Contains(a.stderr.String(), "gc will retry") {
		t.Errorf("the failed cleanup was not logged:\n%s", a.stderr.String())
	}
}
