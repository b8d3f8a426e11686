package runner

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/journal"
)

type journalItem = journal.Item

// Backend is what the dispatcher itself asks of the Cronium backend's
// internal API. Everything it reports goes through the journal instead
// (state.Jobs), which the syncer delivers.
type Backend interface {
	ClaimJobs(ctx context.Context, batchSize int, jobTypes []string) ([]api.QueueItem, error)
	Acknowledge(ctx context.Context, jobID string, at time.Time) error
	Release(ctx context.Context, jobID, message string) error
	Orphaned(ctx context.Context) ([]api.OrphanRow, error)
	Heartbeat(ctx context.Context, hb api.Heartbeat) (api.HeartbeatAnswer, error)
	SendMetrics(ctx context.Context, m api.AgentMetrics) error
}

// Delivery is the syncer as the dispatcher sees it: claims pause while the
// backend cannot take what is already journaled.
type Delivery interface {
	Reachable() bool
	Backlog() int
}

// DispatchConfig holds the dispatcher's knobs.
type DispatchConfig struct {
	OrchestratorID  string
	MaxConcurrent   int
	PollInterval    time.Duration // between claims while jobs come
	PollMaxInterval time.Duration // backing off while the backend fails
	Heartbeat       time.Duration
	Metrics         time.Duration
	DrainTimeout    time.Duration
	OutputCap       int // per stream, in the completion body
	// Masking says which of a job's values its logs never show (the
	// zero value masks secrets by the default names).
	Masking Masking
	// Fault, when set, is called at named points of a job's life
	// (fault-injection tests kill the agent there).
	Fault func(point string)
	// Observer, when set, hears of each claim and each job's end (the
	// Prometheus metrics).
	Observer Observer
	// Host, when set, gives the host's CPU, memory and disk figures of
	// the backend's metrics call (runner/hoststats); nil sends zeros.
	Host HostSampler
}

// Dispatcher polls the backend, claims as many jobs as it has free slots,
// runs them and reports everything back, one completing call per job.
type Dispatcher struct {
	be       Backend
	delivery Delivery
	cfg      DispatchConfig
	log      *slog.Logger
	// env is what the jobs' runs share with it.
	env *jobEnv

	// stopped ends the retrying of journal writes at a hard stop (jobEnv).
	stopped     chan struct{}
	stoppedOnce sync.Once
	// refused holds the backend's refusal of this process as a second live
	// agent under its id: it then claims nothing for good.
	refused atomic.Pointer[string]
	// lastAnswer is when the backend last answered a claim or heartbeat
	// (unix nanoseconds).
	lastAnswer atomic.Int64

	mu      sync.Mutex
	running map[string]*activeJob
	freed   chan struct{}
	wg      sync.WaitGroup

	stats struct {
		processed, succeeded, failed atomic.Int64
		totalMillis                  atomic.Int64
	}
	// handOver says whether the next stop is a hand-over; handedOver
	// counts the jobs left running by it.
	handOver   handOverArm
	handedOver atomic.Int64
}

type activeJob struct {
	cancel    context.CancelCauseFunc
	gate      *handOverGate
	start     time.Time
	execution string
	attempt   int
	// superseded: the backend took the job from this agent (stopped once).
	superseded bool
}

// Causes a run is stopped for.
var (
	errCancelledByUser = errors.New("cancelled from the backend")
	errShutdown        = errors.New("the agent is shutting down")
	errSuperseded      = errors.New("the backend gave the job to another agent: this agent was declared lost")
)

