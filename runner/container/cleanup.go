package container

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/cronium/cronium-agent/internal/flock"
)

const lockFile = "lock"

// createRunDir makes the run's directory and holds an exclusive lock on it
// for as long as the run lives; `gc` treats an unlocked run as abandoned.
func createRunDir(dir string) (*os.File, error) {
	if err := os.Mkdir(dir, 0o711); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	return lockRunDir(dir)
}

// lockRunDir takes the lock of an existing run directory, as createRunDir
// does; it fails while another process holds it.
func lockRunDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create run lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock run directory %s: %w", dir, err)
	}
	return f, nil
}

// startingGrace covers the moment between a run directory's creation and
// its lock being taken.
const startingGrace = 30 * time.Second

// owned reports whether a live run holds the lock of its directory (or the
// directory was made so recently that its run may still be taking it).
func owned(dir string) bool {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if err != nil {
		fi, serr := os.Stat(dir)
		return serr == nil && time.Since(fi.ModTime()) < startingGrace
	}
	defer f.Close()
	return flock.Held(f)
}

// remove deletes the task, container, snapshot and files of one run. Each
// step tolerates what is already gone, so it can run after any failure and
// more than once.
func (e *Executor) remove(ctx context.Context, id, dir string) error {
	var errs []error
	ctr, err := e.client.LoadContainer(ctx, id)
	switch {
	case err == nil:
		if task, err := ctr.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete task %s: %w", id, err))
			}
		} else if !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("load task %s: %w", id, err))
		}
		if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete container %s: %w", id, err))
		}
	case errdefs.IsNotFound(err):
	default:
		errs = append(errs, fmt.Errorf("load container %s: %w", id, err))
	}
	// The snapshot outlives a container that was never created.
	if err := e.client.SnapshotService(e.snapshotter).Remove(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove snapshot %s: %w", id, err))
	}
	if err := removeCgroups(id); err != nil {
		errs = append(errs, err)
	}
	removeAbortedRuncState(runcRoot, e.namespace(ctx), id)
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("remove run files: %w", err))
	}
	return errors.Join(errs...)
}

const cgroupRoot = "/sys/fs/cgroup"

// runcRoot is where the runc shim keeps the OCI runtime's state (its
// default root, for runc and crun alike: the agent sets no root).
const runcRoot = "/run/containerd/runc"

// removeAbortedRuncState removes what the OCI runtime left of a create
// that was cut short (its shim killed in the middle): a state directory
// without the state file (runc's state.json, crun's status), holding only
// files the runtime writes before it (its exec fifo; crun's copies of the
// config and the seccomp program). Nothing else cleans it up: neither
// runtime deletes a container it has no state of. A directory with state
// is the runtime's own delete's.
func removeAbortedRuncState(root, ns, id string) {
	dir := filepath.Join(root, ns, id)
	for _, state := range []string{"state.json", "status"} {
		if _, err := os.Stat(filepath.Join(dir, state)); !os.IsNotExist(err) {
			return
		}
	}
	for _, f := range []string{"exec.fifo", "config.json", "seccomp.bpf"} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	_ = os.Remove(dir)
}

// cgroupParents lists the agent's parent cgroups: one per v1 controller,
// or the single v2 one.
func cgroupParents() []string {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		return []string{filepath.Join(cgroupRoot, CgroupParent)}
	}
	parents, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", CgroupParent))
	return parents
}

// cgroupDirs lists where the job's cgroup lives, every controller.
func cgroupDirs(id string) []string {
	var dirs []string
	for _, p := range cgroupParents() {
		dirs = append(dirs, filepath.Join(p, id))
	}
	return dirs
}

// removeCgroups removes cgroup directories runc left behind (it normally
// removes them itself on delete; a killed shim may not).
func removeCgroups(id string) error {
	var errs []error
	for _, d := range cgroupDirs(id) {
		if err := removeCgroup(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cgroupKillAttempts bounds the waits for killed processes to leave a cgroup.
const cgroupKillAttempts = 50

// removeCgroup removes one cgroup directory. Processes still in it are
// what is left of a task that vanished (its shim was killed, and with it
// whatever would have reaped the job): they are killed first.
func removeCgroup(dir string) error {
	for attempt := 0; ; attempt++ {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || attempt == cgroupKillAttempts {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		killCgroup(dir)
		time.Sleep(20 * time.Millisecond)
	}
}

func killCgroup(dir string) {
	data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// oomKilled reports whether the kernel's OOM killer killed a process of the
// job's cgroup. It must be read before the task is deleted.
func (e *Executor) oomKilled(cgroupsPath string) bool {
	for _, f := range []string{
		filepath.Join(cgroupRoot, "memory", cgroupsPath, "memory.oom_control"), // v1
		filepath.Join(cgroupRoot, cgroupsPath, "memory.events"),                // v2
	} {
		if n, ok := readCounter(f, "oom_kill"); ok {
			return n > 0
		}
	}
	return false
}

func readCounter(path, key string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
