package output

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Over its budget, the file keeps the head as written, then a system entry
// saying what was dropped, then the tail; it stays a valid file of
// contiguous seqs, and its size stays near the budget.
func TestCaptureBudgetKeepsHeadAndTail(t *testing.T) {
	const budget = 1 << 20
	var out bytes.Buffer
	for i := 1; i <= 200000; i++ { // 200k lines, about 2.6 MiB
		fmt.Fprintf(&out, "line %07d\n", i)
	}
	stderr := []byte("warn 1\n")
	path, sum := captureToFile(t, bytes.NewReader(out.Bytes()), bytes.NewReader(stderr), WithBudget(budget))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > budget+64<<10 {
		t.Errorf("file is %d bytes, budget %d", fi.Size(), budget)
	}
	es, fsum := readAllEntries(t, path)
	if fsum != sum {
		t.Errorf("end record %+v, Capture said %+v", fsum, sum)
	}
	if sum.Stdout.Entries != 200000 || sum.Stdout.Bytes != uint64(out.Len()) || !sum.Complete {
		t.Errorf("stream totals %+v: want everything the job produced", sum)
	}
	var notice = -1
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
		if e.Stream == System {
			if notice >= 0 {
				t.Fatalf("two notices, at %d and %d", notice, i)
			}
			notice = i
		}
	}
	if notice < 0 {
		t.Fatal("no drop notice")
	}
	for _, e := range es {
		if e.Stream == Stdout {
			if string(e.Data) != "line 0000001" {
				t.Errorf("head starts %q", e.Data)
			}
			break
		}
	}
	if last := es[len(es)-1]; string(last.Data) != "line 0200000" {
		t.Errorf("tail ends %q", last.Data)
	}
	// Head and tail are each contiguous, and with the notice's count they
	// account for every line.
	var dropped int
	if _, err := fmt.Sscanf(string(es[notice].Data), "[... %d log lines", &dropped); err != nil {
		t.Fatalf("notice %q: %v", es[notice].Data, err)
	}
	lines := 0
	for _, e := range es {
		if e.Stream != System {
			lines++
		}
	}
	if lines+dropped != 200001 {
		t.Errorf("%d lines kept + %d dropped, want 200001", lines, dropped)
	}
	if !strings.Contains(string(es[notice].Data), "capture budget of 1048576 bytes") {
		t.Errorf("notice %q", es[notice].Data)
	}
	tailBytes := 0
	for _, e := range es[notice+1:] {
		tailBytes += RecordHeaderSize + len(e.Data)
	}
	if keep := TailKeep(budget); int64(tailBytes) > keep || int64(tailBytes) < keep-64 {
		t.Errorf("tail holds %d bytes, want about %d", tailBytes, keep)
	}
}

// Under the budget nothing changes.
func TestCaptureBudgetNotReached(t *testing.T) {
	in := []byte("a\nb\nc\n")
	path, sum := captureToFile(t, bytes.NewReader(in), bytes.NewReader(nil), WithBudget(1<<20))
	es, _ := readAllEntries(t, path)
	checkEntries(t, es, sum, MaxLine)
	stdout, _ := rebuild(es)
	equalBytes(t, "stdout", stdout, in)
}

func TestCaptureBudgetOption(t *testing.T) {
	for _, n := range []int64{-1, 1000} {
		if _, err := Capture(t.Context(), bytes.NewReader(nil), bytes.NewReader(nil), &bytes.Buffer{}, WithBudget(n)); err == nil {
			t.Errorf("budget %d accepted", n)
		}
	}
}
