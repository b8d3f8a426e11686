package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	os.Exit(m.Run())
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openTest opens a journal in a temporary directory, checks its invariants
// when the test ends and closes it. Writes are committed at once (no group
// commit delay) unless opts say otherwise.
func openTest(t testing.TB, opts ...Option) *Journal {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path, append([]Option{WithGroupCommit(0, DefaultMaxBatch)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := verify(j); err != nil {
			t.Errorf("invariants at the end: %v", err)
		}
		if err := j.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return j
}

func mustAppend(t testing.TB, j *Journal, stream string, items ...Item) uint64 {
	t.Helper()
	first, err := j.Append(context.Background(), stream, items...)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return first
}

func logItem(s string) Item    { return Item{Kind: LogKind, Payload: jsonString(s)} }
func statusItem(s string) Item { return Item{Kind: "status", Payload: jsonString(s)} }

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

func payloadString(t testing.TB, it StoredItem) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(it.Payload, &s); err != nil {
		t.Fatalf("payload of seq %d (%s): %v", it.Seq, it.Kind, err)
	}
	return s
}

// verify scans the whole file and checks what the journal keeps
// incrementally against it: every stream's counters and the file's totals,
// and the shape of every stream (its held items tile first..LastSeq, all
// undelivered items are held, markers describe their ranges).
func verify(j *Journal) error {
	return j.view(func(tx *bolt.Tx) error {
		stored, err := decodeTotals(tx.Bucket(bucketMeta).Get(keyTotals))
		if err != nil {
			return err
		}
		var sum totals
		items := tx.Bucket(bucketItems)
		err = tx.Bucket(bucketStreams).ForEach(func(id, v []byte) error {
			st, err := decodeStreamState(v)
			if err != nil {
				return err
			}
			sum.Streams++
			b := items.Bucket(id)
			if b == nil {
				return fmt.Errorf("stream %s: no items bucket", id)
			}
			var (
				c        counters
				next     uint64 // the seq the next held item must have (0: any)
				lastHeld uint64
			)
			acked := uint64(st.Acked)
			if acked > uint64(st.LastSeq) {
				return fmt.Errorf("stream %s: acked %d > last %d", id, acked, st.LastSeq)
			}
			err = b.ForEach(func(k, v []byte) error {
				seq := keySeq(k)
				h, err := decodeItem(v)
				if err != nil {
					return fmt.Errorf("stream %s seq %d: %w", id, seq, err)
				}
				if next != 0 && seq != next {
					return fmt.Errorf("stream %s: item %d follows one ending at %d", id, seq, next-1)
				}
				if next == 0 && seq > acked+1 {
					return fmt.Errorf("stream %s: first held item %d, but acked only %d", id, seq, acked)
				}
				if h.span > 0 && !h.isMarker() {
					return fmt.Errorf("stream %s seq %d: span on a %s item", id, seq, h.kind)
				}
				if h.isMarker() {
					var m DropMarker
					if err := json.Unmarshal(h.payload, &m); err != nil {
						return err
					}
					if m.FirstSeq != seq || m.LastSeq != seq+h.span || m.Items != int64(h.span)+1 {
						return fmt.Errorf("stream %s seq %d: marker %+v with span %d", id, seq, m, h.span)
					}
				}
				if seq <= acked && seq+h.span > acked {
					return fmt.Errorf("stream %s: item %d..%d straddles the cursor %d", id, seq, seq+h.span, acked)
				}
				c.add(1, int64(len(k)+len(v)), seq > acked, h.isLog())
				next = seq + h.span + 1
				lastHeld = seq + h.span
				return nil
			})
			if err != nil {
				return err
			}
			if lastHeld != uint64(st.LastSeq) && !(c.Items == 0 && acked == uint64(st.LastSeq)) {
				return fmt.Errorf("stream %s: last held item ends at %d, last seq %d", id, lastHeld, st.LastSeq)
			}
			if c != st.counters {
				return fmt.Errorf("stream %s: counters %+v, scan %+v", id, st.counters, c)
			}
			for i, f := range sum.counters.fields() {
				*f += *c.fields()[i]
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = items.ForEach(func(k, _ []byte) error {
			if tx.Bucket(bucketStreams).Get(k) == nil {
				return fmt.Errorf("items of stream %s without stream state", k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Bucket(bucketRecords).ForEach(func(kind, _ []byte) error {
			return tx.Bucket(bucketRecords).Bucket(kind).ForEach(func(k, v []byte) error {
				sum.Records++
				sum.RecordBytes += int64(len(k) + len(v))
				return nil
			})
		})
		if err != nil {
			return err
		}
		if sum != stored {
			return fmt.Errorf("totals %+v, scan %+v", stored, sum)
		}
		return nil
	})
}
