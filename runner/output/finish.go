package output

import (
	"errors"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A container's pipes reach end of file only when the shim closes its own
// copy of their write ends, which it does when the task is deleted: tens of
// milliseconds after the job's last process died. Once the caller knows that
// no process can write any more (the container's init exited, and the kernel
// kills the rest of its pid namespace before that exit is reported), what the
// pipes hold is all there is. Finishing reads it and ends there.

// pipeReader is what finishing needs of a stream: an inherited non-blocking
// pipe (an *os.File), whose blocked read a deadline interrupts and whose
// descriptor can be read directly.
type pipeReader interface {
	io.Reader
	SetReadDeadline(time.Time) error
	SyscallConn() (syscall.RawConn, error)
}

// finishable reads a stream until it is finished, then reads what the pipe
// holds without waiting and reports end of file when it is empty.
type finishable struct {
	r         pipeReader
	finishing atomic.Bool
}

// asFinishable returns r as a finishable stream, or nil when it cannot be
// finished.
func asFinishable(r io.Reader) *finishable {
	if p, ok := r.(pipeReader); ok {
		return &finishable{r: p}
	}
	return nil
}

// finish makes the stream end once its pipe is empty. The deadline wakes a
// read blocked on an empty pipe; the reads after it bypass the poller
// (which would honour the deadline) and take the descriptor directly.
func (f *finishable) finish() {
	f.finishing.Store(true)
	_ = f.r.SetReadDeadline(time.Now())
}

func (f *finishable) Read(p []byte) (int, error) {
	if !f.finishing.Load() {
		n, err := f.r.Read(p)
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !f.finishing.Load() {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
	return f.readHeld(p)
}

// readHeld reads what the pipe holds, without waiting: an empty pipe whose
// writers are gone is the end of the stream.
func (f *finishable) readHeld(p []byte) (int, error) {
	rc, err := f.r.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			n, rerr = unix.Read(int(fd), p)
			if rerr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return 0, err
	}
	switch {
	case rerr == unix.EAGAIN || (rerr == nil && n == 0):
		return 0, io.EOF
	case rerr != nil:
		return 0, os.NewSyscallError("read", rerr)
	}
	return n, nil
}
