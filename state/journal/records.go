package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// PutRecord stores value (as JSON) as the record kind/id, replacing any
// previous one, and returns when it is durable. Kinds name what records are
// ("job", "run", ...).
func (j *Journal) PutRecord(ctx context.Context, kind, id string, value any) error {
	apply, err := preparePut(kind, id, value)
	if err != nil {
		return err
	}
	return j.write(ctx, apply)
}

func preparePut(kind, id string, value any) (func(t *txn) error, error) {
	if err := checkRecordKey(kind, id); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("journal: record %s/%s: %w", kind, id, err)
	}
	k := []byte(id)
	return func(t *txn) error {
		b, err := t.tx.Bucket(bucketRecords).CreateBucketIfNotExists([]byte(kind))
		if err != nil {
			return err
		}
		if old := b.Get(k); old != nil {
			t.tot.Records--
			t.tot.RecordBytes -= int64(len(k) + len(old))
		}
		if err := b.Put(k, raw); err != nil {
			return err
		}
		t.tot.Records++
		t.tot.RecordBytes += int64(len(k) + len(raw))
		t.totDirty = true
		return nil
	}, nil
}

// GetRecord decodes the record kind/id into out and reports whether it
// exists (out is untouched if not).
func (j *Journal) GetRecord(ctx context.Context, kind, id string, out any) (bool, error) {
	if err := checkRecordKey(kind, id); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var raw []byte
	err := j.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketRecords).Bucket([]byte(kind)); b != nil {
			raw = bytes.Clone(b.Get([]byte(id)))
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("journal: record %s/%s: %w", kind, id, err)
	}
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return true, fmt.Errorf("journal: record %s/%s: %w", kind, id, err)
	}
	return true, nil
}

// DeleteRecord deletes the record kind/id if it exists, and returns when
// that is durable.
func (j *Journal) DeleteRecord(ctx context.Context, kind, id string) error {
	return j.Apply(ctx, OpDelete(kind, id))
}

// ListRecords calls fn with each record of a kind, by id, until fn returns
// an error, which ListRecords returns. fn runs outside any transaction and
// may use the journal; raw is its own copy.
func (j *Journal) ListRecords(ctx context.Context, kind string, fn func(id string, raw json.RawMessage) error) error {
	if err := checkName("record kind", kind, maxKindLen); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	type rec struct {
		id  string
		raw json.RawMessage
	}
	var recs []rec
	err := j.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords).Bucket([]byte(kind))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			recs = append(recs, rec{string(k), bytes.Clone(v)})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("journal: records %s: %w", kind, err)
	}
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r.id, r.raw); err != nil {
			return err
		}
	}
	return nil
}

func checkRecordKey(kind, id string) error {
	if err := checkName("record kind", kind, maxKindLen); err != nil {
		return err
	}
	return checkName("record id", id, maxNameLen)
}
