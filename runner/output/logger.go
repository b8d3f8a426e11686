package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultDrainTimeout is how long the logger keeps draining after SIGTERM.
// The shim kills the logger 12 s after SIGTERM; this leaves time to write
// the end record and sync.
const DefaultDrainTimeout = 10 * time.Second

// ErrDrainTimeout is the cause of a capture cut short because the streams
// were still open DrainTimeout after the terminate signal.
var ErrDrainTimeout = errors.New("output: streams still open after the drain timeout")

// Logger is one run of the shim-side logging process, with its inputs
// passed in so tests can use pipes; RunShimLogger builds it from the
// descriptors the shim hands over.
type Logger struct {
	// Path is the output file to create. It must not exist: each run
	// attempt gets a path of its own (see Run).
	Path string
	// Stdout and Stderr are the read ends of the container's pipes.
	// Readers with SetReadDeadline can be cut at the drain timeout.
	Stdout, Stderr io.Reader
	// Ready is closed once the output file exists; the shim starts the
	// container only then. It is closed on failure too, so the shim does
	// not wait for nothing.
	Ready io.Closer
	// Terminate delivers the shim's SIGTERM. The logger does not stop on
	// it: the container is gone by then, and the pipes reach end of file
	// once drained. It only starts the DrainTimeout clock.
	Terminate <-chan os.Signal
	// Finish, when set, delivers the agent's word that no process can
	// write to the pipes any more: the capture ends once they are empty
	// (WithFinish), without waiting for the shim to close them.
	Finish <-chan os.Signal
	// DrainTimeout bounds the drain after Terminate; 0 means
	// DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Options tune the capture.
	Options []Option
}

// Run creates the output file, signals ready and captures both streams
// until their end, the drain timeout after Terminate, or ctx is done; in
// every case it writes the end record. It returns nil when both streams
// were captured completely.
//
// The file is created with O_EXCL rather than truncated or appended to:
// an existing file holds a capture the agent may not have journaled yet,
// and appending would restart seq at 1 after a possibly torn record. A
// clash is a bug in the caller, and failing loudly loses nothing.
func (l *Logger) Run(ctx context.Context) (Summary, error) {
	var readyOnce sync.Once
	var readyErr error
	signalReady := func() {
		readyOnce.Do(func() {
			if l.Ready != nil {
				if err := l.Ready.Close(); err != nil {
					readyErr = fmt.Errorf("close ready pipe: %w", err)
				}
			}
		})
	}
	defer signalReady()

	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Summary{}, fmt.Errorf("shim logger: create output file: %w", err)
	}
	signalReady()

	capCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { l.watchTerminate(cancel, stop) })

	opts := l.Options
	if l.Finish != nil {
		finish := make(chan struct{})
		opts = append(opts[:len(opts):len(opts)], WithFinish(finish))
		wg.Go(func() {
			select {
			case <-l.Finish:
				close(finish)
			case <-stop:
			}
		})
	}
	sum, err := Capture(capCtx, l.Stdout, l.Stderr, f, opts...)
	close(stop)
	wg.Wait()

	errs := []error{err, readyErr}
	if cerr := f.Close(); cerr != nil {
		errs = append(errs, fmt.Errorf("close output file: %w", cerr))
	}
	errs = append(errs, syncDir(filepath.Dir(l.Path)))
	if err := errors.Join(errs...); err != nil {
		return sum, fmt.Errorf("shim logger %s: %w", l.Path, err)
	}
	return sum, nil
}

// watchTerminate cancels the capture DrainTimeout after the first signal.
func (l *Logger) watchTerminate(cancel context.CancelCauseFunc, stop <-chan struct{}) {
	select {
	case <-l.Terminate:
	case <-stop:
		return
	}
	d := l.DrainTimeout
	if d <= 0 {
		d = DefaultDrainTimeout
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		cancel(ErrDrainTimeout)
	case <-stop:
	}
}

// syncDir makes the new file's directory entry durable along with its
// data, which Capture synced.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
