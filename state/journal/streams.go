package journal

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Item kinds the journal itself knows.
const (
	// LogKind is the kind of log items, the only ones Prune may drop.
	LogKind = "logs"
	// MarkerKind is the kind of the item that stands for log items Prune
	// dropped; its payload is a DropMarker. Callers cannot append it.
	MarkerKind = "logs-dropped"
)

const (
	maxNameLen = 1024 // stream ids, record ids
	maxKindLen = 255
	itemFormat = 1
	keyLen     = 8
)

var logKindBytes = []byte(LogKind)

// Item is what a caller appends to a stream.
type Item struct {
	Kind string // "status", "logs", "output", ...; not MarkerKind
	// Payload is valid JSON, or empty. The journal stores it as given:
	// checking every log batch cost a sixth of the agent's CPU under heavy
	// output, and payloads come from json.Marshal.
	Payload json.RawMessage
	Size    int // the content's size as the caller counts it (e.g. log bytes); 0 means len(Payload)
}

// StoredItem is an item as the journal holds it.
type StoredItem struct {
	Seq uint64
	// LastSeq is the last sequence number the item stands for: Seq, except
	// for a drop marker, which stands for Seq..LastSeq. Acknowledge an item
	// with Ack(stream, LastSeq).
	LastSeq    uint64
	Kind       string
	Payload    json.RawMessage
	Size       int
	AppendedAt time.Time
}

// DropMarker is the payload of a MarkerKind item: Prune dropped the
// undelivered log items FirstSeq..LastSeq (Items of them, of Bytes bytes as
// their Size counted them).
type DropMarker struct {
	FirstSeq uint64 `json:"firstSeq"`
	LastSeq  uint64 `json:"lastSeq"`
	Items    int64  `json:"items"`
	Bytes    int64  `json:"bytes"`
}

// StreamInfo describes a stream.
type StreamInfo struct {
	Stream  string
	LastSeq uint64 // last sequence number appended (0: none)
	Acked   uint64 // delivery cursor: items up to it are delivered

	Items           int64 // items held, delivered or not
	Bytes           int64 // their stored bytes
	Pending         int64 // items not delivered yet
	PendingBytes    int64
	PendingLogItems int64 // pending items of kind LogKind
	PendingLogBytes int64
	OldestPending   time.Time // when the first pending item was appended; zero if none

	Closed    bool
	ClosedAt  time.Time
	CreatedAt time.Time

	DroppedItems int64 // log items Prune dropped, in total
	DroppedBytes int64 // their Size, in total
}

func checkName(what, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if len(s) > max {
		return fmt.Errorf("%w: %s of %d bytes", ErrInvalid, what, len(s))
	}
	return nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, keyLen), seq) }

