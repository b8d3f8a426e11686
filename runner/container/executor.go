// Package container runs script jobs in containers created directly through
// containerd: one container, task and read-only snapshot per run, removed
// when the run ends, whatever way it ends.
package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/ociruntime"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner/images"
	"github.com/cronium/cronium-agent/sidecar"
)

// Container labels: everything the agent creates carries LabelAgent, which is
// how `cronium-agent gc` finds what may be its own.
const (
	LabelJob = "io.cronium.job"
	LabelRun = "io.cronium.run"
	// LabelState names the state directory of the agent that made a run, so
	// that gc only judges runs whose locks it can see.
	LabelState = "io.cronium.state"
)

// CgroupParent is the cgroup (below each controller's root) jobs are put in.
const CgroupParent = "cronium"

// Executor runs jobs in containerd. It is safe for concurrent use.
type Executor struct {
	client      *containerd.Client
	images      *images.Store
	runtime     string
	ociWant     string
	oci         ociruntime.Choice
	snapshotter string
	stateDir    string
	loggerPath  string
	idmap       oci.IDMap
	killGrace   time.Duration
	endWait     time.Duration
	log         *slog.Logger
	net         *cni.Manager
	api         *sidecar.Server
	apiPort     int
	helperDir   string
	helperBin   string
	outBudget   int64

	poolCfg WarmPool
	pool    *pool
	// busy counts runs in their setup (request to started task) or in
	// their end (exit to result): the pool refills only when none is.
	busy atomic.Int32
	// young counts runs in their first refillGrace after their start (or
	// until their end, if sooner): the pool waits for those too.
	young atomic.Int32

	remapMu  sync.Mutex
	cleanups sync.WaitGroup
}

// Option configures an Executor.
type Option func(*Executor)

// WithRuntime sets the containerd runtime (default io.containerd.runc.v2,
// which runs through the agent's shim wrapper: shim.go).
func WithRuntime(name string) Option { return func(e *Executor) { e.runtime = name } }

// WithOCIRuntime sets the OCI runtime the runc shim runs: auto (the
// default: crun where it can run the jobs, else runc), runc or crun.
func WithOCIRuntime(name string) Option { return func(e *Executor) { e.ociWant = name } }

// WithSnapshotter sets the snapshotter (default overlayfs).
func WithSnapshotter(name string) Option { return func(e *Executor) { e.snapshotter = name } }

// WithIDMap sets the user-namespace range (default host 100000.. for 65536 ids).
func WithIDMap(m oci.IDMap) Option { return func(e *Executor) { e.idmap = m } }

// WithKillGrace sets the time between SIGTERM and SIGKILL (default 10 s).
func WithKillGrace(d time.Duration) Option { return func(e *Executor) { e.killGrace = d } }

// WithLoggerBinary sets the program the shim runs to capture output; it is
// called as `<path> shim-logger <file>`. The default is this executable.
func WithLoggerBinary(path string) Option { return func(e *Executor) { e.loggerPath = path } }

// WithNetwork gives every run a network of its own from m; without it a
// run has only loopback and no runtime API.
func WithNetwork(m *cni.Manager) Option { return func(e *Executor) { e.net = m } }

// WithRuntimeAPI serves every run its runtime API from srv on its gateway's port.
func WithRuntimeAPI(srv *sidecar.Server, port int) Option {
	return func(e *Executor) { e.api, e.apiPort = srv, port }
}

// WithHelpers mounts the helper libraries in dir at /cronium/lib and the
// helper program bin at /cronium/bin/cronium in every run.
func WithHelpers(dir, bin string) Option {
	return func(e *Executor) { e.helperDir, e.helperBin = dir, bin }
}

// WithOutputBudget bounds each run's output file to about n bytes (0:
// unbounded): past it the shim-side logger keeps the head and the tail and
// drops the middle with a notice, however far behind the agent is.
func WithOutputBudget(n int64) Option { return func(e *Executor) { e.outBudget = n } }

// WithLogger sets the structured logger.
func WithLogger(l *slog.Logger) Option { return func(e *Executor) { e.log = l } }

// WithImageStore sets the store images are resolved through.
func WithImageStore(s *images.Store) Option { return func(e *Executor) { e.images = s } }

