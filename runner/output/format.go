package output

import (
	"encoding/binary"
	"hash/crc32"
)

// Sizes and limits of the on-disk format.
const (
	// HeaderSize is the size of the file header; the first record starts here.
	HeaderSize = 8
	// RecordHeaderSize is the fixed part of every record, before its payload.
	RecordHeaderSize = 26
	// MaxLine is the longest payload a line entry gets by default; longer
	// lines are split into fragments (contract §2.6).
	MaxLine = 64 << 10
	// MaxPayload bounds the payload a reader accepts, so that a garbage
	// length read from a damaged file is recognised instead of allocated.
	MaxPayload = 16 << 20

	fileMagic     = "CRNOUT"
	formatVersion = 1
)

// Record kinds (byte 24 of a record). The stream kinds equal Stream values.
const (
	kindEnd byte = 'E'
)

// Record flags (byte 25 of a record).
const (
	flagFragment   byte = 1 << 0 // entry: the line continues, or the stream ended without '\n'
	flagIncomplete byte = 1 << 1 // end record: capture stopped before both streams ended
)

// Record header field offsets.
const (
	offCRC   = 0
	offLen   = 4
	offSeq   = 8
	offTime  = 16
	offKind  = 24
	offFlags = 25
)

// castagnoli is hardware-accelerated on amd64 and arm64, which keeps the
// checksum far below the cost of copying the payload.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileHeader returns the 8-byte header that starts every output file.
func fileHeader() []byte {
	h := make([]byte, 0, HeaderSize)
	h = append(h, fileMagic...)
	return append(h, formatVersion, 0)
}

// appendRecord appends one complete record to dst.
func appendRecord(dst []byte, kind, flags byte, seq uint64, unixNano int64, payload []byte) []byte {
	start := len(dst)
	var h [RecordHeaderSize]byte
	binary.LittleEndian.PutUint32(h[offLen:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[offSeq:], seq)
	binary.LittleEndian.PutUint64(h[offTime:], uint64(unixNano))
	h[offKind] = kind
	h[offFlags] = flags
	dst = append(dst, h[:]...)
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start+offCRC:], recordCRC(dst[start:]))
	return dst
}

// recordCRC checksums a whole record but its own CRC field, which comes
// first so that one call covers the rest. The length is covered too: a
// damaged length must not pass as a shorter valid record.
func recordCRC(rec []byte) uint32 {
	return crc32.Update(0, castagnoli, rec[offLen:])
}

// recordHeader is the decoded fixed part of a record.
type recordHeader struct {
	length   int
	crc      uint32
	seq      uint64
	unixNano int64
	kind     byte
	flags    byte
}

func parseRecordHeader(b []byte) recordHeader {
	return recordHeader{
		length:   int(binary.LittleEndian.Uint32(b[offLen:])),
		crc:      binary.LittleEndian.Uint32(b[offCRC:]),
		seq:      binary.LittleEndian.Uint64(b[offSeq:]),
		unixNano: int64(binary.LittleEndian.Uint64(b[offTime:])),
		kind:     b[offKind],
		flags:    b[offFlags],
	}
}

// plausible reports whether a header can be the start of a record, before
// its payload is checked; it rejects what zeroed or random bytes look like.
func (h recordHeader) plausible() bool {
	if h.length > MaxPayload {
		return false
	}
	switch h.kind {
	case byte(Stdout), byte(Stderr), byte(System):
		return h.seq != 0
	case kindEnd:
		return h.seq == 0 && h.length >= endPayloadSize
	}
	return false
}
