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

	// The budget: once written reaches budget less the tail's room, the
	// entries go to tail, whose oldest are dropped (and counted) as new
	// ones come; close writes a notice and the tail.
	budget   int64
	tailKeep int64 // bytes of records
	written  int64
	tail     tailRing
}

// tailEntry is an entry held back for the end of an output over budget.
type tailEntry struct {
	stream   Stream
	flags    byte
	unixNano int64
	payload  []byte
}

// tailRing keeps the last entries of an output, up to keep bytes of
// records as the file will hold them, and counts those it let go.
type tailRing struct {
	entries      []tailEntry
	head         int // index of the oldest entry kept
	bytes        int64
	droppedLines uint64
	droppedBytes uint64
}

func (t *tailRing) active() bool { return t.entries != nil }

func (t *tailRing) push(e tailEntry, keep int64) {
	t.entries = append(t.entries, e)
	t.bytes += int64(RecordHeaderSize + len(e.payload))
	for t.bytes > keep && t.head < len(t.entries)-1 {
		old := &t.entries[t.head]
		t.bytes -= int64(RecordHeaderSize + len(old.payload))
		t.droppedLines++
		t.droppedBytes += uint64(len(old.payload))
		if old.flags&flagFragment == 0 {
			t.droppedBytes++ // its newline
		}
		*old = tailEntry{}
		t.head++
	}
	// Compact once the dropped front is the larger part, so the slice does
	// not grow with the output.
	if t.head > len(t.entries)/2 {
		t.entries = append(t.entries[:0], t.entries[t.head:]...)
		t.head = 0
	}
}

func newRecordWriter(w io.Writer, c config) *recordWriter {
	rw := &recordWriter{
		w:        w,
		buf:      make([]byte, 0, c.bufferSize),
		limit:    c.bufferSize,
		interval: c.flushInterval,
		now:      c.now,
		budget:   c.budget,
		tailKeep: TailKeep(c.budget),
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
		tot.Entries++
		tot.Bytes += n
		size := RecordHeaderSize + sp.end - sp.start
		if rw.budget > 0 && (rw.tail.active() || rw.written+int64(len(rw.buf)+size) > rw.budget-rw.tailKeep) {
			if !rw.tail.active() {
				rw.tail.entries = []tailEntry{}
			}
			rw.tail.push(tailEntry{stream: st, flags: flags, unixNano: now, payload: append([]byte(nil), data[sp.start:sp.end]...)}, rw.tailKeep)
			continue
		}
		rw.sum.Entries++
		if len(rw.buf)+size > rw.limit {
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
	rw.written += int64(len(rw.buf))
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
	rw.writeTailLocked(now)
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

// writeTailLocked ends an output over its budget: a system entry saying
// what was dropped, then the tail, numbered on from the head.
func (rw *recordWriter) writeTailLocked(now int64) {
	if !rw.tail.active() {
		return
	}
	kept := rw.tail.entries[rw.tail.head:]
	if rw.tail.droppedLines > 0 {
		notice := fmt.Sprintf("[... %d log lines (%d bytes) dropped: the job's output passed its capture budget of %d bytes; its head and its last %d bytes are kept ...]",
			rw.tail.droppedLines, rw.tail.droppedBytes, rw.budget, rw.tailKeep)
		at := now
		if len(kept) > 0 {
			at = kept[0].unixNano
		}
		rw.sum.Entries++
		rw.buf = appendRecord(rw.buf, byte(System), 0, rw.sum.Entries, at, []byte(notice))
	}
	for _, e := range kept {
		if len(rw.buf)+RecordHeaderSize+len(e.payload) > rw.limit {
			rw.flushLocked()
		}
		rw.sum.Entries++
		rw.buf = appendRecord(rw.buf, byte(e.stream), e.flags, rw.sum.Entries, e.unixNano, e.payload)
	}
	rw.tail = tailRing{}
}
