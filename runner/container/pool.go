package container

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WarmPool configures warm sandboxes: runs made ready before their job
// arrives (directory, network with its firewall rules, snapshot,
// container, and a task created and waiting at runc's exec barrier, its
// output logger running), so that a job pays only for writing its files
// and starting the task. A sandbox serves one job and is then removed like
// any run; nothing of it is ever given to a second job.
type WarmPool struct {
	// Size is how many ready sandboxes are kept for each image that ran a
	// job within IdleAfter (0: no pool).
	Size int
	// IdleAfter: an image with no job for this long keeps no sandbox
	// until its next job (default 10m).
	IdleAfter time.Duration
	// MaxAge: a ready sandbox older than this is replaced (its network's
	// allowlist was resolved when it was made; default 10m).
	MaxAge time.Duration
	// MinAvailable: no sandbox is made while the host's available memory
	// is below this, and the ready ones are removed (default 512 MiB).
	MinAvailable int64
	// MemAvailable reports the host's available memory (default: MemAvailable
	// of /proc/meminfo); tests replace it.
	MemAvailable func() (int64, error)
	// OnMade, when set, is told the id of every sandbox made (tests track
	// them to check that nothing of them is left).
	OnMade func(id string)
	// Tick is how often idle, old and memory-starved sandboxes are looked
	// for (default 5s).
	Tick time.Duration
}

// WithWarmPool keeps warm sandboxes as p says. It needs the helpers
// (WithHelpers): the job's command reaches a sandbox through its init.
func WithWarmPool(p WarmPool) Option {
	return func(e *Executor) { e.poolCfg = p }
}

func (p WarmPool) withDefaults() WarmPool {
	if p.IdleAfter <= 0 {
		p.IdleAfter = 10 * time.Minute
	}
	if p.MaxAge <= 0 {
		p.MaxAge = 10 * time.Minute
	}
	if p.MinAvailable <= 0 {
		p.MinAvailable = 512 << 20
	}
	if p.MemAvailable == nil {
		p.MemAvailable = memAvailable
	}
	if p.Tick <= 0 {
		p.Tick = 5 * time.Second
	}
	return p
}

// PoolStats counts what the pool did, for tests and metrics.
type PoolStats struct {
	Ready     int    // sandboxes waiting for a job now
	Made      uint64 // sandboxes made
	Taken     uint64 // sandboxes given to a job
	Destroyed uint64 // sandboxes removed without a job (idle, old, memory, stop)
	Failed    uint64 // sandboxes that could not be made
}

// poolKey is what a sandbox must match to serve a job: what is fixed when
// its container is created. Limits are not: they are written to its
// cgroup before the start.
type poolKey struct {
	image, scriptName string
	tmp, workspace    int64
}

func keyOf(req Request) poolKey {
	return poolKey{image: req.Image, scriptName: req.Runtime.ScriptName, tmp: req.Resources.TmpBytes, workspace: req.Resources.WorkspaceBytes}
}

type poolEntry struct {
	tmpl       Request // the last job of the key: what its sandboxes are made from
	ready      []*sandbox
	lastWanted time.Time
	// failedAt holds off new attempts after a failure.
	failedAt time.Time
}

// pool keeps the warm sandboxes of an executor; its goroutine makes and
// removes them.
type pool struct {
	cfg WarmPool
	e   *Executor

	mu      sync.Mutex
	entries map[poolKey]*poolEntry
	closed  bool

	kick   chan struct{}
	cancel context.CancelFunc
	ctx    context.Context
	done   chan struct{}

	made, taken, destroyed, failed atomic.Uint64
}

func newPool(e *Executor, cfg WarmPool) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &pool{cfg: cfg.withDefaults(), e: e, entries: map[poolKey]*poolEntry{}, kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go p.loop()
	return p
}

// take hands out a ready sandbox for req, oldest first, or nil. Either way
// it records the demand, so that the key's sandboxes are (re)made.
func (p *pool) take(req Request) *sandbox {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	ent := p.want(req)
	if len(ent.ready) == 0 {
		return nil
	}
	sb := ent.ready[0]
	ent.ready = ent.ready[1:]
	p.taken.Add(1)
	return sb
}

