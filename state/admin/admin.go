// Package admin is the agent's local inspection socket: the running agent
// serves what it knows (status, recent jobs, their logs) on a unix socket
// that only root can use, and the `cronium-agent status`, `jobs` and `logs`
// commands read it through Client. They cannot open the journal
// themselves: bbolt locks it for the agent process.
//
// The protocol is HTTP with JSON bodies:
//
//	GET /v1/status                               Status
//	GET /v1/jobs?limit=N                         []JobSummary (default 50, at most 1000)
//	GET /v1/jobs/{id}/logs?after=SEQ             []LogLine, every line with seq > SEQ
//	GET /v1/jobs/{id}/logs?after=SEQ&follow=1    LogLine per line (NDJSON) as they come
//	POST /v1/hand-over?within=DURATION           HandOver: a stop (SIGTERM) that comes
//	                                             within DURATION (default 1m, at most 1h)
//	                                             leaves the running jobs running for the
//	                                             next start instead of draining
//
// Errors are {"error": "..."} with 400 (bad parameter), 404 (unknown job or
// path), 405 (wrong method) or 501 (a Source that cannot hand over). A follow stream that ends cleanly means the log is
// complete; when the agent stops first it aborts the connection instead, so
// that a client never takes a cut log for a whole one.
package admin

import (
	"context"
	"errors"
	"time"
)

// Limits of GET /v1/jobs.
const (
	DefaultJobs = 50
	MaxJobs     = 1000
)

// Source is what the socket serves; the runner implements it.
type Source interface {
	Status(ctx context.Context) (Status, error)
	// Jobs lists recent jobs, newest claim first, at most limit.
	Jobs(ctx context.Context, limit int) ([]JobSummary, error)
	// Logs returns a job's log lines with seq > after, at most limit, and
	// whether the log is complete (the job ended and every line is in the
	// journal: no more will come). Complete is about the whole log, not
	// the page: a full page may have more lines after it.
	// ErrUnknownJob when the journal does not know the job.
	Logs(ctx context.Context, jobID string, after uint64, limit int) (lines []LogLine, complete bool, err error)
}

// HandOverSource is a Source whose next stop can be made a hand-over.
type HandOverSource interface {
	// HandOver makes a stop that comes before until leave the running
	// jobs running for the next agent process to adopt.
	HandOver(ctx context.Context, until time.Time) (HandOver, error)
}

// HandOver is the answer to POST /v1/hand-over.
type HandOver struct {
	// Until is when the arming lapses: a later stop drains.
	Until time.Time `json:"until"`
	// Running is how many jobs run now.
	Running int `json:"running"`
}

// Hand-over windows of POST /v1/hand-over.
const (
	DefaultHandOverWithin = time.Minute
	MaxHandOverWithin     = time.Hour
)

// ErrUnknownJob is what Source.Logs and Client.Logs return for a job the
// journal does not know.
var ErrUnknownJob = errors.New("unknown job")

// ErrNotRunning is what Client returns when nothing answers on the socket.
var ErrNotRunning = errors.New("the agent is not running")

// Status is the agent at a glance.
type Status struct {
	Version        string `json:"version"`
	OrchestratorID string `json:"orchestratorId"`
	// Identity says what the id is bound to: this machine (and where its
	// identity was read), or the configuration.
	Identity string `json:"identity,omitempty"`
	// Backend is the backend's URL.
	Backend          string    `json:"backend"`
	BackendReachable bool      `json:"backendReachable"`
	LastContact      time.Time `json:"lastContact,omitzero"`
	LastError        string    `json:"lastError,omitempty"`
	// Backlog is what the backend has not received yet.
	Backlog      Backlog      `json:"backlog"`
	Running      []RunningJob `json:"running"`
	Journal      JournalInfo  `json:"journal"`
	ClaimsPaused bool         `json:"claimsPaused"`
	// ClaimsRefused is the backend's refusal of this process as a second
	// live agent under its id (it claims nothing then), or "".
	ClaimsRefused string `json:"claimsRefused,omitempty"`
}

// Backlog counts undelivered data.
type Backlog struct {
	Jobs     int   `json:"jobs"`
	Items    int64 `json:"items"`
	Bytes    int64 `json:"bytes"`
	LogLines int64 `json:"logLines"`
}

// RunningJob is a job the agent is running now.
type RunningJob struct {
	JobID       string    `json:"jobId"`
	ExecutionID string    `json:"executionId"`
	Attempt     int       `json:"attempt"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
}

// JournalInfo is the journal's size against its budget.
type JournalInfo struct {
	Path      string `json:"path"`
	FileBytes int64  `json:"fileBytes"`
	UsedBytes int64  `json:"usedBytes"`
	Budget    int64  `json:"budget"`
}

// JobSummary is one run as the journal knows it.
type JobSummary struct {
	JobID       string `json:"jobId"`
	ExecutionID string `json:"executionId"`
	Attempt     int    `json:"attempt"`
	// State is claimed, running, finished or released.
	State string `json:"state"`
	// Status is completed, failed, timeout or cancelled once finished.
	Status   string `json:"status,omitempty"`
	ExitCode *int   `json:"exitCode,omitempty"`
	// The times are zero until the run gets there.
	ClaimedAt  time.Time `json:"claimedAt,omitzero"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	// Delivery is "delivered" or "pending".
	Delivery     string `json:"delivery"`
	PendingItems int64  `json:"pendingItems,omitempty"`
	// Measured: the run's executor measured what it consumed (a
	// container run that ended); a figure it could not get is then
	// absent. CPUSeconds is its CPU time, every core added up;
	// PeakMemoryBytes the most memory its cgroup held at once.
	Measured        bool     `json:"measured,omitempty"`
	CPUSeconds      *float64 `json:"cpuSeconds,omitempty"`
	PeakMemoryBytes *int64   `json:"peakMemoryBytes,omitempty"`
}

// LogLine is one line of a job's log.
type LogLine struct {
	Seq uint64 `json:"seq"`
	// Stream is stdout, stderr or system.
	Stream string    `json:"stream"`
	Line   string    `json:"line"`
	Time   time.Time `json:"time,omitzero"`
}
