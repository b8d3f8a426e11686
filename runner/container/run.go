package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/runtimes"
	"github.com/cronium/cronium-agent/sidecar"
)

// Request is one run of a script job.
type Request struct {
	// RunID names the container, its snapshot and its files; unique per run.
	RunID    string
	JobID    string
	Hostname string
	Runtime  runtimes.Runtime
	Image    string
	Script   []byte
	// Env is the complete job environment (job values and CRONIUM_* already merged).
	Env       map[string]string
	Resources oci.Resources
	Timeout   time.Duration
	// Execution is what the runtime API serves the run (ids, input, context).
	Execution sidecar.Execution
}

// Status is how a run ended.
type Status string

// Run end states, as the backend names them.
const (
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusTimeout   Status = "timeout"
	StatusCancelled Status = "cancelled"
)

// Result is what a finished run reports.
type Result struct {
	Status Status
	// ExitCode is the script's own exit code (128+signal when killed).
	ExitCode  int
	OOMKilled bool
	// MemoryLimit is the limit that applied, reported with OOMKilled.
	MemoryLimit int64
	StartedAt   time.Time
	FinishedAt  time.Time
	// Entries counts the captured output entries.
	Entries uint64
	// Output is the value the script set through the runtime API, if any.
	Output    json.RawMessage
	HasOutput bool
	// Condition is the workflow condition the script set, if any.
	Condition    bool
	HasCondition bool
}

// BackendExitCode is the exit code as the Cronium backend understands it:
// the script's own, -1 for a timeout, -2 for a cancellation.
func (r Result) BackendExitCode() int {
	switch r.Status {
	case StatusTimeout:
		return -1
	case StatusCancelled:
		return -2
	}
	return r.ExitCode
}

// EntryFunc receives every captured output entry, in order, while the job runs.
type EntryFunc func(output.Entry)

// Run runs one job to its end and removes everything it created. Cancelling
// ctx stops the job (SIGTERM, grace, SIGKILL) and reports it cancelled.
func (e *Executor) Run(ctx context.Context, req Request, onEntry EntryFunc) (res Result, err error) {
	if err := validate(req); err != nil {
		return Result{}, err
	}
	ph := newPhases()
	dir := filepath.Join(e.runsDir(), req.RunID)
	lock, err := createRunDir(dir)
	if err != nil {
		return Result{}, err
	}
	network := e.startNetwork(ctx, strings.TrimPrefix(req.RunID, "cronium-"))
	var session *sidecar.Session
	// Cleanup runs on a context of its own: a cancelled run must still be removed.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		ph.mark("capture")
		if session != nil {
			err = errorsJoinCleanup(err, session.Close())
		}
		err = errorsJoinCleanup(err, e.remove(cctx, req.RunID, dir))
		lock.Close()
		e.teardownLater(req.RunID, network)
		ph.mark("cleanup")
		e.log.Debug("run phases", "container", req.RunID, "ms", ph.String())
	}()

	ph.mark("dir")
	img, err := e.images.Ensure(ctx, req.Image)
	if err != nil {
		return Result{}, err
	}
	ph.mark("ensure")
	imgSpec, err := img.Spec(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("read image config of %s: %w", req.Image, err)
	}
	ph.mark("spec")
	// The lease keeps the new snapshot from containerd's garbage collector
	// until the container that references it exists.
	lctx, done, err := e.client.WithLease(ctx, leases.WithExpiration(10*time.Minute))
	if err != nil {
		return Result{}, fmt.Errorf("lease for job %s: %w", req.JobID, err)
	}
	defer done(context.WithoutCancel(ctx))
	if err := e.viewSnapshot(lctx, req.RunID, img); err != nil {
		return Result{}, fmt.Errorf("job %s: %w", req.JobID, err)
	}
	ph.mark("snapshot")
	n, err := network.wait(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("network for job %s: %w", req.JobID, err)
	}
	ph.mark("network")
	if session, err = e.serveAPI(ctx, n, req.Execution); err != nil {
		return Result{}, fmt.Errorf("job %s: %w", req.JobID, err)
	}
	spec, err := e.spec(req, dir, imgSpec.Config.Env, n, session)
	if err != nil {
		return Result{}, err
	}
	ph.mark("spec")
	ctr, err := e.client.NewContainer(lctx, req.RunID,
		containerd.WithSnapshotter(e.snapshotter),
		containerd.WithSnapshot(req.RunID),
		containerd.WithImageName(img.Name()),
		containerd.WithRuntime(e.runtime, nil),
		containerd.WithSpec(spec),
		containerd.WithContainerLabels(map[string]string{LabelAgent: "run", LabelJob: req.JobID, LabelRun: req.RunID, LabelState: e.stateDir}),
	)
	if err != nil {
		return Result{}, fmt.Errorf("create container for job %s: %w", req.JobID, err)
	}

	ph.mark("container")
	outPath := filepath.Join(dir, "output")
	// Not cancellable: containerd 1.6 leaves the shim of a task create
	// cancelled half-way running with nothing to reap it. A cancelled run
	// stops right after, through the normal kill path.
	tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	task, err := ctr.NewTask(tctx, cio.LogURI(e.loggerURI(outPath)))
	tcancel()
	if err != nil {
		return Result{}, fmt.Errorf("create task for job %s: %w", req.JobID, err)
	}
	ph.mark("task")
	exitCh, err := task.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return Result{}, fmt.Errorf("wait for task of job %s: %w", req.JobID, err)
	}

	follow := e.follow(ctx, outPath, onEntry)
	defer follow.stop()
	res.StartedAt = time.Now()
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	err = task.Start(sctx)
	scancel()
	if err != nil {
		return Result{}, fmt.Errorf("start task for job %s: %w", req.JobID, err)
	}

	ph.mark("start")
	status, exit := e.await(ctx, task, exitCh, req.Timeout)
	res.FinishedAt = time.Now()
	code, _, exitErr := exit.Result()
	if exitErr != nil {
		return res, fmt.Errorf("exit status of job %s: %w", req.JobID, exitErr)
	}
	res.ExitCode = int(code)
	res.Status = status
	if session != nil {
		// The token stops working the moment the script is gone.
		if err := session.Close(); err != nil {
			e.log.Warn("close runtime API", "container", req.RunID, "error", err)
		}
		res.Output, res.HasOutput = session.Output()
		res.Condition, res.HasCondition = session.Condition()
		session = nil
	}
	if e.oomKilled(spec.Linux.CgroupsPath) {
		res.OOMKilled = true
		res.MemoryLimit = req.Resources.MemoryBytes
	}
	if res.Status == StatusCompleted && res.ExitCode != 0 {
		res.Status = StatusFailed
	}

	ph.mark("exit")
	// Deleting the task closes the output pipes; the shim then waits for the
	// logger to write its end record and exit, so the follower can finish.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := task.Delete(dctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return res, fmt.Errorf("delete task of job %s: %w", req.JobID, err)
	}
	ph.mark("delete")
	res.Entries, err = follow.wait(e.endWait)
	if err != nil {
		return res, fmt.Errorf("output of job %s: %w", req.JobID, err)
	}
	return res, nil
}

