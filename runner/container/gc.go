package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"
	"google.golang.org/grpc"
)

// GCReport lists what a sweep removed.
type GCReport struct {
	Containers []string
	Snapshots  []string
	RunDirs    []string
	Cgroups    []string
	Shims      []string
}

// Empty reports whether the sweep found nothing to remove.
func (r GCReport) Empty() bool {
	return len(r.Containers)+len(r.Snapshots)+len(r.RunDirs)+len(r.Cgroups)+len(r.Shims) == 0
}

// abandonedPrepare is how old an unfinished remap must be before gc takes it
// for the leftover of a crashed agent rather than one still being made.
const abandonedPrepare = time.Hour

type gcOptions struct {
	keep   map[string]bool
	others bool
}

// GCOption changes what GC removes.
type GCOption func(*gcOptions)

// KeepRuns makes GC leave the named runs alone though no process holds
// them: runs a stopped agent's journal will adopt at its next start.
func KeepRuns(ids ...string) GCOption {
	return func(o *gcOptions) {
		for _, id := range ids {
			o.keep[id] = true
		}
	}
}

// OthersToo makes GC also remove the runs of other agents' state
// directories that no process holds (an agent removed from the host left
// them); by default GC removes only its own agent's, and those whose state
// directory is gone.
func OthersToo() GCOption { return func(o *gcOptions) { o.others = true } }

// GC removes everything labelled as the agent's that no live run owns: a run
// is live while a process holds the lock of its run directory (or an option
// says so). Remapped image snapshots stay while their image exists.
func (e *Executor) GC(ctx context.Context, opts ...GCOption) (GCReport, error) {
	var rep GCReport
	var errs []error
	o := gcOptions{keep: map[string]bool{}}
	for _, opt := range opts {
		opt(&o)
	}
	kept := o.keep

	ctrs, err := e.client.Containers(ctx, fmt.Sprintf("labels.%q", LabelAgent))
	if err != nil {
		return rep, fmt.Errorf("list containers: %w", err)
	}
	// live holds the runs whose lock is held. Each run is judged by the lock
	// in its own agent's state directory (its label), so several agents can
	// share the namespace, and a run whose agent and state are both gone is
	// still found.
	live := map[string]bool{}
	for id := range kept {
		live[id] = true
	}
	for _, c := range ctrs {
		id := c.ID()
		if kept[id] {
			continue
		}
		labels, err := c.Labels(ctx)
		if errdefs.IsNotFound(err) {
			continue // removed by its owner since the listing
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("labels of container %s: %w", id, err))
			live[id] = true
			continue
		}
		dir := filepath.Join(e.runsDir(), id)
		if st := labels[LabelState]; st != "" {
			if filepath.Clean(st) != filepath.Clean(e.stateDir) && !o.others && exists(st) {
				// Another agent's: its own gc judges it (and its
				// snapshot stays with it). One whose state directory is
				// gone has no agent left to: it is anyone's garbage.
				live[id] = true
				continue
			}
			dir = filepath.Join(st, "runs", id)
		}
		if owned(dir) {
			live[id] = true
			continue
		}
		if err := e.remove(ctx, id, dir); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Containers = append(rep.Containers, id)
	}

	// Run directories whose container never got made, or is already gone.
	if entries, err := os.ReadDir(e.runsDir()); err == nil {
		for _, ent := range entries {
			dir := filepath.Join(e.runsDir(), ent.Name())
			if live[ent.Name()] || owned(dir) {
				live[ent.Name()] = true
				continue
			}
			if err := e.remove(ctx, ent.Name(), dir); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.RunDirs = append(rep.RunDirs, ent.Name())
		}
	}

	snaps, err := e.staleSnapshots(ctx, live)
	if err != nil {
		errs = append(errs, err)
	}
	sn := e.client.SnapshotService(e.snapshotter)
	for _, key := range snaps {
		if err := sn.Remove(ctx, key); err != nil {
			errs = append(errs, fmt.Errorf("remove snapshot %s: %w", key, err))
			continue
		}
		rep.Snapshots = append(rep.Snapshots, key)
	}

	cg, err := e.staleCgroups(ctx)
	rep.Cgroups = cg
	if err != nil {
		errs = append(errs, err)
	}
	shims, err := e.orphanShims(ctx)
	rep.Shims = shims
	if err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// orphanShims kills shims of the agent's namespace whose container is gone
// (containerd 1.6 can leave one behind when a task create is interrupted).
// Shims are listed before containers, so a run starting meanwhile is seen.
func (e *Executor) orphanShims(ctx context.Context) ([]string, error) {
	shims, _ := shimProcesses(e.namespace(ctx), e.address())
	if len(shims) == 0 {
		return nil, nil
	}
	exists, err := e.containerIDs(ctx)
	if err != nil {
		return nil, err
	}
	var killed []string
	for id, pid := range shims {
		if exists[id] {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			killed = append(killed, id)
		}
	}
	return killed, nil
}

