package journal

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Group commit: every write is a request holding a function that applies it
// to a bbolt transaction. One goroutine (run) takes the first queued request,
// gathers more (see run for when it stops), applies them all in one
// transaction and commits it (which fsyncs), then answers every request. A write method returns when its answer arrives, so
// its data is durable when it returns.
//
// An operation that fails before it changed anything returns clean(err): its
// caller gets err and the rest of the batch commits. Any other error rolls
// the transaction back, and the batch is retried one request per
// transaction, so only the failing request fails.

type request struct {
	fn       func(t *txn) error
	enqueued time.Time
	state    atomic.Int32
	done     chan error
}

const (
	reqQueued int32 = iota
	reqTaken
	reqCancelled
)

type cleanError struct{ err error }

func (e cleanError) Error() string { return e.err.Error() }
func (e cleanError) Unwrap() error { return e.err }

// clean marks an error returned before the operation changed anything.
func clean(err error) error { return cleanError{err} }

// write runs fn in a group-committed transaction and returns when that is
// durable. If ctx ends before the committer took the request, the write is
// not made and ctx's error is returned; once taken, write waits for the
// outcome whatever ctx does. So nil always means "durable", and a context
// error always means "not written".
func (j *Journal) write(ctx context.Context, fn func(t *txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{fn: fn, enqueued: time.Now(), done: make(chan error, 1)}
	j.mu.RLock()
	if j.closed.Load() {
		j.mu.RUnlock()
		return ErrClosed
	}
	select {
	case j.reqs <- r:
	case <-ctx.Done():
		j.mu.RUnlock()
		return ctx.Err()
	}
	j.mu.RUnlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqCancelled) {
			return ctx.Err()
		}
		return <-r.done
	}
}

// run is the committer goroutine.
//
// A batch is committed when it holds maxBatch requests, when its first
// request has waited maxDelay, or as soon as it holds as many requests as
// writers are expected: those of the previous batch (writers that wait for
// their previous write come back right after it) plus those that queued while
// it was committed. A lone writer is therefore committed at once, and a
// steady set of writers is committed together instead of in alternating
// halves; a writer that does not come back costs one maxDelay.
func (j *Journal) run() {
	defer close(j.done)
	batch := make([]*request, 0, j.cfg.maxBatch)
	expect := 1
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		first, ok := <-j.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], first)
		deadline := first.enqueued.Add(j.cfg.maxDelay)
	fill:
		for len(batch) < j.cfg.maxBatch {
			select {
			case r, ok := <-j.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
				continue
			default:
			}
			wait := time.Until(deadline)
			if wait <= 0 || len(batch) >= expect {
				break
			}
			timer.Reset(wait)
			select {
			case r, ok := <-j.reqs:
				timer.Stop()
				if !ok {
					break fill
				}
				batch = append(batch, r)
			case <-timer.C:
				break fill
			}
		}
		queued := j.commit(batch)
		expect = min(len(batch)+queued, j.cfg.maxBatch)
		clear(batch)
	}
}

// commit applies a batch in one transaction and answers its requests. It
// returns how many requests queued meanwhile (counted before the answers
// let the batch's writers queue again).
func (j *Journal) commit(batch []*request) (queued int) {
	live := make([]*request, 0, len(batch))
	for _, r := range batch {
		if r.state.CompareAndSwap(reqQueued, reqTaken) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return len(j.reqs)
	}
	errs := make([]error, len(live))
	err := j.db.Update(func(tx *bolt.Tx) error {
		t, err := newTxn(j, tx)
		if err != nil {
			return err
		}
		for i, r := range live {
			if err := r.fn(t); err != nil {
				ce, ok := err.(cleanError)
				if !ok {
					return err
				}
				errs[i] = ce.err
			}
		}
		return t.flush()
	})
	queued = len(j.reqs)
	if n := int64(len(live)); n > j.largestBatch.Load() {
		j.largestBatch.Store(n)
	}
	if err == nil {
		j.commits.Add(1)
		for i, r := range live {
			r.done <- errs[i]
		}
		return queued
	}
	if len(live) == 1 {
		live[0].done <- fmt.Errorf("journal: write: %w", err)
		return queued
	}
	for _, r := range live {
		var opErr error
		err := j.db.Update(func(tx *bolt.Tx) error {
			t, err := newTxn(j, tx)
			if err != nil {
				return err
			}
			if err := r.fn(t); err != nil {
				if ce, ok := err.(cleanError); ok {
					opErr = ce.err
					return nil // nothing changed; committing is harmless
				}
				return err
			}
			return t.flush()
		})
		if err != nil {
			opErr = fmt.Errorf("journal: write: %w", err)
		}
		r.done <- opErr
	}
	return queued
}