func keySeq(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// encodeItem encodes an item's value (see doc.go).
func encodeItem(at int64, span uint64, kind string, size int, payload []byte) []byte {
	b := make([]byte, 0, 1+8+3*binary.MaxVarintLen64+len(kind)+len(payload))
	b = append(b, itemFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.AppendUvarint(b, span)
	b = binary.AppendUvarint(b, uint64(size))
	b = binary.AppendUvarint(b, uint64(len(kind)))
	b = append(b, kind...)
	return append(b, payload...)
}

// itemHeader is a decoded item value; kind and payload point into it.
type itemHeader struct {
	at      int64
	span    uint64
	size    int64
	kind    []byte
	payload []byte
}

func (h *itemHeader) isLog() bool    { return bytes.Equal(h.kind, logKindBytes) }
func (h *itemHeader) isMarker() bool { return string(h.kind) == MarkerKind }

func decodeItem(v []byte) (itemHeader, error) {
	var h itemHeader
	if len(v) < 9 || v[0] != itemFormat {
		return h, fmt.Errorf("journal: damaged item (%d bytes)", len(v))
	}
	h.at = int64(binary.BigEndian.Uint64(v[1:]))
	rest := v[9:]
	var vals [3]uint64
	for i := range vals {
		x, n := binary.Uvarint(rest)
		if n <= 0 {
			return h, fmt.Errorf("journal: damaged item header")
		}
		vals[i], rest = x, rest[n:]
	}
	if vals[2] > uint64(len(rest)) {
		return h, fmt.Errorf("journal: damaged item kind")
	}
	h.span, h.size = vals[0], int64(vals[1])
	h.kind, h.payload = rest[:vals[2]], rest[vals[2]:]
	return h, nil
}

// storedItem copies an item out of a transaction.
func storedItem(k, v []byte) (StoredItem, error) {
	h, err := decodeItem(v)
	if err != nil {
		return StoredItem{}, err
	}
	seq := keySeq(k)
	it := StoredItem{
		Seq:        seq,
		LastSeq:    seq + h.span,
		Kind:       string(h.kind),
		Size:       int(h.size),
		AppendedAt: time.Unix(0, h.at),
	}
	if len(h.payload) > 0 {
		it.Payload = bytes.Clone(h.payload)
	}
	return it, nil
}

// Append appends items to a stream (creating it) and returns the sequence
// number of the first; the others follow it. It returns when they are
// durable. A closed stream refuses with ErrStreamClosed. (Prune removes a
// closed stream once it is delivered; appending to that id again would start
// a new stream at 1, so every run uses a stream id of its own.)
//
// The items of one call are committed together; a writer with several at hand
// (a log reader with a backlog) passes them in one call for throughput.
func (j *Journal) Append(ctx context.Context, stream string, items ...Item) (firstSeq uint64, err error) {
	apply, err := prepareAppend(stream, items, &firstSeq)
	if err != nil {
		return 0, err
	}
	if err := j.write(ctx, apply); err != nil {
		return 0, err
	}
	return firstSeq, nil
}

// prepareAppend checks and encodes items outside the transaction; the
// returned function appends them and sets *firstSeq.
func prepareAppend(stream string, items []Item, firstSeq *uint64) (func(t *txn) error, error) {
	if err := checkName("stream", stream, maxNameLen); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: no items", ErrInvalid)
	}
	vals := make([][]byte, len(items))
	logs := make([]bool, len(items))
	for i, it := range items {
		if err := checkName("item kind", it.Kind, maxKindLen); err != nil {
			return nil, err
		}
		if it.Kind == MarkerKind {
			return nil, fmt.Errorf("%w: kind %q is reserved", ErrInvalid, MarkerKind)
		}
		if it.Size < 0 {
			return nil, fmt.Errorf("%w: negative size", ErrInvalid)
		}
		size := it.Size
		if size == 0 {
			size = len(it.Payload)
		}
		logs[i] = it.Kind == LogKind
		vals[i] = encodeItem(0, 0, it.Kind, size, it.Payload)
	}
	return func(t *txn) error {
		s, err := t.stream(stream, true)
		if err != nil {
			return err
		}
		if s.st.Closed != 0 {
			return clean(fmt.Errorf("%w: %s", ErrStreamClosed, stream))
		}
		b, err := s.bucket(t)
		if err != nil {
			return err
		}
		// The append time is the commit's: items of one transaction share it.
		at := t.j.cfg.now().UnixNano()
		seq := uint64(s.st.LastSeq)
		*firstSeq = seq + 1
		for i, v := range vals {
			seq++
			binary.BigEndian.PutUint64(v[1:9], uint64(at))
			if err := b.Put(seqKey(seq), v); err != nil {
				return err
			}
			t.account(s, 1, int64(keyLen+len(v)), true, logs[i])
		}
		s.st.LastSeq = int64(seq)
		return nil
	}, nil
}

// Page bounds one read of a stream: at most Items items and, once one item
// is read, no more than Bytes bytes of payload. Zero leaves that side
// unbounded. Items can be megabytes each (log batches under heavy output),
// so a reader that must keep its memory bounded sets Bytes.
type Page struct {
	Items int
	Bytes int
}

// Pending returns up to limit (all if limit <= 0) undelivered items of a
// stream with Seq > after, in order. An unknown stream has none.
func (j *Journal) Pending(ctx context.Context, stream string, after uint64, limit int) ([]StoredItem, error) {
	return j.read(ctx, stream, after, Page{Items: limit}, true)
}

// PendingPage is Pending bounded by a Page.
func (j *Journal) PendingPage(ctx context.Context, stream string, after uint64, p Page) ([]StoredItem, error) {
	return j.read(ctx, stream, after, p, true)
}

// Read returns up to limit (all if limit <= 0) items the journal holds for a
// stream with Seq > after, delivered or not, in order (local inspection).
func (j *Journal) Read(ctx context.Context, stream string, after uint64, limit int) ([]StoredItem, error) {
	return j.read(ctx, stream, after, Page{Items: limit}, false)
}

// ReadPage is Read bounded by a Page.
func (j *Journal) ReadPage(ctx context.Context, stream string, after uint64, p Page) ([]StoredItem, error) {
	return j.read(ctx, stream, after, p, false)
}

func (p Page) full(items, bytes int) bool {
	return (p.Items > 0 && items >= p.Items) || (p.Bytes > 0 && items > 0 && bytes >= p.Bytes)
}

func (j *Journal) read(ctx context.Context, stream string, after uint64, page Page, pendingOnly bool) ([]StoredItem, error) {
	if err := checkName("stream", stream, maxNameLen); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []StoredItem
	err := j.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStreams).Get([]byte(stream))
		if v == nil {
			return nil
		}
		st, err := decodeStreamState(v)
		if err != nil {
			return err
		}
		if pendingOnly {
			after = max(after, uint64(st.Acked))
		}
		b := tx.Bucket(bucketItems).Bucket([]byte(stream))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		size := 0
		for k, v := c.Seek(seqKey(after + 1)); k != nil && !page.full(len(out), size); k, v = c.Next() {
			it, err := storedItem(k, v)
			if err != nil {
				return fmt.Errorf("stream %q seq %d: %w", stream, keySeq(k), err)
			}
			out = append(out, it)
			size += len(v)
			if len(out)%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("journal: read %s: %w", stream, err)
	}
	return out, nil
}

