package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/cio"
	"golang.org/x/sys/unix"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runtimes/jobinit"
)

// StartPath is where a warm sandbox's init finds its job's command and
// environment (jobinit.Start), written by the agent just before the start.
const StartPath = "/cronium/start"

// sandbox is a run made ready before its job: everything but the job's
// own files exists, and its task waits at runc's exec barrier.
type sandbox struct {
	id, dir  string
	lock     *os.File
	net      *netSetup
	n        *cni.Network
	task     containerd.Task
	cgroups  string
	imageEnv []string
	created  time.Time
}

// prepare makes a sandbox for jobs like tmpl. What fails half-way is
// removed.
func (e *Executor) prepare(ctx context.Context, tmpl Request) (sb *sandbox, err error) {
	id := sandboxID()
	dir := filepath.Join(e.runsDir(), id)
	lock, err := createRunDir(dir)
	if err != nil {
		return nil, err
	}
	sb = &sandbox{id: id, dir: dir, lock: lock, net: e.startNetwork(ctx, netID(id)), created: time.Now()}
	defer func() {
		if err != nil {
			e.destroySandbox(sb)
		}
	}()
	img, err := e.images.Ensure(ctx, tmpl.Image)
	if err != nil {
		return sb, err
	}
	imgSpec, err := img.Spec(ctx)
	if err != nil {
		return sb, fmt.Errorf("read image config of %s: %w", tmpl.Image, err)
	}
	sb.imageEnv = imgSpec.Config.Env
	lctx, done, err := e.client.WithLease(ctx, leases.WithExpiration(10*time.Minute))
	if err != nil {
		return sb, fmt.Errorf("lease for sandbox %s: %w", id, err)
	}
	defer done(context.WithoutCancel(ctx))
	if err := e.viewSnapshot(lctx, id, img); err != nil {
		return sb, fmt.Errorf("sandbox %s: %w", id, err)
	}
	if sb.n, err = sb.net.wait(ctx); err != nil {
		return sb, fmt.Errorf("network for sandbox %s: %w", id, err)
	}
	tmpl.RunID, tmpl.JobID, tmpl.Hostname = id, id, "cronium"
	spec, err := e.spec(tmpl, dir, sb.imageEnv, sb.n, "", true)
	if err != nil {
		return sb, err
	}
	ctr, err := e.client.NewContainer(lctx, id,
		containerd.WithSnapshotter(e.snapshotter),
		containerd.WithSnapshot(id),
		containerd.WithImageName(img.Name()),
		containerd.WithRuntime(e.runtime, e.runtimeOptions()),
		containerd.WithSpec(spec),
		containerd.WithContainerLabels(map[string]string{LabelAgent: "run", LabelRun: id, LabelState: e.stateDir}),
	)
	if err != nil {
		return sb, fmt.Errorf("create container for sandbox %s: %w", id, err)
	}
	// Not cancellable, as in Run: an interrupted create leaves its shim.
	tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	sb.task, err = ctr.NewTask(tctx, cio.LogURI(e.loggerURI(filepath.Join(dir, "output"))))
	tcancel()
	if err != nil {
		return sb, fmt.Errorf("create task for sandbox %s: %w", id, err)
	}
	sb.cgroups = spec.Linux.CgroupsPath
	return sb, nil
}

// destroySandbox removes a sandbox no job started, in the background
// (Wait waits for it).
func (e *Executor) destroySandbox(sb *sandbox) {
	e.cleanups.Add(1)
	go func() {
		defer e.cleanups.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.remove(ctx, sb.id, sb.dir); err != nil {
			e.log.Warn("removing a warm sandbox failed; `cronium-agent gc` will", "container", sb.id, "error", err)
		}
		sb.lock.Close()
		if err := e.teardownNetwork(ctx, sb.net); err != nil {
			e.log.Warn("network teardown failed; `cronium-agent gc` will retry", "container", sb.id, "error", err)
		}
	}()
}

// usable reports whether a sandbox's task still waits to be started (its
// shim could have died since it was made).
func (sb *sandbox) usable(ctx context.Context) bool {
	st, err := sb.task.Status(ctx)
	return err == nil && st.Status == containerd.Created
}

// runWarm runs req in sandbox sb: its files are written, its limits set,
// and its task started.
func (e *Executor) runWarm(ctx context.Context, req Request, sb *sandbox, busy *busyMark, onEntry EntryFunc) (res Result, err error) {
	req.RunID = sb.id
	if req.OnRunID != nil {
		req.OnRunID(sb.id)
	}
	ph := newPhases()
	j := &job{req: req, dir: sb.dir, lock: sb.lock, network: sb.net, ph: ph, busy: busy}
	defer func() { err = e.release(ctx, j, err) }()
	if err := req.phase(PhaseNetwork, time.Now()); err != nil {
		return Result{}, err
	}
	var token string
	if j.session, err = e.serveAPI(ctx, sb.n, req.Execution); err != nil {
		return Result{}, fmt.Errorf("job %s: %w", req.JobID, err)
	}
	if j.session != nil {
		token = j.session.Token()
	}
	if err := e.fill(req, sb, token); err != nil {
		return Result{}, fmt.Errorf("job %s in sandbox %s: %w", req.JobID, sb.id, err)
	}
	ph.mark("fill")
	return e.start(ctx, j, sb.task, sb.cgroups, onEntry)
}

