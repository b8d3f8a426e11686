package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/cronium/cronium-agent/cni"
)

// ErrNotStarted is wrapped by Adopt's error when the run's script never
// started: its task was created but not started, or nothing of it exists
// and it wrote no output. Everything of the run is removed; the caller may
// release or retry the job.
var ErrNotStarted = errors.New("the run never started")

// Adopt takes over run req.RunID, left by a previous process of this agent
// (same state directory) that died while the run was live, and finishes it
// as Run would have. req is the Request the run was started with,
// startedAt the StartedAt it was started at (PhaseStarting), and skip the
// number of output entries the caller already has: onEntry gets the
// entries after them, so that nothing is lost or repeated.
//
//   - A task still running (or paused) is waited for, with the timeout
//     counted from startedAt (one already past stops it at once) and
//     cancellation through ctx, as in Run; its network and runtime API are
//     taken over (the token in the job keeps working).
//   - A task that exited meanwhile is reported with its real exit status.
//   - A task created but never started, or no task, no container and no
//     output: everything is removed and the error wraps ErrNotStarted.
//   - A container (or output) without a task, which vanished with its exit
//     status: the output on file is delivered, everything is removed, and
//     the Result is Lost (see Result.Lost).
//
// Result.Entries counts every entry of the run, those skipped included.
// Of req.OnPhase, only PhaseExited is called (when the exit is known).
// Output and condition the script set through the runtime API before the
// adoption are not in the Result: only what it sets from now on.
//
// An error before Adopt has made out what is left of the run (containerd
// does not answer, another process holds the run) leaves everything as it
// is; any later one comes after everything was removed.
func (e *Executor) Adopt(ctx context.Context, req Request, startedAt time.Time, skip uint64, onEntry EntryFunc) (res Result, err error) {
	if err := validate(req); err != nil {
		return Result{}, err
	}
	if startedAt.IsZero() {
		return Result{}, fmt.Errorf("adopt job %s: no start time", req.JobID)
	}
	dir := filepath.Join(e.runsDir(), req.RunID)
	lock, err := openRunDir(dir)
	if err != nil {
		return Result{}, fmt.Errorf("adopt job %s: %w", req.JobID, err)
	}
	left, err := e.find(ctx, req.RunID)
	if err != nil {
		lock.Close()
		return Result{}, fmt.Errorf("adopt job %s: %w", req.JobID, err)
	}
	j := &job{req: req, dir: dir, lock: lock, network: e.adoptNetwork(ctx, req.RunID), ph: newPhases()}
	_ = req.phase(PhaseAdopted, time.Now())
	defer func() { err = e.release(ctx, j, err) }()
	outPath := filepath.Join(dir, "output")
	switch {
	case left.task != nil && left.status == containerd.Created:
		return Result{}, fmt.Errorf("adopt job %s: its task was created but never started: %w", req.JobID, ErrNotStarted)
	case left.task == nil && left.ctr == nil:
		// No output either: the run never got as far as its container.
		if entries, err := readAvailable(outPath, 0, nil); err == nil && entries == 0 {
			return Result{}, fmt.Errorf("adopt job %s: %w", req.JobID, ErrNotStarted)
		}
		fallthrough
	case left.task == nil:
		return e.lost(ctx, req, outPath, startedAt, lostWhileDown, func() (uint64, error) { return readAvailable(outPath, skip, onEntry) })
	}
	return e.resume(ctx, j, left, startedAt, skip, onEntry)
}

// resume continues an adopted run whose task was started: as Run from the
// wait on.
func (e *Executor) resume(ctx context.Context, j *job, left leftover, startedAt time.Time, skip uint64, onEntry EntryFunc) (Result, error) {
	req := j.req
	j.started = true
	exec := req.Execution
	exec.StartTime = startedAt
	var err error
	if j.session, err = e.serveAPI(ctx, j.network.n, exec); err != nil {
		// The job runs on without its runtime API rather than being given up.
		e.log.Warn("the adopted job's runtime API cannot be served", "container", req.RunID, "error", err)
	}
	if left.status == containerd.Paused {
		// The agent never pauses jobs; one paused by hand is thawed, as a
		// frozen job takes no signal and could not be stopped at its deadline.
		if err := left.task.Resume(ctx); err != nil {
			e.log.Warn("resume the adopted job", "container", req.RunID, "error", err)
		}
	}
	wctx := j.waitContext(ctx)
	exitCh, err := left.task.Wait(wctx)
	if err != nil {
		return Result{}, fmt.Errorf("wait for task of job %s: %w", req.JobID, err)
	}
	w := e.watch(ctx, wctx, req.RunID, left.task, exitCh, startedAt.Add(req.Timeout))
	if left.status == containerd.Stopped {
		// Its exit is known: no deadline or cancellation applies any more.
		<-w.done
	}
	follow := e.follow(ctx, filepath.Join(j.dir, "output"), skip, onEntry)
	defer follow.stop()
	e.log.Info("adopted job", "container", req.RunID, "task", left.status, "startedAt", startedAt, "skip", skip)
	return e.finish(ctx, j, attached{watch: w, startedAt: startedAt, cgroups: left.cgroups, follow: follow})
}

// openRunDir locks the run's directory, making it if it is gone (so that
// what else is left of the run is removed the same way).
func openRunDir(dir string) (*os.File, error) {
	if err := os.Mkdir(dir, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	return lockRunDir(dir)
}

// leftover is what containerd still has of a run.
type leftover struct {
	ctr     containerd.Container // nil: none
	cgroups string               // the container's cgroups path
	task    containerd.Task      // nil: none
	status  containerd.ProcessStatus
}

func (e *Executor) find(ctx context.Context, id string) (leftover, error) {
	ctr, err := e.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return leftover{}, nil
	}
	if err != nil {
		return leftover{}, fmt.Errorf("load container %s: %w", id, err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return leftover{}, fmt.Errorf("read the spec of container %s: %w", id, err)
	}
	left := leftover{ctr: ctr}
	if spec.Linux != nil {
		left.cgroups = spec.Linux.CgroupsPath
	}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return left, nil
	}
	if err != nil {
		return leftover{}, fmt.Errorf("load task %s: %w", id, err)
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return left, nil
	}
	if err != nil {
		return leftover{}, fmt.Errorf("status of task %s: %w", id, err)
	}
	left.task, left.status = task, st.Status
	return left, nil
}

// adoptNetwork takes over the run's network, if it has one that is whole.
// Without it the run goes on without its runtime API (or is removed).
func (e *Executor) adoptNetwork(ctx context.Context, runID string) *netSetup {
	s := &netSetup{done: make(chan struct{})}
	defer close(s.done)
	if e.net == nil {
		return s
	}
	n, err := e.net.Adopt(ctx, netID(runID))
	switch {
	case errors.Is(err, cni.ErrNoNetwork):
		e.log.Info("the adopted run has no network left", "container", runID, "error", err)
	case err != nil:
		e.log.Warn("the adopted run's network cannot be taken over", "container", runID, "error", err)
	}
	s.n = n
	return s
}
