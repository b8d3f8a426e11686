package output

import (
	"fmt"
	"time"
)

// Stream says which output an entry came from. Its values are the record
// kinds of the file format.
type Stream uint8

// The streams. System is reserved for agent messages ("pulling image");
// the logger itself writes only Stdout and Stderr.
const (
	Stdout Stream = 1
	Stderr Stream = 2
	System Stream = 3
)

// String returns the stream's name as the backend contract spells it.
func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	case System:
		return "system"
	}
	return fmt.Sprintf("stream(%d)", uint8(s))
}

// Entry is one line, or one fragment of a line, of captured output.
type Entry struct {
	// Seq numbers entries per run from 1, across all streams, without gaps.
	Seq    uint64
	Stream Stream
	// Time is when the logger read the data; non-decreasing in file order.
	Time time.Time
	// Data is the line without its '\n'. A Reader hands out slices of its
	// read blocks: they are never overwritten, but keeping one keeps its
	// block alive.
	Data []byte
	// Fragment is set when no '\n' follows Data in the stream: a piece of a
	// line longer than the maximum, or a last line without a newline.
	Fragment bool
}

// AppendRaw appends the entry's original stream bytes to dst: Data, then
// '\n' unless the entry is a fragment. Concatenating AppendRaw of a
// stream's entries in order reproduces that stream byte for byte.
func (e Entry) AppendRaw(dst []byte) []byte {
	dst = append(dst, e.Data...)
	if !e.Fragment {
		dst = append(dst, '\n')
	}
	return dst
}

// RawLen is the number of stream bytes the entry stands for.
func (e Entry) RawLen() int {
	if e.Fragment {
		return len(e.Data)
	}
	return len(e.Data) + 1
}
