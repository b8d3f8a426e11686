package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/cio"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// LabelShimGroup names, on a run's container, the keeper of the shim group
// the run joined: its shim daemon is the keeper's (shimgroup.go).
const LabelShimGroup = "io.cronium.shim-group"

// shimGroupAnnotation makes containerd's runc shim serve a container from
// the daemon of the named group instead of starting one of its own (the
// runc v2 shim's grouping, as Kubernetes' pods use it).
const shimGroupAnnotation = "io.containerd.runc.v2.group"

// Shim groups: runs share containerd-shim daemons. A daemon per run cost
// a Go process start and a shutdown on every job (18-30 ms of the host's
// CPU per trivial job here, a tenth of the whole); a run that joins a
// group pays only for the shim's short `start` call, which finds the
// group's daemon and hands containerd its address.
//
// The runc shim exits when its last container is deleted, so every group
// has a keeper: a container made for nothing else, with no network and no
// logger, whose task is created and never started (its init waits at
// runc's exec barrier). Its id is the group's name, so the daemon's -id is
// the keeper's, and runs carry it in LabelShimGroup: gc tells a daemon in
// use from an orphan by the two. The keeper is removed when the group has
// taken its share of runs (size) and the last of them is gone, when it had
// no run for the pool's idle time, and at ClosePool. Isolation is
// unchanged: a shim is a host process of containerd's, not part of any
// sandbox; each run still has its own namespaces, cgroup and network.
//
// What sharing costs: a shim that dies takes the status of every task it
// serves with it (those runs end as lost, as one did before), and size
// bounds how many runs one daemon serves over its life.
type shimGroups struct {
	size int

	mu     sync.Mutex
	cur    *shimGroup            // the group runs join; nil while none is ready
	byRun  map[string]*shimGroup // member run id -> its group
	groups map[string]*shimGroup // keeper id -> group
	closed bool
	// retryAt holds off a new keeper after one could not be made.
	retryAt time.Time
}

type shimGroup struct {
	keeper     *sandbox
	joined     int // runs that joined, over the group's life
	members    int // runs that joined and are not removed yet
	retired    bool
	lastActive time.Time
}

func newShimGroups(size int) *shimGroups {
	return &shimGroups{size: size, byRun: map[string]*shimGroup{}, groups: map[string]*shimGroup{}}
}

// join makes run a member of the current group and returns the group's
// name, or "" when there is none to join (the run gets a shim of its own).
func (g *shimGroups) join(run string) string {
	if g == nil {
		return ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.cur
	if c == nil || g.closed {
		return ""
	}
	c.joined++
	c.members++
	c.lastActive = time.Now()
	g.byRun[run] = c
	if c.joined >= g.size {
		c.retired = true
		g.cur = nil
	}
	return c.keeper.id
}

// leave records that run's container is removed. It returns the group's
// keeper when the group is done with (retired, no member left): the caller
// removes it.
func (g *shimGroups) leave(run string) *sandbox {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.byRun[run]
	if c == nil {
		return nil
	}
	delete(g.byRun, run)
	c.members--
	c.lastActive = time.Now()
	if c.retired && c.members == 0 {
		delete(g.groups, c.keeper.id)
		return c.keeper
	}
	return nil
}

// wanted reports whether a keeper should be made: no group takes runs.
func (g *shimGroups) wanted() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cur == nil && !g.closed && time.Now().After(g.retryAt)
}

// failed holds off the next keeper for a while: runs get a shim each
// meanwhile, as without groups.
func (g *shimGroups) failed() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.retryAt = time.Now().Add(keeperRetry)
}

// keeperRetry is how long after a failed keeper the next is tried.
const keeperRetry = time.Minute

// add makes keeper's group the one runs join. It reports false when the
// groups are closed or another group is current: the caller removes keeper.
func (g *shimGroups) add(keeper *sandbox) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.cur != nil {
		return false
	}
	g.cur = &shimGroup{keeper: keeper, lastActive: time.Now()}
	g.groups[keeper.id] = g.cur
	return true
}

// idle retires the current group when it has had no member for idleAfter,
// and returns the keepers to remove.
func (g *shimGroups) idle(now time.Time, idleAfter time.Duration) []*sandbox {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.cur
	if c == nil || c.members > 0 || now.Sub(c.lastActive) <= idleAfter {
		return nil
	}
	g.cur = nil
	delete(g.groups, c.keeper.id)
	return []*sandbox{c.keeper}
}

// current is the keeper of the group runs join now, or nil.
func (g *shimGroups) current() *sandbox {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cur == nil {
		return nil
	}
	return g.cur.keeper
}

