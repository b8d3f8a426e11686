package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/state/journal"
)

// Record kinds of the jobs journal.
const (
	recordJob      = "job"      // the claimed job, sealed: written once
	recordProgress = "progress" // how far the job got: rewritten with every fact
)

// JobState is where a claimed job is.
type JobState string

// Job states.
const (
	Claimed  JobState = "claimed"  // journaled, no attempt started yet
	Running  JobState = "running"  // an attempt is under way (or waits to retry)
	Finished JobState = "finished" // the completing item is journaled
	Released JobState = "released" // given back to the queue
	// Superseded: the backend took the job from this agent (declared lost
	// while it ran it) and gave it to another or ended it; the run was
	// stopped and nothing more of it is reported. Its outcome stays here.
	Superseded JobState = "superseded"
)

// Ended reports whether the job needs nothing more from this agent.
func (s JobState) Ended() bool { return s == Finished || s == Released || s == Superseded }

// Progress is how far a job got. It is rewritten in the same transaction as
// every item the job appends, so after a crash it says exactly what the
// stream holds.
type Progress struct {
	JobID     string    `json:"jobId"`
	Stream    string    `json:"stream"`
	State     JobState  `json:"state"`
	ClaimedAt time.Time `json:"claimedAt"`
	Attempts  int       `json:"attempts"`
	Attempt   int       `json:"attempt"`
	// AttemptStart is when the current attempt began: its execution id and
	// its runtime token derive from it.
	AttemptStart time.Time `json:"attemptStart,omitzero"`
	RunID        string    `json:"runId,omitempty"`
	ExecutionID  string    `json:"executionId,omitempty"`
	// StartedAt is when the current attempt's script was started: its
	// timeout counts from it. Zero: not started.
	StartedAt time.Time `json:"startedAt,omitzero"`
	// Exit is the current attempt's exit as its executor saw it, journaled
	// before the executor removes what would tell it again (a container's
	// task): a restart in between reports it instead of a lost run.
	Exit *AttemptExit `json:"exit,omitempty"`
	// ExecutionEnded: the current execution's end update is journaled (at
	// most one per execution; set with the item, cleared by a new attempt).
	ExecutionEnded bool `json:"executionEnded,omitempty"`
	// LogSeq is the last live-log seq used, across attempts.
	LogSeq uint64 `json:"logSeq"`
	// Entries counts the current run's output entries already journaled;
	// ErrEntries counts those of stderr among them. A run adopted after a
	// restart skips what is journaled stream by stream: an executor whose
	// two streams are read apart (SSH) may hand them over in another
	// interleaving the second time. (Journals written before ErrEntries
	// existed have it zero with stderr entries counted: such a run is
	// skipped by the total, as then.)
	Entries    uint64 `json:"entries"`
	ErrEntries uint64 `json:"errEntries,omitempty"`
	// Executions are the current attempt's executions beside ExecutionID
	// (the other servers of a multi-server job): the runtime API serves
	// them too.
	Executions []string `json:"executions,omitempty"`
	// SourceEntries counts, for a run with several sources of output (the
	// servers of a multi-server job, by index), the entries of each
	// source's stdout and stderr journaled: its sources are read apart.
	SourceEntries [][2]uint64 `json:"sourceEntries,omitempty"`
	// StreamCounts: ErrEntries is kept (journals made since it exists).
	StreamCounts bool            `json:"streamCounts,omitempty"`
	Output       json.RawMessage `json:"output,omitempty"`
	Condition    *bool           `json:"condition,omitempty"`

	Status     string    `json:"status,omitempty"`
	ExitCode   *int      `json:"exitCode,omitempty"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Usage is what the last attempt's run consumed, set with the job's
	// end; nil when its executor does not measure it, the run never
	// started, or the record predates it.
	Usage *Usage `json:"usage,omitempty"`
}

// AttemptExit is how an attempt's run ended, as its executor reported it.
type AttemptExit struct {
	Status string    `json:"status"`
	Code   int       `json:"code"`
	At     time.Time `json:"at"`
}

// jobRecord holds the claimed job as the backend sent it, decoded, sealed
// with the agent's key: it carries the script and environment values.
type jobRecord struct {
	ID        string    `json:"id"`
	Sealed    []byte    `json:"sealed"`
	ClaimedAt time.Time `json:"claimedAt"`
}

// Jobs is the journal of the jobs this agent claimed: per job a sealed copy
// of the job, its progress, and an outbox stream the syncer delivers to the
// backend. It is safe for concurrent use.
type Jobs struct {
	j      *journal.Journal
	now    func() time.Time
	notify func(stream string)

	mu   sync.Mutex
	live map[string]*Job
}

// ErrNoKey: the jobs journal seals jobs and needs a secret key.
var ErrNoKey = errors.New("state: the jobs journal needs a secret key (journal.WithSecretKey)")

// NewJobs keeps jobs in j, which must have a secret key.
func NewJobs(j *journal.Journal) (*Jobs, error) {
	if !j.CanSeal() {
		return nil, ErrNoKey
	}
	return &Jobs{j: j, now: time.Now, notify: func(string) {}, live: map[string]*Job{}}, nil
}

// Journal is the underlying journal.
func (s *Jobs) Journal() *journal.Journal { return s.j }

// OnAppend sets the function told of every stream that got items (the
// syncer's wake-up). Set it before use.
func (s *Jobs) OnAppend(fn func(stream string)) { s.notify = fn }

// Claim journals a claimed job, before anything acts on it.
func (s *Jobs) Claim(ctx context.Context, job *api.Job) (*Job, error) {
	raw, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("journal job %s: %w", job.ID, err)
	}
	sealed, err := s.j.Seal(raw)
	if err != nil {
		return nil, fmt.Errorf("journal job %s: %w", job.ID, err)
	}
	now := s.now().UTC()
	p := Progress{JobID: job.ID, Stream: streamName(job.ID, now), State: Claimed, ClaimedAt: now}
	rec := jobRecord{ID: job.ID, Sealed: sealed, ClaimedAt: now}
	if err := s.j.Apply(ctx, journal.OpPut(recordJob, job.ID, rec), journal.OpPut(recordProgress, job.ID, p)); err != nil {
		return nil, fmt.Errorf("journal job %s: %w", job.ID, err)
	}
	return s.track(job, p), nil
}

// streamName is unique per claim: a job released and claimed again gets a
// new stream (a closed stream takes no more items).
func streamName(jobID string, at time.Time) string {
	return "job/" + jobID + "/" + strconv.FormatInt(at.UnixNano(), 36)
}

func (s *Jobs) track(job *api.Job, p Progress) *Job {
	jb := &Job{s: s, job: job, p: p}
	s.mu.Lock()
	s.live[job.ID] = jb
	s.mu.Unlock()
	return jb
}

// Forget drops the in-memory handle of a job that ended; its records stay.
func (s *Jobs) Forget(jobID string) {
	s.mu.Lock()
	delete(s.live, jobID)
	s.mu.Unlock()
}

// FailUnreadable journals the completing call of a job that cannot be run
// (its payload did not decode): a stream of its own with one fail item.
func (s *Jobs) FailUnreadable(ctx context.Context, jobID, msg string, exitCode int) error {
	it, err := Item(KindFail, FailItem{Error: msg, ExitCode: exitCode})
	if err != nil {
		return err
	}
	now := s.now().UTC()
	code := exitCode
	p := Progress{JobID: jobID, Stream: streamName(jobID, now), State: Finished, ClaimedAt: now,
		Status: "failed", ExitCode: &code, FinishedAt: now}
	err = s.j.Apply(ctx, journal.OpPut(recordProgress, jobID, p), journal.OpAppend(p.Stream, it), journal.OpClose(p.Stream))
	if err != nil {
		return fmt.Errorf("journal failure of job %s: %w", jobID, err)
	}
	s.notify(p.Stream)
	return nil
}

// Unfinished returns the jobs journaled as claimed or running, oldest claim
// first, with their jobs unsealed: what a restart must recover.
func (s *Jobs) Unfinished(ctx context.Context) ([]*Job, error) {
	var out []*Job
	err := s.j.ListRecords(ctx, recordProgress, func(id string, raw json.RawMessage) error {
		var p Progress
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("progress of job %s: %w", id, err)
		}
		if p.State != Claimed && p.State != Running {
			return nil
		}
		job, err := s.loadJob(ctx, id)
		if err != nil {
			return err
		}
		out = append(out, &Job{s: s, job: job, p: p})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(a, b int) bool { return out[a].p.ClaimedAt.Before(out[b].p.ClaimedAt) })
	for _, jb := range out {
		s.mu.Lock()
		s.live[jb.job.ID] = jb
		s.mu.Unlock()
	}
	return out, nil
}

func (s *Jobs) loadJob(ctx context.Context, id string) (*api.Job, error) {
	var rec jobRecord
	ok, err := s.j.GetRecord(ctx, recordJob, id, &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("job %s: journaled progress without its job record", id)
	}
	raw, err := s.j.Unseal(rec.Sealed)
	if err != nil {
		return nil, fmt.Errorf("job %s: unseal: %w", id, err)
	}
	var job api.Job
	if err := json.Unmarshal(raw, &job); err != nil {
		return nil, fmt.Errorf("job %s: decode: %w", id, err)
	}
	return &job, nil
}

// Get returns a job's journaled progress.
func (s *Jobs) Get(ctx context.Context, jobID string) (Progress, bool, error) {
	s.mu.Lock()
	jb := s.live[jobID]
	s.mu.Unlock()
	if jb != nil {
		return jb.Progress(), true, nil
	}
	var p Progress
	ok, err := s.j.GetRecord(ctx, recordProgress, jobID, &p)
	return p, ok, err
}

// MarkSuperseded records that the backend took a job this agent ended
// (its reports refused: the agent was declared lost meanwhile), when it is
// not being run: its progress says superseded from then on. False when
// the job is unknown, live (its runner ends it so) or not ended.
func (s *Jobs) MarkSuperseded(ctx context.Context, jobID string) (bool, error) {
	s.mu.Lock()
	live := s.live[jobID] != nil
	s.mu.Unlock()
	if live {
		return false, nil
	}
	var p Progress
	ok, err := s.j.GetRecord(ctx, recordProgress, jobID, &p)
	if err != nil || !ok || (p.State != Finished && p.State != Released) {
		return false, err
	}
	p.State = Superseded
	if err := s.j.PutRecord(ctx, recordProgress, jobID, p); err != nil {
		return false, fmt.Errorf("journal job %s: %w", jobID, err)
	}
	return true, nil
}

// List returns the journaled jobs, the most recently claimed first, at
// most limit (all when limit <= 0).
func (s *Jobs) List(ctx context.Context, limit int) ([]Progress, error) {
	var out []Progress
	err := s.j.ListRecords(ctx, recordProgress, func(id string, raw json.RawMessage) error {
		var p Progress
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("progress of job %s: %w", id, err)
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ClaimedAt.After(out[b].ClaimedAt) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Expire deletes what is kept of jobs that ended before cutoff and whose
// streams were delivered: their records and streams. It returns how many.
func (s *Jobs) Expire(ctx context.Context, cutoff time.Time) (int, error) {
	list, err := s.List(ctx, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range list {
		if !p.State.Ended() || p.FinishedAt.IsZero() || !p.FinishedAt.Before(cutoff) {
			continue
		}
		info, found, err := s.j.Stream(ctx, p.Stream)
		if err != nil {
			return n, err
		}
		if found && (!info.Closed || info.Pending > 0) {
			continue
		}
		err = s.j.Apply(ctx, journal.OpRemoveStream(p.Stream), journal.OpDelete(recordJob, p.JobID), journal.OpDelete(recordProgress, p.JobID))
		if err != nil {
			return n, fmt.Errorf("expire job %s: %w", p.JobID, err)
		}
		n++
	}
	return n, nil
}

// Job is a claimed job's handle: its progress and its outbox stream. Its
// methods are safe for concurrent use (the run, its log reader and its
// runtime API write to it).
type Job struct {
	s   *Jobs
	job *api.Job

	mu sync.Mutex
	p  Progress
}

// Backend returns the job as the backend sent it.
func (jb *Job) Backend() *api.Job { return jb.job }

// Progress returns a copy of the job's progress.
func (jb *Job) Progress() Progress {
	jb.mu.Lock()
	defer jb.mu.Unlock()
	return jb.p
}

// Update changes the job's progress with fn and appends items to its
// stream, in one durable transaction; nothing changes if it fails. fn may
// be nil; it must not block.
func (jb *Job) Update(ctx context.Context, fn func(*Progress), items ...journal.Item) error {
	return jb.apply(ctx, fn, items, false)
}

// Finish is Update that also closes the stream: items must end with the
// completing (or release) item.
func (jb *Job) Finish(ctx context.Context, fn func(*Progress), items ...journal.Item) error {
	err := jb.apply(ctx, fn, items, true)
	if err == nil {
		jb.s.Forget(jb.job.ID)
	}
	return err
}

func (jb *Job) apply(ctx context.Context, fn func(*Progress), items []journal.Item, closing bool) error {
	jb.mu.Lock()
	defer jb.mu.Unlock()
	p := jb.p
	if p.Output != nil {
		p.Output = append(json.RawMessage(nil), p.Output...)
	}
	if fn != nil {
		fn(&p)
	}
	ops := []journal.Op{journal.OpPut(recordProgress, p.JobID, p)}
	if len(items) > 0 {
		ops = append(ops, journal.OpAppend(p.Stream, items...))
	}
	if closing {
		// The sealed job (script, environment) is kept no longer than needed.
		ops = append(ops, journal.OpClose(p.Stream), journal.OpDelete(recordJob, p.JobID))
	}
	if err := jb.s.j.Apply(ctx, ops...); err != nil {
		return fmt.Errorf("journal job %s: %w", p.JobID, err)
	}
	jb.p = p
	if len(items) > 0 {
		jb.s.notify(p.Stream)
	}
	return nil
}

// ByExecution returns the live job whose current attempt is execution.
func (s *Jobs) ByExecution(execution string) *Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, jb := range s.live {
		p := jb.Progress()
		if p.ExecutionID == execution || slices.Contains(p.Executions, execution) {
			return jb
		}
	}
	return nil
}

// Live returns the handle of a job this process is running, or nil.
func (s *Jobs) Live(jobID string) *Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live[jobID]
}

// UnfinishedRuns lists the runs the journal j holds as begun and not
// ended: those the agent adopts at its next start. It needs no key (the
// progress records are not sealed), for `cronium-agent gc`.
func UnfinishedRuns(ctx context.Context, j *journal.Journal) ([]string, error) {
	var runs []string
	err := j.ListRecords(ctx, recordProgress, func(id string, raw json.RawMessage) error {
		var p Progress
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("progress of job %s: %w", id, err)
		}
		if p.State == Running && p.RunID != "" {
			runs = append(runs, p.RunID)
		}
		return nil
	})
	return runs, err
}
