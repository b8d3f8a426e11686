package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesFile(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if j.Path() != path {
		t.Errorf("Path() = %q", j.Path())
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode %o, want 600", mode)
	}
	if v := rawSchema(t, path); v != SchemaVersion {
		t.Errorf("schema %d, want %d", v, SchemaVersion)
	}
	// A file another program left with a wider mode is narrowed.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	j, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %o after reopening, want 600", fi.Mode().Perm())
	}
}

func TestOpenOptionsValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Option
	}{
		{"short key", WithSecretKey(make([]byte, 16))},
		{"empty key", WithSecretKey(nil)},
		{"zero budget", WithBudget(0)},
		{"negative delay", WithGroupCommit(-time.Millisecond, 10)},
		{"zero batch", WithGroupCommit(time.Millisecond, 0)},
		{"negative keep", WithKeepLogs(-1, 3)},
		{"nil clock", WithClock(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			j, err := Open(path, tc.opt)
			if !errors.Is(err, ErrInvalid) {
				if j != nil {
					j.Close()
				}
				t.Fatalf("Open: %v, want ErrInvalid", err)
			}
		})
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, j, "job-1", statusItem("running"), logItem("hello"))
	if err := j.Ack(ctx, "job-1", 1); err != nil {
		t.Fatal(err)
	}
	if err := j.PutRecord(ctx, "job", "job-1", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	items, err := j.Pending(ctx, "job-1", 0, 0)
	if err != nil || len(items) != 1 || items[0].Seq != 2 || payloadString(t, items[0]) != "hello" {
		t.Fatalf("pending after reopen: %+v, %v", items, err)
	}
	var rec map[string]int
	if ok, err := j.GetRecord(ctx, "job", "job-1", &rec); !ok || err != nil || rec["n"] != 1 {
		t.Fatalf("record after reopen: %v %v %v", rec, ok, err)
	}
	if err := verify(j); err != nil {
		t.Fatal(err)
	}
}

// rawSchema reads meta/schema of a closed file.
func rawSchema(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket(bucketMeta).Get(keySchema))
		return nil
	})
	return v
}

// rawFile writes a bbolt file with fn.
func rawFile(t *testing.T, fn func(tx *bolt.Tx) error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "journal.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func setSchema(tx *bolt.Tx, v uint64) error {
	b, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	return b.Put(keySchema, binary.BigEndian.AppendUint64(nil, v))
}

func TestSchemaTooNew(t *testing.T) {
	path := rawFile(t, func(tx *bolt.Tx) error { return setSchema(tx, SchemaVersion+1) })
	j, err := Open(path)
	if !errors.Is(err, ErrSchemaTooNew) {
		if j != nil {
			j.Close()
		}
		t.Fatalf("Open: %v, want ErrSchemaTooNew", err)
	}
	if v := rawSchema(t, path); v != SchemaVersion+1 {
		t.Errorf("schema changed to %d", v)
	}
}

func TestNotAJournal(t *testing.T) {
	path := rawFile(t, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("variables"))
		return err
	})
	if j, err := Open(path); !errors.Is(err, ErrNotJournal) {
		if j != nil {
			j.Close()
		}
		t.Fatalf("Open: %v, want ErrNotJournal", err)
	}
}

