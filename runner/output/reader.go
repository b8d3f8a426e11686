package output

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ErrNoData is returned by TryNext when no complete record follows the
// current offset yet: the writer has not written it, or died while writing
// it. The caller decides which, e.g. by knowing the logger has exited.
var ErrNoData = errors.New("output: no complete record available yet")

// ErrCorrupt is wrapped by the errors a Reader returns for a damaged file:
// a wrong header, or an invalid record with valid data after it.
var ErrCorrupt = errors.New("output: corrupt output file")

// Default tuning of a Reader.
const (
	// DefaultPollInterval is how often a waiting Reader looks for new data.
	DefaultPollInterval = 15 * time.Millisecond
	readBlockSize       = 256 << 10
	// minReadRoom is the least room worth a read; with less, a new block
	// is started (blocks are never reused: entries point into them).
	minReadRoom = 4 << 10
)

// ReaderOption tunes a Reader.
type ReaderOption func(*Reader)

// WithPollInterval sets how often a waiting Reader checks for new data.
func WithPollInterval(d time.Duration) ReaderOption {
	return func(r *Reader) {
		if d > 0 {
			r.poll = d
		}
	}
}

// Reader reads an output file in file order, while it is being written or
// after. It is not safe for concurrent use.
type Reader struct {
	f    *os.File
	poll time.Duration

	off       int64  // file offset of buf[r]: the next unread record
	buf       []byte // bytes read from off-r onwards
	r         int
	header    bool   // the file header was checked
	expectSeq uint64 // seq of the next entry; 0 while unknown after OpenAt
	end       *Summary
}

// Open opens an output file for reading from its start.
func Open(path string, opts ...ReaderOption) (*Reader, error) {
	return OpenAt(path, 0, opts...)
}

// OpenAt opens an output file for reading from offset, a value returned by
// Offset: the first entry returned is the one that followed the last entry
// returned before Offset was taken, so resuming loses and repeats nothing.
func OpenAt(path string, offset int64, opts ...ReaderOption) (*Reader, error) {
	if offset != 0 && offset < HeaderSize {
		return nil, fmt.Errorf("open output %s: offset %d inside the file header", path, offset)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open output: %w", err)
	}
	r := &Reader{f: f, poll: DefaultPollInterval, off: max(offset, HeaderSize)}
	if offset == 0 {
		r.expectSeq = 1
	}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Close closes the file.
func (r *Reader) Close() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("close output %s: %w", r.f.Name(), err)
	}
	return nil
}

// Offset returns where the next unread record starts. After io.EOF it is
// the offset of the end record, so a Reader opened there returns io.EOF too.
func (r *Reader) Offset() int64 { return r.off }

// Summary returns the totals of the end record, once Next or TryNext
// returned io.EOF.
func (r *Reader) Summary() (Summary, bool) {
	if r.end == nil {
		return Summary{}, false
	}
	return *r.end, true
}

// Next returns the next entry, waiting for the writer when it reached the
// current end of the file, and io.EOF after the end record. It returns
// ctx's error when ctx is done while waiting.
func (r *Reader) Next(ctx context.Context) (Entry, error) {
	for {
		e, err := r.TryNext()
		if !errors.Is(err, ErrNoData) {
			return e, err
		}
		t := time.NewTimer(r.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return Entry{}, fmt.Errorf("follow output %s: %w", r.f.Name(), context.Cause(ctx))
		case <-t.C:
		}
	}
}

// TryNext is Next without waiting: at the current end of the file, or at
// an incomplete or torn last record, it returns ErrNoData.
func (r *Reader) TryNext() (Entry, error) {
	if r.end != nil {
		return Entry{}, io.EOF
	}
	if !r.header {
		if err := r.checkHeader(); err != nil {
			return Entry{}, err
		}
	}
	for {
		avail := r.buf[r.r:]
		need := RecordHeaderSize
		var h recordHeader
		if len(avail) >= RecordHeaderSize {
			h = parseRecordHeader(avail)
			if !h.plausible() {
				return Entry{}, r.damaged(h, false)
			}
			need += h.length
		}
		if len(avail) < need {
			n, err := r.fill(need)
			if err != nil {
				return Entry{}, err
			}
			if n == 0 {
				return Entry{}, ErrNoData
			}
			continue
		}
		rec := avail[:need:need]
		if recordCRC(rec) != h.crc {
			return Entry{}, r.damaged(h, true)
		}
		return r.accept(h, rec[RecordHeaderSize:])
	}
}