// NewDispatcher wires a dispatcher; jobs must not be nil. It asks the
// backend for the job types its executors run.
func NewDispatcher(be Backend, jobs *state.Jobs, delivery Delivery, executors Executors, cfg DispatchConfig, log *slog.Logger) *Dispatcher {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 1
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.PollMaxInterval < cfg.PollInterval {
		cfg.PollMaxInterval = cfg.PollInterval
	}
	if cfg.OutputCap <= 0 {
		cfg.OutputCap = 1 << 20
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.Fault == nil {
		cfg.Fault = func(string) {}
	}
	d := &Dispatcher{
		be: be, delivery: delivery, cfg: cfg, log: log,
		running: map[string]*activeJob{}, freed: make(chan struct{}, 1), stopped: make(chan struct{}),
	}
	d.env = &jobEnv{
		be: be, jobs: jobs, executors: executors, outputCap: cfg.OutputCap, masking: cfg.Masking, fault: cfg.Fault, log: log,
		stopped: d.stopped, attempting: d.setRunning, ended: d.count, observer: cfg.Observer, gateOf: d.gateOf,
	}
	return d
}

// count adds a job's end to the metrics.
func (d *Dispatcher) count(o outcome) {
	if d.cfg.Observer != nil {
		d.cfg.Observer.JobEnded(o.end())
	}
	d.stats.processed.Add(1)
	d.stats.totalMillis.Add(o.End.Sub(o.Start).Milliseconds())
	if o.Status == api.StatusCompleted && !o.NeverRan {
		d.stats.succeeded.Add(1)
	} else {
		d.stats.failed.Add(1)
	}
}

// Run claims and runs jobs until ctx ends or drain is closed. On drain it
// stops claiming, lets running jobs finish for up to DrainTimeout, then
// stops them as cancelled; when ctx ends it stops them at once. Either way
// every run is reported before Run returns.
func (d *Dispatcher) Run(ctx context.Context, drain <-chan struct{}) error {
	// Jobs outlive ctx: they are stopped through their own cancel funcs, so
	// that each still reports its end.
	jobsCtx := context.WithoutCancel(ctx)
	bg, stopBg := context.WithCancel(ctx)
	defer stopBg()
	go func() {
		<-ctx.Done()
		select {
		case <-time.After(30 * time.Second):
		case <-d.allDone():
		}
		d.stoppedOnce.Do(func() { close(d.stopped) })
	}()
	go d.every(bg, d.cfg.Heartbeat, d.heartbeat)
	go d.every(bg, d.cfg.Metrics, d.sendMetrics)

	d.log.Info("dispatcher started", "orchestrator", d.cfg.OrchestratorID, "maxConcurrent", d.cfg.MaxConcurrent, "jobTypes", d.env.executors.JobTypes())
	wait := time.Duration(0)
	failures := 0
	reconciled := false
claim:
	for {
		select {
		case <-ctx.Done():
			break claim
		case <-drain:
			break claim
		case <-d.freed:
		case <-time.After(wait):
		}
		if d.Refused() != "" {
			wait = d.cfg.PollMaxInterval
			continue
		}
		free := d.cfg.MaxConcurrent - d.runningCount()
		if free <= 0 {
			wait = d.cfg.PollMaxInterval // woken by d.freed before that
			continue
		}
		if d.delivery != nil && !d.delivery.Reachable() && d.delivery.Backlog() > 0 {
			// The backend does not take what is journaled: no new work
			// until it does.
			wait = d.cfg.PollInterval
			continue
		}
		if !reconciled {
			// Before any claim: a job the backend lists as ours that this
			// process claimed itself must not be taken for an orphan.
			if err := d.reconcile(ctx); err != nil {
				if d.refuse(err) {
					continue
				}
				failures++
				wait = min(d.cfg.PollInterval<<min(failures, 6), d.cfg.PollMaxInterval)
				d.logClaimError(err, wait)
				continue
			}
			reconciled = true
		}
		asked := time.Now()
		items, err := d.claim(ctx, drain, free)
		if err != nil {
			if ctx.Err() != nil || drained(drain) {
				break claim
			}
			if d.refuse(err) {
				continue
			}
			failures++
			wait = jittered(min(d.cfg.PollInterval<<min(failures, 6), d.cfg.PollMaxInterval))
			d.logClaimError(err, wait)
			continue
		}
		failures = 0
		if len(items) == 0 {
			// An empty queue is polled at the base interval: a new job is
			// claimed within it (a claim is one cheap GET for the backend).
			// A backend that held the claim until its wait ended (long
			// poll) is asked again at once.
			wait = max(0, jittered(d.cfg.PollInterval)-time.Since(asked))
			continue
		}
		wait = 0
		if len(items) > free {
			d.log.Warn("the backend handed out more jobs than asked for; releasing the rest unstarted",
				"asked", free, "got", len(items))
		}
		for i, it := range items {
			if it.Repeats > 0 {
				d.log.Warn("the backend listed a job more than once in one batch; running it once", "job", it.ID, "copies", it.Repeats+1)
			}
			if i >= free {
				// Never started: jobs.maxConcurrent holds whatever the backend sends.
				d.release(it, "agent has no free slot for it (the backend sent more jobs than asked for)")
				continue
			}
			select {
			case <-drain:
				d.release(it, "agent draining before the job started")
				continue
			case <-ctx.Done():
				d.release(it, "agent stopping before the job started")
				continue
			default:
			}
			d.start(jobsCtx, it)
		}
	}

	switch {
	case ctx.Err() != nil:
	case d.handOver.armed(time.Now()):
		d.handOverAll(ctx)
	case d.cfg.DrainTimeout > 0:
		d.log.Info("draining: no new claims; waiting for running jobs", "running", d.runningCount(), "timeout", d.cfg.DrainTimeout)
		select {
		case <-d.allDone():
		case <-time.After(d.cfg.DrainTimeout):
			d.log.Warn("drain timeout: stopping running jobs as cancelled", "running", d.runningCount())
		case <-ctx.Done():
		}
	}
	d.stopAll(errShutdown)
	d.wg.Wait()
	return nil
}

// handOverAll leaves every running job to the next agent process, each as
// soon as its gate allows (see handOverGate), and waits for them to let
// go. Jobs that cannot be handed over (HTTP requests) are waited for as
// in a drain; what is still running after DrainTimeout is stopped by the
// caller, as a drain's.
func (d *Dispatcher) handOverAll(ctx context.Context) {
	d.log.Info("handing over: no new claims; running jobs are left running for the next start", "running", d.runningCount(), "timeout", d.cfg.DrainTimeout)
	done := d.allDone()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.NewTimer(d.cfg.DrainTimeout)
	defer timeout.Stop()
	for {
		d.mu.Lock()
		for _, j := range d.running {
			if j.gate.handOver() {
				d.handedOver.Add(1)
			}
		}
		d.mu.Unlock()
		select {
		case <-done:
			d.log.Info("handed over: every running job is left to the next start", "jobs", d.handedOver.Load())
			return
		case <-tick.C:
		case <-timeout.C:
			d.log.Warn("hand-over timeout: stopping the jobs that could not be handed over as cancelled", "running", d.runningCount(), "handedOver", d.handedOver.Load())
			return
		case <-ctx.Done():
			return
		}
	}
}

// ArmHandOver makes a stop that comes before until a hand-over instead of
// a drain. It returns how many jobs run now.
func (d *Dispatcher) ArmHandOver(until time.Time) int {
	d.handOver.arm(until)
	n := d.runningCount()
	d.log.Info("the next stop hands running jobs over to the next start", "until", until.Format(time.RFC3339), "running", n)
	return n
}

// HandedOver is how many jobs the stop left running for the next start.
func (d *Dispatcher) HandedOver() int { return int(d.handedOver.Load()) }

func (d *Dispatcher) gateOf(jobID string) *handOverGate {
	d.mu.Lock()
	defer d.mu.Unlock()
	if j := d.running[jobID]; j != nil {
		return j.gate
	}
	return nil
}

// claim asks the backend for up to free jobs; a drain ends a claim the
// backend holds (a long poll), so that draining does not wait for it.
func (d *Dispatcher) claim(ctx context.Context, drain <-chan struct{}, free int) ([]api.QueueItem, error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if drain != nil {
		go func() {
			select {
			case <-drain:
				cancel()
			case <-cctx.Done():
			}
		}()
	}
	items, err := d.be.ClaimJobs(cctx, free, d.env.executors.JobTypes())
	if err == nil {
		d.lastAnswer.Store(time.Now().UnixNano())
	}
	return items, err
}

// LastAnswer is when the backend last answered a claim or a heartbeat
// (zero: never): the backend's contact before any report is delivered.
func (d *Dispatcher) LastAnswer() time.Time {
	if n := d.lastAnswer.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func drained(drain <-chan struct{}) bool {
	select {
	case <-drain:
		return true
	default:
		return false
	}
}

func (d *Dispatcher) logClaimError(err error, retryIn time.Duration) {
	var apiErr *backend.APIError
	if errors.As(err, &apiErr) && apiErr.Status == 401 {
		d.log.Error("the backend refused the agent's token (401 Unauthorized): check backend.token / CRONIUM_API_TOKEN", "retryIn", retryIn)
		return
	}
	d.log.Warn("claiming jobs failed; retrying", "error", err, "retryIn", retryIn)
}

func (d *Dispatcher) allDone() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(ch)
	}()
	return ch
}