// TestUpgradeFromV0 opens a file of a (fake) schema 0, which kept jobs in a
// top-level bucket "oldjobs", with a step 0→1 that moves them into records.
func TestUpgradeFromV0(t *testing.T) {
	path := rawFile(t, func(tx *bolt.Tx) error {
		if err := setSchema(tx, 0); err != nil {
			return err
		}
		b, err := tx.CreateBucket([]byte("oldjobs"))
		if err != nil {
			return err
		}
		return b.Put([]byte("job-7"), []byte(`{"id":"job-7","image":"bash"}`))
	})
	ran := 0
	step := func(tx *bolt.Tx) error {
		ran++
		old := tx.Bucket([]byte("oldjobs"))
		if old == nil {
			return errors.New("no oldjobs bucket")
		}
		recs, err := tx.CreateBucketIfNotExists(bucketRecords)
		if err != nil {
			return err
		}
		jobs, err := recs.CreateBucketIfNotExists([]byte("job"))
		if err != nil {
			return err
		}
		var n, size int64
		err = old.ForEach(func(k, v []byte) error {
			n++
			size += int64(len(k) + len(v))
			return jobs.Put(append([]byte(nil), k...), append([]byte(nil), v...))
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket([]byte("oldjobs")); err != nil {
			return err
		}
		// Schema 0 had no totals: the step writes them.
		meta := tx.Bucket(bucketMeta)
		return meta.Put(keyTotals, totals{Records: n, RecordBytes: size}.encode())
	}
	j, err := Open(path, withSchema(1, map[uint64]upgradeStep{0: step}))
	if err != nil {
		t.Fatal(err)
	}
	var job struct{ ID, Image string }
	ok, err := j.GetRecord(context.Background(), "job", "job-7", &job)
	if !ok || err != nil || job.Image != "bash" {
		t.Fatalf("upgraded record: %+v %v %v", job, ok, err)
	}
	if err := verify(j); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if ran != 1 {
		t.Errorf("step ran %d times", ran)
	}
	if v := rawSchema(t, path); v != 1 {
		t.Errorf("schema %d after upgrade", v)
	}
	// Opening again runs no step.
	j, err = Open(path, withSchema(1, map[uint64]upgradeStep{0: step}))
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if ran != 1 {
		t.Errorf("step ran again on an upgraded file")
	}
}

func TestUpgradeSteps(t *testing.T) {
	logStep := func(mark string) upgradeStep {
		return func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			return meta.Put([]byte("log"), append(append([]byte(nil), meta.Get([]byte("log"))...), mark...))
		}
	}
	failStep := func(tx *bolt.Tx) error { return errors.New("disk says no") }
	for _, tc := range []struct {
		name       string
		target     uint64
		steps      map[uint64]upgradeStep
		wantErr    string
		wantLog    string
		wantSchema uint64
	}{
		{"in order", 4, map[uint64]upgradeStep{1: logStep("a"), 2: logStep("b"), 3: logStep("c")}, "", "abc", 4},
		{"missing step", 4, map[uint64]upgradeStep{1: logStep("a"), 3: logStep("c")}, "no upgrade from schema 2", "", 1},
		{"failing step rolls back", 3, map[uint64]upgradeStep{1: logStep("a"), 2: failStep}, "disk says no", "", 1},
		{"nothing to do", 1, nil, "", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "journal.db")
			j, err := Open(path) // schema 1
			if err != nil {
				t.Fatal(err)
			}
			mustAppend(t, j, "s", statusItem("x"))
			j.Close()
			j, err = Open(path, withSchema(tc.target, tc.steps))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open: %v, want %q", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				j.Close()
			}
			if v := rawSchema(t, path); v != tc.wantSchema {
				t.Errorf("schema %d, want %d", v, tc.wantSchema)
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.View(func(tx *bolt.Tx) error {
				if got := string(tx.Bucket(bucketMeta).Get([]byte("log"))); got != tc.wantLog {
					t.Errorf("steps ran %q, want %q", got, tc.wantLog)
				}
				return nil
			})
		})
	}
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// Writes racing with Close either become durable or fail with ErrClosed.
	var wg sync.WaitGroup
	results := make([]error, 50)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = j.Append(ctx, "s", statusItem(fmt.Sprint(i)))
		}()
	}
	time.Sleep(time.Millisecond)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	ok := 0
	for _, err := range results {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrClosed):
			t.Errorf("append racing with close: %v", err)
		}
	}
	if err := j.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := j.Append(ctx, "s", statusItem("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := j.Pending(ctx, "s", 0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Pending after Close: %v", err)
	}
	if _, err := j.Streams(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Streams after Close: %v", err)
	}
	j, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	info, _, err := j.Stream(ctx, "s")
	if err != nil || info.LastSeq != uint64(ok) {
		t.Errorf("after reopen: last seq %d, %d appends succeeded (%v)", info.LastSeq, ok, err)
	}
	if err := verify(j); err != nil {
		t.Fatal(err)
	}
}

