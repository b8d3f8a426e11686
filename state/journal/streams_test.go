package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendInvalid(t *testing.T) {
	j := openTest(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		stream string
		items  []Item
	}{
		{"empty stream", "", []Item{statusItem("x")}},
		{"long stream", strings.Repeat("s", maxNameLen+1), []Item{statusItem("x")}},
		{"no items", "s", nil},
		{"empty kind", "s", []Item{{Payload: jsonString("x")}}},
		{"long kind", "s", []Item{{Kind: strings.Repeat("k", maxKindLen+1)}}},
		{"reserved kind", "s", []Item{{Kind: MarkerKind, Payload: json.RawMessage(`{}`)}}},
		{"negative size", "s", []Item{{Kind: "logs", Size: -1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := j.Append(ctx, tc.stream, tc.items...); !errors.Is(err, ErrInvalid) {
				t.Fatalf("Append: %v, want ErrInvalid", err)
			}
		})
	}
	if ss, _ := j.Streams(ctx); len(ss) != 0 {
		t.Fatalf("invalid appends left streams: %+v", ss)
	}
}

func TestAppend(t *testing.T) {
	clock := newFakeClock()
	j := openTest(t, WithClock(clock.Now))
	ctx := context.Background()
	type want struct {
		seq     uint64
		kind    string
		payload string
		size    int
	}
	for _, tc := range []struct {
		name      string
		stream    string
		items     []Item
		wantFirst uint64
		want      []want
	}{
		{"first item is seq 1", "a", []Item{statusItem("running")}, 1,
			[]want{{1, "status", `"running"`, 9}}},
		{"several items are consecutive", "a", []Item{logItem("l1"), logItem("l2"), {Kind: "output", Payload: json.RawMessage(`{"x":1}`)}}, 2,
			[]want{{1, "status", `"running"`, 9}, {2, "logs", `"l1"`, 4}, {3, "logs", `"l2"`, 4}, {4, "output", `{"x":1}`, 7}}},
		{"explicit size is kept", "b", []Item{{Kind: "logs", Payload: jsonString("xyz"), Size: 1000}}, 1,
			[]want{{1, "logs", `"xyz"`, 1000}}},
		{"empty payload", "c", []Item{{Kind: "complete"}}, 1,
			[]want{{1, "complete", ``, 0}}},
		{"streams are independent", "b", []Item{statusItem("done")}, 2,
			[]want{{1, "logs", `"xyz"`, 1000}, {2, "status", `"done"`, 6}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock.Advance(time.Second)
			first, err := j.Append(ctx, tc.stream, tc.items...)
			if err != nil {
				t.Fatal(err)
			}
			if first != tc.wantFirst {
				t.Errorf("first seq %d, want %d", first, tc.wantFirst)
			}
			got, err := j.Read(ctx, tc.stream, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("read %d items, want %d", len(got), len(tc.want))
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Seq != w.seq || g.LastSeq != w.seq || g.Kind != w.kind || string(g.Payload) != w.payload || g.Size != w.size {
					t.Errorf("item %d: %+v, want %+v", i, g, w)
				}
				if w.seq >= first && !g.AppendedAt.Equal(clock.Now()) {
					t.Errorf("item %d appended at %v, want %v", i, g.AppendedAt, clock.Now())
				}
			}
		})
	}
	if err := j.CloseStream(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(ctx, "a", logItem("late")); !errors.Is(err, ErrStreamClosed) {
		t.Fatalf("Append to a closed stream: %v", err)
	}
}

func TestPendingAndRead(t *testing.T) {
	j := openTest(t)
	ctx := context.Background()
	for i := 1; i <= 10; i++ {
		mustAppend(t, j, "s", logItem(fmt.Sprint(i)))
	}
	if err := j.Ack(ctx, "s", 4); err != nil {
		t.Fatal(err)
	}
	seqs := func(items []StoredItem) []uint64 {
		var s []uint64
		for _, it := range items {
			s = append(s, it.Seq)
		}
		return s
	}
	for _, tc := range []struct {
		name    string
		pending bool
		stream  string
		after   uint64
		limit   int
		want    []uint64
	}{
		{"pending all", true, "s", 0, 0, []uint64{5, 6, 7, 8, 9, 10}},
		{"pending after cursor", true, "s", 7, 0, []uint64{8, 9, 10}},
		{"pending limited", true, "s", 0, 2, []uint64{5, 6}},
		{"pending after the end", true, "s", 10, 0, nil},
		{"pending of unknown stream", true, "nope", 0, 0, nil},
		{"read all", false, "s", 0, 0, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"read after", false, "s", 2, 3, []uint64{3, 4, 5}},
		{"negative limit is no limit", false, "s", 8, -1, []uint64{9, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				got []StoredItem
				err error
			)
			if tc.pending {
				got, err = j.Pending(ctx, tc.stream, tc.after, tc.limit)
			} else {
				got, err = j.Read(ctx, tc.stream, tc.after, tc.limit)
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := seqs(got); fmt.Sprint(g) != fmt.Sprint(tc.want) {
				t.Fatalf("seqs %v, want %v", g, tc.want)
			}
			for _, it := range got {
				if payloadString(t, it) != fmt.Sprint(it.Seq) {
					t.Errorf("seq %d has payload %s", it.Seq, it.Payload)
				}
			}
		})
	}
	if _, err := j.Pending(ctx, "", 0, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Pending of empty stream id: %v", err)
	}
}

func TestAck(t *testing.T) {
	j := openTest(t)
	ctx := context.Background()
	mustAppend(t, j, "s", statusItem("a"), logItem("b"), logItem("c"), statusItem("d"), logItem("e"))
	for _, tc := range []struct {
		name      string
		stream    string
		upto      uint64
		wantErr   error
		wantAcked uint64
	}{
		{"zero is a no-op", "s", 0, nil, 0},
		{"advance", "s", 2, nil, 2},
		{"same again is idempotent", "s", 2, nil, 2},
		{"backwards is a no-op", "s", 1, nil, 2},
		{"advance further", "s", 4, nil, 4},
		{"beyond the last seq", "s", 6, ErrInvalid, 4},
		{"unknown stream", "nope", 1, ErrUnknownStream, 4},
		{"to the end", "s", 5, nil, 5},
		{"after the end, again", "s", 5, nil, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := j.Ack(ctx, tc.stream, tc.upto)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Ack: %v, want %v", err, tc.wantErr)
			}
			info, _, err := j.Stream(ctx, "s")
			if err != nil {
				t.Fatal(err)
			}
			if info.Acked != tc.wantAcked {
				t.Errorf("acked %d, want %d", info.Acked, tc.wantAcked)
			}
			if want := int64(5 - tc.wantAcked); info.Pending != want || info.Items != 5 {
				t.Errorf("pending %d of %d items, want %d of 5", info.Pending, info.Items, want)
			}
			if err := verify(j); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCloseStream(t *testing.T) {
	clock := newFakeClock()
	j := openTest(t, WithClock(clock.Now))
	ctx := context.Background()
	mustAppend(t, j, "s", statusItem("x"))
	if err := j.CloseStream(ctx, "nope"); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("CloseStream of unknown stream: %v", err)
	}
	closedAt := clock.Now()
	if err := j.CloseStream(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if err := j.CloseStream(ctx, "s"); err != nil {
		t.Fatalf("closing again: %v", err)
	}
	info, ok, err := j.Stream(ctx, "s")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if !info.Closed || !info.ClosedAt.Equal(closedAt) {
		t.Errorf("closed %v at %v, want at %v", info.Closed, info.ClosedAt, closedAt)
	}
	// A closed stream is still delivered.
	if err := j.Ack(ctx, "s", 1); err != nil {
		t.Fatal(err)
	}
}

func TestStreamsOldestFirst(t *testing.T) {
	clock := newFakeClock()
	j := openTest(t, WithClock(clock.Now))
	ctx := context.Background()
	t0 := clock.Now()
	at := func(d time.Duration, stream string, items ...Item) {
		clock.Set(t0.Add(d))
		mustAppend(t, j, stream, items...)
	}
	at(10*time.Second, "a", statusItem("a1"))
	at(5*time.Second, "b", statusItem("b1"))
	at(1*time.Second, "c", statusItem("c1")) // delivered below: no pending
	at(20*time.Second, "b", logItem("b2"), logItem("b3"))
	at(30*time.Second, "a", logItem("a2"))
	at(7*time.Second, "d", statusItem("d1"))
	if err := j.Ack(ctx, "c", 1); err != nil {
		t.Fatal(err)
	}
	order := func() string {
		ss, err := j.Streams(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, s := range ss {
			parts = append(parts, fmt.Sprintf("%s:%d/%d", s.Stream, s.Pending, s.PendingBytes))
			if s.Pending > 0 && s.OldestPending.IsZero() {
				t.Errorf("%s: pending without oldest time", s.Stream)
			}
		}
		return strings.Join(parts, " ")
	}
	itemBytes := func(it Item) int64 {
		return int64(keyLen + len(encodeItem(0, 0, it.Kind, len(it.Payload), it.Payload)))
	}
	s1, l2 := itemBytes(statusItem("a1")), itemBytes(logItem("b2"))
	want := fmt.Sprintf("b:3/%d d:1/%d a:2/%d c:0/0", s1+2*l2, s1, s1+l2)
	if got := order(); got != want {
		t.Errorf("order %s, want %s", got, want)
	}
	// b's oldest pending item is now from 20 s: a (10 s) comes first.
	if err := j.Ack(ctx, "b", 1); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf("d:1/%d a:2/%d b:2/%d c:0/0", s1, s1+l2, 2*l2)
	if got := order(); got != want {
		t.Errorf("order %s, want %s", got, want)
	}
	ss, _ := j.Streams(ctx)
	if ss[0].OldestPending != t0.Add(7*time.Second) || ss[2].OldestPending != t0.Add(20*time.Second) {
		t.Errorf("oldest pending times %v, %v", ss[0].OldestPending, ss[2].OldestPending)
	}
}

// TestConcurrentAppendOrder: many goroutines append to a few streams; each
// stream's items are numbered 1..N without gap or duplicate, each item is
// where its Append said, and each goroutine's items come in its order.
func TestConcurrentAppendOrder(t *testing.T) {
	for _, delay := range []time.Duration{0, 2 * time.Millisecond} {
		t.Run(fmt.Sprint(delay), func(t *testing.T) {
			j := openTest(t, WithGroupCommit(delay, 64))
			ctx := context.Background()
			const (
				goroutines = 8
				appends    = 100
				streams    = 3
			)
			type rec struct {
				G, N, I int
			}
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					last := map[string]uint64{}
					for n := range appends {
						stream := fmt.Sprintf("s%d", (g+n)%streams)
						var items []Item
						for i := range 1 + n%3 {
							p, _ := json.Marshal(rec{g, n, i})
							items = append(items, Item{Kind: LogKind, Payload: p})
						}
						first, err := j.Append(ctx, stream, items...)
						if err != nil {
							t.Error(err)
							return
						}
						if first <= last[stream] {
							t.Errorf("goroutine %d: append %d got seq %d after %d", g, n, first, last[stream])
						}
						last[stream] = first + uint64(len(items)) - 1
						// Read back where Append said the items are.
						got, err := j.Read(ctx, stream, first-1, len(items))
						if err != nil || len(got) != len(items) {
							t.Errorf("read back: %d items, %v", len(got), err)
							return
						}
						for i, it := range got {
							var r rec
							json.Unmarshal(it.Payload, &r)
							if r != (rec{g, n, i}) || it.Seq != first+uint64(i) {
								t.Errorf("seq %d holds %+v, want %+v", it.Seq, r, rec{g, n, i})
							}
						}
					}
				}()
			}
			wg.Wait()
			total := 0
			seen := map[rec]bool{}
			for s := range streams {
				stream := fmt.Sprintf("s%d", s)
				items, err := j.Read(ctx, stream, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				for i, it := range items {
					if it.Seq != uint64(i+1) {
						t.Fatalf("%s: item %d has seq %d", stream, i, it.Seq)
					}
					var r rec
					json.Unmarshal(it.Payload, &r)
					if seen[r] {
						t.Fatalf("%s: %+v twice", stream, r)
					}
					seen[r] = true
				}
				total += len(items)
			}
			want := 0
			for n := range appends {
				want += 1 + n%3
			}
			if total != goroutines*want {
				t.Fatalf("%d items, want %d", total, goroutines*want)
			}
		})
	}
}
