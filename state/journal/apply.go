package journal

import (
	"context"
	"fmt"
)

// Op is one change of an Apply call.
type Op struct {
	apply func(t *txn) error
	err   error
}

// OpAppend appends items to a stream, as Append does.
func OpAppend(stream string, items ...Item) Op {
	var first uint64
	apply, err := prepareAppend(stream, items, &first)
	return Op{apply: apply, err: err}
}

// OpPut stores a record, as PutRecord does.
func OpPut(kind, id string, value any) Op {
	apply, err := preparePut(kind, id, value)
	return Op{apply: apply, err: err}
}

// OpClose closes a stream, as CloseStream does.
func OpClose(stream string) Op {
	apply, err := prepareClose(stream)
	return Op{apply: apply, err: err}
}

// Apply makes every change of ops in one transaction: all of them or none
// are durable when it returns. A fact and the record that says how far it
// got (a log batch and the count of output entries it covers) then never
// disagree after a crash.
func (j *Journal) Apply(ctx context.Context, ops ...Op) error {
	for _, op := range ops {
		if op.err != nil {
			return op.err
		}
	}
	return j.write(ctx, func(t *txn) error {
		for i, op := range ops {
			if err := op.apply(t); err != nil {
				if ce, ok := err.(cleanError); ok && i > 0 {
					// Earlier ops changed the transaction: it must be rolled back.
					return ce.err
				}
				return err
			}
		}
		return nil
	})
}

// OpDelete deletes a record if it exists.
func OpDelete(kind, id string) Op {
	if err := checkRecordKey(kind, id); err != nil {
		return Op{err: err}
	}
	k := []byte(id)
	return Op{apply: func(t *txn) error {
		b := t.tx.Bucket(bucketRecords).Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		old := b.Get(k)
		if old == nil {
			return nil
		}
		t.tot.Records--
		t.tot.RecordBytes -= int64(len(k) + len(old))
		t.totDirty = true
		return b.Delete(k)
	}}
}

// OpRemoveStream deletes a closed stream whose items were all delivered,
// with its items; an unknown stream is no error. A stream that is open or
// has pending items is refused with ErrInvalid: that would lose data.
func OpRemoveStream(stream string) Op {
	if err := checkName("stream", stream, maxNameLen); err != nil {
		return Op{err: err}
	}
	return Op{apply: func(t *txn) error {
		s, err := t.stream(stream, false)
		if err != nil || s == nil {
			return err
		}
		if s.st.Closed == 0 || s.st.PendingItems > 0 {
			return clean(fmt.Errorf("%w: stream %s is open or not delivered", ErrInvalid, stream))
		}
		return t.removeStream(s)
	}}
}
