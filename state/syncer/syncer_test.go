package syncer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/backend/devserver/devtest"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/journal"
	"github.com/cronium/cronium-agent/state/syncer"
)

const token = "syncer-test"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// devBackend is the development backend on loopback; it can go away and
// come back on the same address, as a backend through an outage does.
type devBackend struct{ *devtest.Backend }

func startBackend(t testing.TB) *devBackend {
	t.Helper()
	return &devBackend{devtest.Start(t, "", token, devserver.WithLogger(quiet))}
}

func (b *devBackend) client(t testing.TB) *backend.Client {
	c, err := backend.NewClient(b.URL, token, "orch-syncer-test", backend.WithRetry(1, 10*time.Millisecond, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// claim submits n jobs to the backend and claims them, as an agent does.
func (b *devBackend) claim(t testing.TB, c *backend.Client, n int) []string {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		if _, err := b.Client.Submit(ctx, devserver.SubmitRequest{Script: "true"}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for len(ids) < n {
		items, err := c.ClaimJobs(ctx, n-len(ids), []string{api.TypeScript})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			ids = append(ids, it.ID)
		}
	}
	return ids
}

func openJobs(t testing.TB, path string, opts ...journal.Option) (*state.Jobs, *journal.Journal) {
	t.Helper()
	key := make([]byte, 32)
	j, err := journal.Open(path, append([]journal.Option{journal.WithSecretKey(key)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	jobs, err := state.NewJobs(j)
	if err != nil {
		t.Fatal(err)
	}
	return jobs, j
}

func item(t testing.TB, kind string, v any) journal.Item {
	t.Helper()
	it, err := state.Item(kind, v)
	if err != nil {
		t.Fatal(err)
	}
	return it
}

func logItem(t testing.TB, exec string, from, n uint64) journal.Item {
	t.Helper()
	entries := make([]api.LogEntry, 0, n)
	for s := from; s < from+n; s++ {
		entries = append(entries, api.LogEntry{Seq: s, Stream: "stdout", Line: fmt.Sprintf("line %d", s), Timestamp: time.Now().UTC()})
	}
	it, err := state.Item(state.KindLogs, state.LogsItem{ExecutionID: exec, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	return it
}

// journalRun journals a whole run of a job as the runner does: execution,
// running, the execution's start, lines batches of perBatch lines, output,
// condition, a variable, the execution's end, the completion.
func journalRun(t testing.TB, jobs *state.Jobs, id string, lines, perBatch uint64) {
	t.Helper()
	ctx := context.Background()
	jb, err := jobs.Claim(ctx, &api.Job{ID: id, OriginalType: api.TypeScript})
	if err != nil {
		t.Fatal(err)
	}
	exec := "exec_" + id + "_1"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(jb.Update(ctx, func(p *state.Progress) { p.State, p.Attempt, p.ExecutionID = state.Running, 1, exec },
		item(t, state.KindExecution, state.ExecutionItem{ExecutionID: exec, JobID: id, Attempt: 1}),
		item(t, state.KindStatus, state.StatusItem{Status: "running", At: time.Now().UTC()})))
	started := time.Now()
	must(jb.Update(ctx, func(p *state.Progress) { p.StartedAt = started.UTC() },
		item(t, state.KindExecutionUpdate, state.ExecutionUpdateItem{ExecutionID: exec, Update: api.ExecutionUpdate{
			Running: true, StartedAt: started, SetupStartedAt: started, SetupCompletedAt: started, ExecutionStartedAt: started}})))
	for s := uint64(1); s <= lines; s += perBatch {
		must(jb.Update(ctx, nil, logItem(t, exec, s, min(perBatch, lines-s+1))))
	}
	cond := true
	must(jb.Update(ctx, nil,
		item(t, state.KindOutput, state.OutputItem{ExecutionID: exec, Output: []byte(`{"ok":1}`), At: time.Now().UTC()}),
		item(t, state.KindCondition, state.ConditionItem{ExecutionID: exec, Condition: true, At: time.Now().UTC()}),
		item(t, state.KindVariable, state.VariableItem{UserID: "user_1", Key: "k-" + id, Value: "v"})))
	now := time.Now().UTC()
	end := item(t, state.KindExecutionUpdate, state.ExecutionUpdateItem{ExecutionID: exec, Update: api.ExecutionUpdate{
		ExitCode: api.Ptr(0), Output: api.Ptr("out"), ExecutionCompletedAt: now, TotalDuration: api.Ptr(now.Sub(started)),
		ExecutionMetadata: map[string]any{"executorType": "container"}}})
	must(jb.Finish(ctx, func(p *state.Progress) { p.State = state.Finished }, end, item(t, state.KindComplete, api.Completion{
		Status: "completed", Output: api.Output{Stdout: "out"}, Condition: &cond,
		Metrics: api.RunMetrics{StartTime: now, EndTime: now}, Timestamp: now,
	})))
}

func runSyncer(t testing.TB, s *syncer.Syncer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func flush(t testing.TB, s *syncer.Syncer, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// checkJob asserts what the backend holds of a job: completed once, with
// lines 1..lines in order.
func checkJob(t testing.TB, b *devBackend, id string, lines uint64) {
	t.Helper()
	ctx := context.Background()
	v, err := b.Client.Job(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != "completed" || len(v.CompletionCalls) != 1 {
		t.Fatalf("job %s: status %s with %d completing calls, want completed once", id, v.Status, len(v.CompletionCalls))
	}
	if v.Condition == nil || !*v.Condition {
		t.Errorf("job %s: condition %v, want true", id, v.Condition)
	}
	logs, err := b.Client.Logs(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(logs)) != lines {
		t.Fatalf("job %s: %d lines, want %d", id, len(logs), lines)
	}
	for i, l := range logs {
		if l.Seq != uint64(i+1) || l.Line != fmt.Sprintf("line %d", i+1) {
			t.Fatalf("job %s: line %d is seq %d %q", id, i+1, l.Seq, l.Line)
		}
	}
	execs, err := b.Client.Executions(ctx, id)
	if err != nil || len(execs) != 1 {
		t.Fatalf("job %s: executions %+v, %v", id, execs, err)
	}
	ex := execs[0]
	if _, started := ex.Time("executionStartedAt"); ex.Status != "completed" || ex.Updates != 2 || !started ||
		ex.ExitCode() == nil || *ex.ExitCode() != 0 || string(ex.ExecutionMetadata["executorType"]) != `"container"` {
		t.Errorf("job %s: execution %+v, want its start and end updates once", id, ex)
	}
}

func TestDeliversEachJobInOrderOnce(t *testing.T) {
	b := startBackend(t)
	c := b.client(t)
	ids := b.claim(t, c, 3)
	jobs, j := openJobs(t, filepath.Join(t.TempDir(), "journal.db"))
	s := syncer.New(j, c, syncer.WithLogger(quiet))
	jobs.OnAppend(s.Notify)
	runSyncer(t, s)
	for _, id := range ids {
		journalRun(t, jobs, id, 1200, 100)
	}
	flush(t, s, time.Minute)
	for _, id := range ids {
		checkJob(t, b, id, 1200)
		v, _, err := c.GetVariable(context.Background(), "user_1", "k-"+id)
		if err != nil || v != "v" {
			t.Errorf("variable of %s = %q, %v", id, v, err)
		}
	}
	u, err := j.Usage(context.Background())
	if err != nil || u.PendingItems != 0 {
		t.Fatalf("pending after flush: %+v, %v", u, err)
	}
}

func TestOutageQueuesThenDrainsAndNothingIsSentTwice(t *testing.T) {
	b := startBackend(t)
	c := b.client(t)
	ids := b.claim(t, c, 2)
	path := filepath.Join(t.TempDir(), "journal.db")
	key := make([]byte, 32)
	j, err := journal.Open(path, journal.WithSecretKey(key))
	if err != nil {
		t.Fatal(err)
	}
	jobs, _ := state.NewJobs(j)
	b.Down()
	s := syncer.New(j, c, syncer.WithLogger(quiet), syncer.WithRetry(20*time.Millisecond, 100*time.Millisecond))
	jobs.OnAppend(s.Notify)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	for _, id := range ids {
		journalRun(t, jobs, id, 3000, 500)
	}
	// Jobs go on being journaled while nothing reaches the backend.
	deadline := time.Now().Add(10 * time.Second)
	for s.Reachable() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Reachable() {
		t.Fatal("syncer still believes the backend reachable")
	}
	if _, msg := s.Contact(); msg == "" {
		t.Error("no last error while unreachable")
	}
	b.Up(t)
	flush(t, s, time.Minute)
	for _, id := range ids {
		checkJob(t, b, id, 3000)
	}
	cancel()
	<-done
	j.Close()

	// A restart with the same journal finds nothing to send.
	jobs2, j2 := openJobs(t, path)
	_ = jobs2
	s2 := syncer.New(j2, c, syncer.WithLogger(quiet))
	runSyncer(t, s2)
	flush(t, s2, 10*time.Second)
	for _, id := range ids {
		checkJob(t, b, id, 3000)
	}
}

func TestBacklogFromBeforeARestartIsDelivered(t *testing.T) {
	b := startBackend(t)
	c := b.client(t)
	ids := b.claim(t, c, 1)
	path := filepath.Join(t.TempDir(), "journal.db")
	jobs, j := openJobs(t, path)
	journalRun(t, jobs, ids[0], 700, 70)
	j.Close()
	_, j2 := openJobs(t, path)
	s := syncer.New(j2, c, syncer.WithLogger(quiet))
	runSyncer(t, s)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if v, err := b.Client.Job(context.Background(), ids[0]); err == nil && v.Done() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkJob(t, b, ids[0], 700)
}

func TestDroppedLinesAreAnnounced(t *testing.T) {
	b := startBackend(t)
	c := b.client(t)
	ids := b.claim(t, c, 1)
	jobs, j := openJobs(t, filepath.Join(t.TempDir(), "journal.db"), journal.WithBudget(16<<10), journal.WithKeepLogs(2, 2))
	journalRun(t, jobs, ids[0], 2000, 50)
	rep, err := j.Prune(context.Background())
	if err != nil || rep.DroppedItems == 0 {
		t.Fatalf("prune dropped nothing: %+v, %v", rep, err)
	}
	s := syncer.New(j, c, syncer.WithLogger(quiet))
	s.Notify(mustStream(t, jobs, ids[0]))
	runSyncer(t, s)
	flush(t, s, 30*time.Second)
	logs, err := b.Client.Logs(context.Background(), ids[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	// The head, one notice, the tail: each part without a gap.
	n := -1
	for i, l := range logs {
		if l.Stream == "system" {
			n = i
		}
	}
	if n < 1 || n > len(logs)-2 {
		t.Fatalf("no notice between head and tail in %d lines", len(logs))
	}
	head, notice, tail := logs[:n], logs[n], logs[n+1:]
	for i, l := range head {
		if l.Seq != uint64(i+1) {
			t.Fatalf("head line %d has seq %d", i, l.Seq)
		}
	}
	for i, l := range tail {
		if l.Seq != tail[0].Seq+uint64(i) {
			t.Fatalf("tail line %d has seq %d", i, l.Seq)
		}
	}
	if tail[len(tail)-1].Seq != 2000 || len(head) < 100 || len(tail) < 100 {
		t.Errorf("head %d lines, tail %d lines ending at %d", len(head), len(tail), tail[len(tail)-1].Seq)
	}
	gap := tail[0].Seq - head[len(head)-1].Seq - 1
	want := fmt.Sprintf("[... %d log lines", gap)
	if notice.Seq != tail[0].Seq-1 || !strings.HasPrefix(notice.Line, want) {
		t.Errorf("notice = %+v, want seq %d starting %q", notice, tail[0].Seq-1, want)
	}
	v, _ := b.Client.Job(context.Background(), ids[0])
	if v.Status != "completed" || len(v.CompletionCalls) != 1 {
		t.Errorf("status %s, %d completions", v.Status, len(v.CompletionCalls))
	}
}

func mustStream(t testing.TB, jobs *state.Jobs, id string) string {
	t.Helper()
	p, ok, err := jobs.Get(context.Background(), id)
	if err != nil || !ok {
		t.Fatalf("job %s not journaled: %v", id, err)
	}
	return p.Stream
}

// BenchmarkBacklogDrain measures the delivery of a 100 000-line backlog
// (one job, journaled in 500-line batches while the backend was away) to
// the development backend on loopback, through the backend client.
func BenchmarkBacklogDrain(b *testing.B) {
	const lines = 100000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		be := startBackend(b)
		c := be.client(b)
		ids := be.claim(b, c, 1)
		jobs, j := openJobs(b, filepath.Join(b.TempDir(), "journal.db"))
		journalRun(b, jobs, ids[0], lines, 500)
		s := syncer.New(j, c, syncer.WithLogger(quiet))
		b.StartTimer()
		start := time.Now()
		runSyncer(b, s)
		flush(b, s, 5*time.Minute)
		b.ReportMetric(time.Since(start).Seconds(), "s/100k-lines")
		b.StopTimer()
		checkJob(b, be, ids[0], lines)
	}
}

// Execution updates reach the row in stream order, each once; one the
// backend refuses (an unknown execution) or one that does not decode is
// skipped, and the job's completion still follows.
func TestExecutionUpdates(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	start := func(exec string) journal.Item {
		return item(t, state.KindExecutionUpdate, state.ExecutionUpdateItem{ExecutionID: exec, Update: api.ExecutionUpdate{
			Running: true, StartedAt: at, SetupStartedAt: at, SetupCompletedAt: at.Add(time.Second), ExecutionStartedAt: at.Add(time.Second)}})
	}
	end := func(exec string) journal.Item {
		return item(t, state.KindExecutionUpdate, state.ExecutionUpdateItem{ExecutionID: exec, Update: api.ExecutionUpdate{
			ExitCode: api.Ptr(3), Output: api.Ptr("out"), Error: api.Ptr("err"), ExecutionCompletedAt: at.Add(3 * time.Second),
			SetupDuration: api.Ptr(time.Second), ExecutionDuration: api.Ptr(2 * time.Second), TotalDuration: api.Ptr(3 * time.Second),
			ExecutionMetadata: map[string]any{"executorType": "container"}}})
	}
	for _, tc := range []struct {
		name    string
		items   func(exec string) []journal.Item
		updates int
		exit    *int
	}{
		{"start and end", func(e string) []journal.Item { return []journal.Item{start(e), end(e)} }, 2, api.Ptr(3)},
		{"an update of an unknown execution is refused, not sent again", func(e string) []journal.Item {
			return []journal.Item{start(e), end("exec_none"), end(e)}
		}, 2, api.Ptr(3)},
		{"an undecodable update is skipped", func(e string) []journal.Item {
			return []journal.Item{start(e), {Kind: state.KindExecutionUpdate, Payload: []byte(`{"executionId":7}`)}, end(e)}
		}, 2, api.Ptr(3)},
		{"no update: the row has only what the backend sets", func(string) []journal.Item { return nil }, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, s, jb := claimedJob(t)
			id, ctx := jb.Progress().JobID, context.Background()
			exec := "exec_" + id + "_1"
			items := append([]journal.Item{item(t, state.KindExecution, state.ExecutionItem{ExecutionID: exec, JobID: id, Attempt: 1})}, tc.items(exec)...)
			if err := jb.Update(ctx, nil, items...); err != nil {
				t.Fatal(err)
			}
			if err := jb.Finish(ctx, nil, item(t, state.KindComplete, api.Completion{Status: "failed", ExitCode: 3, Timestamp: at})); err != nil {
				t.Fatal(err)
			}
			flush(t, s, 30*time.Second)

			v, err := b.Client.Job(ctx, id)
			if err != nil || v.Status != "failed" || len(v.CompletionCalls) != 1 {
				t.Fatalf("job: %s with %d completing calls, %v", v.Status, len(v.CompletionCalls), err)
			}
			ex, err := b.Client.Execution(ctx, exec)
			if err != nil {
				t.Fatal(err)
			}
			if ex.Updates != tc.updates || ex.Status != "failed" || (ex.ExitCode() == nil) != (tc.exit == nil) || (tc.exit != nil && *ex.ExitCode() != *tc.exit) {
				t.Errorf("execution: %d updates, status %s, exit %v", ex.Updates, ex.Status, ex.ExitCode())
			}
			if tc.updates == 0 {
				return
			}
			// The times are the journaled ones, to the millisecond.
			if got, ok := ex.Time("startedAt"); !ok || !got.Equal(at.Truncate(time.Millisecond)) {
				t.Errorf("startedAt %s, want %s", got, at)
			}
			if d, ok := ex.Duration("totalDuration"); !ok || d != 3*time.Second {
				t.Errorf("totalDuration %s", d)
			}
			if string(ex.Fields["output"]) != `"out"` || string(ex.Fields["error"]) != `"err"` {
				t.Errorf("output %s error %s", ex.Fields["output"], ex.Fields["error"])
			}
			if _, ok := ex.Fields["completedAt"]; ok {
				t.Error("an update carried completedAt")
			}
		})
	}
}

// An undecodable log item is logged and skipped, the lines after it sent:
// it used to leave the batch empty, which acknowledged nothing and read
// before the page's start.
func TestUndecodableLogItemIsSkipped(t *testing.T) {
	b, s, jb := claimedJob(t)
	id, ctx := jb.Progress().JobID, context.Background()
	exec := "exec_" + id + "_1"
	// The execution is delivered first, so that the bad item starts a page.
	if err := jb.Update(ctx, nil, item(t, state.KindExecution, state.ExecutionItem{ExecutionID: exec, JobID: id, Attempt: 1})); err != nil {
		t.Fatal(err)
	}
	flush(t, s, 30*time.Second)
	bad := journal.Item{Kind: state.KindLogs, Payload: []byte(`{"lines":7}`)}
	if err := jb.Update(ctx, nil, bad, logItem(t, exec, 1, 3)); err != nil {
		t.Fatal(err)
	}
	if err := jb.Finish(ctx, nil, item(t, state.KindComplete, api.Completion{Status: "completed", Timestamp: time.Now().UTC()})); err != nil {
		t.Fatal(err)
	}
	flush(t, s, 30*time.Second)
	logs, err := b.Client.Logs(ctx, id, 0)
	if err != nil || len(logs) != 3 || logs[0].Seq != 1 {
		t.Errorf("logs %+v, %v: want lines 1..3", logs, err)
	}
	if v, err := b.Client.Job(ctx, id); err != nil || v.Status != "completed" {
		t.Errorf("job %+v, %v", v, err)
	}
}

// claimedJob claims a job of a development backend into a fresh journal
// whose syncer runs, told of every append.
func claimedJob(t *testing.T) (*devBackend, *syncer.Syncer, *state.Job) {
	t.Helper()
	b := startBackend(t)
	c := b.client(t)
	id := b.claim(t, c, 1)[0]
	jobs, j := openJobs(t, filepath.Join(t.TempDir(), "journal.db"))
	s := syncer.New(j, c, syncer.WithLogger(quiet))
	jobs.OnAppend(s.Notify)
	runSyncer(t, s)
	jb, err := jobs.Claim(context.Background(), &api.Job{ID: id, OriginalType: api.TypeScript})
	if err != nil {
		t.Fatal(err)
	}
	return b, s, jb
}

func TestSupersededJobIsDroppedOnce(t *testing.T) {
	// A backend that declares an agent lost after 300 ms without news: the
	// job claimed below (no heartbeats) goes back to the queue, and what
	// the agent journaled of it meanwhile is refused as superseded.
	b := &devBackend{devtest.Start(t, "", token, devserver.WithLogger(quiet), devserver.WithLostAfter(300*time.Millisecond))}
	c := b.client(t)
	id := b.claim(t, c, 1)[0]
	jobs, j := openJobs(t, filepath.Join(t.TempDir(), "journal.db"))
	journalRun(t, jobs, id, 20, 5)
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := b.Client.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if v.Status == "queued" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job was not given back: %s", v.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var mu sync.Mutex
	var told []string
	s := syncer.New(j, c, syncer.WithLogger(quiet), syncer.WithSuperseded(func(job string) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, job)
	}))
	jobs.OnAppend(s.Notify)
	runSyncer(t, s)
	flush(t, s, 30*time.Second)
	mu.Lock()
	if !slices.Equal(told, []string{id}) {
		t.Errorf("told of %v, want [%s] once", told, id)
	}
	mu.Unlock()
	v, err := b.Client.Job(ctx, id)
	if err != nil || v.Status != "queued" || len(v.CompletionCalls) != 0 || v.LogLines != 1 || len(v.Executions) != 0 {
		t.Errorf("job after the refused reports: %+v, %v", v, err)
	}
	info, _, err := j.Stream(ctx, mustStream(t, jobs, id))
	if err != nil || info.Pending != 0 || info.Items == 0 {
		t.Errorf("stream after the refusal: %+v, %v: want nothing pending, the items kept", info, err)
	}
}
