package state

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend"
)

func TestLogsItemRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name    string
		entries []backend.LogEntry
	}{
		{"empty", []backend.LogEntry{}},
		{"consecutive", []backend.LogEntry{
			{Seq: 7, Stream: "stdout", Line: "hello \"quoted\" \x00 é", Timestamp: at},
			{Seq: 8, Stream: "stderr", Line: "", Timestamp: at.Add(time.Millisecond)},
			{Seq: 9, Stream: "system", Line: "attempt 2 of 3", Timestamp: at.Add(-time.Second)},
			{Seq: 10, Stream: "stdout", Line: "back\\slash <tag> & \t tab \xff bad utf8 \u2028", Timestamp: at},
		}},
		{"gaps", []backend.LogEntry{
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
			want := make([]backend.LogEntry, len(tc.entries))
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
	if _, err := json.Marshal(LogsItem{Entries: []backend.LogEntry{{Seq: 1, Stream: "stdin"}}}); err == nil || !strings.Contains(err.Error(), "unknown stream") {
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
