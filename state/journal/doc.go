// Package journal is the agent's write-ahead record of everything it must not
// lose: job and run records, and per job an ordered outbox stream of items
// (status transitions, log batches, output, condition, variable writes, the
// completing call) that a syncer delivers to the backend in order.
//
// Every write method returns only when its data is durable: committed to the
// bbolt file and fsynced. Writes from many goroutines are grouped into one
// bbolt transaction (group commit, see WithGroupCommit), so one fsync covers
// many writers.
//
// # Data layout (schema 1)
//
//	meta/schema                 uint64 big endian: schema version of the file
//	meta/totals                 fixed binary counters for the whole file (see totals)
//	records/<kind>/<id>         JSON value of a record (PutRecord)
//	streams/<stream>            fixed binary state of a stream (see streamState):
//	                            last seq, delivery cursor, closed flag and time,
//	                            and the stream's size counters
//	items/<stream>/<seq>        one item; seq is 8 bytes big endian, so keys sort
//	                            in sequence order. Value:
//	                              byte    format (1)
//	                              8 bytes appended at (unix nanoseconds, big endian)
//	                              uvarint span: LastSeq-Seq (0 except for drop markers)
//	                              uvarint Size
//	                              uvarint len(Kind), Kind
//	                              Payload (the rest)
//
// The size counters (items, stored bytes, pending items and bytes, pending log
// items and bytes) are kept per stream in streams/<stream> and for the whole
// file in meta/totals, updated in the same transaction as the change they
// count. The stored size of an item is len(key)+len(value); of a record
// len(id)+len(value). Usage and the disk budget are measured in these bytes;
// the file itself is larger (pages, free pages that bbolt reuses).
//
// # Sequence numbers and gaps
//
// A stream's items get consecutive sequence numbers starting at 1. Sequence
// numbers are never reused or renumbered. Two things remove items:
//
//   - Delivered items (Seq <= the delivery cursor) may be deleted by Prune.
//     The items a stream holds then start above the cursor's old values; all
//     undelivered items are still held.
//   - When undelivered log data alone exceeds the budget, Prune replaces a run
//     of consecutive undelivered "logs" items Seq a..b by one item of kind
//     MarkerKind stored under key a, whose StoredItem.LastSeq is b and whose
//     payload is a DropMarker {"firstSeq":a,"lastSeq":b,"items":n,"bytes":m}.
//     Keys a+1..b no longer exist. A later prune that drops the log items
//     right after an existing marker extends that marker instead of adding a
//     new one.
//
// So the held items of a stream, in key order, always tile the range from
// the first held seq to the stream's last seq without overlap: each item
// covers Seq..LastSeq and the next one starts at LastSeq+1, and no item
// straddles the delivery cursor. A syncer reads Pending in order, delivers
// each item (a marker as a "lines dropped" notice), and acknowledges with
// Ack(stream, item.LastSeq). If it acknowledges into a marker's range
// (it read the items before Prune dropped them), Ack splits the marker:
// the part up to the cursor is delivered, a marker for the rest stays
// pending.
package journal
