package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// fixedLog returns a log item whose stored size does not depend on n.
func fixedLog(n int, width int) Item {
	return Item{Kind: LogKind, Payload: jsonString(fmt.Sprintf("%0*d", width, n))}
}

// storedSize is the stored size of it once appended.
func storedSize(it Item) int64 {
	size := it.Size
	if size == 0 {
		size = len(it.Payload)
	}
	return int64(keyLen + len(encodeItem(0, 0, it.Kind, size, it.Payload)))
}

func streamInfo1(t *testing.T, j *Journal, s string) (StreamInfo, bool) {
	t.Helper()
	info, ok, err := j.Stream(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return info, ok
}

// TestPruneDeliveredFirst: delivered items go first, those of closed
// streams (closed first first) before those of open streams; nothing
// undelivered goes while logs alone fit the budget.
func TestPruneDeliveredFirst(t *testing.T) {
	S := storedSize(fixedLog(0, 8))
	type want struct {
		old, new, live, backlog int64 // items held; -1: stream removed
		report                  PruneReport
	}
	for _, tc := range []struct {
		name   string
		budget int64
		want   want
	}{
		{"under budget", 14 * S, want{3, 3, 4, 4, PruneReport{}}},
		{"part of the closed stream closed first", 12 * S, want{1, 3, 4, 4, PruneReport{DeliveredItems: 2}}},
		{"closed first stream removed", 11 * S, want{-1, 3, 4, 4, PruneReport{DeliveredItems: 3, StreamsRemoved: 1}}},
		{"then the next closed stream", 9 * S, want{-1, 1, 4, 4, PruneReport{DeliveredItems: 5, StreamsRemoved: 1}}},
		{"then delivered items of open streams", 7 * S, want{-1, -1, 3, 4, PruneReport{DeliveredItems: 7, StreamsRemoved: 2}}},
		{"all delivered items", 6 * S, want{-1, -1, 2, 4, PruneReport{DeliveredItems: 8, StreamsRemoved: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			j := openTest(t, WithClock(clock.Now), WithBudget(tc.budget), WithKeepLogs(0, 0))
			ctx := context.Background()
			n := 0
			add := func(s string, count int) {
				for range count {
					n++
					mustAppend(t, j, s, fixedLog(n, 8))
				}
			}
			add("live", 4) // created first: its delivered items go last
			clock.Advance(time.Second)
			add("backlog", 4)
			add("new", 3)
			add("old", 3)
			for s, upto := range map[string]uint64{"live": 2, "new": 3, "old": 3} {
				if err := j.Ack(ctx, s, upto); err != nil {
					t.Fatal(err)
				}
			}
			if err := j.CloseStream(ctx, "old"); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Second)
			if err := j.CloseStream(ctx, "new"); err != nil {
				t.Fatal(err)
			}
			rep, err := j.Prune(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for s, w := range map[string]int64{"old": tc.want.old, "new": tc.want.new, "live": tc.want.live, "backlog": tc.want.backlog} {
				info, ok := streamInfo1(t, j, s)
				switch {
				case w < 0 && ok:
					t.Errorf("%s: still there with %d items", s, info.Items)
				case w >= 0 && !ok:
					t.Errorf("%s: removed", s)
				case w >= 0 && info.Items != w:
					t.Errorf("%s: %d items, want %d", s, info.Items, w)
				}
			}
			for _, s := range []string{"live", "backlog"} {
				pending, _ := j.Pending(ctx, s, 0, 0)
				if want := map[string]int{"live": 2, "backlog": 4}[s]; len(pending) != want {
					t.Errorf("%s: %d pending, want %d", s, len(pending), want)
				}
			}
			w := tc.want.report
			if rep.DeliveredItems != w.DeliveredItems || rep.StreamsRemoved != w.StreamsRemoved || rep.DroppedItems != 0 || rep.OverBudget != w.OverBudget {
				t.Errorf("report %+v, want %+v", rep, w)
			}
			if rep.DeliveredBytes != w.DeliveredItems*S || rep.UsedBefore != 14*S || rep.UsedAfter != rep.UsedBefore-rep.DeliveredBytes {
				t.Errorf("report bytes %+v (item %d bytes)", rep, S)
			}
			if rep.UsedAfter > tc.budget && !rep.OverBudget {
				t.Errorf("over budget but not reported")
			}
		})
	}
}

// TestPruneDropsMiddle: undelivered log items beyond the budget are dropped
// from between the kept head and tail, runs are replaced by markers, and no
// other kind is dropped.
func TestPruneDropsMiddle(t *testing.T) {
	j := openTest(t, WithBudget(1), WithKeepLogs(2, 2))
	ctx := context.Background()
	var items []Item
	items = append(items, statusItem("running")) // seq 1
	for i := 1; i <= 10; i++ {                   // seq 2..11
		items = append(items, Item{Kind: LogKind, Payload: jsonString(fmt.Sprintf("L%d", i)), Size: 100})
	}
	items = append(items, Item{Kind: "output", Payload: json.RawMessage(`{"o":1}`)}) // seq 12
	for i := 11; i <= 15; i++ {                                                      // seq 13..17
		items = append(items, Item{Kind: LogKind, Payload: jsonString(fmt.Sprintf("L%d", i)), Size: 100})
	}
	items = append(items, Item{Kind: "complete", Payload: json.RawMessage(`{"exitCode":0}`)}) // seq 18
	mustAppend(t, j, "job", items...)
	if err := j.CloseStream(ctx, "job"); err != nil {
		t.Fatal(err)
	}
	rep, err := j.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OverBudget || rep.DroppedItems != 11 || rep.Markers != 2 {
		t.Errorf("report %+v", rep)
	}
	pending, err := j.Pending(ctx, "job", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range pending {
		switch it.Kind {
		case LogKind:
			got = append(got, fmt.Sprintf("%d:%s", it.Seq, payloadString(t, it)))
		case MarkerKind:
			var m DropMarker
			if err := json.Unmarshal(it.Payload, &m); err != nil {
				t.Fatal(err)
			}
			if m.FirstSeq != it.Seq || m.LastSeq != it.LastSeq {
				t.Errorf("marker %+v stored as %d..%d", m, it.Seq, it.LastSeq)
			}
			got = append(got, fmt.Sprintf("%d-%d:dropped %d/%d", it.Seq, it.LastSeq, m.Items, m.Bytes))
		default:
			got = append(got, fmt.Sprintf("%d:%s", it.Seq, it.Kind))
		}
	}
	want := "1:status 2:L1 3:L2 4-11:dropped 8/800 12:output 13-15:dropped 3/300 16:L14 17:L15 18:complete"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("after prune:\n got %s\nwant %s", g, want)
	}
	info, _ := streamInfo1(t, j, "job")
	if info.DroppedItems != 11 || info.DroppedBytes != 1100 || info.PendingLogItems != 4 || info.Pending != 9 {
		t.Errorf("stream %+v", info)
	}
	// The syncer delivers in order and acknowledges a marker with its LastSeq.
	if err := j.Ack(ctx, "job", pending[3].LastSeq); err != nil {
		t.Fatal(err)
	}
	next, _ := j.Pending(ctx, "job", 0, 1)
	if len(next) != 1 || next[0].Seq != 12 {
		t.Fatalf("after acking the marker: %+v", next)
	}
	// Acknowledging part of a marker's range (the syncer read the items
	// before they were dropped) splits it; the rest is still pending.
	if err := j.Ack(ctx, "job", 13); err != nil {
		t.Fatal(err)
	}
	if info, _ := streamInfo1(t, j, "job"); info.Acked != 13 {
		t.Errorf("acked %d after acking 13 of the marker at 13..15", info.Acked)
	}
	next, _ = j.Pending(ctx, "job", 0, 1)
	var m DropMarker
	if len(next) == 1 {
		json.Unmarshal(next[0].Payload, &m)
	}
	if len(next) != 1 || next[0].Kind != MarkerKind || next[0].Seq != 14 || next[0].LastSeq != 15 || m != (DropMarker{14, 15, 2, 200}) {
		t.Fatalf("pending after acking into a marker: %+v %+v", next, m)
	}
	delivered, _ := j.Read(ctx, "job", 12, 1)
	json.Unmarshal(delivered[0].Payload, &m)
	if delivered[0].Seq != 13 || delivered[0].LastSeq != 13 || m != (DropMarker{13, 13, 1, 100}) {
		t.Fatalf("delivered part of the marker: %+v %+v", delivered[0], m)
	}
	// A second prune finds nothing more to drop.
	rep, err = j.Prune(ctx)
	if err != nil || rep.DroppedItems != 0 || !rep.OverBudget {
		t.Errorf("second prune %+v %v", rep, err)
	}
}

// TestPruneExtendsMarker: pruning a growing backlog again extends the
// marker after the head instead of adding new ones; head and tail stay.
func TestPruneExtendsMarker(t *testing.T) {
	S := storedSize(fixedLog(0, 100))
	budget := 12 * S
	j := openTest(t, WithBudget(budget), WithKeepLogs(2, 2))
	ctx := context.Background()
	n := 0
	add := func(count int) {
		for range count {
			n++
			mustAppend(t, j, "job", fixedLog(n, 100))
		}
	}
	check := func(round int) {
		t.Helper()
		rep, err := j.Prune(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OverBudget || rep.UsedAfter > budget || rep.DroppedItems == 0 {
			t.Fatalf("round %d: %+v", round, rep)
		}
		items, _ := j.Pending(ctx, "job", 0, 0)
		if items[0].Seq != 1 || items[1].Seq != 2 || items[2].Kind != MarkerKind || items[2].Seq != 3 {
			t.Fatalf("round %d: head %+v", round, items[:3])
		}
		markers := 0
		for _, it := range items {
			if it.Kind == MarkerKind {
				markers++
			}
		}
		last := items[len(items)-1]
		if markers != 1 || last.Seq != uint64(n) || items[len(items)-2].Seq != uint64(n-1) {
			t.Fatalf("round %d: %d markers, tail %d", round, markers, last.Seq)
		}
		var m DropMarker
		json.Unmarshal(items[2].Payload, &m)
		if m.FirstSeq != 3 || m.LastSeq != items[3].Seq-1 || m.Items != int64(m.LastSeq-2) {
			t.Fatalf("round %d: marker %+v, next item %d", round, m, items[3].Seq)
		}
	}
	add(20)
	check(1)
	add(10)
	check(2)
	add(30)
	check(3)
}

// TestPruneLargestFirst: drops come from the streams with the most
// undelivered log data, evening them out; small streams keep everything.
func TestPruneLargestFirst(t *testing.T) {
	S := storedSize(fixedLog(0, 1000))
	budget := 40 * S // 4096-byte minimum chunk = 4 items
	j := openTest(t, WithBudget(budget), WithKeepLogs(2, 2))
	ctx := context.Background()
	for s, count := range map[string]int{"a": 40, "b": 20, "c": 10} {
		for i := range count {
			mustAppend(t, j, s, fixedLog(i, 1000))
		}
	}
	rep, err := j.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OverBudget || rep.UsedAfter > budget {
		t.Fatalf("report %+v", rep)
	}
	a, _ := streamInfo1(t, j, "a")
	b, _ := streamInfo1(t, j, "b")
	c, _ := streamInfo1(t, j, "c")
	if c.DroppedItems != 0 {
		t.Errorf("c (smallest) lost %d items", c.DroppedItems)
	}
	if a.DroppedItems < 20 || b.DroppedItems == 0 {
		t.Errorf("a dropped %d, b dropped %d", a.DroppedItems, b.DroppedItems)
	}
	if d := a.PendingLogBytes - b.PendingLogBytes; d > 5*S || d < -5*S {
		t.Errorf("a keeps %d, b %d log bytes: not evened out", a.PendingLogBytes, b.PendingLogBytes)
	}
}

// TestPruneNeverDropsOtherKinds: statuses, outputs and completions are
// never dropped, nor any log item while undelivered logs alone fit the
// budget.
func TestPruneNeverDropsOtherKinds(t *testing.T) {
	for _, tc := range []struct {
		name        string
		logs        int
		budget      func(logBytes int64) int64
		wantDropped int64
	}{
		{"logs alone within budget", 20, func(lb int64) int64 { return lb }, 0},
		{"logs alone over budget", 20, func(lb int64) int64 { return lb - 1 }, 16},
		{"only head and tail logs", 4, func(int64) int64 { return 1 }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			S := storedSize(fixedLog(0, 10))
			j := openTest(t, WithBudget(tc.budget(int64(tc.logs)*S)), WithKeepLogs(2, 2))
			ctx := context.Background()
			var statuses int
			for i := range tc.logs {
				mustAppend(t, j, "job", statusItem(fmt.Sprint(i)), statusItem("again"), fixedLog(i, 10))
				statuses += 2
			}
			mustAppend(t, j, "job", Item{Kind: "complete", Payload: json.RawMessage(`{}`)})
			rep, err := j.Prune(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.DroppedItems != tc.wantDropped || !rep.OverBudget {
				t.Errorf("report %+v, want %d dropped and over budget", rep, tc.wantDropped)
			}
			items, _ := j.Read(ctx, "job", 0, 0)
			kinds := map[string]int{}
			for _, it := range items {
				kinds[it.Kind]++
			}
			if kinds["status"] != statuses || kinds["complete"] != 1 || kinds[LogKind] != tc.logs-int(tc.wantDropped) {
				t.Errorf("kinds after prune %v", kinds)
			}
		})
	}
}

// TestAccountingExact runs many random operations and compares the
// incremental counters with a full scan again and again.
func TestAccountingExact(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	j := openTest(t, WithBudget(64<<10), WithKeepLogs(3, 3))
	ctx := context.Background()
	streams := []string{"s0", "s1", "s2", "s3", "s4"}
	gen := 0
	ops := 3000
	if testing.Short() {
		ops = 600
	}
	for op := range ops {
		idx := rng.IntN(len(streams))
		s := streams[idx]
		switch r := rng.IntN(100); {
		case r < 50:
			var items []Item
			for i := range 1 + rng.IntN(5) {
				kind := []string{LogKind, LogKind, LogKind, "status", "output"}[rng.IntN(5)]
				items = append(items, Item{Kind: kind, Payload: jsonString(strings.Repeat("x", rng.IntN(600))), Size: i * 7})
			}
			mustAppend(t, j, s, items...)
		case r < 70:
			if info, ok := streamInfo1(t, j, s); ok && info.LastSeq > 0 {
				if err := j.Ack(ctx, s, rng.Uint64N(info.LastSeq+1)); err != nil {
					t.Fatal(err)
				}
			}
		case r < 73:
			if _, ok := streamInfo1(t, j, s); ok {
				if err := j.CloseStream(ctx, s); err != nil {
					t.Fatal(err)
				}
				gen++
				streams[idx] = fmt.Sprintf("s-%d", gen) // later ops use a new one
			}
		case r < 85:
			id := fmt.Sprint(rng.IntN(20))
			if err := j.PutRecord(ctx, "run", id, strings.Repeat("r", rng.IntN(300))); err != nil {
				t.Fatal(err)
			}
		case r < 90:
			if err := j.DeleteRecord(ctx, "run", fmt.Sprint(rng.IntN(20))); err != nil {
				t.Fatal(err)
			}
		default:
			if _, err := j.Prune(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if op%25 == 0 {
			if err := verify(j); err != nil {
				t.Fatalf("after op %d: %v", op, err)
			}
		}
	}
	// Deliver everything and prune: only records and the tiny rest remain.
	ss, _ := j.Streams(ctx)
	for _, s := range ss {
		if err := j.Ack(ctx, s.Stream, s.LastSeq); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := j.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.PendingItems != 0 || u.PendingBytes != 0 || u.Used > u.Budget {
		t.Errorf("usage after delivering everything: %+v", u)
	}
}
