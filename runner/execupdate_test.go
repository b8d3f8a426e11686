package runner

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/state"
)

func TestStartUpdate(t *testing.T) {
	a := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	b, _ := json.Marshal(startUpdate(a, a.Add(812*time.Millisecond)))
	want := `{"status":"running","startedAt":"2026-11-27T10:00:00.123Z","setupStartedAt":"2026-11-27T10:00:00.123Z",` +
		`"setupCompletedAt":"2026-11-27T10:00:00.935Z","executionStartedAt":"2026-11-27T10:00:00.935Z"}`
	if string(b) != want {
		t.Errorf("start update\n got %s\nwant %s", b, want)
	}
}

func TestEndUpdate(t *testing.T) {
	a := time.Date(2026, 11, 27, 10, 0, 0, 100_400_000, time.UTC) // attempt start
	s := a.Add(800 * time.Millisecond)                            // script start
	e := s.Add(2 * time.Second)                                   // exit
	c := e.Add(95*time.Millisecond + 700*time.Microsecond)        // leftovers removed
	started := state.Progress{ExecutionID: "exec_j_1", Attempt: 2, Attempts: 3, AttemptStart: a, StartedAt: s}
	for _, tc := range []struct {
		name string
		p    state.Progress
		o    outcome
		want map[string]any // nil: check only that no duration is negative
	}{
		{"container run", started,
			outcome{Result: Result{Status: "failed", ExitCode: 3, End: e, Cleaned: c}, stdout: "out\n", stderr: "err\n", executor: "container"},
			map[string]any{
				"exitCode": 3.0, "output": "out\n", "error": "err\n",
				"executionCompletedAt": "2026-11-27T10:00:02.900Z",
				"cleanupStartedAt":     "2026-11-27T10:00:02.900Z", "cleanupCompletedAt": "2026-11-27T10:00:02.996Z",
				"setupDuration": 800.0, "executionDuration": 2000.0, "cleanupDuration": 96.0, "totalDuration": 2896.0,
				"executionMetadata": map[string]any{"executorType": "container", "attempt": 2.0, "attempts": 3.0, "outcome": "failed",
					"phases": map[string]any{"setupMs": 800.0, "executionMs": 2000.0, "cleanupMs": 96.0, "totalMs": 2896.0}},
			}},
		{"timed out, adopted after a restart", started,
			outcome{Result: Result{Status: "timeout", ExitCode: -1, End: e, Cleaned: c}, executor: "container", adopted: true},
			map[string]any{
				"exitCode": -1.0, "output": "",
				"executionCompletedAt": "2026-11-27T10:00:02.900Z",
				"cleanupStartedAt":     "2026-11-27T10:00:02.900Z", "cleanupCompletedAt": "2026-11-27T10:00:02.996Z",
				"setupDuration": 800.0, "executionDuration": 2000.0, "cleanupDuration": 96.0, "totalDuration": 2896.0,
				"executionMetadata": map[string]any{"executorType": "container", "attempt": 2.0, "attempts": 3.0, "outcome": "timeout", "adopted": true,
					"phases": map[string]any{"setupMs": 800.0, "executionMs": 2000.0, "cleanupMs": 96.0, "totalMs": 2896.0}},
			}},
		{"http request: no cleanup phase", started,
			outcome{Result: Result{Status: "completed", ExitCode: 0, End: e}, stdout: `{"pong":true}`, executor: "http"},
			map[string]any{
				"exitCode": 0.0, "output": `{"pong":true}`, "executionCompletedAt": "2026-11-27T10:00:02.900Z",
				"setupDuration": 800.0, "executionDuration": 2000.0, "totalDuration": 2800.0,
				"executionMetadata": map[string]any{"executorType": "http", "attempt": 2.0, "attempts": 3.0, "outcome": "completed",
					"phases": map[string]any{"setupMs": 800.0, "executionMs": 2000.0, "totalMs": 2800.0}},
			}},
		{"failed before the script started: setup only", state.Progress{ExecutionID: "exec_j_1", Attempt: 1, Attempts: 1, AttemptStart: a},
			outcome{Result: Result{Status: "failed", ExitCode: 1, NeverRan: true, Err: "image missing", End: s}, stderr: "partial", executor: "container"},
			map[string]any{
				"exitCode": 1.0, "output": "", "error": "partial\nimage missing",
				"setupStartedAt": "2026-11-27T10:00:00.100Z", "setupCompletedAt": "2026-11-27T10:00:00.900Z",
				"setupDuration": 800.0, "totalDuration": 800.0,
				"executionMetadata": map[string]any{"executorType": "container", "attempt": 1.0, "attempts": 1.0, "outcome": "failed",
					"phases": map[string]any{"setupMs": 800.0, "totalMs": 800.0}},
			}},
		{"clock stepped back: no negative duration", state.Progress{ExecutionID: "exec_j_1", Attempt: 1, Attempts: 1, AttemptStart: a, StartedAt: s},
			outcome{Result: Result{Status: "completed", ExitCode: 0, End: s.Add(-time.Second), Cleaned: s.Add(-2 * time.Second)}, executor: "container"},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(endUpdate(tc.p, tc.o))
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"completedAt", "status"} {
				if _, ok := got[k]; ok {
					t.Errorf("end update carries %q: %s", k, b)
				}
			}
			if tc.want == nil {
				for _, k := range []string{"setupDuration", "executionDuration", "cleanupDuration", "totalDuration"} {
					if v, _ := got[k].(float64); v < 0 {
						t.Errorf("%s = %v", k, v)
					}
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("end update\n got %s\nwant %v", b, tc.want)
			}
		})
	}
}

func TestEndItems(t *testing.T) {
	o := outcome{Result: Result{Status: "completed", End: time.Now()}, executor: "container"}
	for _, tc := range []struct {
		name string
		p    state.Progress
		want int
	}{
		{"no execution (refused before any attempt)", state.Progress{}, 0},
		{"end already journaled (before a retry)", state.Progress{ExecutionID: "exec_j_1", ExecutionEnded: true}, 0},
		{"execution to close", state.Progress{ExecutionID: "exec_j_1"}, 1},
	} {
		items, err := endItems(tc.p, o)
		if err != nil || len(items) != tc.want {
			t.Errorf("%s: %d items, %v; want %d", tc.name, len(items), err, tc.want)
			continue
		}
		for _, it := range items {
			var u state.ExecutionUpdateItem
			if it.Kind != state.KindExecutionUpdate || json.Unmarshal(it.Payload, &u) != nil || u.ExecutionID != tc.p.ExecutionID || u.Update.ExitCode == nil {
				t.Errorf("%s: item %s %s", tc.name, it.Kind, it.Payload)
			}
		}
	}
}
