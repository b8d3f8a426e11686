package runner

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/runner/container"
)

// A hand-over is a stop that leaves the running jobs running: the agent
// stops claiming, lets each run reach a point the next agent process can
// adopt it from (its start journaled), stops following it without
// stopping or removing anything, delivers what it journaled and exits.
// The next start adopts the runs from the journal, as after a crash, but
// nothing is cut half-way. A package upgrade restarts the agent so
// (`cronium-agent hand-over`, then the restart), instead of draining for
// up to jobs.drainTimeout.

// ErrHandOver, as the cause of a job's cancellation, asks its executor to
// leave the run going and return at once with Result.HandedOver: nothing
// stopped, nothing removed, nothing journaled as ended.
var ErrHandOver = container.ErrHandOver

// HandingOver says whether ctx ended for a hand-over: an executor that
// meets a cancelled ctx while it follows a run returns HandedOver() then.
func HandingOver(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), ErrHandOver)
}

// HandedOver is the result of a run left to the next agent process.
func HandedOver() Result { return Result{HandedOver: true} }

// HandsOver is implemented by executors whose runs outlive the agent
// process and that honour ErrHandOver once the attempt's start is
// journaled. Jobs of other executors (HTTP requests, made by the agent
// itself) are waited for at a hand-over, as at a drain.
type HandsOver interface {
	HandsOver() bool
}

// handOverGate says when a job's run can be handed over: only while its
// executor follows a run whose start is journaled (every execution's, for
// a job on several servers), or while the job waits to retry. A run being
// set up, or whose end is being journaled, is let finish that first. The
// dispatcher cancels the job with ErrHandOver only through the gate, and
// the job changes phase only through it, so that a job never meets a
// hand-over in the middle of its setup.
type handOverGate struct {
	mu      sync.Mutex
	able    bool // the job's executor honours ErrHandOver
	phase   gatePhase
	own     bool            // the attempt's own start is journaled
	pending map[string]bool // executions created, not started
	cancel  context.CancelCauseFunc
	gone    bool // cancelled for a hand-over
}

type gatePhase int

const (
	phaseBusy    gatePhase = iota // claimed, setting up, or ending
	phaseRunning                  // the executor follows the attempt
	phaseWaiting                  // waiting to retry
)

func newHandOverGate(cancel context.CancelCauseFunc) *handOverGate {
	return &handOverGate{cancel: cancel}
}

// setPhase moves the job to phase p; false if it was handed over already
// (the caller then returns at once).
func (g *handOverGate) setPhase(p gatePhase, able bool) bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.phase, g.able = p, able
	if p != phaseRunning {
		g.own, g.pending = false, nil
	}
	return !g.gone
}

// started: the attempt's own start is journaled.
func (g *handOverGate) started() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.own = true
	g.mu.Unlock()
}

// created: execution id exists and has not started yet.
func (g *handOverGate) created(id string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	if g.pending == nil {
		g.pending = map[string]bool{}
	}
	g.pending[id] = true
	g.mu.Unlock()
}

// settled: execution id started, or ended without starting.
func (g *handOverGate) settled(id string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	delete(g.pending, id)
	g.mu.Unlock()
}

// handOver cancels the job with ErrHandOver if it can be handed over now.
func (g *handOverGate) handOver() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gone || !g.able {
		return false
	}
	switch {
	case g.phase == phaseWaiting:
	case g.phase == phaseRunning && g.own && len(g.pending) == 0:
	default:
		return false
	}
	g.gone = true
	g.cancel(ErrHandOver)
	return true
}

// handOverArm is the dispatcher's side: whether the next stop is a
// hand-over.
type handOverArm struct {
	mu    sync.Mutex
	until time.Time
}

func (h *handOverArm) arm(until time.Time) {
	h.mu.Lock()
	h.until = until
	h.mu.Unlock()
}

func (h *handOverArm) armed(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Before(h.until)
}
