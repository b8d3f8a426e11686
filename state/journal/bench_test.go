package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// logBatch is a batch of log entries as the syncer sends them
// (contract §2.6), lineLen bytes of text each.
func logBatch(firstSeq, lines, lineLen int) (json.RawMessage, int) {
	type entry struct {
		Seq       int    `json:"seq"`
		Stream    string `json:"stream"`
		Line      string `json:"line"`
		Timestamp string `json:"timestamp"`
	}
	text := strings.Repeat("x", lineLen)
	ts := time.Unix(1_700_000_000, 123456789).UTC().Format(time.RFC3339Nano)
	entries := make([]entry, lines)
	for i := range entries {
		entries[i] = entry{firstSeq + i, "stdout", text, ts}
	}
	b, _ := json.Marshal(entries)
	return b, lines * lineLen
}

// BenchmarkAppendLogs appends 100-line log batches (one item each) from
// several goroutines, one job stream each; every Append is durable when it
// returns. items is the number of batches per Append call: 1 is one call per
// batch; a log reader with a backlog passes what it has read at once.
// MiB/s counts the items' JSON, text-MiB/s the lines' text.
// JOURNAL_BENCH_DIR puts the file elsewhere than the temporary directory.
func BenchmarkAppendLogs(b *testing.B) {
	for _, bc := range []struct{ goroutines, items, lineLen int }{
		{4, 1, 80},
		{4, 1, 200},
		{4, 8, 80},
		{1, 8, 80},
		{1, 32, 80},
	} {
		b.Run(fmt.Sprintf("goroutines=%d/items=%d/line=%dB", bc.goroutines, bc.items, bc.lineLen), func(b *testing.B) {
			benchmarkAppendLogs(b, bc.goroutines, bc.items, 100, bc.lineLen)
		})
	}
}

func benchmarkAppendLogs(b *testing.B, goroutines, perCall, lines, lineLen int) {
	dir := os.Getenv("JOURNAL_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	} else {
		var err error
		if dir, err = os.MkdirTemp(dir, "journal-bench-"); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(dir)
	}
	j, err := Open(filepath.Join(dir, "journal.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	payload, text := logBatch(1, lines, lineLen)
	items := make([]Item, perCall)
	for i := range items {
		items[i] = Item{Kind: LogKind, Payload: payload, Size: text}
	}
	ctx := context.Background()
	var next, written atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("job-%d", g)
			for {
				n := min(int64(perCall), int64(b.N)-next.Add(int64(perCall))+int64(perCall))
				if n <= 0 {
					return
				}
				if _, err := j.Append(ctx, stream, items[:n]...); err != nil {
					b.Error(err)
					return
				}
				written.Add(n)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	sec, n := b.Elapsed().Seconds(), int(written.Load())
	if n != b.N {
		b.Fatalf("wrote %d batches, want %d", n, b.N)
	}
	b.ReportMetric(float64(n*lines)/sec, "entries/s")
	b.ReportMetric(float64(n*len(payload))/sec/(1<<20), "MiB/s")
	b.ReportMetric(float64(n*text)/sec/(1<<20), "text-MiB/s")
	b.ReportMetric(float64(n)/float64(j.commits.Load()), "batches/commit")
}
