package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// Usage is the journal's use of its budget. Bytes are stored bytes (see
// the package documentation).
type Usage struct {
	Budget          int64
	Used            int64 // StreamBytes + RecordBytes: what the budget limits
	StreamBytes     int64
	RecordBytes     int64
	Streams         int64
	Items           int64
	Records         int64
	PendingItems    int64
	PendingBytes    int64
	PendingLogItems int64
	PendingLogBytes int64
	FileSize        int64 // size of the bbolt file
}

// Usage returns the journal's counters. They are kept as data changes, not
// computed by scanning.
func (j *Journal) Usage(ctx context.Context) (Usage, error) {
	if err := ctx.Err(); err != nil {
		return Usage{}, err
	}
	var u Usage
	err := j.view(func(tx *bolt.Tx) error {
		t, err := decodeTotals(tx.Bucket(bucketMeta).Get(keyTotals))
		if err != nil {
			return err
		}
		u = Usage{
			Budget:          j.cfg.budget,
			Used:            t.used(),
			StreamBytes:     t.Bytes,
			RecordBytes:     t.RecordBytes,
			Streams:         t.Streams,
			Items:           t.Items,
			Records:         t.Records,
			PendingItems:    t.PendingItems,
			PendingBytes:    t.PendingBytes,
			PendingLogItems: t.PendingLogItems,
			PendingLogBytes: t.PendingLogBytes,
			FileSize:        tx.Size(),
		}
		return nil
	})
	if err != nil {
		return Usage{}, fmt.Errorf("journal: usage: %w", err)
	}
	return u, nil
}

// PruneReport says what Prune removed. Bytes are stored bytes.
type PruneReport struct {
	Budget         int64
	UsedBefore     int64
	UsedAfter      int64
	DeliveredItems int64 // delivered items deleted
	DeliveredBytes int64
	StreamsRemoved int   // closed, fully delivered streams deleted
	DroppedItems   int64 // undelivered log items dropped
	DroppedBytes   int64
	Markers        int  // drop markers written (new or extended)
	OverBudget     bool // still over budget: what is left may not be dropped
}

// pruneChunk bounds the items one pruning transaction deletes, so that other
// writes are not held up for long.
const pruneChunk = 4096

// maxDropRounds bounds the drop transactions of one Prune.
const maxDropRounds = 1000