// want records the demand for sandboxes like req and returns its entry.
func (p *pool) want(req Request) *poolEntry {
	k := keyOf(req)
	ent := p.entries[k]
	if ent == nil {
		ent = &poolEntry{}
		p.entries[k] = ent
	}
	ent.tmpl = template(req)
	ent.lastWanted = time.Now()
	p.wake()
	return ent
}

// prewarm records the demand for sandboxes like req and waits until one
// is ready.
func (p *pool) prewarm(ctx context.Context, req Request) error {
	since := time.Now()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return fmt.Errorf("the warm pool is closed")
		}
		ent := p.want(req)
		ready, failed := len(ent.ready), ent.failedAt
		p.mu.Unlock()
		switch {
		case ready > 0:
			return nil
		case failed.After(since):
			return fmt.Errorf("could not make a warm sandbox for %s (the log says why)", req.Image)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// template keeps of req what a sandbox is made from, and nothing of the
// job itself (its script, environment, execution).
func template(req Request) Request {
	return Request{Image: req.Image, Runtime: req.Runtime, Resources: req.Resources, Timeout: req.Timeout}
}

func (p *pool) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *pool) stats() PoolStats {
	p.mu.Lock()
	n := 0
	for _, ent := range p.entries {
		n += len(ent.ready)
	}
	p.mu.Unlock()
	return PoolStats{Ready: n, Made: p.made.Load(), Taken: p.taken.Load(), Destroyed: p.destroyed.Load(), Failed: p.failed.Load()}
}

// loop makes and removes sandboxes: one at a time, so that refilling
// never takes more than one core from the jobs.
func (p *pool) loop() {
	defer close(p.done)
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	for {
		p.trim()
		for p.ctx.Err() == nil && p.fillOne() {
		}
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
		case <-t.C:
		}
	}
}

// memoryShort reports whether the host has less available memory than
// the pool leaves it.
func (p *pool) memoryShort() bool {
	avail, err := p.cfg.MemAvailable()
	if err != nil {
		p.e.log.Warn("warm sandboxes: available memory unknown; making none", "error", err)
		return true
	}
	return avail < p.cfg.MinAvailable
}

// trim removes the sandboxes of keys idle for IdleAfter, those older than
// MaxAge, and all of them when memory is short.
func (p *pool) trim() {
	short := p.memoryShort()
	now := time.Now()
	var victims []*sandbox
	var reasons []string
	p.mu.Lock()
	for k, ent := range p.entries {
		idle := now.Sub(ent.lastWanted) > p.cfg.IdleAfter
		keep := ent.ready[:0]
		for _, sb := range ent.ready {
			switch {
			case short:
				reasons = append(reasons, "memory")
			case idle:
				reasons = append(reasons, "idle")
			case now.Sub(sb.created) > p.cfg.MaxAge:
				reasons = append(reasons, "age")
			default:
				keep = append(keep, sb)
				continue
			}
			victims = append(victims, sb)
		}
		ent.ready = keep
		if idle && len(keep) == 0 {
			delete(p.entries, k)
		}
	}
	p.mu.Unlock()
	for i, sb := range victims {
		p.e.log.Debug("removing warm sandbox", "container", sb.id, "reason", reasons[i])
		p.destroy(sb)
	}
}

// fillOne makes one sandbox for a key short of Size, if any and if memory
// allows; it reports whether it made one.
func (p *pool) fillOne() bool {
	var tmpl Request
	var key poolKey
	found := false
	p.mu.Lock()
	now := time.Now()
	for k, ent := range p.entries {
		if len(ent.ready) < p.cfg.Size && now.Sub(ent.lastWanted) <= p.cfg.IdleAfter && now.Sub(ent.failedAt) > 10*time.Second {
			tmpl, key, found = ent.tmpl, k, true
			break
		}
	}
	p.mu.Unlock()
	// Not while a run is being set up or ended, nor in a run's first
	// refillGrace: a sandbox made then takes the CPU that run waits on, and
	// slows it more than a sandbox saves. A script running longer does not
	// hold the pool back (a job that sleeps for an hour must not make every
	// other job start cold).
	if !found || p.e.busy.Load() > 0 || p.e.young.Load() > 0 || p.memoryShort() {
		return false
	}
	sb, err := p.e.prepare(p.ctx, tmpl)
	if err != nil {
		if p.ctx.Err() == nil {
			p.failed.Add(1)
			p.e.log.Warn("could not make a warm sandbox; jobs start cold meanwhile", "image", tmpl.Image, "error", err)
		}
		p.mu.Lock()
		if ent := p.entries[key]; ent != nil {
			ent.failedAt = time.Now()
		}
		p.mu.Unlock()
		return false
	}
	p.made.Add(1)
	if p.cfg.OnMade != nil {
		p.cfg.OnMade(sb.id)
	}
	p.mu.Lock()
	ent := p.entries[key]
	if p.closed || ent == nil {
		p.mu.Unlock()
		p.destroy(sb)
		return false
	}
	ent.ready = append(ent.ready, sb)
	p.mu.Unlock()
	return true
}