// Ack moves a stream's delivery cursor to uptoSeq: the items up to it are
// delivered. The cursor never moves back (an older Ack is a no-op) and
// cannot pass the last appended item. It returns when the cursor is durable.
//
// Acknowledge an item with its LastSeq. If uptoSeq falls inside the range of
// a drop marker (the syncer read and delivered items that Prune dropped
// meanwhile), the marker is split: the part up to uptoSeq is delivered, a
// marker for the rest stays pending.
func (j *Journal) Ack(ctx context.Context, stream string, uptoSeq uint64) error {
	if err := checkName("stream", stream, maxNameLen); err != nil {
		return err
	}
	return j.write(ctx, func(t *txn) error {
		s, err := t.stream(stream, false)
		if err != nil {
			return err
		}
		if s == nil {
			return clean(fmt.Errorf("%w: %s", ErrUnknownStream, stream))
		}
		if uptoSeq > uint64(s.st.LastSeq) {
			return clean(fmt.Errorf("%w: ack of %s up to %d, beyond its last seq %d", ErrInvalid, stream, uptoSeq, s.st.LastSeq))
		}
		if uptoSeq <= uint64(s.st.Acked) {
			return nil
		}
		b, err := s.bucket(t)
		if err != nil {
			return err
		}
		var straddle []byte // a marker whose range goes past uptoSeq
		c := b.Cursor()
		for k, v := c.Seek(seqKey(uint64(s.st.Acked) + 1)); k != nil && keySeq(k) <= uptoSeq; k, v = c.Next() {
			h, err := decodeItem(v)
			if err != nil {
				return err
			}
			if keySeq(k)+h.span > uptoSeq {
				straddle = bytes.Clone(k)
				break
			}
			t.deliver(s, int64(len(k)+len(v)), h.isLog())
		}
		if straddle != nil {
			if err := t.splitMarker(s, b, straddle, uptoSeq); err != nil {
				return err
			}
		}
		s.st.Acked = int64(uptoSeq)
		s.dirty = true
		return nil
	})
}

// splitMarker splits the pending drop marker at key k in two: k..upto,
// delivered, and upto+1.., pending. This happens when a syncer read the
// items before Prune dropped them, delivered some and acknowledges those:
// the marker for the rest is still delivered. The marker's byte count is
// shared in proportion to the items.
func (t *txn) splitMarker(s *streamTx, b *bolt.Bucket, k []byte, upto uint64) error {
	v := b.Get(k)
	h, err := decodeItem(v)
	if err != nil {
		return err
	}
	var m DropMarker
	if !h.isMarker() {
		return fmt.Errorf("journal: item %d of %s spans %d items but is a %s", keySeq(k), s.id, h.span+1, h.kind)
	}
	if err := json.Unmarshal(h.payload, &m); err != nil {
		return fmt.Errorf("journal: damaged drop marker at %d: %w", keySeq(k), err)
	}
	first := DropMarker{FirstSeq: m.FirstSeq, LastSeq: upto, Items: int64(upto - m.FirstSeq + 1)}
	first.Bytes = m.Bytes * first.Items / max(m.Items, 1)
	rest := DropMarker{FirstSeq: upto + 1, LastSeq: m.LastSeq, Items: m.Items - first.Items, Bytes: m.Bytes - first.Bytes}
	t.account(s, -1, int64(len(k)+len(v)), true, false)
	for _, part := range []struct {
		m       DropMarker
		pending bool
	}{{first, false}, {rest, true}} {
		payload, err := json.Marshal(part.m)
		if err != nil {
			return err
		}
		pv := encodeItem(h.at, part.m.LastSeq-part.m.FirstSeq, MarkerKind, len(payload), payload)
		pk := seqKey(part.m.FirstSeq)
		if err := b.Put(pk, pv); err != nil {
			return err
		}
		t.account(s, 1, int64(len(pk)+len(pv)), part.pending, false)
	}
	return nil
}