// accept consumes a valid record.
func (r *Reader) accept(h recordHeader, payload []byte) (Entry, error) {
	if h.kind == kindEnd {
		s := parseSummary(payload, h.flags)
		if r.expectSeq != 0 && s.Entries != r.expectSeq-1 {
			return Entry{}, r.corrupt(fmt.Sprintf("end record counts %d entries, file has %d", s.Entries, r.expectSeq-1))
		}
		// The end record is not consumed: Offset stays on it, so that
		// resuming there ends at once instead of waiting forever.
		r.end = &s
		return Entry{}, io.EOF
	}
	if r.expectSeq != 0 && h.seq != r.expectSeq {
		return Entry{}, r.corrupt(fmt.Sprintf("seq %d where %d was due", h.seq, r.expectSeq))
	}
	r.expectSeq = h.seq + 1
	n := RecordHeaderSize + len(payload)
	r.r += n
	r.off += int64(n)
	return Entry{
		Seq:      h.seq,
		Stream:   Stream(h.kind),
		Time:     time.Unix(0, h.unixNano),
		Data:     payload,
		Fragment: h.flags&flagFragment != 0,
	}, nil
}

// fill reads more of the file so that at least need bytes may follow r,
// and returns how many bytes it read. Blocks are never overwritten because
// returned entries point into them; a fresh block takes over instead.
func (r *Reader) fill(need int) (int, error) {
	if cap(r.buf)-r.r < need || cap(r.buf)-len(r.buf) < min(need, minReadRoom) {
		nb := make([]byte, len(r.buf)-r.r, max(readBlockSize, need))
		copy(nb, r.buf[r.r:])
		r.buf, r.r = nb, 0
	}
	at := r.off + int64(len(r.buf)-r.r)
	n, err := r.f.ReadAt(r.buf[len(r.buf):cap(r.buf)], at)
	r.buf = r.buf[:len(r.buf)+n]
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("read output %s at %d: %w", r.f.Name(), at, err)
	}
	return n, nil
}

// checkHeader validates the file header once it is there; a header not
// yet (fully) written is ErrNoData, like a record.
func (r *Reader) checkHeader() error {
	var h [HeaderSize]byte
	n, err := r.f.ReadAt(h[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read output %s header: %w", r.f.Name(), err)
	}
	want := fileHeader()
	if !bytes.Equal(h[:min(n, len(fileMagic))], want[:min(n, len(fileMagic))]) {
		return fmt.Errorf("%w: %s: not an output file", ErrCorrupt, r.f.Name())
	}
	if n < HeaderSize {
		return ErrNoData
	}
	if h[len(fileMagic)] != formatVersion {
		return fmt.Errorf("%w: %s: unsupported format version %d", ErrCorrupt, r.f.Name(), h[len(fileMagic)])
	}
	r.header = true
	return nil
}

// damaged decides what an invalid record at the current offset is. With
// only zero bytes after the extent it claims (or, when its header is
// garbage, after its header) it is a torn tail: a crash cut it, or the
// file system zero-filled it, and nothing valid was ever written past it.
// Otherwise valid data follows and the file is corrupt.
func (r *Reader) damaged(h recordHeader, plausible bool) error {
	extent := r.off + RecordHeaderSize
	if plausible {
		extent += int64(h.length)
	}
	last, err := r.lastNonZero()
	if err != nil {
		return err
	}
	if last >= extent {
		if plausible {
			return r.corrupt("checksum mismatch")
		}
		return r.corrupt("invalid record header")
	}
	// Forget the buffered bytes: if the writer is alive after all, the
	// next attempt reads them again as they are by then.
	r.buf = r.buf[:r.r]
	return ErrNoData
}

// lastNonZero returns the offset of the last non-zero byte of the file,
// or -1. It scans backwards: a torn tail is short.
func (r *Reader) lastNonZero() (int64, error) {
	fi, err := r.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat output: %w", err)
	}
	chunk := make([]byte, 64<<10)
	for end := fi.Size(); end > r.off; {
		start := max(end-int64(len(chunk)), r.off)
		b := chunk[:end-start]
		if _, err := r.f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("read output %s at %d: %w", r.f.Name(), start, err)
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return start + int64(i), nil
			}
		}
		end = start
	}
	return -1, nil
}

func (r *Reader) corrupt(reason string) error {
	return fmt.Errorf("%w: %s at offset %d: %s", ErrCorrupt, r.f.Name(), r.off, reason)
}
