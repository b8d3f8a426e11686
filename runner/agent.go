package runner

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/httpexec"
	"github.com/cronium/cronium-agent/runner/metrics"
	"github.com/cronium/cronium-agent/sidecar"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/admin"
	"github.com/cronium/cronium-agent/state/syncer"
)

// AgentConfig is what the agent needs to run, already translated from the
// configuration file: the runner does not read that file, so that its
// schema can change without touching the job lifecycle.
type AgentConfig struct {
	// Identity says what the orchestrator id is bound to (status shows it).
	Identity string
	// StateDir holds the journal (journal.db) and its key (journal.key);
	// it must exist.
	StateDir string
	// JournalBudget bounds the journal on disk, in bytes.
	JournalBudget int64
	// SyncConcurrency is how many job streams are delivered at once.
	SyncConcurrency int
	// Retain is how long the journal keeps a finished job.
	Retain time.Duration
	// AdminSocket is the path of the inspection socket.
	AdminSocket string
	// Version is the agent's version, as logged and shown by status.
	Version string

	Policy Policy
	// HTTP configures the HTTP_REQUEST executor: the outbound policy
	// (without httpexec.WithPolicy every request is refused), the body cap
	// and the connect timeout.
	HTTP []httpexec.Option
	// Dispatch includes the orchestrator id and the fault hook, which the
	// syncer gets too.
	Dispatch DispatchConfig
	// RuntimeImages are remapped at start, in this order, before any job
	// needs them.
	RuntimeImages []string

	// OpenExecutor (required) connects the executor once the journal is
	// open, because the runtime API of its runs serves from the journal
	// (store). release closes the connection.
	OpenExecutor func(ctx context.Context, store sidecar.Store) (ex LocalRuntime, release func(), err error)
	// OpenExecutors (optional) makes the executors of targets other than
	// this host's containers and HTTP requests (SSH servers), once the
	// journal is open: their runs' runtime API serves from it too.
	OpenExecutors func(ctx context.Context, store sidecar.Store) (x Executors, release func(), err error)
	// SweepNetworks (required) removes the job networks no run owns.
	SweepNetworks func(ctx context.Context) (cni.SweepReport, error)

	// MetricsListen is the address of the metrics and health listener
	// (empty: none); ContainerdReady, if set, is one of its readiness
	// checks.
	MetricsListen   string
	ContainerdReady func(ctx context.Context) error
	// Notify, if set, tells the service manager the agent's state
	// (sd_notify: READY=1, STATUS=..., STOPPING=1).
	Notify func(state ...string) error

	Log *slog.Logger
}

// LocalRuntime is the container executor (runner/container) as the
// agent's lifecycle uses it: runs, the start-up sweep, the images made
// ready before any job, and the wait for the last runs' cleanup.
type LocalRuntime interface {
	ScriptRunner
	GC(ctx context.Context, opts ...container.GCOption) (container.GCReport, error)
	PrepareImage(ctx context.Context, ref string) (string, error)
	Wait(ctx context.Context) error
}

// Agent is `cronium-agent run`: it owns the lifecycle from the journal's
// opening to the last report's delivery.
type Agent struct {
	client *backend.Client
	cfg    AgentConfig
	log    *slog.Logger
}

// NewAgent returns an agent that takes jobs from client under cfg.
func NewAgent(client *backend.Client, cfg AgentConfig) *Agent {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Agent{client: client, cfg: cfg, log: log}
}

