package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/admin"
	"github.com/cronium/cronium-agent/state/journal"
)

// DeliveryStatus is the syncer as inspection sees it.
type DeliveryStatus interface {
	Delivery
	Contact() (last time.Time, lastErr string)
}

// Inspector answers the admin socket from the dispatcher and the journal.
type Inspector struct {
	Version, OrchestratorID, Backend string
	// Identity says what the orchestrator id is bound to.
	Identity string

	d        *Dispatcher
	jobs     *state.Jobs
	delivery DeliveryStatus

	mu      sync.Mutex
	cursors map[string]logCursor // per job being followed
}

// NewInspector returns the admin socket's source for an agent.
func NewInspector(d *Dispatcher, jobs *state.Jobs, delivery DeliveryStatus) *Inspector {
	return &Inspector{d: d, jobs: jobs, delivery: delivery}
}

// Status is the agent at a glance.
func (in *Inspector) Status(ctx context.Context) (admin.Status, error) {
	u, err := in.jobs.Journal().Usage(ctx)
	if err != nil {
		return admin.Status{}, err
	}
	last, lastErr := in.delivery.Contact()
	if a := in.d.LastAnswer(); a.After(last) {
		// Claims and heartbeats answered count as contact too: an agent
		// that has delivered nothing yet has still reached its backend.
		last = a
	}
	st := admin.Status{
		Version: in.Version, OrchestratorID: in.OrchestratorID, Identity: in.Identity, Backend: in.Backend,
		BackendReachable: in.delivery.Reachable(), LastContact: last, LastError: lastErr,
		Backlog:       admin.Backlog{Jobs: in.delivery.Backlog(), Items: u.PendingItems, Bytes: u.PendingBytes, LogLines: u.PendingLogItems},
		Journal:       admin.JournalInfo{Path: in.jobs.Journal().Path(), FileBytes: u.FileSize, UsedBytes: u.Used, Budget: u.Budget},
		ClaimsPaused:  !in.delivery.Reachable() && in.delivery.Backlog() > 0,
		ClaimsRefused: in.d.Refused(),
		Running:       []admin.RunningJob{},
	}
	for _, r := range in.d.Running() {
		st.Running = append(st.Running, admin.RunningJob{JobID: r.JobID, ExecutionID: r.ExecutionID, Attempt: r.Attempt, StartedAt: r.StartedAt})
	}
	return st, nil
}

// HandOver implements admin.HandOverSource.
func (in *Inspector) HandOver(_ context.Context, until time.Time) (admin.HandOver, error) {
	return admin.HandOver{Until: until, Running: in.d.ArmHandOver(until)}, nil
}

// Jobs lists the journal's jobs, newest claim first.
func (in *Inspector) Jobs(ctx context.Context, limit int) ([]admin.JobSummary, error) {
	list, err := in.jobs.List(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]admin.JobSummary, 0, len(list))
	for _, p := range list {
		if live := in.jobs.Live(p.JobID); live != nil {
			p = live.Progress()
		}
		s := admin.JobSummary{
			JobID: p.JobID, ExecutionID: p.ExecutionID, Attempt: p.Attempt, State: string(p.State),
			Status: p.Status, ExitCode: p.ExitCode, ClaimedAt: p.ClaimedAt, StartedAt: p.StartedAt, FinishedAt: p.FinishedAt,
			Delivery: "delivered",
		}
		if u := p.Usage; u != nil {
			s.Measured, s.CPUSeconds, s.PeakMemoryBytes = true, u.CPUSeconds, u.PeakMemoryBytes
		}
		info, found, err := in.jobs.Journal().Stream(ctx, p.Stream)
		if err != nil {
			return nil, err
		}
		if found && info.Pending > 0 {
			s.Delivery, s.PendingItems = "pending", info.Pending
		}
		out = append(out, s)
	}
	return out, nil
}

// Logs returns a job's journaled lines after seq `after`. Lines the journal
// pruned after delivering them are no longer there; lines its budget
// dropped show as one system line, as the backend gets them.
func (in *Inspector) Logs(ctx context.Context, jobID string, after uint64, limit int) ([]admin.LogLine, bool, error) {
	p, ok, err := in.jobs.Get(ctx, jobID)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, fmt.Errorf("%w: %s", admin.ErrUnknownJob, jobID)
	}
	complete := p.State.Ended()
	// A follower asks again and again for what came after its last line:
	// it resumes reading at the item where the last call stopped instead
	// of decoding the whole stream each time.
	c := in.cursor(jobID, after)
	from := c.item
	var out []admin.LogLine
	for {
		items, err := in.jobs.Journal().ReadPage(ctx, p.Stream, from, journal.Page{Items: 256, Bytes: 8 << 20})
		if err != nil {
			return nil, false, err
		}
		for _, it := range items {
			lines, r, err := c.lines(it)
			if err != nil {
				return nil, false, err
			}
			var taken int
			for _, l := range lines {
				if l.Seq > after {
					out = append(out, l)
				}
				taken++
				if limit > 0 && len(out) >= limit {
					break
				}
			}
			if taken < len(lines) || (limit > 0 && len(out) >= limit) {
				if taken == len(lines) {
					c.done(it, lines, r)
				}
				in.keep(jobID, c, out, after)
				return out, false, nil
			}
			c.done(it, lines, r)
		}
		if len(items) > 0 {
			from = items[len(items)-1].LastSeq
		}
		if len(items) == 0 { // a short page may be cut by its byte bound
			if complete {
				in.forget(jobID)
			} else {
				in.keep(jobID, c, out, after)
			}
			return out, complete, nil
		}
	}
}

// logCursor is where reading a job's stream got to: every line of the items
// up to item has a seq up to upTo. A drop marker waits in r for the line
// after the gap, which numbers it; until then item stays before the marker,
// so that a cursor read afresh meets it again.
type logCursor struct {
	item, upTo uint64
	r          state.LogReader
}

// cursor returns where to start reading for lines after `after`.
func (in *Inspector) cursor(jobID string, after uint64) logCursor {
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.cursors[jobID]; ok && c.upTo <= after {
		return c
	}
	return logCursor{}
}

// keep remembers c for the next call, which asks for lines after the last
// one returned.
func (in *Inspector) keep(jobID string, c logCursor, out []admin.LogLine, after uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cursors == nil {
		in.cursors = map[string]logCursor{}
	}
	if len(out) > 0 {
		after = out[len(out)-1].Seq
	}
	if c.upTo <= after {
		in.cursors[jobID] = c
	}
}

func (in *Inspector) forget(jobID string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.cursors, jobID)
}

// lines decodes one item into log lines, and returns the reader past it
// for done: an item whose lines are not all handed out is read again.
// A drop marker yields its notice with the next log item.
func (c *logCursor) lines(it journal.StoredItem) ([]admin.LogLine, state.LogReader, error) {
	r := c.r
	p, err := r.Read([]journal.StoredItem{it})
	if err != nil {
		return nil, c.r, err
	}
	out := make([]admin.LogLine, 0, len(p.Entries))
	for _, e := range p.Entries {
		out = append(out, admin.LogLine{Seq: e.Seq, Stream: e.Stream, Line: e.Line, Time: e.Timestamp})
	}
	return out, r, nil
}

// done records that every line of it was handed out (or skipped), r being
// the reader past it.
func (c *logCursor) done(it journal.StoredItem, lines []admin.LogLine, r state.LogReader) {
	c.r = r
	if _, waiting := r.Pending(); !waiting {
		c.item = it.LastSeq
	}
	if n := len(lines); n > 0 {
		c.upTo = lines[n-1].Seq
	}
}