// retire stops keeper's group taking runs, if it is still the current
// one, and returns the keeper when no run is in the group (the caller
// removes it; otherwise it goes with the group's last run).
func (g *shimGroups) retire(keeper *sandbox) *sandbox {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.cur
	if c == nil || c.keeper != keeper {
		return nil
	}
	g.cur = nil
	c.retired = true
	if c.members == 0 {
		delete(g.groups, keeper.id)
		return keeper
	}
	return nil
}

// close stops the groups taking runs and returns the keepers of those no
// run is in; the others go with their last run.
func (g *shimGroups) close() []*sandbox {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	g.cur = nil
	var done []*sandbox
	for id, c := range g.groups {
		c.retired = true
		if c.members == 0 {
			delete(g.groups, id)
			done = append(done, c.keeper)
		}
	}
	return done
}

// keeperID names a new keeper (and its group).
func keeperID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "cronium-shim-" + hex.EncodeToString(b)
}

// joinShimGroup puts run in the current shim group, if any: the spec's
// annotation makes the shim use the group's daemon, the label tells gc.
func (e *Executor) joinShimGroup(run string, spec *specs.Spec, labels map[string]string) {
	group := e.shims.join(run)
	if group == "" {
		return
	}
	if spec.Annotations == nil {
		spec.Annotations = map[string]string{}
	}
	spec.Annotations[shimGroupAnnotation] = group
	labels[LabelShimGroup] = group
}

// leftShimGroup is called once run's container is removed; it removes the
// group's keeper when the group is done with.
func (e *Executor) leftShimGroup(ctx context.Context, run string) {
	if k := e.shims.leave(run); k != nil {
		e.removeKeeper(ctx, k)
	}
}

// makeKeeper makes a shim group's keeper from the image of tmpl: a run
// directory (its lock held, so gc leaves it alone while the agent lives),
// a snapshot, and a container whose task is created and never started. It
// has the jobs' spec with a network namespace holding only loopback, and
// discards its output (it has none).
func (e *Executor) makeKeeper(ctx context.Context, tmpl Request) (k *sandbox, err error) {
	id := keeperID()
	dir := filepath.Join(e.runsDir(), id)
	lock, err := createRunDir(dir)
	if err != nil {
		return nil, err
	}
	k = &sandbox{id: id, dir: dir, lock: lock, created: time.Now()}
	defer func() {
		if err != nil {
			e.removeKeeper(context.WithoutCancel(ctx), k)
		}
	}()
	img, err := e.images.Ensure(ctx, tmpl.Image)
	if err != nil {
		return k, err
	}
	lctx, done, err := e.client.WithLease(ctx, leases.WithExpiration(10*time.Minute))
	if err != nil {
		return k, fmt.Errorf("lease for shim keeper %s: %w", id, err)
	}
	defer done(context.WithoutCancel(ctx))
	if err := e.viewSnapshot(lctx, id, img); err != nil {
		return k, fmt.Errorf("shim keeper %s: %w", id, err)
	}
	tmpl.RunID, tmpl.JobID, tmpl.Hostname = id, id, "cronium"
	spec, err := e.spec(tmpl, dir, nil, nil, "", true)
	if err != nil {
		return k, err
	}
	ctr, err := e.client.NewContainer(lctx, id,
		containerd.WithSnapshotter(e.snapshotter),
		containerd.WithSnapshot(id),
		containerd.WithImageName(img.Name()),
		containerd.WithRuntime(e.runtime, nil),
		containerd.WithSpec(spec),
		containerd.WithContainerLabels(map[string]string{LabelAgent: "run", LabelRun: id, LabelState: e.stateDir}),
	)
	if err != nil {
		return k, fmt.Errorf("create container for shim keeper %s: %w", id, err)
	}
	// Not cancellable, as in Run: an interrupted create leaves its shim.
	tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	k.task, err = ctr.NewTask(tctx, cio.NullIO)
	tcancel()
	if err != nil {
		return k, fmt.Errorf("create task for shim keeper %s: %w", id, err)
	}
	return k, nil
}

// removeKeeper removes a keeper. Runs of its group may still be there: its
// shim serves them until the last one is deleted.
func (e *Executor) removeKeeper(ctx context.Context, k *sandbox) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := e.remove(ctx, k.id, k.dir); err != nil {
		e.log.Warn("removing a shim keeper failed; `cronium-agent gc` will", "container", k.id, "error", err)
	}
	k.lock.Close()
}

// removeKeepers removes keepers in the background (Wait waits for it).
func (e *Executor) removeKeepers(ks []*sandbox) {
	for _, k := range ks {
		e.cleanups.Add(1)
		go func() {
			defer e.cleanups.Done()
			e.removeKeeper(context.Background(), k)
		}()
	}
}