// New returns an Executor keeping run files below stateDir/runs.
func New(client *containerd.Client, stateDir string, opts ...Option) (*Executor, error) {
	e := &Executor{
		client:      client,
		runtime:     RuncShim,
		snapshotter: "overlayfs",
		stateDir:    stateDir,
		idmap:       oci.IDMap{HostUID: 100000, HostGID: 100000, Size: 65536},
		killGrace:   10 * time.Second,
		endWait:     15 * time.Second,
		apiPort:     8081,
		log:         slog.Default(),
	}
	for _, o := range opts {
		o(e)
	}
	// The shim runs the logger from a directory of its own: paths must be absolute.
	abs, err := filepath.Abs(e.stateDir)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", e.stateDir, err)
	}
	e.stateDir = abs
	if e.images == nil {
		e.images = images.New(client, e.snapshotter)
	}
	switch {
	case e.runtime == RuncShim:
		if e.oci, err = ociruntime.Choose(e.ociWant, cgroupRoot, exec.LookPath); err != nil {
			return nil, err
		}
		e.log.Debug("OCI runtime", "name", e.oci.Name, "why", e.oci.Why)
		if e.runtime, err = installShimWrapper(DefaultShimDir, filepath.Join(e.stateDir, shimStateDir)); err != nil {
			return nil, err
		}
	case e.ociWant != "" && e.ociWant != ociruntime.Auto:
		return nil, fmt.Errorf("OCI runtime %s: only the runc shim (%s) takes one, not %s", e.ociWant, RuncShim, e.runtime)
	default:
		e.oci = ociruntime.Choice{Name: e.runtime, Why: "the runtime's own"}
	}
	if e.loggerPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the agent executable for the output logger: %w", err)
		}
		e.loggerPath = exe
	}
	// Run directories must be traversable by the job's mapped uid so runc can
	// bind the script file; their names are unguessable run ids.
	if err := os.MkdirAll(e.runsDir(), 0o711); err != nil {
		return nil, fmt.Errorf("create runs directory: %w", err)
	}
	if err := os.Chmod(e.runsDir(), 0o711); err != nil {
		return nil, fmt.Errorf("set mode of runs directory: %w", err)
	}
	if err := traversable(e.runsDir()); err != nil {
		return nil, err
	}
	if e.poolCfg.Size > 0 && e.helperDir != "" {
		e.pool = newPool(e, e.poolCfg)
	}
	return e, nil
}

// runtimeOptions are the runc shim's options for a run: nil (the shim's
// defaults, runc) unless another OCI runtime was chosen.
func (e *Executor) runtimeOptions() any {
	if e.oci.Path == "" {
		return nil
	}
	return &options.Options{BinaryName: e.oci.Path}
}

// OCIRuntime says which OCI runtime runs the jobs, and why.
func (e *Executor) OCIRuntime() ociruntime.Choice { return e.oci }

// traversable checks that every directory above dir lets others search it:
// runc binds the script file as the job's mapped root, which is "other" on
// the host.
func traversable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("check state directory: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("state directory %s has mode %o: jobs cannot reach their script files through it (chmod o+x %s, or choose another state.dir)", d, fi.Mode().Perm(), d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (e *Executor) runsDir() string { return filepath.Join(e.stateDir, "runs") }

// Snapshotter is the snapshotter jobs use.
func (e *Executor) Snapshotter() string { return e.snapshotter }

// Images is the store images are resolved through.
func (e *Executor) Images() *images.Store { return e.images }

// viewSnapshot gives a run an overlay on the remapped image. It is an active
// snapshot rather than a View so that runc can create mount points (the
// script file, /cronium in user images) in its upper layer; the spec then
// makes the root read-only.
func (e *Executor) viewSnapshot(ctx context.Context, id string, img containerd.Image) error {
	parent, err := e.remapped(ctx, img)
	if err != nil {
		return err
	}
	sn := e.client.SnapshotService(e.snapshotter)
	if _, err := sn.Prepare(ctx, id, parent, snapshots.WithLabels(map[string]string{LabelAgent: "run", LabelState: e.stateDir})); err != nil {
		return fmt.Errorf("create root filesystem view: %w", err)
	}
	return nil
}

// errorsJoinCleanup keeps the run's own error first and adds cleanup errors.
func errorsJoinCleanup(err error, cleanup error) error {
	if cleanup == nil {
		return err
	}
	if err == nil {
		return fmt.Errorf("cleanup: %w", cleanup)
	}
	return errors.Join(err, fmt.Errorf("cleanup: %w", cleanup))
}
