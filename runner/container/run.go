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
	"sync/atomic"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/cio"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/runtimes"
	"github.com/cronium/cronium-agent/runtimes/jobinit"
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
	// OnPhase, when set, is called synchronously as the run reaches each
	// Phase, so that the caller can journal it first. An error it returns
	// at PhaseNetwork or PhaseStarting aborts the run before the script
	// starts (everything is removed and the error returned, with a zero
	// StartedAt); one at PhaseExited is returned with the result, the run
	// being over anyway.
	OnPhase func(p Phase, at time.Time) error `json:"-"`
	// OnExit, when set, is called synchronously with the task's status and
	// exit code once they are known, before the task is deleted, so that
	// the caller can journal them: after the deletion nothing else tells
	// them to a restarted agent (Adopt finds the run lost). Its error is
	// returned with the result, as PhaseExited's.
	OnExit func(status api.Status, exitCode int, at time.Time) error `json:"-"`
	// OnRunID, when set, is called before PhaseStarting when the run
	// takes a warm sandbox: the run then goes by the sandbox's id, not
	// RunID, and the caller journals that id with the start.
	OnRunID func(id string) `json:"-"`
}

// ErrHandOver, as the cause of ctx's cancellation, leaves a started run
// going: Run and Adopt return at once with Result.HandedOver, stopping and
// removing nothing (the run's container, task, network, files and output
// file stay), for the next agent process to adopt.
var ErrHandOver = errors.New("the agent hands its running jobs over to its next start")

// errHandedOver: await met ErrHandOver.
var errHandedOver = errors.New("run handed over")

// Result is what a finished run reports.
type Result struct {
	// HandedOver: the run goes on (ErrHandOver); nothing else counts.
	HandedOver bool
	// Status is how the run ended (never StatusRunning).
	Status api.Status
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
	// Notes are what went wrong around the script without changing its
	// result (output capture cut short, say): for the job's log.
	Notes []string
	// Lost says that the run's task vanished with its exit status (a host
	// restart, a killed shim, containerd losing its state): the run is
	// reported failed, with the output captured up to then, ExitCode 255
	// (containerd's "unknown exit status"; not -1, which the backend reads
	// as a timeout) and LostReason saying what happened.
	Lost       bool
	LostReason string
	// Usage is what the script consumed, from its cgroup; all unknown
	// for a lost run, whose cgroup went with its task.
	Usage Usage
}

