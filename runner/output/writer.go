package output

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// errClosed tells a stream reader that the capture was finished without it
// (it could not be interrupted), so what it read can no longer be written.
var errClosed = errors.New("output: capture already finished")

// span locates one entry in a stream reader's buffer.
type span struct {
	start, end int
	fragment   bool
}

// recordWriter frames the entries of both streams into one output. Seq is
// assigned under the same lock that appends to the buffer, so seq order is
// file order.
type recordWriter struct {
	mu       sync.Mutex
	w        io.Writer
	buf      []byte
	limit    int
	interval time.Duration
	now      func() time.Time
	timer    *time.Timer
	armed    bool  // timer pending for buffered data
	lastTime int64 // keeps timestamps non-decreasing in file order
	sum      Summary
	err      error // first write error; later output is counted, not written
	closed   bool
}

func newRecordWriter(w io.Writer, c config) *recordWriter {
	rw := &recordWriter{
		w:        w,
		buf:      make([]byte, 0, c.bufferSize),
		limit:    c.bufferSize,
		interval: c.flushInterval,
		now:      c.now,
	}
	// Armed only while data waits, so an idle job costs no wake-ups.
	rw.timer = time.AfterFunc(time.Hour, rw.timedFlush)
	rw.timer.Stop()
	return rw
}

// writeHeader writes the file header at once, so that a follower opening
// the file right after the logger became ready finds a valid file.
func (rw *recordWriter) writeHeader() error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.buf = append(rw.buf, fileHeader()...)
	rw.flushLocked()
	return rw.err
}

// append writes the entries spans locate in data, all stamped with one
// time, and returns errClosed once the capture was finished.
func (rw *recordWriter) append(st Stream, data []byte, spans []span) error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.closed {
		return errClosed
	}
	now := rw.now().UnixNano()
	if now < rw.lastTime {
		now = rw.lastTime
	}
	rw.lastTime = now
	tot := rw.sum.totals(st)
	for _, sp := range spans {
		var flags byte
		n := uint64(sp.end - sp.start)
		if sp.fragment {
			flags = flagFragment
		} else {
			n++
		}
		rw.sum.Entries++
		tot.Entries++
		tot.Bytes += n
		if len(rw.buf)+RecordHeaderSize+sp.end-sp.start > rw.limit {
			rw.flushLocked()
		}
		rw.buf = appendRecord(rw.buf, byte(st), flags, rw.sum.Entries, now, data[sp.start:sp.end])
	}
	if len(rw.buf) > 0 && !rw.armed {
		rw.armed = true
		rw.timer.Reset(rw.interval)
	}
	return nil
}

func (rw *recordWriter) timedFlush() {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.armed = false
	if !rw.closed {
		rw.flushLocked()
	}
}

// flushLocked writes the buffer out. After a failed write the output is
// dropped but still counted: the streams must keep draining, or the
// container would block on a full pipe.
func (rw *recordWriter) flushLocked() {
	if len(rw.buf) == 0 {
		return
	}
	if rw.err == nil {
		if _, err := rw.w.Write(rw.buf); err != nil {
			rw.err = fmt.Errorf("write output: %w", err)
		}
	}
	rw.buf = rw.buf[:0]
}

// close writes the end record, flushes, and syncs the output when it can
// be synced (an *os.File), so the end record marks durable output.
func (rw *recordWriter) close(complete bool) (Summary, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.closed = true
	rw.timer.Stop()
	rw.sum.Complete = complete
	now := max(rw.now().UnixNano(), rw.lastTime)
	var payload [endPayloadSize]byte
	rw.buf = appendRecord(rw.buf, kindEnd, rw.sum.endFlags(), 0, now, rw.sum.appendPayload(payload[:0]))
	rw.flushLocked()
	if s, ok := rw.w.(interface{ Sync() error }); ok && rw.err == nil {
		if err := s.Sync(); err != nil {
			rw.err = fmt.Errorf("sync output: %w", err)
		}
	}
	return rw.sum, rw.err
}
