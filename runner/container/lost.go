package container

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/output"
)

// LostReasons.
const (
	lostWhileRunning = "the job's container task disappeared while it ran (its shim was killed, or containerd lost it); its exit status is unknown"
	lostWhileDown    = "the job's container task was lost while the agent was down (host restart, or its shim killed?); its exit status is unknown"
)

// leftoverWait bounds awaitLeftovers.
const leftoverWait = 10 * time.Second

// lost reports a run whose task vanished with its exit status: the output
// in outPath, which read delivers and counts, is all there is.
func (e *Executor) lost(ctx context.Context, req Request, outPath string, startedAt time.Time, reason string, read func() (uint64, error)) (Result, error) {
	e.awaitLeftovers(ctx, req.RunID, outPath)
	entries, err := read()
	res := Result{
		Status:     api.StatusFailed,
		ExitCode:   containerd.UnknownExitStatus,
		Lost:       true,
		LostReason: reason,
		StartedAt:  startedAt,
		FinishedAt: time.Now(),
		Entries:    entries,
	}
	if err != nil {
		return res, fmt.Errorf("output of job %s: %w", req.JobID, err)
	}
	return res, nil
}

// awaitLeftovers waits, for a bounded time, until no shim process of a
// vanished task and no output logger of it is left. When a shim dies,
// containerd forgets the task at once but cleans up after it with one more
// shim process (runc delete: the job's processes are killed, its root file
// system unmounted); the logger then writes what the job's pipes still
// held and exits. Removing the run before would leave a mount behind and
// lose output. After a host restart there is neither, and nothing to wait.
func (e *Executor) awaitLeftovers(ctx context.Context, runID, outPath string) {
	ns := e.namespace(ctx)
	deadline := time.Now().Add(leftoverWait)
	for shimRunning(ns, e.address(), runID) || loggerRunning(outPath) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			e.log.Warn("processes of a vanished task are still running; removing the run anyway", "container", runID)
			// A shim whose task containerd no longer knows serves nothing:
			// an agent killed while its task was being deleted cut the
			// shim's shutdown short. gc would kill it; so does this.
			if daemons, _ := shimProcesses(ns, e.address()); daemons[runID] != 0 {
				if pid := daemons[runID]; syscall.Kill(pid, syscall.SIGKILL) == nil {
					e.log.Info("killed the orphan shim of a vanished task", "container", runID, "pid", pid)
				}
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shimRunning reports whether a shim of container id runs: its daemon, or
// containerd's clean-up call.
func shimRunning(ns, address, id string) bool {
	daemons, calls := shimProcesses(ns, address)
	return daemons[id] != 0 || calls[id] != 0
}

// loggerRunning reports whether an output logger writes outPath. Its
// argument carries the output budget too (output.ShimArg).
func loggerRunning(outPath string) bool {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		if data, err := os.ReadFile(p); err == nil && output.IsShimLoggerOf(data, outPath) {
			return true
		}
	}
	return false
}
