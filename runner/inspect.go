package runner

import (
	"context"
	"encoding/json"
	"fmt"
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

	d        *Dispatcher
	jobs     *state.Jobs
	delivery DeliveryStatus
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
	st := admin.Status{
		Version: in.Version, OrchestratorID: in.OrchestratorID, Backend: in.Backend,
		BackendReachable: in.delivery.Reachable(), LastContact: last, LastError: lastErr,
		Backlog:      admin.Backlog{Jobs: in.delivery.Backlog(), Items: u.PendingItems, Bytes: u.PendingBytes, LogLines: u.PendingLogItems},
		Journal:      admin.JournalInfo{Path: in.jobs.Journal().Path(), FileBytes: u.FileSize, UsedBytes: u.Used, Budget: u.Budget},
		ClaimsPaused: !in.delivery.Reachable() && in.delivery.Backlog() > 0,
		Running:      []admin.RunningJob{},
	}
	for _, r := range in.d.Running() {
		st.Running = append(st.Running, admin.RunningJob{JobID: r.JobID, ExecutionID: r.ExecutionID, Attempt: r.Attempt, StartedAt: r.StartedAt})
	}
	return st, nil
}

// Jobs lists the journal's jobs, newest claim first.
func (in *Inspector) Jobs(ctx context.Context, limit int) ([]admin.JobSummary, error) {
	list, err := in.jobs.List(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]admin.JobSummary, 0, len(list))
	for _, p := range list {
		if live, ok, _ := in.jobs.Get(ctx, p.JobID); ok {
			p = live
		}
		s := admin.JobSummary{
			JobID: p.JobID, ExecutionID: p.ExecutionID, Attempt: p.Attempt, State: string(p.State),
			Status: p.Status, ExitCode: p.ExitCode, ClaimedAt: p.ClaimedAt, StartedAt: p.StartedAt, FinishedAt: p.FinishedAt,
			Delivery: "delivered",
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
// dropped show as one system line.
func (in *Inspector) Logs(ctx context.Context, jobID string, after uint64, limit int) ([]admin.LogLine, bool, error) {
	p, ok, err := in.jobs.Get(ctx, jobID)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, fmt.Errorf("%w: %s", admin.ErrUnknownJob, jobID)
	}
	complete := p.State == state.Finished || p.State == state.Released
	var out []admin.LogLine
	var from uint64
	var marker *admin.LogLine // numbered by the line after the gap, as the syncer does
	for {
		items, err := in.jobs.Journal().Read(ctx, p.Stream, from, 256)
		if err != nil {
			return nil, false, err
		}
		for _, it := range items {
			lines, err := logLines(it)
			if err != nil {
				return nil, false, err
			}
			if it.Kind == journal.MarkerKind && len(lines) == 1 {
				marker = &lines[0]
				continue
			}
			if marker != nil && len(lines) > 0 && lines[0].Seq > 1 {
				marker.Seq = lines[0].Seq - 1
				lines = append([]admin.LogLine{*marker}, lines...)
				marker = nil
			}
			for _, l := range lines {
				if l.Seq > after {
					out = append(out, l)
					if limit > 0 && len(out) >= limit {
						return out, false, nil
					}
				}
			}
		}
		if len(items) < 256 {
			return out, complete, nil
		}
		from = items[len(items)-1].LastSeq
	}
}

func logLines(it journal.StoredItem) ([]admin.LogLine, error) {
	switch it.Kind {
	case state.KindLogs:
		var p state.LogsItem
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return nil, fmt.Errorf("log item %d: %w", it.Seq, err)
		}
		out := make([]admin.LogLine, len(p.Entries))
		for i, e := range p.Entries {
			out[i] = admin.LogLine{Seq: e.Seq, Stream: e.Stream, Line: e.Line, Time: e.Timestamp}
		}
		return out, nil
	case journal.MarkerKind:
		var m journal.DropMarker
		if err := json.Unmarshal(it.Payload, &m); err != nil {
			return nil, fmt.Errorf("drop marker %d: %w", it.Seq, err)
		}
		return []admin.LogLine{{Stream: "system", Time: it.AppendedAt,
			Line: fmt.Sprintf("[... %d log batches (%d bytes) dropped: the journal reached its disk budget while the backend was unreachable ...]", m.Items, m.Bytes)}}, nil
	}
	return nil, nil
}
