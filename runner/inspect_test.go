package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/admin"
	"github.com/cronium/cronium-agent/state/journal"
)

// journalLogs journals lines from..to of a job in batches, as a run does,
// with other items between them.
func journalLogs(t *testing.T, jb *state.Job, from, n, batch uint64) {
	t.Helper()
	ctx := context.Background()
	for s := from; s <= n; s += batch {
		var entries []api.LogEntry
		for q := s; q < s+batch && q <= n; q++ {
			entries = append(entries, api.LogEntry{Seq: q, Stream: "stdout", Line: fmt.Sprintf("line %d", q), Timestamp: time.Now()})
		}
		logs, err := state.Item(state.KindLogs, state.LogsItem{ExecutionID: "e", Entries: entries})
		if err != nil {
			t.Fatal(err)
		}
		v, err := state.Item(state.KindVariable, state.VariableItem{UserID: "u", Key: "k", Value: "v"})
		if err != nil {
			t.Fatal(err)
		}
		if err := jb.Update(ctx, nil, logs, v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInspectorLogsFollow reads a log as `logs -f` does, in small pages that
// resume from the last line, and checks it gets what one read of the whole
// log gets, the notice for dropped lines included.
func TestInspectorLogsFollow(t *testing.T) {
	ctx := context.Background()
	j, err := journal.Open(filepath.Join(t.TempDir(), "j.db"), journal.WithSecretKey(make([]byte, 32)), journal.WithBudget(8<<10), journal.WithKeepLogs(2, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	jobs, err := state.NewJobs(j)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := jobs.Claim(ctx, &api.Job{ID: "job_1"})
	if err != nil {
		t.Fatal(err)
	}
	journalLogs(t, jb, 1, 1000, 20)
	if rep, err := j.Prune(ctx); err != nil || rep.DroppedItems == 0 {
		t.Fatalf("nothing dropped: %+v %v", rep, err)
	}
	whole, complete, err := (&Inspector{jobs: jobs}).Logs(ctx, "job_1", 0, 0)
	if err != nil || complete {
		t.Fatalf("whole log: %v, complete %v", err, complete)
	}
	notices := 0
	for _, l := range whole {
		if l.Stream == "system" {
			notices++
		}
	}
	if notices != 1 || whole[len(whole)-1].Line != "line 1000" {
		t.Fatalf("whole log: %d lines, %d notices, last %+v", len(whole), notices, whole[len(whole)-1])
	}

	in := &Inspector{jobs: jobs}
	var followed []admin.LogLine
	var after uint64
	for page := 0; page < 1000; page++ {
		lines, _, err := in.Logs(ctx, "job_1", after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) == 0 {
			break
		}
		followed = append(followed, lines...)
		after = lines[len(lines)-1].Seq
	}
	if !reflect.DeepEqual(followed, whole) {
		t.Fatalf("followed in pages: %d lines, whole: %d", len(followed), len(whole))
	}

	// More lines come; the follower gets exactly those.
	journalLogs(t, jb, 1001, 1040, 15)
	lines, _, err := in.Logs(ctx, "job_1", after, 0)
	if err != nil || len(lines) != 40 || lines[0].Seq != 1001 || lines[39].Line != "line 1040" {
		t.Fatalf("new lines: %d, %v", len(lines), err)
	}
}
