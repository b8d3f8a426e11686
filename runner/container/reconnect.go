package container

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A run survives a restart of containerd: its task lives on in its shim, and
// the client connects again by itself. What the run must do is make the
// calls that failed meanwhile again: the Wait for the task's exit, and the
// Kill and Delete calls that stop and remove it.

// Retry pauses while containerd does not answer.
const (
	retryPauseMin = 50 * time.Millisecond
	retryPauseMax = 2 * time.Second
	// reconnectMin is the least a run waits for containerd to answer again:
	// a restart takes seconds and may come right at the run's deadline.
	reconnectMin = 30 * time.Second
	// shimGoneWait bounds how long a Wait failing for another reason is
	// made again, shimGonePause apart.
	shimGoneWait  = 10 * time.Second
	shimGonePause = 100 * time.Millisecond
	// cleanupWait bounds the removal of a run.
	cleanupWait = 60 * time.Second
)

// errTaskLost means the run's task is gone with its exit status: containerd
// lost it (a reboot, a wiped state directory) or its shim was killed.
var errTaskLost = errors.New("the job's container task is gone")

// transient reports whether err says that containerd could not be reached
// (it is restarting) rather than that the call failed. ctx is the call's own
// context: a cancellation or deadline it did not cause came from the other
// end of the connection.
func transient(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if errdefs.IsUnavailable(err) {
		return true
	}
	// Wait's error comes straight from gRPC, unconverted.
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.Canceled, codes.DeadlineExceeded:
		return ctx.Err() == nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ctx.Err() == nil
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// lostIfNotFound marks a task or container that containerd no longer knows.
func lostIfNotFound(err error) error {
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("%w: %w", errTaskLost, err)
	}
	return err
}

// call makes op and, while containerd cannot be reached, makes it again
// with growing pauses until it answers or until(the moment it was lost)
// has passed. ctx lends its values, not its cancellation: the calls made
// this way stop or remove a run, which must happen however it ends. A loss
// is logged once, at Warn.
func (e *Executor) call(ctx context.Context, runID, what string, until func(lostAt time.Time) time.Time, op func(context.Context) error) error {
	base := context.WithoutCancel(ctx)
	end := until(time.Now())
	pause := retryPauseMin
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithDeadline(base, end)
		err := op(actx)
		lost := transient(actx, err)
		cancel()
		switch {
		case !lost && attempt > 0 && err == nil:
			e.log.Info("containerd answers again", "container", runID, "call", what)
			return nil
		case !lost:
			return err
		case attempt == 0:
			end = until(time.Now())
			e.log.Warn("containerd is unreachable; retrying until it answers", "container", runID, "call", what, "until", end, "error", err)
		}
		if time.Until(end) < pause {
			return fmt.Errorf("%s: containerd did not answer again by %s: %w", what, end.Format(time.RFC3339), err)
		}
		time.Sleep(pause)
		pause = min(2*pause, retryPauseMax)
	}
}

// taskWatch waits for a task's exit across containerd restarts: a Wait cut
// by containerd going away is made again, on the task loaded afresh, once
// containerd answers. done is closed when the exit (or the reason there is
// none) is known.
type taskWatch struct {
	e    *Executor
	id   string
	ctx  context.Context // ended by the run's release only
	done chan struct{}
	exit containerd.ExitStatus
	err  error

	mu     sync.Mutex
	task   containerd.Task
	stopBy time.Time // the deadline, or when the run was cancelled if earlier
}

// watch follows the exit of task, whose Wait is exitCh. deadline is when
// the run's timeout ends; it and ctx's cancellation bound how long the run
// waits for a lost containerd.
//
// wctx is exitCh's context: its end (the run's release) ends the watch.
func (e *Executor) watch(ctx, wctx context.Context, runID string, task containerd.Task, exitCh <-chan containerd.ExitStatus, deadline time.Time) *taskWatch {
	w := &taskWatch{e: e, id: runID, ctx: wctx, done: make(chan struct{}), task: task, stopBy: deadline}
	stop := context.AfterFunc(ctx, w.cancelled)
	go func() {
		defer close(w.done)
		defer stop()
		w.exit, w.err = w.follow(exitCh)
	}()
	return w
}

func (w *taskWatch) cancelled() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now := time.Now(); now.Before(w.stopBy) {
		w.stopBy = now
	}
}