func (d *Dispatcher) runningCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.running)
}

func (d *Dispatcher) stopAll(cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range d.running {
		j.cancel(cause)
	}
}

// Cancel stops a running job, as a user's cancellation does.
func (d *Dispatcher) Cancel(jobID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	j, ok := d.running[jobID]
	if ok {
		j.cancel(errCancelledByUser)
	}
	return ok
}

// release gives back a job claimed but never journaled, straight away: the
// backend just answered the claim.
func (d *Dispatcher) release(it api.QueueItem, why string) {
	if it.ID != "" {
		d.env.releaseNow(it.ID, why)
	}
}

// start runs one claimed job in its own goroutine, holding a slot.
func (d *Dispatcher) start(base context.Context, it api.QueueItem) {
	if it.Err != nil || it.Job == nil {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.failMalformed(it)
		}()
		return
	}
	job := it.Job
	if !d.spawn(base, job.ID, func(ctx context.Context) { d.env.runClaimed(ctx, job) }) {
		d.log.Warn("job claimed twice; the running copy continues", "job", job.ID)
	}
}

// spawn runs fn for a job in its own goroutine, holding a slot; false if the
// job already runs.
func (d *Dispatcher) spawn(base context.Context, jobID string, fn func(ctx context.Context)) bool {
	ctx, cancel := context.WithCancelCause(base)
	d.mu.Lock()
	if _, dup := d.running[jobID]; dup {
		d.mu.Unlock()
		cancel(nil)
		return false
	}
	d.running[jobID] = &activeJob{cancel: cancel, gate: newHandOverGate(cancel), start: time.Now()}
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() {
			cancel(nil)
			d.mu.Lock()
			delete(d.running, jobID)
			d.mu.Unlock()
			d.env.jobs.Forget(jobID)
			select {
			case d.freed <- struct{}{}:
			default:
			}
		}()
		fn(ctx)
	}()
	return true
}