// Prune brings the journal under its budget, if it is over:
//
//  1. It deletes delivered items of closed streams, the stream closed first
//     first, then delivered items of open streams, the stream created first
//     first, until the journal is under budget. A closed stream all of whose
//     items were delivered and deleted is removed.
//  2. If then undelivered log items alone exceed the budget, it drops
//     undelivered log items from the middle of the streams with the most
//     undelivered log data (the largest first, evening them out) until the
//     journal is under budget. It never drops the first or last
//     WithKeepLogs items of kind LogKind of a stream's undelivered items, and
//     never an item of another kind. In a stream it drops the oldest log
//     items after the kept head first, so the gap grows from the head
//     towards the tail and the most recent output is kept longest. Each run
//     of consecutive dropped items (items of other kinds separate runs) is
//     replaced by one MarkerKind item, and a run right after an existing
//     marker extends it (see DropMarker and the package documentation).
//
// Each step is a durable transaction of its own; writes go on meanwhile.
func (j *Journal) Prune(ctx context.Context) (PruneReport, error) {
	j.pruneMu.Lock()
	defer j.pruneMu.Unlock()
	budget := j.cfg.budget
	rep := PruneReport{Budget: budget}
	u, err := j.Usage(ctx)
	if err != nil {
		return rep, err
	}
	rep.UsedBefore, rep.UsedAfter = u.Used, u.Used
	if u.Used <= budget {
		return rep, nil
	}

	// 1. Delivered data.
	infos, err := j.Streams(ctx)
	if err != nil {
		return rep, err
	}
	var closed, open []StreamInfo
	for _, in := range infos {
		switch {
		case in.Closed && (in.Items > in.Pending || in.Acked == in.LastSeq):
			closed = append(closed, in)
		case !in.Closed && in.Items > in.Pending:
			open = append(open, in)
		}
	}
	sort.SliceStable(closed, func(a, b int) bool { return closed[a].ClosedAt.Before(closed[b].ClosedAt) })
	sort.SliceStable(open, func(a, b int) bool { return open[a].CreatedAt.Before(open[b].CreatedAt) })
	under := false
	for _, in := range append(closed, open...) {
		for !under {
			res, err := j.deleteDelivered(ctx, in.Stream)
			if err != nil {
				return rep, err
			}
			rep.DeliveredItems += res.items
			rep.DeliveredBytes += res.bytes
			if res.removed {
				rep.StreamsRemoved++
			}
			under = res.under
			if !res.more {
				break
			}
		}
		if under {
			break
		}
	}

	// 2. Undelivered logs.
	if u, err = j.Usage(ctx); err != nil {
		return rep, err
	}
	if !under && u.PendingLogBytes > budget {
		minChunk := max(budget/64, 4096)
		exhausted := make(map[string]bool)
		// Bounded: appends may outpace the drops while the loop runs.
		for round := 0; u.Used > budget && round < maxDropRounds; round++ {
			infos, err := j.Streams(ctx)
			if err != nil {
				return rep, err
			}
			var largest, second *StreamInfo
			for i := range infos {
				in := &infos[i]
				if exhausted[in.Stream] || in.PendingLogItems <= int64(j.cfg.keepHead+j.cfg.keepTail) {
					continue
				}
				switch {
				case largest == nil || in.PendingLogBytes > largest.PendingLogBytes:
					largest, second = in, largest
				case second == nil || in.PendingLogBytes > second.PendingLogBytes:
					second = in
				}
			}
			if largest == nil {
				break
			}
			target := u.Used - budget
			if second != nil {
				target = min(target, max(largest.PendingLogBytes-second.PendingLogBytes, minChunk))
			}
			res, err := j.dropMiddle(ctx, largest.Stream, target)
			if err != nil {
				return rep, err
			}
			rep.DroppedItems += res.items
			rep.DroppedBytes += res.bytes
			rep.Markers += res.markers
			if res.items == 0 {
				exhausted[largest.Stream] = true
			}
			if u, err = j.Usage(ctx); err != nil {
				return rep, err
			}
		}
	}
	if u, err = j.Usage(ctx); err != nil {
		return rep, err
	}
	rep.UsedAfter = u.Used
	rep.OverBudget = u.Used > budget
	return rep, nil
}

type deleteResult struct {
	items, bytes int64
	more         bool // delivered items are left in the stream
	under        bool // the journal is under budget
	removed      bool // the stream was removed
}

// deleteDelivered deletes up to pruneChunk delivered items of a stream,
// oldest first, while the journal is over budget.
func (j *Journal) deleteDelivered(ctx context.Context, stream string) (deleteResult, error) {
	var res deleteResult
	err := j.write(ctx, func(t *txn) error {
		res = deleteResult{}
		s, err := t.stream(stream, false)
		if err != nil || s == nil {
			return err
		}
		b, err := s.bucket(t)
		if err != nil {
			return err
		}
		type del struct {
			k      []byte
			stored int64
			log    bool
		}
		var (
			dels  []del
			freed int64
		)
		acked := uint64(s.st.Acked)
		c := b.Cursor()
		k, v := c.First()
		for ; k != nil && keySeq(k) <= acked && len(dels) < pruneChunk && t.tot.used()-freed > t.j.cfg.budget; k, v = c.Next() {
			h, err := decodeItem(v)
			if err != nil {
				return err
			}
			st := int64(len(k) + len(v))
			dels = append(dels, del{bytes.Clone(k), st, h.isLog()})
			freed += st
		}
		res.more = k != nil && keySeq(k) <= acked
		for _, d := range dels {
			if err := b.Delete(d.k); err != nil {
				return err
			}
			t.account(s, -1, d.stored, false, d.log)
			res.items++
			res.bytes += d.stored
		}
		res.under = t.tot.used() <= t.j.cfg.budget
		if s.st.Closed != 0 && s.st.Acked == s.st.LastSeq && s.st.Items == 0 {
			res.removed = true
			return t.removeStream(s)
		}
		return nil
	})
	return res, err
}

