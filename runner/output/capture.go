package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Capture reads stdout and stderr concurrently until both reach end of
// file and writes them to w as an output file: header, one record per
// entry, end record. Output is buffered and flushed when the buffer fills,
// at least every flush interval, and at the end; w is synced at the end
// when it has a Sync method (an *os.File).
//
// When ctx is done before both streams ended, Capture interrupts the
// readers that support SetReadDeadline (pipes from os.Pipe or inherited
// non-blocking descriptors), keeps what they read, waits briefly for
// readers that cannot be interrupted, and writes the end record marked
// incomplete. The returned Summary is what the end record says; the error
// joins the interruption cause, read errors and the first write error.
func Capture(ctx context.Context, stdout, stderr io.Reader, w io.Writer, opts ...Option) (Summary, error) {
	c, err := newConfig(opts)
	if err != nil {
		return Summary{}, fmt.Errorf("capture: %w", err)
	}
	rw := newRecordWriter(w, c)
	if err := rw.writeHeader(); err != nil {
		return Summary{}, fmt.Errorf("capture: %w", err)
	}

	done := make(chan error, 2)
	readers := []io.Reader{stdout, stderr} // stdout and stderr stay what a deadline interrupts
	var finishers []*finishable
	if c.finish != nil {
		for i, r := range readers {
			if f := asFinishable(r); f != nil {
				readers[i], finishers = f, append(finishers, f)
			}
		}
	}
	for i, st := range []Stream{Stdout, Stderr} {
		sp := newSplitter(st, readers[i], c)
		go func() { done <- sp.run(rw) }()
	}

	var (
		errs        []error
		interrupted bool // ctx was done and the readers were interrupted
		cut         bool // a stream ended through that interruption
		grace       <-chan time.Time
		ctxDone     = ctx.Done()
		finish      = c.finish
	)
	for pending := 2; pending > 0; {
		select {
		case err := <-done:
			pending--
			switch {
			case err == nil:
			case interrupted && errors.Is(err, os.ErrDeadlineExceeded):
				cut = true // reported once, with its cause, below
			default:
				errs = append(errs, err)
			}
		case <-finish:
			finish = nil
			for _, f := range finishers {
				f.finish()
			}
		case <-ctxDone:
			ctxDone, interrupted = nil, true
			interrupt(stdout)
			interrupt(stderr)
			t := time.NewTimer(interruptGrace)
			defer t.Stop()
			grace = t.C
		case <-grace:
			// Readers that cannot be interrupted are left behind; the
			// writer refuses what they deliver from now on.
			errs = append(errs, fmt.Errorf("%d stream reader(s) could not be interrupted", pending))
			pending, cut = 0, true
		}
	}
	if cut {
		errs = append([]error{fmt.Errorf("interrupted: %w", context.Cause(ctx))}, errs...)
	}
	sum, werr := rw.close(len(errs) == 0)
	if werr != nil {
		errs = append(errs, werr)
	}
	if len(errs) > 0 {
		return sum, fmt.Errorf("capture: %w", errors.Join(errs...))
	}
	return sum, nil
}

// interrupt makes a blocked Read return, where the reader allows it.
func interrupt(r io.Reader) {
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		// An error means the reader cannot be interrupted; the grace
		// period in Capture covers that case.
		_ = d.SetReadDeadline(time.Now())
	}
}