// spec writes the run's files (script, hosts) and builds its OCI spec.
func (e *Executor) spec(req Request, dir string, imageEnv []string, n *cni.Network, session *sidecar.Session) (*specs.Spec, error) {
	scriptPath := filepath.Join(dir, req.Runtime.ScriptName)
	if err := os.WriteFile(scriptPath, req.Script, 0o444); err != nil {
		return nil, fmt.Errorf("write script for job %s: %w", req.JobID, err)
	}
	hostsPath := filepath.Join(dir, "hosts")
	if err := writeHosts(hostsPath, req.Hostname, n); err != nil {
		return nil, err
	}
	files := []oci.FileMount{
		{Source: scriptPath, Destination: req.Runtime.ScriptPath()},
		{Source: hostsPath, Destination: "/etc/hosts"},
	}
	if e.helperDir != "" {
		files = append(files,
			oci.FileMount{Source: e.helperDir, Destination: HelperLibDir},
			oci.FileMount{Source: e.helperBin, Destination: HelperBin, Exec: true})
	}
	var apiURL, token string
	if session != nil {
		apiURL, token = fmt.Sprintf(RuntimeAPI, e.apiPort), session.Token()
	}
	env, err := oci.Env(imageEnv, e.helperEnv(imageEnv, req.Env, apiURL, token), nil)
	if err != nil {
		return nil, fmt.Errorf("environment of job %s: %w", req.JobID, err)
	}
	job := oci.Job{
		ID:           req.RunID,
		Hostname:     req.Hostname,
		Args:         req.Runtime.Args(),
		Env:          env,
		Resources:    req.Resources,
		Files:        files,
		CgroupParent: CgroupParent,
		IDMap:        e.idmap,
	}
	if n != nil {
		job.NetNSPath = n.NetNSPath()
	}
	return oci.Spec(job)
}

