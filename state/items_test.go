package state

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/state/journal"
)

func TestLogsItemRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name    string
		entries []api.LogEntry
	}{
		{"empty", []api.LogEntry{}},
		{"consecutive", []api.LogEntry{
			{Seq: 7, Stream: "stdout", Line: "hello \"quoted\" \x00 é", Timestamp: at},
			{Seq: 8, Stream: "stderr", Line: "", Timestamp: at.Add(time.Millisecond)},
			{Seq: 9, Stream: "system", Line: "attempt 2 of 3", Timestamp: at.Add(-time.Second)},
			{Seq: 10, Stream: "stdout", Line: "back\\slash <tag> & \t tab \xff bad utf8 \u2028", Timestamp: at},
		}},
		{"gaps", []api.LogEntry{
			{Seq: 1, Stream: "stdout", Line: "a", Timestamp: at},
			{Seq: 5, Stream: "stdout", Line: "b", Timestamp: at},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(LogsItem{ExecutionID: "exec_1", Entries: tc.entries})
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(raw) {
				t.Fatalf("not JSON: %s", raw)
			}
			var got LogsItem
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			// JSON has no invalid UTF-8: it comes back as U+FFFD, as
			// encoding/json would write it.
			want := make([]api.LogEntry, len(tc.entries))
			for i, e := range tc.entries {
				e.Line = strings.ToValidUTF8(e.Line, "\uFFFD")
				want[i] = e
			}
			if got.ExecutionID != "exec_1" || !reflect.DeepEqual(got.Entries, want) {
				t.Errorf("round trip of %s:\n got %+v\nwant %+v", raw, got.Entries, want)
			}
		})
	}
}

func TestLogsItemRefuses(t *testing.T) {
	if _, err := json.Marshal(LogsItem{Entries: []api.LogEntry{{Seq: 1, Stream: "stdin"}}}); err == nil || !strings.Contains(err.Error(), "unknown stream") {
		t.Errorf("unknown stream: %v", err)
	}
	for _, raw := range []string{
		`{"firstSeq":1,"streams":"oo","times":[0],"lines":["a"]}`,
		`{"firstSeq":1,"streams":"x","times":[0],"lines":["a"]}`,
	} {
		var l LogsItem
		if err := json.Unmarshal([]byte(raw), &l); err == nil {
			t.Errorf("%s accepted", raw)
		}
	}
}

