// Package output captures a container's stdout and stderr into a framed
// file, and reads that file back while it grows.
//
// The capture runs in a process of its own (see RunShimLogger), started by
// containerd's runc shim through a "binary://" logging URI, so that a job's
// output neither depends on the agent being alive nor blocks the container
// when the agent is not reading. The agent follows the file with a Reader
// and copies the entries into its journal; Offset and OpenAt let it resume
// after a restart without a gap or a duplicate.
//
// # File format (version 1)
//
// All integers are little-endian. The file starts with an 8-byte header:
// the magic "CRNOUT", a version byte (1) and a reserved zero byte. Then
// follows a sequence of records, each a 26-byte record header and a
// payload:
//
//	offset size field
//	0      4    CRC-32C of bytes 4..end of payload
//	4      4    payload length
//	8      8    seq (1, 2, 3, ... across all streams; 0 in the end record)
//	16     8    time, unix nanoseconds (when the logger read the data)
//	24     1    kind: 1 stdout, 2 stderr, 3 system, 'E' end record
//	25     1    flags: bit 0 "fragment" (no trailing newline);
//	            in the end record, bit 1 "incomplete"
//	26     n    payload: the line without its '\n'
//
// The end record is written once, after both streams reached end of file;
// its payload holds the totals (see Summary). A record that is cut short
// at the end of the file, or fails its checksum while nothing valid
// follows it, is a record not yet written (or torn by a crash), never
// corruption; an invalid record followed by more data is corruption.
package output