// containerIDs is the set of ids of every container of ctx's namespace,
// the agent's or not.
func (e *Executor) containerIDs(ctx context.Context) (map[string]bool, error) {
	ctrs, err := e.client.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	ids := make(map[string]bool, len(ctrs))
	for _, c := range ctrs {
		ids[c.ID()] = true
	}
	return ids, nil
}

// namespace is the containerd namespace calls on ctx are made in.
func (e *Executor) namespace(ctx context.Context) string {
	if ns, ok := namespaces.Namespace(ctx); ok {
		return ns
	}
	return e.client.DefaultNamespace()
}

// address is the socket of the containerd the executor talks to, as its
// shims name it (-address); "" when the client does not say.
func (e *Executor) address() string {
	cc, ok := e.client.Conn().(*grpc.ClientConn)
	if !ok {
		return ""
	}
	t := cc.Target()
	if rest, ok := strings.CutPrefix(t, "unix://"); ok {
		return rest
	}
	return strings.TrimPrefix(t, "unix:")
}

// shimProcesses maps container id to shim pid for the runc shims of ns
// serving the containerd at address: the shims of another containerd on
// the host (another agent's, with the same namespace name) are not ours to
// judge. Daemons serve a task; calls run one command of containerd's
// (start, or delete: its clean-up after a shim disconnected, which runs
// runc delete and ends by itself) and are never orphans: killing one in
// the middle of its runc delete would leave runc's state behind.
func shimProcesses(ns, address string) (daemons, calls map[string]int) {
	daemons, calls = map[string]int{}, map[string]int{}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte("containerd-shim-runc-v2")) {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
		var gotNS, gotAddr, id string
		for i := 0; i+1 < len(args); i++ {
			switch args[i] {
			case "-namespace":
				gotNS = args[i+1]
			case "-address":
				gotAddr = args[i+1]
			case "-id":
				id = args[i+1]
			}
		}
		if gotNS != ns || id == "" || (address != "" && filepath.Clean(gotAddr) != filepath.Clean(address)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		switch args[len(args)-1] {
		case "start", "delete":
			calls[id] = pid
		default:
			daemons[id] = pid
		}
	}
	return daemons, calls
}

// staleCgroups removes job cgroups that no container has. The cgroups are
// listed before the containers, so a run starting meanwhile (its container
// is made before its cgroup) is seen; one with processes left is busy and
// stays.
func (e *Executor) staleCgroups(ctx context.Context) ([]string, error) {
	dirs := jobCgroupDirs()
	exists, err := e.containerIDs(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, d := range dirs {
		if exists[filepath.Base(d)] {
			continue
		}
		if err := os.Remove(d); err != nil {
			if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.EBUSY) {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
			}
			continue
		}
		removed = append(removed, d)
	}
	return removed, errors.Join(errs...)
}

// staleSnapshots lists the agent's snapshots that nothing needs: run views
// without a live run, unfinished remaps older than abandonedPrepare, and
// remaps of images that are gone.
func (e *Executor) staleSnapshots(ctx context.Context, live map[string]bool) ([]string, error) {
	imgs, err := e.client.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	chains := map[string]bool{}
	for _, img := range imgs {
		diffIDs, err := img.RootFS(ctx)
		if err != nil {
			continue // content not local: it cannot have a remap of ours
		}
		chains[identity.ChainID(diffIDs).String()] = true
	}
	var views, remaps []string
	err = e.client.SnapshotService(e.snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		switch info.Labels[LabelAgent] {
		case "run":
			st := info.Labels[LabelState]
			if st == "" {
				st = e.stateDir
			}
			if !live[info.Name] && !owned(filepath.Join(st, "runs", info.Name)) {
				views = append(views, info.Name)
			}
		case "remap":
			if strings.Contains(info.Name, "/prepare-") {
				if time.Since(info.Created) > abandonedPrepare {
					remaps = append(remaps, info.Name)
				}
			} else if !chains[info.Labels[LabelRemapParent]] {
				remaps = append(remaps, info.Name)
			}
		}
		return nil
	}, fmt.Sprintf("labels.%q", LabelAgent))
	if err != nil {
		return nil, fmt.Errorf("walk snapshots: %w", err)
	}
	// Views first: a remap cannot go while a view of it exists.
	return append(views, remaps...), nil
}

// jobCgroupDirs lists the job cgroups on this host, every controller.
func jobCgroupDirs() []string {
	var dirs []string
	for _, p := range cgroupParents() {
		entries, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		for _, ent := range entries {
			if ent.IsDir() {
				dirs = append(dirs, filepath.Join(p, ent.Name()))
			}
		}
	}
	return dirs
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