// destroy removes a sandbox no job took.
func (p *pool) destroy(sb *sandbox) {
	p.destroyed.Add(1)
	p.e.destroySandbox(sb)
}

// close stops making sandboxes and removes the ready ones.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	<-p.done
	p.mu.Lock()
	var all []*sandbox
	for _, ent := range p.entries {
		all = append(all, ent.ready...)
		ent.ready = nil
	}
	p.mu.Unlock()
	for _, sb := range all {
		p.destroy(sb)
	}
}

// refillGrace is how long after a run's start the pool waits before it
// makes a sandbox, unless the run ends first. Made right at the start, the
// sandbox (about a cold run's CPU) ran beside the script's own start on a
// 2-core host: a trivial job's exit came 53-67 ms after its start instead
// of 25-34 ms, and claimed→completion took 115 ms instead of 96-104 (jobs
// 1 s apart, through the agent binary and the development backend).
const refillGrace = 250 * time.Millisecond

// youngHold holds the pool back for one run's first refillGrace, or until
// the run ends (release), whichever comes first.
type youngHold struct {
	e    *Executor
	once sync.Once
	t    *time.Timer
}

func (e *Executor) holdYoung() *youngHold {
	h := &youngHold{e: e}
	e.young.Add(1)
	h.t = time.AfterFunc(refillGrace, h.end)
	return h
}

// release ends the hold at the run's end; safe to call more than once, and
// on nil (an adopted run has no hold). The run's goroutine calls it.
func (h *youngHold) release() {
	if h == nil {
		return
	}
	h.t.Stop()
	h.end()
}

// end ends the hold once, whichever of the grace and the run's end comes
// first, and wakes the pool when it was the last.
func (h *youngHold) end() {
	h.once.Do(func() {
		if h.e.young.Add(-1) == 0 && h.e.pool != nil {
			h.e.pool.wake()
		}
	})
}

// busyMark is whether one run is in its setup or end (Executor.busy). It
// is used by the run's goroutine only.
type busyMark struct {
	e    *Executor
	held bool
}

func (b *busyMark) set(on bool) {
	if b == nil || b.held == on {
		return
	}
	b.held = on
	if on {
		b.e.busy.Add(1)
		return
	}
	if b.e.busy.Add(-1) == 0 && b.e.pool != nil {
		b.e.pool.wake()
	}
}

// sandboxID names a sandbox's run: its container, snapshot, directory and
// network, as a run id does for a cold run.
func sandboxID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "cronium-warm-" + hex.EncodeToString(b)
}

// memAvailable is MemAvailable from /proc/meminfo, in bytes.
func memAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != "MemAvailable" {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse MemAvailable %q: %w", v, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no MemAvailable in /proc/meminfo")
}

// ClosePool stops making warm sandboxes and removes the ready ones in the
// background (Wait waits for that). Runs started after it run cold.
func (e *Executor) ClosePool() {
	if e.pool != nil {
		e.pool.close()
	}
}

// PoolStats reports what the warm pool did (zero without a pool).
func (e *Executor) PoolStats() PoolStats {
	if e.pool == nil {
		return PoolStats{}
	}
	return e.pool.stats()
}

// Prewarm waits until a warm sandbox for jobs like req is ready (at once
// without a pool).
func (e *Executor) Prewarm(ctx context.Context, req Request) error {
	if e.pool == nil {
		return nil
	}
	return e.pool.prewarm(ctx, req)
}