type dropResult struct {
	items, bytes int64
	markers      int
}

// dropMiddle drops undelivered log items from the middle of a stream until
// about target bytes are freed.
func (j *Journal) dropMiddle(ctx context.Context, stream string, target int64) (dropResult, error) {
	var res dropResult
	err := j.write(ctx, func(t *txn) error {
		res = dropResult{}
		s, err := t.stream(stream, false)
		if err != nil || s == nil {
			return err
		}
		b, err := s.bucket(t)
		if err != nil {
			return err
		}
		var (
			ents []entry
			logs []int // indexes in ents of the log items
		)
		c := b.Cursor()
		for k, v := c.Seek(seqKey(uint64(s.st.Acked) + 1)); k != nil; k, v = c.Next() {
			h, err := decodeItem(v)
			if err != nil {
				return err
			}
			if h.isLog() {
				logs = append(logs, len(ents))
			}
			ents = append(ents, entry{k: bytes.Clone(k), seq: keySeq(k), h: h, stored: int64(len(k) + len(v))})
		}
		keepHead, keepTail := t.j.cfg.keepHead, t.j.cfg.keepTail
		if len(logs) <= keepHead+keepTail {
			return nil
		}
		window := logs[keepHead : len(logs)-keepTail]
		var freed int64
		for i := 0; i < len(window) && freed < target; i++ {
			// The run: consecutive window items with nothing in between.
			a, e := window[i], window[i]
			runBytes := ents[a].stored
			for i+1 < len(window) && window[i+1] == e+1 && freed+runBytes < target {
				i++
				e++
				runBytes += ents[e].stored
			}
			net, err := t.replaceRun(s, b, ents, a, e)
			if err != nil {
				return err
			}
			freed += net
			res.items += int64(e - a + 1)
			res.bytes += runBytes
			res.markers++
		}
		return nil
	})
	return res, err
}

// entry is an item read by dropMiddle.
type entry struct {
	k      []byte
	seq    uint64
	h      itemHeader
	stored int64
}

// replaceRun replaces the log items ents[a..e] by a drop marker, or extends
// the marker right before them, and returns the bytes this freed.
func (t *txn) replaceRun(s *streamTx, b *bolt.Bucket, ents []entry, a, e int) (int64, error) {
	var items, sizes, freed int64
	for i := a; i <= e; i++ {
		if err := b.Delete(ents[i].k); err != nil {
			return 0, err
		}
		t.account(s, -1, ents[i].stored, true, true)
		items++
		sizes += ents[i].h.size
		freed += ents[i].stored
	}
	last := ents[e].seq + ents[e].h.span
	var (
		m  DropMarker
		mk []byte
		at int64
	)
	if a > 0 && ents[a-1].h.isMarker() {
		p := &ents[a-1]
		if err := json.Unmarshal(p.h.payload, &m); err != nil {
			return 0, fmt.Errorf("journal: damaged drop marker at %d: %w", p.seq, err)
		}
		m.LastSeq = last
		m.Items += items
		m.Bytes += sizes
		mk, at = p.k, p.h.at
		t.account(s, -1, p.stored, true, false)
		freed += p.stored
	} else {
		m = DropMarker{FirstSeq: ents[a].seq, LastSeq: last, Items: items, Bytes: sizes}
		mk, at = ents[a].k, ents[a].h.at
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	v := encodeItem(at, m.LastSeq-keySeq(mk), MarkerKind, len(payload), payload)
	if err := b.Put(mk, v); err != nil {
		return 0, err
	}
	stored := int64(len(mk) + len(v))
	t.account(s, 1, stored, true, false)
	s.st.DroppedItems += items
	s.st.DroppedBytes += sizes
	// The marker now stands where ents[e] was: a run right after it
	// extends it.
	h, err := decodeItem(v)
	if err != nil {
		return 0, err
	}
	ents[e] = entry{k: mk, seq: keySeq(mk), h: h, stored: stored}
	return freed - stored, nil
}
