package runner

import (
	"context"
	"log/slog"
)

// background runs fn until the returned stop is called; stop waits for it
// to return. It is not stopped by ctx's cancellation (a hard stop still
// reports every job through it), only by stop. A failure before that is
// logged.
func background(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) (stop func()) {
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(bctx); err != nil && bctx.Err() == nil {
			log.Error(what+" stopped", "error", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