// setRunning records the attempt a running job is at (status, heartbeat).
func (d *Dispatcher) setRunning(jobID, execution string, attempt int, start time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if j := d.running[jobID]; j != nil {
		j.execution, j.attempt, j.start = execution, attempt, start
	}
}

// RunningJob is a job being run, for inspection.
type RunningJob struct {
	JobID, ExecutionID string
	Attempt            int
	StartedAt          time.Time
}

// Running lists the jobs being run, by id.
func (d *Dispatcher) Running() []RunningJob {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]RunningJob, 0, len(d.running))
	for id, j := range d.running {
		out = append(out, RunningJob{JobID: id, ExecutionID: j.execution, Attempt: j.attempt, StartedAt: j.start})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].JobID < out[b].JobID })
	return out
}

func (d *Dispatcher) failMalformed(it api.QueueItem) {
	msg := it.Err.Error() // the decoder's message names the job and every bad field
	if it.ID == "" {
		d.log.Error("a queued job could not be decoded, not even its id; it stays claimed", "error", it.Err)
		return
	}
	d.log.Warn("failing malformed job", "job", it.ID, "error", it.Err)
	if err := d.env.jobs.FailUnreadable(context.Background(), it.ID, msg, 1); err != nil {
		d.log.Error("journaling the failure of a malformed job failed", "job", it.ID, "error", err)
	}
}