// until is how long the run waits for containerd lost at lostAt: until the
// job would have been killed (its deadline or cancellation, plus the grace)
// and at least reconnectMin.
func (w *taskWatch) until(lostAt time.Time) time.Time {
	w.mu.Lock()
	end := w.stopBy.Add(w.e.killGrace)
	w.mu.Unlock()
	if least := lostAt.Add(reconnectMin); end.Before(least) {
		return least
	}
	return end
}

func (w *taskWatch) current() containerd.Task {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.task
}

func (w *taskWatch) follow(exitCh <-chan containerd.ExitStatus) (containerd.ExitStatus, error) {
	var failing time.Time // since Wait first failed for another reason than containerd being away
	for {
		st := <-exitCh
		err := st.Error()
		if err == nil {
			return st, nil
		}
		if w.ctx.Err() != nil {
			// Released without an exit: handed over.
			return st, errHandedOver
		}
		for {
			switch {
			case errdefs.IsNotFound(err), errors.Is(err, errTaskLost):
				return st, lostIfNotFound(err)
			case !transient(w.ctx, err):
				// A dead shim makes Wait fail ("ttrpc: closed") until
				// containerd, which notices at once, forgets the task.
				if failing.IsZero() {
					failing = time.Now()
					w.e.log.Info("waiting for the task failed; looking whether it still exists", "container", w.id, "error", err)
				} else if time.Since(failing) > shimGoneWait {
					return st, err
				}
				time.Sleep(shimGonePause)
			}
			var ch <-chan containerd.ExitStatus
			if ch, err = w.again(err); err == nil {
				exitCh = ch
				break
			}
		}
	}
}

// again waits anew for the task, loaded afresh. A failed Wait's error that
// says containerd is away counts as the first attempt, so that the loss is
// logged and retried as any call's.
func (w *taskWatch) again(waitErr error) (<-chan containerd.ExitStatus, error) {
	var ch <-chan containerd.ExitStatus
	first := transient(w.ctx, waitErr)
	err := w.e.call(w.ctx, w.id, "wait for the task", w.until, func(ctx context.Context) error {
		if first {
			first = false
			return waitErr
		}
		var err error
		ch, err = w.reattach(ctx)
		return err
	})
	return ch, err
}

// reattach loads the task again and waits for it anew.
func (w *taskWatch) reattach(ctx context.Context) (<-chan containerd.ExitStatus, error) {
	ctr, err := w.e.client.LoadContainer(ctx, w.id)
	if err != nil {
		return nil, lostIfNotFound(err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return nil, lostIfNotFound(err)
	}
	// The Wait outlives this attempt's context.
	ch, err := task.Wait(w.ctx)
	if err != nil {
		return nil, lostIfNotFound(err)
	}
	w.mu.Lock()
	w.task = task
	w.mu.Unlock()
	return ch, nil
}

// exited reports whether the exit is known, without waiting.
func (w *taskWatch) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// kill sends sig to every process of the job (the script is pid 1 of its
// namespace and ignores SIGTERM unless it handles it).
func (w *taskWatch) kill(sig syscall.Signal) {
	// The job's init forwards a catchable signal to the script's process
	// group; sent to every process, the script would get it twice (and a
	// trap run twice). SIGKILL goes to all: nothing of the job may outlive it.
	var opts []containerd.KillOpts
	if sig == syscall.SIGKILL {
		opts = append(opts, containerd.WithKillAll)
	}
	err := w.e.call(w.ctx, w.id, "signal "+sig.String(), w.until, func(ctx context.Context) error {
		return w.current().Kill(ctx, sig, opts...)
	})
	if err != nil && !errdefs.IsNotFound(err) {
		w.e.log.Warn("signalling the job failed", "container", w.id, "signal", sig.String(), "error", err)
	}
}

// delete removes the exited task. Deleting it closes the output pipes; the
// shim then waits for the logger to write its end record and exit.
//
// No kill first (containerd.WithProcessKill): the job's init was pid 1 of
// the job's own pid namespace, and the kernel killed every other process
// of it when it exited. The kill cost a runc process, a wait and two
// containerd round trips per job, on the path to the job's result.
func (w *taskWatch) delete() error {
	err := w.e.call(w.ctx, w.id, "delete the task", func(lostAt time.Time) time.Time { return lostAt.Add(reconnectMin) },
		func(ctx context.Context) error {
			_, err := w.current().Delete(ctx)
			return err
		})
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}
