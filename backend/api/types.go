// Package api holds the Cronium backend's internal API contract
// (docs/backend-contract.md) without any HTTP: its wire types, the
// decoding of queued jobs and of the other answers, and the redaction of
// secrets in the types' String methods. The HTTP client (package backend),
// the development backend (backend/devserver), state and runner share it.
package api

import (
	"encoding/json"
	"time"
)

// Job types as the backend names them (metadata.originalType), which is what
// the queue's jobTypes filter takes.
const (
	TypeScript     = "SCRIPT"
	TypeHTTP       = "HTTP_REQUEST"
	TypeToolAction = "TOOL_ACTION"
)

// QueueWaitHeader is the answer header of jobs/queue by which a backend
// offers long-poll claims, with the longest wait it takes (a Go duration:
// "60s"); a client then sends jobs/queue?wait=<duration> and the backend
// holds the request until a job is due or the wait ends. Our extension:
// the deployed backend neither sends it nor reads wait.
const QueueWaitHeader = "Cronium-Queue-Wait"

// Instance headers, sent by the agent with every call (the deployed
// backend ignores them): InstanceHeader is a random id of the agent
// process, PreviousInstanceHeader the id of the process that ran before it
// with the same state directory (a restart), HostHeader the host's name.
// The development backend refuses claims from a second live process under
// one orchestrator id with 409 (DuplicateIDCode in the error body).
const (
	InstanceHeader         = "Cronium-Instance"
	PreviousInstanceHeader = "Cronium-Previous-Instance"
	HostHeader             = "Cronium-Host"
	DuplicateIDCode        = "duplicate_orchestrator_id"
)

// SupersededCode starts the 409 by which the development backend refuses a
// report on a job taken from the reporting agent when it was declared lost
// (no heartbeat for its lost-after setting): the job was requeued, retried
// elsewhere or failed, and the agent must stop the run and report nothing
// more of it. A heartbeat's answer names such jobs the agent still runs in
// SupersededJobsField.
const (
	SupersededCode      = "job_superseded"
	SupersededJobsField = "supersededJobs"
)

// Job is one queued job, decoded and checked. Only what the agent uses is
// typed; Metadata keeps the whole object as received.
type Job struct {
	ID           string
	Type         string // wire type: "container" or "ssh"
	OriginalType string // TypeScript, TypeHTTP or TypeToolAction
	Priority     int
	CreatedAt    time.Time
	ScheduledFor time.Time
	Attempts     int

	Environment map[string]string
	// Timeout zero means the agent's default.
	Timeout time.Duration
	Input   json.RawMessage // any JSON; null when absent
	Script  *Script
	HTTP    *HTTPRequest
	// ToolAction is execution.toolAction, when the backend transports it
	// (the deployed one does not: a TOOL_ACTION job then has neither
	// Script, HTTP nor ToolAction, and the runner refuses it).
	ToolAction *ToolAction
	Resources  *Resources
	Retry      *RetryPolicy
	Target     Target
	Metadata   Metadata
	// EncryptedEnv names environment values that look like the deployed
	// backend's ciphertext but were passed unchanged (no key configured,
	// or the configured key does not decrypt them).
	EncryptedEnv []string
	// DecryptedEnv names environment values that arrived encrypted and
	// were decrypted: secrets, whatever their names (the agent masks them).
	DecryptedEnv []string
}

// Script is a SCRIPT job's code.
type Script struct {
	// Runtime is the canonical runtime name: bash, python or node.
	Runtime          string
	Content          string
	WorkingDirectory string
}

// HTTPRequest is an HTTP_REQUEST job's request.
type HTTPRequest struct {
	Method  string
	URL     string
	Headers [][2]string // in the order received; the wire has an object or an array
	Body    string
}

// ToolAction is a TOOL_ACTION job's action ({"toolType","config":{...}}).
// Config may hold credentials of the tool: never log it.
type ToolAction struct {
	ToolType string
	ActionID string          // config.actionId
	Config   json.RawMessage // the whole config object, as received
}

// Resources are the job's requested limits; zero means "not given".
type Resources struct {
	CPU    float64
	Memory int64
	Disk   int64
	Pids   int64
}

// RetryPolicy says how often a failed run is tried again, locally.
type RetryPolicy struct {
	MaxAttempts int
	BackoffType string // "exponential", "linear" or "fixed"
	Delay       time.Duration
}

// Target is where the job runs.
type Target struct {
	Type     string // "local" or "server"
	ServerID string
	Server   *Server // serverDetails, when sent
}

// Server is an SSH target. PrivateKey and Password are secrets: never log them.
type Server struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Host       string `json:"host"`
	Port       int    `json:"port"`
	Username   string `json:"username"`
	PrivateKey string `json:"privateKey,omitempty"`
	Password   string `json:"password,omitempty"`
}