// CloseStream records that no more items will be appended to a stream
// (after its completing item). Closing a closed stream is a no-op.
func (j *Journal) CloseStream(ctx context.Context, stream string) error {
	apply, err := prepareClose(stream)
	if err != nil {
		return err
	}
	return j.write(ctx, apply)
}

func prepareClose(stream string) (func(t *txn) error, error) {
	if err := checkName("stream", stream, maxNameLen); err != nil {
		return nil, err
	}
	return func(t *txn) error {
		s, err := t.stream(stream, false)
		if err != nil {
			return err
		}
		if s == nil {
			return clean(fmt.Errorf("%w: %s", ErrUnknownStream, stream))
		}
		if s.st.Closed == 0 {
			s.st.Closed, s.st.ClosedAt, s.dirty = 1, t.j.cfg.now().UnixNano(), true
		}
		return nil
	}, nil
}

// Stream describes one stream; false if it does not exist (never appended
// to, or pruned after it was closed and delivered).
func (j *Journal) Stream(ctx context.Context, stream string) (StreamInfo, bool, error) {
	if err := checkName("stream", stream, maxNameLen); err != nil {
		return StreamInfo{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return StreamInfo{}, false, err
	}
	var (
		info  StreamInfo
		found bool
	)
	err := j.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStreams).Get([]byte(stream))
		if v == nil {
			return nil
		}
		var err error
		info, err = streamInfo(tx, []byte(stream), v)
		found = err == nil
		return err
	})
	if err != nil {
		return StreamInfo{}, false, fmt.Errorf("journal: stream %s: %w", stream, err)
	}
	return info, found, nil
}

// Streams lists the streams: first those with pending items, the one whose
// oldest pending item is oldest first, then the others by id.
func (j *Journal) Streams(ctx context.Context) ([]StreamInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []StreamInfo
	err := j.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStreams).ForEach(func(k, v []byte) error {
			info, err := streamInfo(tx, k, v)
			if err != nil {
				return err
			}
			out = append(out, info)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("journal: streams: %w", err)
	}
	sortStreams(out)
	return out, nil
}

func sortStreams(s []StreamInfo) {
	sort.SliceStable(s, func(a, b int) bool {
		x, y := &s[a], &s[b]
		if (x.Pending > 0) != (y.Pending > 0) {
			return x.Pending > 0
		}
		if x.Pending > 0 && !x.OldestPending.Equal(y.OldestPending) {
			return x.OldestPending.Before(y.OldestPending)
		}
		return x.Stream < y.Stream
	})
}

func streamInfo(tx *bolt.Tx, id, v []byte) (StreamInfo, error) {
	st, err := decodeStreamState(v)
	if err != nil {
		return StreamInfo{}, fmt.Errorf("stream %q: %w", id, err)
	}
	info := StreamInfo{
		Stream:          string(id),
		LastSeq:         uint64(st.LastSeq),
		Acked:           uint64(st.Acked),
		Items:           st.Items,
		Bytes:           st.Bytes,
		Pending:         st.PendingItems,
		PendingBytes:    st.PendingBytes,
		PendingLogItems: st.PendingLogItems,
		PendingLogBytes: st.PendingLogBytes,
		Closed:          st.Closed != 0,
		CreatedAt:       time.Unix(0, st.CreatedAt),
		DroppedItems:    st.DroppedItems,
		DroppedBytes:    st.DroppedBytes,
	}
	if info.Closed {
		info.ClosedAt = time.Unix(0, st.ClosedAt)
	}
	if st.PendingItems > 0 {
		if b := tx.Bucket(bucketItems).Bucket(id); b != nil {
			if k, v := b.Cursor().Seek(seqKey(uint64(st.Acked) + 1)); k != nil {
				h, err := decodeItem(v)
				if err != nil {
					return StreamInfo{}, fmt.Errorf("stream %q: %w", id, err)
				}
				info.OldestPending = time.Unix(0, h.at)
			}
		}
	}
	return info, nil
}