func TestGroupCommitBatches(t *testing.T) {
	j := openTest(t, WithGroupCommit(50*time.Millisecond, 1000))
	ctx := context.Background()
	const writers = 100
	var wg sync.WaitGroup
	before := j.commits.Load()
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := j.Append(ctx, fmt.Sprintf("s%d", i%4), statusItem("x")); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := j.commits.Load() - before; n < 1 || n > writers/4 {
		t.Errorf("%d writes took %d commits", writers, n)
	}
}

func TestGroupCommitMaxBatch(t *testing.T) {
	j := openTest(t, WithGroupCommit(200*time.Millisecond, 5))
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := j.Append(ctx, "s", statusItem("x")); err != nil {
				t.Error(err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	<-done
	if n, largest := j.commits.Load(), j.largestBatch.Load(); n < 2 || largest != 5 {
		t.Errorf("10 concurrent writes took %d commits, the largest of %d writes; want batches of at most 5", n, largest)
	}
}

// TestGroupCommitLoneWriter: a writer alone is not held for the delay.
func TestGroupCommitLoneWriter(t *testing.T) {
	j := openTest(t, WithGroupCommit(time.Hour, 1000))
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			if _, err := j.Append(ctx, "s", statusItem(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a lone writer waited for the group commit delay")
	}
}

// TestFailingWriteIsolated: a write that fails after it changed the
// transaction fails alone; the others of its batch are committed.
func TestFailingWriteIsolated(t *testing.T) {
	j := openTest(t, WithGroupCommit(30*time.Millisecond, 1000))
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := j.Append(ctx, "good", statusItem(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}()
	}
	boom := errors.New("boom")
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := j.write(ctx, func(tx *txn) error {
			if err := tx.tx.Bucket(bucketMeta).Put([]byte("poison"), []byte("x")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Errorf("failing write: %v", err)
		}
	}()
	// A write refused cleanly does not disturb its batch either.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := j.Ack(ctx, "nope", 1); !errors.Is(err, ErrUnknownStream) {
			t.Errorf("ack of unknown stream: %v", err)
		}
	}()
	wg.Wait()
	info, _, err := j.Stream(ctx, "good")
	if err != nil || info.LastSeq != 10 {
		t.Fatalf("good stream: %+v %v", info, err)
	}
	j.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get([]byte("poison")) != nil {
			t.Error("the failing write was committed")
		}
		return nil
	})
}

func TestWriteContext(t *testing.T) {
	j := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := j.Append(ctx, "s", statusItem("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context: %v", err)
	}
	if _, ok, _ := j.Stream(context.Background(), "s"); ok {
		t.Fatal("a write refused for its context was made")
	}
	// A context that ends while the write waits in a batch: either the
	// write is made and reported durable, or it is not made at all.
	j2 := openTest(t, WithGroupCommit(20*time.Millisecond, 1000))
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, err := j2.Append(ctx, "s", statusItem("x"))
	_, ok, _ := j2.Stream(context.Background(), "s")
	if (err == nil) != ok {
		t.Fatalf("Append returned %v, stream exists: %v", err, ok)
	}
}

func TestApplyAllOrNothing(t *testing.T) {
	ctx := context.Background()
	j := openTest(t)
	if err := j.Apply(ctx, OpAppend("s1", Item{Kind: "logs", Payload: []byte(`{"n":1}`)}), OpPut("run", "r1", map[string]int{"entries": 1})); err != nil {
		t.Fatal(err)
	}
	if err := j.CloseStream(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	// The second op fails (closed stream): the first must not be kept.
	err := j.Apply(ctx, OpPut("run", "r1", map[string]int{"entries": 2}), OpAppend("s1", Item{Kind: "logs", Payload: []byte(`{"n":2}`)}))
	if !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("err = %v, want ErrStreamClosed", err)
	}
	var rec map[string]int
	if _, err := j.GetRecord(ctx, "run", "r1", &rec); err != nil || rec["entries"] != 1 {
		t.Fatalf("record after a failed Apply = %v, %v; want entries 1", rec, err)
	}
	if err := j.Apply(ctx, OpAppend("", Item{Kind: "x"})); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid op: %v", err)
	}
}
