package output

import "encoding/binary"

// endPayloadSize is the size of the version 1 end record payload; readers
// accept longer payloads so later versions can append fields.
const endPayloadSize = 5 * 8

// StreamTotals counts what one stream produced.
type StreamTotals struct {
	// Entries is the number of entries (lines and fragments).
	Entries uint64
	// Bytes is the number of stream bytes, newlines included.
	Bytes uint64
}

// Summary is what a capture recorded; the end record carries it.
type Summary struct {
	// Entries is the number of entries in the file, i.e. the last seq.
	// Stdout and Stderr count what the streams produced: more than the file
	// holds when a budget dropped the middle of the output.
	Entries uint64
	Stdout  StreamTotals
	Stderr  StreamTotals
	// Complete is set when both streams were read to their end; it is
	// false when the capture was cut short (drain timeout, read error).
	Complete bool
}

func (s Summary) endFlags() byte {
	if s.Complete {
		return 0
	}
	return flagIncomplete
}

func (s Summary) appendPayload(dst []byte) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, s.Entries)
	dst = binary.LittleEndian.AppendUint64(dst, s.Stdout.Entries)
	dst = binary.LittleEndian.AppendUint64(dst, s.Stdout.Bytes)
	dst = binary.LittleEndian.AppendUint64(dst, s.Stderr.Entries)
	return binary.LittleEndian.AppendUint64(dst, s.Stderr.Bytes)
}

// parseSummary decodes an end record payload; the caller checked its length.
func parseSummary(p []byte, flags byte) Summary {
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(p[i*8:]) }
	return Summary{
		Entries:  u(0),
		Stdout:   StreamTotals{Entries: u(1), Bytes: u(2)},
		Stderr:   StreamTotals{Entries: u(3), Bytes: u(4)},
		Complete: flags&flagIncomplete == 0,
	}
}

// totals returns the counters of a stream.
func (s *Summary) totals(st Stream) *StreamTotals {
	if st == Stderr {
		return &s.Stderr
	}
	return &s.Stdout
}