func (d *Dispatcher) every(ctx context.Context, period time.Duration, fn func(context.Context)) {
	if period <= 0 {
		return
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Dispatcher) heartbeat(ctx context.Context) {
	var running []string
	for _, r := range d.Running() {
		running = append(running, r.JobID)
	}
	hb := api.Heartbeat{
		OrchestratorID: d.cfg.OrchestratorID,
		Timestamp:      time.Now().UTC(),
		RunningJobs:    running,
		Capacity: api.Capacity{
			MaxJobs: d.cfg.MaxConcurrent, CurrentJobs: len(running),
			AvailableSlots: max(0, d.cfg.MaxConcurrent-len(running)),
		},
	}
	ans, err := d.be.Heartbeat(ctx, hb)
	if err == nil {
		d.lastAnswer.Store(time.Now().UnixNano())
	}
	if err != nil {
		if d.refuse(err) {
			return
		}
		if ctx.Err() == nil {
			d.log.Warn("heartbeat failed", "error", err)
		}
		return
	}
	for _, id := range ans.CancelJobs {
		if d.Cancel(id) {
			d.log.Info("job cancelled from the backend", "job", id)
		}
	}
	for _, id := range ans.SupersededJobs {
		d.Supersede(id)
	}
}

// Supersede stops a run the backend took from this agent (it declared the
// agent lost meanwhile): the run ends without any report, its outcome kept
// in the journal as superseded; a job that ended here already is marked
// so. False if the job does not run here.
func (d *Dispatcher) Supersede(jobID string) bool {
	d.mu.Lock()
	j, ok := d.running[jobID]
	first := ok && !j.superseded
	if first {
		j.superseded = true
		j.cancel(errSuperseded)
	}
	d.mu.Unlock()
	if first {
		d.log.Warn("the backend gave this job to another agent while this one was out of touch (declared lost); stopping the run, reporting nothing more of it", "job", jobID)
	}
	if !ok {
		// Ended here while out of touch: its outcome stays in the journal,
		// marked as the backend sees it.
		if marked, err := d.env.jobs.MarkSuperseded(context.Background(), jobID); err != nil {
			d.log.Error("marking a superseded job in the journal failed", "job", jobID, "error", err)
		} else if marked {
			d.log.Warn("the backend gave this job to another agent while this one was out of touch (declared lost); the run that ended here is kept in the journal as superseded", "job", jobID)
		}
	}
	return ok
}

func (d *Dispatcher) sendMetrics(ctx context.Context) {
	n := d.stats.processed.Load()
	avg := 0.0
	if n > 0 {
		avg = float64(d.stats.totalMillis.Load()) / float64(n)
	}
	m := api.AgentMetrics{
		JobsProcessed: n, JobsSucceeded: d.stats.succeeded.Load(), JobsFailed: d.stats.failed.Load(),
		AverageExecutionTime: avg,
	}
	m.ActiveContainers, m.QueueDepth = d.jobFigures(ctx)
	d.hostFigures(&m)
	if err := d.be.SendMetrics(ctx, m); err != nil && ctx.Err() == nil {
		d.log.Debug("metrics not sent", "error", err)
	}
}

// jittered spreads a poll interval over ±20%: agents started together (a
// fleet after a backend outage or a mass reboot) drift apart instead of
// polling in step.
func jittered(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// refuse records a refusal of this process as a second live agent under its
// orchestrator id, and logs it once; it reports whether err is one.
func (d *Dispatcher) refuse(err error) bool {
	if !backend.IsDuplicateID(err) {
		return false
	}
	msg := err.Error()
	if d.refused.CompareAndSwap(nil, &msg) {
		d.log.Error("the backend refuses this agent: another live agent process uses its orchestrator id; no job is claimed until this process is restarted with an id of its own (backend.orchestratorId, or a state directory of its own)",
			"orchestrator", d.cfg.OrchestratorID, "error", err)
	}
	return true
}

// Refused is the backend's refusal of this process as a second live agent
// under its id, or "".
func (d *Dispatcher) Refused() string {
	if p := d.refused.Load(); p != nil {
		return *p
	}
	return ""
}