func TestLogReader(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	logs := func(seq uint64, exec string, first uint64, n int) journal.StoredItem {
		es := make([]api.LogEntry, n)
		for i := range es {
			es[i] = api.LogEntry{Seq: first + uint64(i), Stream: "stdout", Line: fmt.Sprint("line ", first+uint64(i)), Timestamp: at}
		}
		raw, err := json.Marshal(LogsItem{ExecutionID: exec, Entries: es})
		if err != nil {
			t.Fatal(err)
		}
		return journal.StoredItem{Seq: seq, LastSeq: seq, Kind: KindLogs, Payload: raw, AppendedAt: at}
	}
	marker := func(seq uint64, items, bytes int64) journal.StoredItem {
		raw, _ := json.Marshal(journal.DropMarker{FirstSeq: seq, LastSeq: seq + uint64(items) - 1, Items: items, Bytes: bytes})
		return journal.StoredItem{Seq: seq, LastSeq: seq + uint64(items) - 1, Kind: journal.MarkerKind, Payload: raw, AppendedAt: at}
	}
	other := func(seq uint64) journal.StoredItem {
		return journal.StoredItem{Seq: seq, LastSeq: seq, Kind: KindOutput, Payload: []byte(`{"executionId":"e1","output":1}`), AppendedAt: at}
	}
	bad := func(seq uint64, kind string) journal.StoredItem {
		return journal.StoredItem{Seq: seq, LastSeq: seq, Kind: kind, Payload: []byte(`{"lines":7,"items":"x"}`), AppendedAt: at}
	}
	for _, tc := range []struct {
		name  string
		pages [][]journal.StoredItem
		// want is per item read, in order: its lines ("seq exec text",
		// a notice cut before " dropped"), or "error".
		want [][]string
		// held is the markers left waiting for a line at the end.
		held string
	}{
		{"no marker", [][]journal.StoredItem{{logs(1, "e1", 1, 2), other(2), logs(3, "e1", 3, 1)}},
			[][]string{{"1 e1 line 1", "2 e1 line 2"}, nil, {"3 e1 line 3"}}, ""},
		{"marker at the start of a page", [][]journal.StoredItem{{marker(1, 3, 30), logs(4, "e1", 10, 1)}},
			// No line before the gap: it can only count the batches.
			[][]string{{"9 e1 [... 3 log batches (30 bytes)"}, {"10 e1 line 10"}}, ""},
		{"marker in the middle of a page", [][]journal.StoredItem{{logs(1, "e1", 1, 2), marker(2, 2, 40), logs(4, "e1", 6, 1)}},
			[][]string{{"1 e1 line 1", "2 e1 line 2"}, {"5 e1 [... 3 log lines (40 bytes)"}, {"6 e1 line 6"}}, ""},
		{"marker at the end of a page", [][]journal.StoredItem{{logs(1, "e1", 1, 2), marker(2, 2, 40)}, {logs(4, "e1", 6, 1)}},
			// The line after the gap is on the next page: the notice
			// comes with it.
			[][]string{{"1 e1 line 1", "2 e1 line 2"}, nil, {"5 e1 [... 3 log lines (40 bytes)", "6 e1 line 6"}}, ""},
		{"marker last in the stream", [][]journal.StoredItem{{logs(1, "e1", 1, 2), marker(2, 2, 40)}},
			[][]string{{"1 e1 line 1", "2 e1 line 2"}, nil}, "2 items, 40 bytes"},
		{"two markers in a row make one notice", [][]journal.StoredItem{{logs(1, "e1", 1, 1), marker(2, 2, 40), marker(4, 1, 10), logs(5, "e2", 9, 1)}},
			// One seq for both gaps; the execution is the line's after it.
			[][]string{{"1 e1 line 1"}, {"8 e2 [... 7 log lines (50 bytes)"}, nil, {"9 e2 line 9"}}, ""},
		{"two markers around an item of another kind", [][]journal.StoredItem{{logs(1, "e1", 1, 1), marker(2, 2, 40), other(4), marker(5, 1, 10), logs(6, "e1", 9, 1)}},
			[][]string{{"1 e1 line 1"}, {"8 e1 [... 7 log lines (50 bytes)"}, nil, nil, {"9 e1 line 9"}}, ""},
		{"a log item without lines does not number a marker", [][]journal.StoredItem{{logs(1, "e1", 1, 1), marker(2, 1, 5), logs(3, "e1", 0, 0), logs(4, "e1", 4, 1)}},
			[][]string{{"1 e1 line 1"}, {"3 e1 [... 2 log lines (5 bytes)"}, nil, {"4 e1 line 4"}}, ""},
		{"an undecodable log item is an error and skipped", [][]journal.StoredItem{{logs(1, "e1", 1, 1), bad(2, KindLogs), logs(3, "e1", 2, 1)}},
			[][]string{{"1 e1 line 1"}, {"error"}, {"2 e1 line 2"}}, ""},
		{"an undecodable marker is an error and skipped", [][]journal.StoredItem{{logs(1, "e1", 1, 1), bad(2, journal.MarkerKind), logs(3, "e1", 5, 1)}},
			[][]string{{"1 e1 line 1"}, {"error"}, {"5 e1 line 5"}}, ""},
		{"an undecodable log item after a marker leaves it to the next", [][]journal.StoredItem{{logs(1, "e1", 1, 1), marker(2, 1, 5), bad(3, KindLogs), logs(4, "e1", 7, 1)}},
			[][]string{{"1 e1 line 1"}, nil, {"error"}, {"6 e1 [... 5 log lines (5 bytes)", "7 e1 line 7"}}, ""},
	} {
		// Paged as the syncer reads (a marker numbered from the rest of
		// its page), and one item at a time as the inspector does (held
		// until the next log item): the same lines, sometimes later.
		for _, oneByOne := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/one by one %v", tc.name, oneByOne), func(t *testing.T) {
				var r LogReader
				var got [][]string
				for _, page := range tc.pages {
					for k := range page {
						rest := page[k:]
						if oneByOne {
							rest = page[k : k+1]
						}
						p, err := r.Read(rest)
						if err != nil {
							got = append(got, []string{"error"})
							continue
						}
						var lines []string
						for _, e := range p.Entries {
							text, _, _ := strings.Cut(e.Line, " dropped")
							lines = append(lines, fmt.Sprintf("%d %s %s", e.Seq, p.ExecutionID, text))
						}
						got = append(got, lines)
					}
				}
				want := tc.want
				if oneByOne {
					want = heldUntilLines(tc.want)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("lines:\n got %q\nwant %q", got, want)
				}
				held := ""
				if m, ok := r.Pending(); ok {
					held = fmt.Sprintf("%d items, %d bytes", m.Items, m.Bytes)
				}
				if held != tc.held {
					t.Errorf("held %q, want %q", held, tc.held)
				}
			})
		}
	}
}

// heldUntilLines moves each notice of want to the next item that has
// lines: where a reader without the rest of the page yields it.
func heldUntilLines(want [][]string) [][]string {
	out := make([][]string, len(want))
	var notice []string
	for i, lines := range want {
		if len(lines) == 1 && strings.Contains(lines[0], "[... ") {
			notice = lines
			continue
		}
		if len(lines) > 0 && lines[0] != "error" {
			out[i] = append(append([]string(nil), notice...), lines...)
			notice = nil
			continue
		}
		out[i] = lines
	}
	return out
}

// TestLogReaderReadAgain: the inspector reads a marker again (its cursor
// stays before it until a line numbers it); the marker counts once.
func TestLogReaderReadAgain(t *testing.T) {
	raw, _ := json.Marshal(journal.DropMarker{FirstSeq: 2, LastSeq: 3, Items: 2, Bytes: 40})
	m := journal.StoredItem{Seq: 2, LastSeq: 3, Kind: journal.MarkerKind, Payload: raw}
	var r LogReader
	for range 3 {
		if p, err := r.Read([]journal.StoredItem{m}); err != nil || len(p.Entries) != 0 {
			t.Fatalf("marker read: %+v, %v", p, err)
		}
	}
	if h, ok := r.Pending(); !ok || h.Items != 2 || h.Bytes != 40 {
		t.Errorf("held %+v %v, want the marker once", h, ok)
	}
}