func validate(req Request) error {
	var problems []string
	if req.RunID == "" {
		problems = append(problems, "run id is empty")
	}
	if strings.ContainsAny(req.RunID, "/\x00") || req.RunID == "." || req.RunID == ".." {
		problems = append(problems, fmt.Sprintf("run id %q is not a valid name", req.RunID))
	}
	if req.Image == "" {
		problems = append(problems, "no image")
	}
	if req.Timeout <= 0 {
		problems = append(problems, "timeout must be positive")
	}
	if len(req.Runtime.Interpreter) == 0 {
		problems = append(problems, "no runtime")
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid run of job %s: %s", req.JobID, strings.Join(problems, "; "))
	}
	return nil
}

// await waits for the task to exit, enforcing the timeout and cancellation:
// SIGTERM to every process of the job, the grace period, then SIGKILL.
func (e *Executor) await(ctx context.Context, task containerd.Task, exitCh <-chan containerd.ExitStatus, timeout time.Duration) (Status, containerd.ExitStatus) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var status Status
	select {
	case st := <-exitCh:
		return StatusCompleted, st
	case <-timer.C:
		status = StatusTimeout
	case <-ctx.Done():
		status = StatusCancelled
	}
	kctx := context.WithoutCancel(ctx)
	e.log.Info("stopping job", "container", task.ID(), "reason", status, "grace", e.killGrace)
	// The script is pid 1 of its namespace and ignores SIGTERM unless it
	// handles it, so the signal goes to every process of the job.
	if err := task.Kill(kctx, syscall.SIGTERM, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		e.log.Warn("SIGTERM failed", "container", task.ID(), "error", err)
	}
	grace := time.NewTimer(e.killGrace)
	defer grace.Stop()
	select {
	case st := <-exitCh:
		return status, st
	case <-grace.C:
	}
	if err := task.Kill(kctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		e.log.Warn("SIGKILL failed", "container", task.ID(), "error", err)
	}
	return status, <-exitCh
}

// loggerURI is the shim-side logger: `<agent> shim-logger <file>`.
func (e *Executor) loggerURI(outPath string) *url.URL {
	return &url.URL{Scheme: "binary", Path: e.loggerPath, RawQuery: url.Values{"shim-logger": {outPath}}.Encode()}
}

type follower struct {
	done    chan struct{}
	entries uint64
	err     error
	cancel  context.CancelFunc
	// kick ends the follower's poll waits: once the task is deleted the
	// file is complete, and the rest is read at once.
	kick context.CancelFunc
}

// follow reads the output file as the logger writes it and hands every
// entry to onEntry. It waits for the file to appear.
func (e *Executor) follow(ctx context.Context, path string, onEntry EntryFunc) *follower {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pollCtx, kick := context.WithCancel(fctx)
	f := &follower{done: make(chan struct{}), cancel: cancel, kick: kick}
	go func() {
		defer close(f.done)
		r, err := openWhenCreated(fctx, path)
		if err != nil {
			f.err = err
			return
		}
		defer r.Close()
		deliver := func(ent output.Entry) {
			f.entries++
			if onEntry != nil {
				onEntry(ent)
			}
		}
		for {
			ent, err := r.Next(pollCtx)
			switch {
			case err == nil:
				deliver(ent)
				continue
			case errors.Is(err, io.EOF):
				return
			case pollCtx.Err() != nil && fctx.Err() == nil:
				f.err = drain(fctx, r, deliver)
				return
			}
			f.err = err
			return
		}
	}()
	return f
}

// drain reads what is left without poll waits, until the end record.
func drain(ctx context.Context, r *output.Reader, deliver func(output.Entry)) error {
	for {
		ent, err := r.TryNext()
		switch {
		case err == nil:
			deliver(ent)
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, output.ErrNoData):
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		default:
			return err
		}
	}
}

// stop ends the follower, whatever it is waiting for; safe after wait.
func (f *follower) stop() {
	f.cancel()
	<-f.done
}

// wait gives the follower up to d to read the end record.
func (f *follower) wait(d time.Duration) (uint64, error) {
	f.kick()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.done:
	case <-t.C:
		f.cancel()
		<-f.done
		return f.entries, fmt.Errorf("output capture did not finish within %s: %w", d, f.err)
	}
	f.cancel()
	return f.entries, f.err
}

func openWhenCreated(ctx context.Context, path string) (*output.Reader, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		r, err := output.Open(path)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("output file never appeared: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// phases records how long each step of a run took, for the debug log.
type phases struct {
	last  time.Time
	steps []string
}

func newPhases() *phases { return &phases{last: time.Now()} }

func (p *phases) mark(name string) {
	now := time.Now()
	p.steps = append(p.steps, fmt.Sprintf("%s=%.1f", name, float64(now.Sub(p.last).Microseconds())/1000))
	p.last = now
}

func (p *phases) String() string { return strings.Join(p.steps, " ") }