// counters are the size counters kept per stream and for the whole file.
// Bytes are stored bytes (key and value).
type counters struct {
	Items, Bytes                     int64 // items held, delivered or not
	PendingItems, PendingBytes       int64 // items not delivered yet
	PendingLogItems, PendingLogBytes int64 // of those, the items of kind LogKind
}

// add counts an item in (sign 1) or out (sign -1).
func (c *counters) add(sign, stored int64, pending, log bool) {
	c.Items += sign
	c.Bytes += sign * stored
	if pending {
		c.PendingItems += sign
		c.PendingBytes += sign * stored
		if log {
			c.PendingLogItems += sign
			c.PendingLogBytes += sign * stored
		}
	}
}

// deliver moves an item from pending to delivered.
func (c *counters) deliver(stored int64, log bool) {
	c.PendingItems--
	c.PendingBytes -= stored
	if log {
		c.PendingLogItems--
		c.PendingLogBytes -= stored
	}
}

func (c *counters) fields() []*int64 {
	return []*int64{&c.Items, &c.Bytes, &c.PendingItems, &c.PendingBytes, &c.PendingLogItems, &c.PendingLogBytes}
}

// totals are the counters of the whole file (meta/totals).
type totals struct {
	counters
	Streams     int64
	Records     int64
	RecordBytes int64
}

func (t *totals) fields() []*int64 {
	return append(t.counters.fields(), &t.Streams, &t.Records, &t.RecordBytes)
}

// used is what the budget is compared with.
func (t *totals) used() int64 { return t.Bytes + t.RecordBytes }

func (t totals) encode() []byte { return encodeFields(t.fields()) }

func decodeTotals(b []byte) (totals, error) {
	var t totals
	err := decodeFields(b, t.fields())
	return t, err
}

// streamState is the state of a stream (streams/<stream>).
type streamState struct {
	counters
	LastSeq      int64 // stored as int64; sequence numbers stay far below 2^63
	Acked        int64
	Closed       int64 // 0 or 1
	CreatedAt    int64 // unix nanoseconds
	ClosedAt     int64
	DroppedItems int64 // undelivered log items dropped by Prune, in total
	DroppedBytes int64 // their Size, in total
}

func (s *streamState) fields() []*int64 {
	return append(s.counters.fields(), &s.LastSeq, &s.Acked, &s.Closed, &s.CreatedAt, &s.ClosedAt, &s.DroppedItems, &s.DroppedBytes)
}

func (s *streamState) encode() []byte { return encodeFields(s.fields()) }

func decodeStreamState(b []byte) (streamState, error) {
	var s streamState
	err := decodeFields(b, s.fields())
	return s, err
}

const fieldsFormat = 1

func encodeFields(fs []*int64) []byte {
	b := make([]byte, 1, 1+8*len(fs))
	b[0] = fieldsFormat
	for _, f := range fs {
		b = binary.BigEndian.AppendUint64(b, uint64(*f))
	}
	return b
}