// Metadata is the job's metadata: the fields the agent uses, and all of it.
type Metadata struct {
	EventName   string
	EventID     string // numbers arrive as numbers or strings; kept as text
	UserID      string
	TriggeredBy string
	LogID       int64
	// MultiServer and Servers are metadata.multiServer and
	// metadata.servers (multi-server SSH jobs); Servers hold secrets.
	MultiServer bool
	Servers     []Server
	// Raw is the whole metadata object as received (numbers as float64).
	// It may hold secrets (metadata.servers): never log it whole.
	Raw map[string]any
}

// QueueItem is one element of a claimed batch: a decoded job, or the error
// that made it undecodable (the job is then failed alone, with that message).
type QueueItem struct {
	ID  string // empty only when even the id is unreadable
	Job *Job
	Err error
	// Repeats counts the further copies of this job in the same batch,
	// dropped by the decoder: a backend bug worth a log line.
	Repeats int
}

// LogEntry is one live log line (§2.6).
type LogEntry struct {
	Seq       uint64    `json:"seq"`
	Stream    string    `json:"stream"` // stdout, stderr or system
	Line      string    `json:"line"`
	Timestamp time.Time `json:"timestamp"`
}

// Completion is the body of the one completing call (§2.4).
type Completion struct {
	Status       string          `json:"status"` // completed, failed, timeout, cancelled
	ExitCode     int             `json:"exitCode"`
	Output       Output          `json:"output"`
	ScriptOutput json.RawMessage `json:"scriptOutput,omitempty"`
	Condition    *bool           `json:"condition,omitempty"`
	Metrics      RunMetrics      `json:"metrics"`
	Timestamp    time.Time       `json:"timestamp"`
}

// Output is the captured output sent with the completion (each capped).
type Output struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

// RunMetrics are a run's timings.
type RunMetrics struct {
	StartTime time.Time `json:"startTime"`
	EndTime   time.Time `json:"endTime"`
	Duration  int64     `json:"duration"` // milliseconds
}

// CreateExecution is the body of executions/{id}/create.
type CreateExecution struct {
	JobID      string `json:"jobId"`
	ServerID   *int64 `json:"serverId,omitempty"`
	ServerName string `json:"serverName,omitempty"`
}

// Heartbeat is the agent's periodic heartbeat (§5).
type Heartbeat struct {
	OrchestratorID string    `json:"orchestratorId"`
	Timestamp      time.Time `json:"timestamp"`
	RunningJobs    []string  `json:"runningJobs"`
	Capacity       Capacity  `json:"capacity"`
}

// Capacity is the agent's job capacity.
type Capacity struct {
	MaxJobs        int `json:"maxJobs"`
	CurrentJobs    int `json:"currentJobs"`
	AvailableSlots int `json:"availableSlots"`
}

// AgentMetrics is the body of orchestrator/metrics (§5).
type AgentMetrics struct {
	JobsProcessed        int64   `json:"jobsProcessed"`
	JobsSucceeded        int64   `json:"jobsSucceeded"`
	JobsFailed           int64   `json:"jobsFailed"`
	AverageExecutionTime float64 `json:"averageExecutionTime"`
	CPUUsage             float64 `json:"cpuUsage"`
	MemoryUsage          float64 `json:"memoryUsage"`
	DiskUsage            float64 `json:"diskUsage"`
	ActiveContainers     int     `json:"activeContainers"`
	QueueDepth           int     `json:"queueDepth"`
}

// OrphanRow is one raw row of jobs/orphaned (snake_case or camelCase).
type OrphanRow struct {
	ID        string
	Status    string
	StartedAt time.Time // started_at or startedAt; zero when null
	ClaimedAt time.Time // claimed_at or claimedAt, when the row has it
	Raw       map[string]any
}

// ExecutionUpdate is the body of executions/{id}/update (§3). Every field
// is optional: zero times, nil pointers and nil maps are not sent. It has
// no completedAt and no free status on purpose: on the deployed backend
// either makes the update a completing call (§3 rule); the end of a run
// goes through jobs/{id}/complete only. Its JSON form is the wire body.
type ExecutionUpdate struct {
	// Running sends status "running", the one status an update may carry:
	// a bool so that no terminal status can be written by mistake.
	Running bool

	StartedAt time.Time
	ExitCode  *int
	Output    *string
	Error     *string
	Metadata  map[string]any // merged into the execution's metadata

	SetupStartedAt       time.Time
	SetupCompletedAt     time.Time
	ExecutionStartedAt   time.Time
	ExecutionCompletedAt time.Time
	CleanupStartedAt     time.Time
	CleanupCompletedAt   time.Time

	// Durations, sent in milliseconds; nil is not sent.
	SetupDuration     *time.Duration
	ExecutionDuration *time.Duration
	CleanupDuration   *time.Duration
	TotalDuration     *time.Duration

	ExecutionMetadata map[string]any
}

// Status is how a job or one run of it ended, as the backend names it
// (§2.4), or that it runs.
type Status string

// Statuses.
const (
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusTimeout   Status = "timeout"
	StatusCancelled Status = "cancelled"
	// StatusRunning is reported while a run goes on; it ends nothing.
	StatusRunning Status = "running"
)