// Run takes jobs until drain is closed and the running jobs are done (or
// jobs.drainTimeout passed), or until ctx is cancelled: then running jobs
// are cancelled at once. Every job is reported either way; what the
// backend does not take before Run returns stays in the journal for the
// next start.
func (a *Agent) Run(ctx context.Context, drain <-chan struct{}) error {
	jr, err := openJournal(a.cfg.StateDir, a.cfg.JournalBudget)
	if err != nil {
		return err
	}
	defer jr.Close()
	jobs, err := state.NewJobs(jr)
	if err != nil {
		return err
	}
	fault := a.cfg.Dispatch.Fault
	// The syncer hears of superseded jobs first (a refused report); the
	// dispatcher, made below, stops their runs.
	var disp atomic.Pointer[Dispatcher]
	supersede := func(jobID string) {
		if d := disp.Load(); d != nil {
			d.Supersede(jobID)
		}
	}
	sy := syncer.New(jr, a.client, syncer.WithConcurrency(a.cfg.SyncConcurrency), syncer.WithLogger(a.log), syncer.WithFault(fault), syncer.WithSuperseded(supersede))
	jobs.OnAppend(sy.Notify)
	defer background(ctx, a.log, "journal delivery", sy.Run)()
	defer background(ctx, a.log, "journal maintenance", func(ctx context.Context) error {
		return jobs.Maintain(ctx, a.cfg.Retain, a.log)
	})()

	store := NewJournalStore(jobs, a.client, a.log)
	ex, release, err := a.cfg.OpenExecutor(ctx, store)
	if err != nil {
		return err
	}
	defer release()
	executors := LocalExecutors(ex, a.cfg.Policy, a.cfg.HTTP...)
	if a.cfg.OpenExecutors != nil {
		more, release, err := a.cfg.OpenExecutors(ctx, store)
		if err != nil {
			return err
		}
		defer release()
		for t, x := range more {
			executors[t] = x
		}
	}
	notify := a.cfg.Notify
	if notify == nil {
		notify = func(...string) error { return nil }
	}
	dcfg := a.cfg.Dispatch
	src := &metricsSource{jobs: jobs, sy: sy}
	var m *metrics.Metrics
	if a.cfg.MetricsListen != "" {
		opts := []metrics.Option{metrics.WithLogger(a.log), metrics.WithReadyCheck("journal", func(ctx context.Context) error {
			_, err := jobs.Journal().Usage(ctx)
			return err
		})}
		if a.cfg.ContainerdReady != nil {
			opts = append(opts, metrics.WithReadyCheck("containerd", a.cfg.ContainerdReady))
		}
		m = metrics.New(src, opts...)
		dcfg.Observer = metricsObserver{m}
	}
	ready := newReadiness(a.client, notify)
	d := NewDispatcher(ready, jobs, sy, executors, dcfg, a.log)
	disp.Store(d)
	src.d = d
	if m != nil {
		// Listening before recovery: a busy address stops the start, and
		// /healthz answers while recovery runs (/readyz says what is not
		// usable yet).
		ln, err := m.Listen(a.cfg.MetricsListen)
		if err != nil {
			return err
		}
		defer background(ctx, a.log, "metrics listener", func(ctx context.Context) error { return m.Serve(ctx, ln) })()
		a.log.Info("metrics and health served", "addr", ln.Addr().String())
	}
	_ = notify("STATUS=recovering unfinished jobs and sweeping leftovers")
	if err := a.prepare(ctx, d, ex); err != nil {
		return err
	}
	ready.start(ctx)

	insp := NewInspector(d, jobs, sy)
	insp.Version, insp.OrchestratorID, insp.Identity, insp.Backend = a.cfg.Version, a.cfg.Dispatch.OrchestratorID, a.cfg.Identity, a.client.BaseURL()
	adm, err := admin.Listen(a.cfg.AdminSocket, insp, admin.WithLogger(a.log))
	if err != nil {
		return err
	}
	defer background(ctx, a.log, "admin socket", adm.Serve)()

	a.log.Info("cronium-agent running", "version", a.cfg.Version, "backend", a.client.BaseURL(), "orchestrator", a.cfg.Dispatch.OrchestratorID, "journal", jr.Path())
	if err := d.Run(ctx, drain); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	_ = notify("STOPPING=1", "STATUS=stopping: reporting the last jobs")
	a.windDown(sy, ex)
	if n := d.HandedOver(); n > 0 {
		a.log.Info("cronium-agent stopped; its running jobs go on, for the next start to adopt", "jobs", n)
		return nil
	}
	a.log.Info("cronium-agent stopped")
	return nil
}

// warmPool is an executor that keeps warm sandboxes.
type warmPool interface{ ClosePool() }

// windDown sends what the last jobs reported if the backend takes it (what
// it does not take is delivered by the next start) and waits for the runs'
// cleanup, both bounded: the agent is stopping, and the next start does
// what is left.
func (a *Agent) windDown(sy *syncer.Syncer, ex LocalRuntime) {
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := sy.Flush(fctx); err != nil {
		a.log.Warn("reports left in the journal for the next start", "error", err)
	}
	fcancel()
	if p, ok := ex.(warmPool); ok {
		// Warm sandboxes are removed with the finished runs, which Wait
		// waits for.
		p.ClosePool()
	}
	wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ex.Wait(wctx); err != nil {
		a.log.Warn("run cleanup unfinished; the next start removes the rest", "error", err)
	}
}
