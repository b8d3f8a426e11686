package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// stopOnSignals turns SIGTERM and SIGINT into the agent's two ways of
// stopping: the first closes drain (no new claims, running jobs finish for
// up to drainTimeout, or are left running for the next start when a
// hand-over is armed), a second cancels ctx (running jobs are cancelled at
// once). ctx is not cancelled with parent: a stop is only ever a signal's.
// release stops listening.
func stopOnSignals(parent context.Context, env *cliEnv, drainTimeout time.Duration) (ctx context.Context, drain <-chan struct{}, release func()) {
	drainCh := make(chan struct{})
	ctx, stop := context.WithCancel(context.WithoutCancel(parent))
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		// The dispatcher says which: a drain, or a hand-over if one is
		// armed (cronium-agent hand-over).
		env.log.Warn("stopping: no new claims (signal again to stop at once)", "drainTimeout", drainTimeout)
		close(drainCh)
		select {
		case <-sigs:
			env.log.Warn("stopping at once: running jobs are cancelled and reported")
			stop()
		case <-ctx.Done():
		}
	}()
	return ctx, drainCh, func() {
		signal.Stop(sigs)
		stop()
	}
}