// BackendExitCode is the exit code as the Cronium backend understands it:
// the script's own, -1 for a timeout, -2 for a cancellation.
func (r Result) BackendExitCode() int {
	switch r.Status {
	case api.StatusTimeout:
		return -1
	case api.StatusCancelled:
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
	busy := &busyMark{e: e}
	busy.set(true)
	defer busy.set(false)
	if e.pool != nil {
		if sb := e.pool.take(req); sb != nil {
			if sb.usable(ctx) {
				return e.runWarm(ctx, req, sb, busy, onEntry)
			}
			e.log.Warn("warm sandbox no longer usable; the job starts cold", "container", sb.id)
			e.destroySandbox(sb)
		}
	}
	ph := newPhases()
	dir := filepath.Join(e.runsDir(), req.RunID)
	lock, err := createRunDir(dir)
	if err != nil {
		return Result{}, err
	}
	j := &job{req: req, dir: dir, lock: lock, network: e.startNetwork(ctx, netID(req.RunID)), ph: ph, busy: busy}
	defer func() { err = e.release(ctx, j, err) }()
	if err := req.phase(PhaseNetwork, time.Now()); err != nil {
		return Result{}, err
	}

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
	n, err := j.network.wait(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("network for job %s: %w", req.JobID, err)
	}
	ph.mark("network")
	if j.session, err = e.serveAPI(ctx, n, req.Execution); err != nil {
		return Result{}, fmt.Errorf("job %s: %w", req.JobID, err)
	}
	var token string
	if j.session != nil {
		token = j.session.Token()
	}
	spec, err := e.spec(req, dir, imgSpec.Config.Env, n, token, false)
	if err != nil {
		return Result{}, err
	}
	ph.mark("spec")
	ctr, err := e.client.NewContainer(lctx, req.RunID,
		containerd.WithSnapshotter(e.snapshotter),
		containerd.WithSnapshot(req.RunID),
		containerd.WithImageName(img.Name()),
		containerd.WithRuntime(e.runtime, e.runtimeOptions()),
		containerd.WithSpec(spec),
		containerd.WithContainerLabels(map[string]string{LabelAgent: "run", LabelJob: req.JobID, LabelRun: req.RunID, LabelState: e.stateDir}),
	)
	if err != nil {
		return Result{}, fmt.Errorf("create container for job %s: %w", req.JobID, err)
	}

	ph.mark("container")
	_ = req.phase(PhaseCreated, time.Now())
	// Not cancellable: containerd 1.6 leaves the shim of a task create
	// cancelled half-way running with nothing to reap it. A cancelled run
	// stops right after, through the normal kill path.
	tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	task, err := ctr.NewTask(tctx, cio.LogURI(e.loggerURI(filepath.Join(dir, "output"))))
	tcancel()
	if err != nil {
		return Result{}, fmt.Errorf("create task for job %s: %w", req.JobID, err)
	}
	ph.mark("task")
	return e.start(ctx, j, task, spec.Linux.CgroupsPath, onEntry)
}

// start starts a created task (a cold run's, or a warm sandbox's) and sees
// the run to its end.
func (e *Executor) start(ctx context.Context, j *job, task containerd.Task, cgroups string, onEntry EntryFunc) (Result, error) {
	req := j.req
	wctx := j.waitContext(ctx)
	exitCh, err := task.Wait(wctx)
	if err != nil {
		return Result{}, fmt.Errorf("wait for task of job %s: %w", req.JobID, err)
	}

	follow := e.follow(ctx, filepath.Join(j.dir, "output"), 0, onEntry)
	defer follow.stop()
	startedAt := time.Now()
	// The caller journals the start before the script can do anything.
	if err := req.phase(PhaseStarting, startedAt); err != nil {
		return Result{}, err
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	err = task.Start(sctx)
	scancel()
	if err != nil {
		return Result{}, fmt.Errorf("start task for job %s: %w", req.JobID, err)
	}
	j.ph.mark("start")
	j.started = true
	j.young = e.holdYoung()
	j.busy.set(false)
	w := e.watch(ctx, wctx, req.RunID, task, exitCh, startedAt.Add(req.Timeout))
	return e.finish(ctx, j, attached{watch: w, startedAt: startedAt, cgroups: cgroups, follow: follow})
}

// job is what one run holds from its start (or adoption) to its removal.
type job struct {
	req     Request
	dir     string
	lock    *os.File
	network *netSetup
	session *sidecar.Session
	ph      *phases
	// started: the script ran, so the run has a result of its own.
	started bool
	// handedOver: the run goes on for the next agent process; nothing of
	// it is removed.
	handedOver bool
	// stopWait ends the wait for the task's exit (waitContext).
	stopWait context.CancelFunc
	// busy marks the run's setup and end (nil for an adopted run).
	busy *busyMark
	// young holds the pool back for the run's first moments (youngHold).
	young *youngHold
	// deleting, once the task's deletion began (finish), is closed when
	// it is over, with deleteErr.
	deleting  chan struct{}
	deleteErr error
}

// waitContext is the context of the wait for the task's exit: not ended
// by the run's cancellation (the exit is still awaited then), only by the
// run's release.
func (j *job) waitContext(ctx context.Context) context.Context {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	j.stopWait = cancel
	return wctx
}

// release removes everything of the run and adds what went wrong doing so
// to err. It runs on a context of its own: a cancelled run must still be
// removed, and across a containerd restart.
//
// Once the script has started, its result stands whatever the cleanup
// meets: cleanup errors are only logged then (gc retries the removal).
func (e *Executor) release(ctx context.Context, j *job, err error) error {
	j.ph.mark("capture")
	if j.stopWait != nil {
		defer j.stopWait()
	}
	var cerr error
	if j.session != nil {
		cerr = j.session.Close()
	}
	if j.handedOver {
		// Everything stays for the next agent process, which serves the
		// runtime API again and removes the rest once the job ended.
		j.lock.Close()
		if e.net != nil {
			if n, nerr := j.network.wait(context.Background()); nerr == nil {
				e.net.Release(n)
			}
		}
		return errors.Join(err, cerr)
	}
	if j.started {
		// The script's result stands whatever the removal meets: it is
		// done off the result path, the run's lock held until it is over.
		e.cleanups.Add(1)
		go func() {
			defer e.cleanups.Done()
			e.removeRun(context.WithoutCancel(ctx), j, cerr)
		}()
		return err
	}
	cerr = errors.Join(cerr, e.call(ctx, j.req.RunID, "remove the run", func(lostAt time.Time) time.Time { return lostAt.Add(cleanupWait) },
		func(ctx context.Context) error { return e.remove(ctx, j.req.RunID, j.dir) }))
	err = errorsJoinCleanup(err, cerr)
	j.lock.Close()
	e.teardownLater(j.req.RunID, j.network)
	return err
}

// removeRun removes a finished run: its container, snapshot, files and
// network. What fails is retried in the background, then left to gc.
func (e *Executor) removeRun(ctx context.Context, j *job, cerr error) {
	if j.deleting != nil {
		<-j.deleting
	}
	cerr = errors.Join(cerr, e.call(ctx, j.req.RunID, "remove the run", func(lostAt time.Time) time.Time { return lostAt.Add(cleanupWait) },
		func(ctx context.Context) error { return e.remove(ctx, j.req.RunID, j.dir) }))
	if cerr != nil {
		e.log.Warn("removing the finished run failed; retrying in the background, and gc will retry what is left", "container", j.req.RunID, "error", cerr)
		e.removeLater(j.req.RunID, j.dir)
	}
	j.lock.Close()
	e.teardownLater(j.req.RunID, j.network)
	j.ph.mark("cleanup")
	e.log.Debug("run phases", "container", j.req.RunID, "ms", j.ph.String())
}

// removeLater retries the removal of a finished run whose cleanup failed
// (containerd slow under load, say) a few times over about 15 s, so that a
// passing failure leaves nothing behind; what still fails is gc's.
// Executor.Wait waits for it, as for the network teardowns.
func (e *Executor) removeLater(runID, dir string) {
	e.cleanups.Add(1)
	go func() {
		defer e.cleanups.Done()
		var err error
		for pause := time.Second; pause <= 8*time.Second; pause *= 2 {
			time.Sleep(pause)
			if err = e.remove(context.Background(), runID, dir); err == nil {
				e.log.Info("removed the finished run on a retry", "container", runID)
				return
			}
		}
		e.log.Warn("removing the finished run still fails; `cronium-agent gc` will remove it", "container", runID, "error", err)
	}()
}

// attached is a run whose task exists and has started: Run's, or one
// taken over by Adopt.
type attached struct {
	watch     *taskWatch
	startedAt time.Time
	cgroups   string // the task's cgroups path, for OOM detection and usage
	follow    *follower
}

// finish is the end of every run, started or adopted: it waits for the
// task's exit (the timeout counted from startedAt, cancellation through
// ctx), collects the result, deletes the task and reads the output to its
// end record.
func (e *Executor) finish(ctx context.Context, j *job, a attached) (Result, error) {
	req := j.req
	res := Result{StartedAt: a.startedAt}
	status, err := e.await(ctx, a.watch, a.startedAt.Add(req.Timeout))
	j.young.release()
	j.busy.set(true)
	if errors.Is(err, errHandedOver) {
		j.handedOver = true
		e.log.Info("job left running for the next agent process", "container", req.RunID)
		return Result{HandedOver: true, StartedAt: a.startedAt}, nil
	}
	res.FinishedAt = time.Now()
	if errors.Is(err, errTaskLost) {
		e.log.Warn("the job's task vanished while it ran", "container", req.RunID, "error", err)
		return e.lost(ctx, req, a.follow.path, a.startedAt, lostWhileRunning, a.follow.rest)
	}
	if err != nil {
		return res, fmt.Errorf("exit status of job %s: %w", req.JobID, err)
	}
	res.Status, res.ExitCode = status, int(a.watch.exit.ExitCode())
	// An error here is the caller's (it could not journal the exit): the
	// run is over all the same, so it is reported with the result.
	phaseErr := req.phase(PhaseExited, res.FinishedAt)
	if req.OnExit != nil {
		phaseErr = errors.Join(phaseErr, req.OnExit(res.Status, res.ExitCode, res.FinishedAt))
	}
	j.collectAPI(e, &res)
	if e.oomKilled(a.cgroups) {
		res.OOMKilled = true
		res.MemoryLimit = req.Resources.MemoryBytes
	}
	// Read before the task's deletion, which removes the cgroup.
	res.Usage = cgroupUsage(cgroupRoot, a.cgroups)
	if res.Status == api.StatusCompleted && res.ExitCode != 0 {
		res.Status = api.StatusFailed
	}
	j.ph.mark("exit")
	// From here on the script's result is known and stands: what goes wrong
	// in the cleanup is logged and noted, and gc removes what is left.
	//
	// The job's init exited, and the kernel killed the rest of its pid
	// namespace before that was reported: nothing can write to the output
	// pipes any more, so the logger is told to write what they hold and
	// its end record now. Otherwise it would wait for the task's deletion,
	// after which the shim closes the pipes (the fallback when it cannot
	// be told). The rest of the deletion (containerd stopping the shim,
	// unmounting the bundle) need not delay the result either, so the
	// output is awaited beside it and the run's removal waits for it
	// (removeRun).
	if err := output.Finish(a.follow.path); err != nil {
		e.log.Debug("the output logger ends with the pipes instead", "container", req.RunID, "error", err)
	}
	j.deleting = make(chan struct{})
	go func() {
		defer close(j.deleting)
		j.deleteErr = a.watch.delete()
	}()
	type captured struct {
		n   uint64
		err error
	}
	waited := make(chan captured, 1)
	go func() {
		n, err := a.follow.wait(e.endWait)
		waited <- captured{n, err}
	}()
	var c captured
	select {
	case c = <-waited:
	case <-j.deleting:
		if j.deleteErr == nil {
			c = <-waited
			break
		}
		e.log.Warn("delete the job's task failed; gc will remove it", "container", req.RunID, "error", j.deleteErr)
		// The shim keeps the output pipes open: no end record will come.
		a.follow.stop()
		<-waited
		res.Entries, err = a.follow.rest()
		res.Notes = append(res.Notes, "the agent could not delete the job's task; its output may end early")
		if err != nil {
			e.log.Warn("read the rest of the job's output", "container", req.RunID, "error", err)
		}
		return res, phaseErr
	}
	j.ph.mark("output")
	res.Entries = c.n
	if c.err != nil {
		e.log.Warn("the job's output capture did not finish", "container", req.RunID, "error", c.err)
		res.Notes = append(res.Notes, fmt.Sprintf("output capture incomplete after %d entries: %v", res.Entries, c.err))
	}
	return res, phaseErr
}

// collectAPI ends the run's runtime API and takes what the script set.
func (j *job) collectAPI(e *Executor, res *Result) {
	if j.session == nil {
		return
	}
	// The token stops working the moment the script is gone.
	if err := j.session.Close(); err != nil {
		e.log.Warn("close runtime API", "container", j.req.RunID, "error", err)
	}
	res.Output, res.HasOutput = j.session.Output()
	res.Condition, res.HasCondition = j.session.Condition()
	j.session = nil
}

// spec writes the run's files (script, hosts, resolv.conf with egress) and
// builds its OCI spec. A warm sandbox's (warm) has its script and start
// files made empty, to be written when its job comes (fill), and its init
// reads the job's command and environment from the start file.
func (e *Executor) spec(req Request, dir string, imageEnv []string, n *cni.Network, token string, warm bool) (*specs.Spec, error) {
	scriptPath := filepath.Join(dir, req.Runtime.ScriptName)
	write := func() error { return e.writeScript(scriptPath, req.Script) }
	if warm {
		write = func() error { return e.createJobFile(scriptPath) }
	}
	if err := write(); err != nil {
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
	if n != nil && n.Egress {
		resolvPath := filepath.Join(dir, "resolv.conf")
		if err := writeResolvConf(resolvPath, n); err != nil {
			return nil, err
		}
		files = append(files, oci.FileMount{Source: resolvPath, Destination: "/etc/resolv.conf"})
	}
	args, res := req.Runtime.Args(), req.Resources
	jobEnv := req.Env
	if e.helperDir != "" {
		files = append(files,
			oci.FileMount{Source: e.helperDir, Destination: HelperLibDir},
			oci.FileMount{Source: e.helperBin, Destination: HelperBin, Exec: true},
			oci.FileMount{Source: e.helperBin, Destination: InitBin, Exec: true})
		args = append([]string{InitBin}, args...)
		// The init's own threads are not the job's to pay for.
		res.Pids += InitPids
	}
	var apiURL string
	if token != "" {
		apiURL = fmt.Sprintf(RuntimeAPI, e.apiPort)
	}
	if warm {
		startPath := filepath.Join(dir, "start")
		if err := e.createJobFile(startPath); err != nil {
			return nil, fmt.Errorf("create start file of sandbox %s: %w", req.RunID, err)
		}
		files = append(files, oci.FileMount{Source: startPath, Destination: StartPath})
		args, jobEnv, apiURL = []string{InitBin, jobinit.StartFlag, StartPath}, nil, ""
	}
	env, err := oci.Env(imageEnv, e.helperEnv(imageEnv, jobEnv, apiURL, token), nil)
	if err != nil {
		return nil, fmt.Errorf("environment of job %s: %w", req.JobID, err)
	}
	job := oci.Job{
		ID:           req.RunID,
		Hostname:     req.Hostname,
		Args:         args,
		Env:          env,
		Resources:    res,
		Files:        files,
		CgroupParent: CgroupParent,
		IDMap:        e.idmap,
	}
	if n != nil {
		job.NetNSPath = n.NetNSPath()
	}
	return oci.Spec(job)
}

// writeScript writes the script readable by the job's user alone: scripts
// carry secrets, and the run's directory name is visible to every local
// user (in ps, say).
func (e *Executor) writeScript(path string, script []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return err
	}
	uid, gid := int(e.idmap.HostUID)+oci.JobUID, int(e.idmap.HostGID)+oci.JobGID
	if err := f.Chown(uid, gid); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(script); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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

// await waits for the task to exit, enforcing the deadline (one already
// past stops the job at once) and cancellation: SIGTERM to every process of
// the job, the grace period, then SIGKILL.
func (e *Executor) await(ctx context.Context, w *taskWatch, deadline time.Time) (api.Status, error) {
	// An exit already known wins over a deadline already past: an adopted
	// task that ended while nobody watched ended by itself.
	if w.exited() {
		return api.StatusCompleted, w.err
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var status api.Status
	select {
	case <-w.done:
		return api.StatusCompleted, w.err
	case <-timer.C:
		status = api.StatusTimeout
	case <-ctx.Done():
		if errors.Is(context.Cause(ctx), ErrHandOver) {
			return "", errHandedOver
		}
		status = api.StatusCancelled
	}
	e.log.Info("stopping job", "container", w.id, "reason", status, "grace", e.killGrace)
	w.kill(syscall.SIGTERM)
	grace := time.NewTimer(e.killGrace)
	defer grace.Stop()
	select {
	case <-w.done:
		return status, w.err
	case <-grace.C:
	}
	w.kill(syscall.SIGKILL)
	<-w.done
	return status, w.err
}

// loggerURI is the shim-side logger: `<agent> shim-logger <file>`.
func (e *Executor) loggerURI(outPath string) *url.URL {
	return &url.URL{Scheme: "binary", Path: e.loggerPath, RawQuery: url.Values{"shim-logger": {output.ShimArg(outPath, e.outBudget)}}.Encode()}
}

type follower struct {
	path   string
	sink   *sink
	done   chan struct{}
	err    error
	cancel context.CancelFunc
	// kick ends the follower's poll waits: once the task is deleted the
	// file is complete, and the rest is read at once.
	kick context.CancelFunc
}

// sink counts the entries read from an output file and hands those after
// the first skip (which the caller already has) to onEntry.
type sink struct {
	skip    uint64
	read    atomic.Uint64 // also read by wait, to tell a backlog from a stall
	onEntry EntryFunc
}

func (s *sink) deliver(ent output.Entry) {
	if s.read.Add(1) > s.skip && s.onEntry != nil {
		s.onEntry(ent)
	}
}

// follow reads the output file as the logger writes it and hands every
// entry after the first skip to onEntry. It waits for the file to appear.
func (e *Executor) follow(ctx context.Context, path string, skip uint64, onEntry EntryFunc) *follower {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pollCtx, kick := context.WithCancel(fctx)
	f := &follower{path: path, sink: &sink{skip: skip, onEntry: onEntry}, done: make(chan struct{}), cancel: cancel, kick: kick}
	go func() {
		defer close(f.done)
		r, err := openWhenCreated(fctx, path)
		if err != nil {
			f.err = err
			return
		}
		defer r.Close()
		for {
			ent, err := r.Next(pollCtx)
			switch {
			case err == nil:
				f.sink.deliver(ent)
				continue
			case errors.Is(err, io.EOF):
				return
			case pollCtx.Err() != nil && fctx.Err() == nil:
				f.err = drain(fctx, r, f.sink.deliver)
				return
			}
			f.err = err
			return
		}
	}()
	return f
}

// rest stops following and delivers what the file holds beyond what was
// read, without waiting for an end record: the logger of a vanished task
// may never write one. It returns how many entries the file holds.
func (f *follower) rest() (uint64, error) {
	f.stop()
	return readAvailable(f.path, max(f.sink.read.Load(), f.sink.skip), f.sink.onEntry)
}

// readAvailable delivers the entries on file after the first skip, up to
// the end record or, lacking one, the last complete record, and returns
// how many the file holds. A missing file holds none.
func readAvailable(path string, skip uint64, onEntry EntryFunc) (uint64, error) {
	r, err := output.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer r.Close()
	s := &sink{skip: skip, onEntry: onEntry}
	for {
		ent, err := r.TryNext()
		switch {
		case err == nil:
			s.deliver(ent)
		case errors.Is(err, io.EOF), errors.Is(err, output.ErrNoData):
			return s.read.Load(), nil
		default:
			return s.read.Load(), err
		}
	}
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

// wait lets the follower read to the end record for as long as it makes
// progress: a job that printed fast may leave a long backlog behind its
// exit, and all of it is the job's output. It gives up after d without a
// single entry read (the logger stalled or died).
func (f *follower) wait(d time.Duration) (uint64, error) {
	f.kick()
	t := time.NewTicker(d)
	defer t.Stop()
	last := f.sink.read.Load()
	for {
		select {
		case <-f.done:
			f.cancel()
			return f.sink.read.Load(), f.err
		case <-t.C:
		}
		if now := f.sink.read.Load(); now != last {
			last = now
			continue
		}
		f.cancel()
		<-f.done
		err := fmt.Errorf("output capture stalled: no entry for %s after %d entries", d, f.sink.read.Load())
		if f.err != nil {
			err = fmt.Errorf("%w: %w", err, f.err)
		}
		return f.sink.read.Load(), err
	}
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
