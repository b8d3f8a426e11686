package output

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// maxEmptyReads is how many (0, nil) reads in a row a stream may return
// before it counts as broken, like bufio does.
const maxEmptyReads = 100

// splitter reads one stream, cuts it into entries and hands them to the
// record writer. A line is never cut at a read boundary: the unfinished
// tail of a read stays buffered until its '\n' (or end of file) arrives.
type splitter struct {
	stream  Stream
	r       io.Reader
	maxLine int
	read    int // least room offered to a read
	buf     []byte
	spans   []span
}

func newSplitter(st Stream, r io.Reader, c config) *splitter {
	return &splitter{
		stream:  st,
		r:       r,
		maxLine: c.maxLine,
		read:    c.readSize,
		// The unfinished line never exceeds maxLine, so this always leaves
		// room for a full read.
		buf: make([]byte, c.maxLine+c.readSize),
	}
}

// run reads the stream to its end. It returns nil at end of file, and
// errClosed when the capture was finished without it.
func (s *splitter) run(rw *recordWriter) error {
	// buf[pos:end] is not yet written; buf[pos:pos+clean] holds no '\n'.
	pos, end, clean, empty := 0, 0, 0, 0
	for {
		if len(s.buf)-end < s.read {
			end = copy(s.buf, s.buf[pos:end])
			pos = 0
		}
		n, rerr := s.r.Read(s.buf[end:])
		if n > 0 {
			empty = 0
			end += n
			s.spans = s.spans[:0]
			pos, clean = s.split(pos, end, clean)
			if len(s.spans) > 0 {
				if err := rw.append(s.stream, s.buf, s.spans); err != nil {
					return err
				}
			}
		}
		if rerr != nil {
			// Whatever is left is a last line without '\n' (or all that
			// could be read before an interruption): keep it, flagged.
			if end > pos {
				s.spans = append(s.spans[:0], span{start: pos, end: end, fragment: true})
				if err := rw.append(s.stream, s.buf, s.spans); err != nil {
					return err
				}
			}
			if errors.Is(rerr, io.EOF) {
				return nil
			}
			return fmt.Errorf("read %s: %w", s.stream, rerr)
		}
		if n == 0 {
			if empty++; empty >= maxEmptyReads {
				return fmt.Errorf("read %s: %w", s.stream, io.ErrNoProgress)
			}
		}
	}
}

// split appends to s.spans the entries complete in buf[pos:end] and
// returns the new pos and clean (see run). A line longer than maxLine
// yields maxLine-sized fragments; one of exactly maxLine bytes does not,
// which is why a fragment is cut only once maxLine+1 bytes without '\n'
// are known.
func (s *splitter) split(pos, end, clean int) (int, int) {
	for {
		limit := min(end, pos+s.maxLine+1)
		if from := pos + clean; from < limit {
			if i := bytes.IndexByte(s.buf[from:limit], '\n'); i >= 0 {
				s.spans = append(s.spans, span{start: pos, end: from + i})
				pos, clean = from+i+1, 0
				continue
			}
			clean = limit - pos
		}
		if end-pos <= s.maxLine {
			return pos, clean
		}
		s.spans = append(s.spans, span{start: pos, end: pos + s.maxLine, fragment: true})
		pos += s.maxLine
		clean -= s.maxLine
	}
}