// fill gives a sandbox its job: script, hosts file, command and
// environment, hostname and limits.
func (e *Executor) fill(req Request, sb *sandbox, token string) error {
	if err := rewrite(filepath.Join(sb.dir, req.Runtime.ScriptName), req.Script); err != nil {
		return fmt.Errorf("write script: %w", err)
	}
	if err := writeHosts(filepath.Join(sb.dir, "hosts"), req.Hostname, sb.n); err != nil {
		return err
	}
	var apiURL string
	if token != "" {
		apiURL = fmt.Sprintf(RuntimeAPI, e.apiPort)
	}
	env, err := oci.Env(sb.imageEnv, e.helperEnv(sb.imageEnv, req.Env, apiURL, token), nil)
	if err != nil {
		return fmt.Errorf("environment: %w", err)
	}
	start, err := json.Marshal(jobinit.Start{Args: req.Runtime.Args(), Env: env})
	if err != nil {
		return err
	}
	if err := rewrite(filepath.Join(sb.dir, "start"), start); err != nil {
		return fmt.Errorf("write start: %w", err)
	}
	if err := setHostname(sb.task.Pid(), req.Hostname); err != nil {
		return err
	}
	res := req.Resources
	res.Pids += InitPids
	return setLimits(sb.cgroups, res)
}

// rewrite replaces the content of an existing file in place: the file is
// bind-mounted into the sandbox, which sees the same inode.
func rewrite(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// createJobFile makes an empty file only the job's user can read, to be
// bind-mounted now and written later (rewrite).
func (e *Executor) createJobFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return err
	}
	uid, gid := int(e.idmap.HostUID)+oci.JobUID, int(e.idmap.HostGID)+oci.JobGID
	if err := f.Chown(uid, gid); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// setHostname sets the hostname in the UTS namespace of process pid (a
// created task's init): a sandbox's is set when its job is known.
func setHostname(pid uint32, name string) error {
	errc := make(chan error, 1)
	go func() {
		// Locked and never unlocked unless the thread is back in the
		// agent's namespace: a thread left in the job's dies with this
		// goroutine.
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/uts")
		if err != nil {
			errc <- fmt.Errorf("open own UTS namespace: %w", err)
			return
		}
		defer self.Close()
		target, err := os.Open("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/ns/uts")
		if err != nil {
			errc <- fmt.Errorf("open the job's UTS namespace: %w", err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWUTS); err != nil {
			errc <- fmt.Errorf("enter the job's UTS namespace: %w", err)
			return
		}
		err = unix.Sethostname([]byte(name))
		if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWUTS); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("return to the agent's UTS namespace: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("set hostname %q: %w", name, err)
		}
		errc <- err
	}()
	return <-errc
}

// setLimits writes a job's limits to its sandbox's cgroup (cgroupsPath,
// as in the spec), as runc would from the spec: CPU quota, memory with
// swap equal to it, pids.
func setLimits(cgroupsPath string, r oci.Resources) error {
	quota := strconv.FormatInt(int64(r.CPU*cpuPeriod), 10)
	mem := strconv.FormatInt(r.MemoryBytes, 10)
	pids := strconv.FormatInt(r.Pids, 10)
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		dir := filepath.Join(cgroupRoot, cgroupsPath)
		return writeAll(
			[2]string{filepath.Join(dir, "cpu.max"), quota + " " + strconv.Itoa(cpuPeriod)},
			[2]string{filepath.Join(dir, "memory.max"), mem},
			[2]string{filepath.Join(dir, "memory.swap.max"), "0"},
			[2]string{filepath.Join(dir, "pids.max"), pids},
		)
	}
	memDir := filepath.Join(cgroupRoot, "memory", cgroupsPath)
	limit, memsw := filepath.Join(memDir, "memory.limit_in_bytes"), filepath.Join(memDir, "memory.memsw.limit_in_bytes")
	writes := [][2]string{
		{filepath.Join(cgroupRoot, "cpu", cgroupsPath, "cpu.cfs_period_us"), strconv.Itoa(cpuPeriod)},
		{filepath.Join(cgroupRoot, "cpu", cgroupsPath, "cpu.cfs_quota_us"), quota},
		{filepath.Join(cgroupRoot, "pids", cgroupsPath, "pids.max"), pids},
	}
	// memory+swap may never be below memory: which goes first depends on
	// whether the limit goes up or down.
	mems := [][2]string{{limit, mem}}
	if _, err := os.Stat(memsw); err == nil {
		cur, _ := readNumber(limit)
		if uint64(r.MemoryBytes) > cur {
			mems = [][2]string{{memsw, mem}, {limit, mem}}
		} else {
			mems = [][2]string{{limit, mem}, {memsw, mem}}
		}
	}
	return writeAll(append(writes, mems...)...)
}

const cpuPeriod = 100000

func writeAll(kv ...[2]string) error {
	for _, w := range kv {
		if err := os.WriteFile(w[0], []byte(w[1]), 0); err != nil {
			return fmt.Errorf("set cgroup limit: %w", err)
		}
	}
	return nil
}