func decodeFields(b []byte, fs []*int64) error {
	if len(b) != 1+8*len(fs) || b[0] != fieldsFormat {
		return fmt.Errorf("journal: damaged counters (%d bytes)", len(b))
	}
	for i, f := range fs {
		*f = int64(binary.BigEndian.Uint64(b[1+8*i:]))
	}
	return nil
}

// txn is the state of one write transaction: the stream states and totals
// it changed, written back once by flush.
type txn struct {
	j        *Journal
	tx       *bolt.Tx
	tot      totals
	totDirty bool
	streams  map[string]*streamTx
}

type streamTx struct {
	id    string
	st    streamState
	dirty bool
	items *bolt.Bucket
}

func newTxn(j *Journal, tx *bolt.Tx) (*txn, error) {
	tot, err := decodeTotals(tx.Bucket(bucketMeta).Get(keyTotals))
	if err != nil {
		return nil, err
	}
	return &txn{j: j, tx: tx, tot: tot}, nil
}

// stream returns a stream's state, or nil if the stream does not exist and
// create is false.
func (t *txn) stream(id string, create bool) (*streamTx, error) {
	if s, ok := t.streams[id]; ok {
		return s, nil
	}
	v := t.tx.Bucket(bucketStreams).Get([]byte(id))
	var s *streamTx
	switch {
	case v != nil:
		st, err := decodeStreamState(v)
		if err != nil {
			return nil, fmt.Errorf("stream %q: %w", id, err)
		}
		s = &streamTx{id: id, st: st}
	case !create:
		return nil, nil
	default:
		if _, err := t.tx.Bucket(bucketItems).CreateBucket([]byte(id)); err != nil {
			return nil, fmt.Errorf("stream %q: %w", id, err)
		}
		s = &streamTx{id: id, st: streamState{CreatedAt: t.j.cfg.now().UnixNano()}, dirty: true}
		t.tot.Streams++
		t.totDirty = true
	}
	if t.streams == nil {
		t.streams = make(map[string]*streamTx)
	}
	t.streams[id] = s
	return s, nil
}

// bucket returns the stream's items bucket.
func (s *streamTx) bucket(t *txn) (*bolt.Bucket, error) {
	if s.items == nil {
		s.items = t.tx.Bucket(bucketItems).Bucket([]byte(s.id))
		if s.items == nil {
			return nil, fmt.Errorf("journal: stream %q has no items bucket", s.id)
		}
		// Keys are appended in order: fuller pages, fewer of them.
		s.items.FillPercent = 0.9
	}
	return s.items, nil
}

// account counts an item of s in or out of the stream and the totals.
func (t *txn) account(s *streamTx, sign, stored int64, pending, log bool) {
	s.st.add(sign, stored, pending, log)
	t.tot.add(sign, stored, pending, log)
	s.dirty, t.totDirty = true, true
}

// deliver counts an item of s as delivered.
func (t *txn) deliver(s *streamTx, stored int64, log bool) {
	s.st.deliver(stored, log)
	t.tot.deliver(stored, log)
	s.dirty, t.totDirty = true, true
}

// removeStream deletes a stream with its items.
func (t *txn) removeStream(s *streamTx) error {
	tf, sf := t.tot.counters.fields(), s.st.counters.fields()
	for i := range tf {
		*tf[i] -= *sf[i]
	}
	t.tot.Streams--
	t.totDirty = true
	if err := t.tx.Bucket(bucketItems).DeleteBucket([]byte(s.id)); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketStreams).Delete([]byte(s.id)); err != nil {
		return err
	}
	delete(t.streams, s.id)
	return nil
}

// flush writes back what the transaction changed.
func (t *txn) flush() error {
	b := t.tx.Bucket(bucketStreams)
	for id, s := range t.streams {
		if s.dirty {
			if err := b.Put([]byte(id), s.st.encode()); err != nil {
				return err
			}
		}
	}
	if t.totDirty {
		return t.tx.Bucket(bucketMeta).Put(keyTotals, t.tot.encode())
	}
	return nil
}
