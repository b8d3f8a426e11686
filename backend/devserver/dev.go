package devserver

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cronium/cronium-agent/backend/api"
)

// SubmitRequest is the body of POST /api/dev/jobs: either a job described by
// its parts, or Raw, a complete wire job (as in the contract's fixtures)
// that is stored and handed out as it is.
type SubmitRequest struct {
	// Type is the backend job type: SCRIPT (default), HTTP_REQUEST or TOOL_ACTION.
	Type string `json:"type,omitempty"`
	// Runtime is bash (default), python or node.
	Runtime          string            `json:"runtime,omitempty"`
	Script           string            `json:"script,omitempty"`
	WorkingDirectory string            `json:"workingDirectory,omitempty"`
	Env              map[string]string `json:"env,omitempty"`
	Input            json.RawMessage   `json:"input,omitempty"`
	// Timeout is a Go duration ("30s"); empty leaves the agent's default.
	Timeout   string          `json:"timeout,omitempty"`
	Priority  int             `json:"priority,omitempty"`
	UserID    string          `json:"userId,omitempty"`
	EventName string          `json:"eventName,omitempty"`
	HTTP      *HTTPSpec       `json:"http,omitempty"`
	Resources json.RawMessage `json:"resources,omitempty"`
	// RetryPolicy is sent as execution.retryPolicy ({"maxAttempts":2,
	// "backoffType":"exponential","backoffDelay":5}): the agent retries a
	// failed run by it, and the backend a run lost with its agent.
	RetryPolicy json.RawMessage `json:"retryPolicy,omitempty"`
	// ToolAction is sent as execution.toolAction for TOOL_ACTION jobs.
	ToolAction json.RawMessage `json:"toolAction,omitempty"`
	// ServerID makes an ssh job (SCRIPT jobs only) for a server registered
	// with /api/dev/servers, shaped as the deployed backend's (contract §7):
	// execution.target {"type":"server","serverId","serverDetails"} and
	// metadata serverId, eventId as a string, eventVersion 1. The details
	// go in execution.target.serverDetails unless OmitServerDetails (then
	// the agent asks servers/{id}/credentials).
	ServerID string `json:"serverId,omitempty"`
	// ServerIDs names one or more servers instead of ServerID (giving both
	// is refused). With several, the job is a multi-server one: its target
	// is the first server, and metadata adds "servers" (every server's
	// details, secrets included, in this order), "multiServer": true and
	// "serverCount". An unknown id is a 400 naming it.
	ServerIDs         []string `json:"serverIds,omitempty"`
	OmitServerDetails bool     `json:"omitServerDetails,omitempty"`
	// Delay postpones scheduledFor (a Go duration).
	Delay string `json:"delay,omitempty"`

	Raw json.RawMessage `json:"raw,omitempty"`
}

// HTTPSpec is an HTTP_REQUEST job's request. Headers is an object or the
// deployed backend's array of {key,value}; it is passed as given.
type HTTPSpec struct {
	Method  string          `json:"method,omitempty"`
	URL     string          `json:"url"`
	Headers json.RawMessage `json:"headers,omitempty"`
	Body    string          `json:"body,omitempty"`
}

// JobSummary is one line of GET /api/dev/jobs.
type JobSummary struct {
	ID           string    `json:"id"`
	Status       string    `json:"status"`
	Type         string    `json:"type"` // backend job type (metadata.originalType)
	WireType     string    `json:"wireType,omitempty"`
	Runtime      string    `json:"runtime,omitempty"`
	Priority     int       `json:"priority"`
	ExitCode     *int      `json:"exitCode,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	Orchestrator string    `json:"orchestratorId,omitempty"`
	Completions  int       `json:"completions"`
	// StartedAt and FinishedAt are when the agent said it started the job
	// and when its completing call came.
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// JobView is everything the dev backend knows about a job.
type JobView struct {
	JobSummary
	ScheduledFor    time.Time        `json:"scheduledFor"`
	ClaimedAt       *time.Time       `json:"claimedAt,omitempty"`
	AcknowledgedAt  *time.Time       `json:"acknowledgedAt,omitempty"`
	StartedAt       *time.Time       `json:"startedAt,omitempty"`
	CompletedAt     *time.Time       `json:"completedAt,omitempty"`
	StatusMessage   string           `json:"statusMessage,omitempty"`
	Error           string           `json:"error,omitempty"`
	Output          *api.Output      `json:"output,omitempty"`
	ScriptOutput    json.RawMessage  `json:"scriptOutput,omitempty"`
	Condition       *bool            `json:"condition,omitempty"`
	Metrics         json.RawMessage  `json:"metrics,omitempty"`
	CancelRequested bool             `json:"cancelRequested,omitempty"`
	CancelDelivered bool             `json:"cancelDelivered,omitempty"`
	CompletionCalls []CompletionCall `json:"completionCalls,omitempty"`
	Executions      []string         `json:"executions,omitempty"`
	LogLines        int              `json:"logLines"`
	LastLogSeq      uint64           `json:"lastLogSeq"`
	Claims          int              `json:"claims"`
	Releases        int              `json:"releases"`
	// LostFrom: each time the job was taken from an agent declared lost.
	LostFrom []LostAttempt  `json:"lostFrom,omitempty"`
	History  []HistoryEvent `json:"history,omitempty"`
	// Job is the wire job as jobs/queue hands it out.
	Job json.RawMessage `json:"job"`
}

// Done reports whether the job reached a final status.
func (v JobView) Done() bool { return Terminal(v.Status) }

// LogLine is a stored live log line.
type LogLine struct {
	api.LogEntry
	ExecutionID string `json:"executionId,omitempty"`
}

// LogPage is the answer of GET /api/dev/jobs/{id}/logs: the lines after the
// asked seq, and the job's status read in the same snapshot (when it is
// final, no further line is expected).
type LogPage struct {
	Entries []LogLine `json:"entries"`
	Status  string    `json:"status"`
	// More is set when the page was cut at the limit.
	More bool `json:"more,omitempty"`
}

// CancelResult is the answer of POST /api/dev/jobs/{id}/cancel.
type CancelResult struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	CancelRequested bool   `json:"cancelRequested"`
}

// Stats sums up the dev backend's state (for tests).
type Stats struct {
	Jobs     int            `json:"jobs"`
	ByStatus map[string]int `json:"byStatus"`
	// Completions counts completing calls (complete + fail) per job that got any.
	Completions map[string]int `json:"completions"`
	// Duplicates names the jobs that got more than one completing call.
	Duplicates    []string `json:"duplicates"`
	LogLines      int      `json:"logLines"`
	Executions    int      `json:"executions"`
	Orchestrators int      `json:"orchestrators"`
	Servers       int      `json:"servers"`
}

func (j *jobRecord) summary() JobSummary {
	return JobSummary{
		ID: j.ID, Status: j.Status, Type: j.OriginalType, WireType: j.WireType, Runtime: j.Runtime,
		Priority: j.Priority, ExitCode: j.ExitCode, CreatedAt: j.CreatedAt, Orchestrator: j.OrchestratorID,
		Completions: len(j.Completions), StartedAt: j.StartedAt, FinishedAt: j.CompletedAt,
	}
}

func (j *jobRecord) view() JobView {
	return JobView{
		JobSummary: j.summary(), ScheduledFor: j.dueAt(),
		ClaimedAt: j.ClaimedAt, AcknowledgedAt: j.AcknowledgedAt, StartedAt: j.StartedAt, CompletedAt: j.CompletedAt,
		StatusMessage: j.StatusMessage, Error: j.Error, Output: j.Output, ScriptOutput: j.ScriptOutput,
		Condition: j.Condition, Metrics: j.Metrics, CancelRequested: j.CancelRequested, CancelDelivered: j.CancelDelivered,
		CompletionCalls: j.Completions, Executions: j.Executions, LogLines: j.LogLines, LastLogSeq: j.LastLogSeq,
		Claims: j.Claims, Releases: j.Releases, LostFrom: j.LostFrom, History: j.History, Job: j.Wire,
	}
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newJobID returns "job_" and 12 random alphanumerics.
func newJobID() string {
	return "job_" + randomAlnum(12)
}

func randomAlnum(n int) string {
	b := make([]byte, n)
	for i := range b {
		var r [1]byte
		for {
			_, _ = rand.Read(r[:])
			if int(r[0]) < 256-256%len(idAlphabet) {
				break
			}
		}
		b[i] = idAlphabet[int(r[0])%len(idAlphabet)]
	}
	return string(b)
}

// handleDevSubmit queues a job.
func (s *Server) handleDevSubmit(w http.ResponseWriter, r *http.Request) {
	var req SubmitRequest
	if _, err := decodeBody(r, &req, true); err != nil {
		fail(w, err)
		return
	}
	now := s.now()
	var j *jobRecord
	err := s.batch(func(tx *bolt.Tx) error {
		var err error
		if len(req.Raw) > 0 && string(req.Raw) != "null" {
			j, err = rawJob(req.Raw, now)
		} else {
			j, err = s.buildJob(tx, req, now)
		}
		if err != nil {
			return err
		}
		if prev, err := loadJob(tx, j.ID); err != nil {
			return err
		} else if prev != nil {
			return errf(http.StatusConflict, "Job %s exists", j.ID)
		}
		seq, err := tx.Bucket(bJobs).NextSequence()
		if err != nil {
			return err
		}
		j.Seq = seq
		j.Status = StatusQueued
		j.SubmittedAt = now
		j.event(now, "submitted", "")
		return saveJob(tx, nil, j)
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": j.ID, "status": j.Status})
}

// rawJob takes a wire job as it is: a JSON object with an execution. Only
// an absent id is filled in; nothing else is checked or changed, so that
// malformed jobs reach the agent as malformed as they were sent.
func rawJob(raw json.RawMessage, now time.Time) (*jobRecord, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, errf(http.StatusBadRequest, "raw: %v", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &fields); err != nil || fields == nil {
		return nil, errf(http.StatusBadRequest, "raw must be a JSON object (a wire job)")
	}
	if ex, ok := fields["execution"]; !ok || string(ex) == "null" {
		return nil, errf(http.StatusBadRequest, "raw job has no execution")
	}
	j := &jobRecord{}
	wire := buf.Bytes()
	if idRaw, ok := fields["id"]; ok {
		if err := json.Unmarshal(idRaw, &j.ID); err != nil || j.ID == "" {
			return nil, errf(http.StatusBadRequest, "raw job id must be a non-empty string")
		}
	} else {
		j.ID = newJobID()
		idField, _ := marshal(j.ID)
		rest := wire[1:]
		sep := ","
		if len(rest) > 0 && rest[0] == '}' {
			sep = ""
		}
		wire = append(append([]byte(`{"id":`), idField...), append([]byte(sep), rest...)...)
	}
	j.Wire = wire
	var p float64
	if json.Unmarshal(fields["priority"], &p) == nil {
		j.Priority = int(p)
	}
	j.CreatedAt = now
	var ts string
	if json.Unmarshal(fields["createdAt"], &ts) == nil {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			j.CreatedAt = t.UTC()
		}
	}
	if json.Unmarshal(fields["scheduledFor"], &ts) == nil {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			j.ScheduledFor = t.UTC()
		}
	}
	_ = json.Unmarshal(fields["type"], &j.WireType)
	var md struct {
		OriginalType string `json:"originalType"`
	}
	_ = json.Unmarshal(fields["metadata"], &md)
	j.OriginalType = md.OriginalType
	var ex struct {
		Script struct {
			Type string `json:"type"`
		} `json:"script"`
	}
	_ = json.Unmarshal(fields["execution"], &ex)
	j.Runtime = runtimeName(ex.Script.Type)
	return j, nil
}

// runtimeName turns a wire script type into a runtime name for display.
func runtimeName(t string) string {
	switch strings.ToUpper(t) {
	case "":
		return ""
	case "BASH":
		return "bash"
	case "PYTHON":
		return "python"
	case "NODEJS", "NODE":
		return "node"
	}
	return strings.ToLower(t)
}

// Wire shape of the jobs the dev backend builds (field order as the
// deployed backend's).
type wireJob struct {
	ID           string        `json:"id"`
	Type         string        `json:"type"`
	Priority     int           `json:"priority"`
	CreatedAt    string        `json:"createdAt"`
	ScheduledFor string        `json:"scheduledFor"`
	Attempts     int           `json:"attempts"`
	Execution    wireExecution `json:"execution"`
	Metadata     wireMetadata  `json:"metadata"`
}

type wireExecution struct {
	Environment map[string]string `json:"environment"`
	Timeout     int64             `json:"timeout"`
	InputData   json.RawMessage   `json:"inputData"`
	Variables   struct{}          `json:"variables"`
	Target      wireTarget        `json:"target"`
	Script      *wireScript       `json:"script,omitempty"`
	HTTP        *wireHTTP         `json:"http,omitempty"`
	ToolAction  json.RawMessage   `json:"toolAction,omitempty"`
	Resources   json.RawMessage   `json:"resources,omitempty"`
	RetryPolicy json.RawMessage   `json:"retryPolicy,omitempty"`
}

type wireTarget struct {
	Type          string      `json:"type"`
	ServerID      string      `json:"serverId,omitempty"`
	ServerDetails *api.Server `json:"serverDetails,omitempty"`
}

type wireScript struct {
	Type             string `json:"type"`
	Content          string `json:"content"`
	WorkingDirectory string `json:"workingDirectory"`
}

type wireHTTP struct {
	Method  string          `json:"method"`
	URL     string          `json:"url"`
	Headers json.RawMessage `json:"headers"`
	Body    string          `json:"body"`
}

type wireMetadata struct {
	EventName    string `json:"eventName"`
	TriggeredBy  string `json:"triggeredBy"`
	LogID        uint64 `json:"logId"`
	OriginalType string `json:"originalType"`
	// EventID is a number, and a string in ssh jobs (as the deployed
	// backend sends them, contract §7).
	EventID      any    `json:"eventId"`
	UserID       string `json:"userId"`
	EventVersion int    `json:"eventVersion,omitempty"`
	ServerID     string `json:"serverId,omitempty"`
	// Multi-server ssh jobs only (contract §2.1, §7).
	Servers     []api.Server `json:"servers,omitempty"`
	MultiServer bool         `json:"multiServer,omitempty"`
	ServerCount int          `json:"serverCount,omitempty"`
}

// buildJob makes a wire job of a submit request's parts.
func (s *Server) buildJob(tx *bolt.Tx, req SubmitRequest, now time.Time) (*jobRecord, error) {
	bad := func(format string, args ...any) error { return errf(http.StatusBadRequest, format, args...) }
	typ := strings.ToUpper(req.Type)
	if typ == "" {
		typ = api.TypeScript
		if req.HTTP != nil && req.Script == "" {
			typ = api.TypeHTTP
		}
	}
	j := &jobRecord{ID: newJobID(), OriginalType: typ, Priority: req.Priority, CreatedAt: now, WireType: "container"}
	w := wireJob{ID: j.ID, Type: "container", Priority: req.Priority, CreatedAt: timeText(now), ScheduledFor: timeText(now)}
	if req.Delay != "" {
		d, err := time.ParseDuration(req.Delay)
		if err != nil || d < 0 {
			return nil, bad("delay must be a non-negative Go duration such as 10s, got %q", req.Delay)
		}
		j.ScheduledFor = now.Add(d)
		w.ScheduledFor = timeText(j.ScheduledFor)
	}
	x := &w.Execution
	x.Environment = map[string]string{}
	for k, v := range req.Env {
		x.Environment[k] = v
	}
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d < 0 {
			return nil, bad("timeout must be a non-negative Go duration such as 30s, got %q", req.Timeout)
		}
		x.Timeout = int64(d)
	}
	x.InputData = json.RawMessage("{}")
	if len(req.Input) > 0 {
		x.InputData = compactJSON(req.Input)
	}
	if len(req.Resources) > 0 && string(req.Resources) != "null" {
		if req.Resources[0] != '{' {
			return nil, bad("resources must be an object")
		}
		x.Resources = compactJSON(req.Resources)
	}
	if len(req.RetryPolicy) > 0 && string(req.RetryPolicy) != "null" {
		if req.RetryPolicy[0] != '{' {
			return nil, bad("retryPolicy must be an object")
		}
		x.RetryPolicy = compactJSON(req.RetryPolicy)
	}
	x.Target = wireTarget{Type: "local"}
	switch typ {
	case api.TypeScript:
		rt := strings.ToLower(req.Runtime)
		var wt string
		switch rt {
		case "", "bash", "sh":
			rt, wt = "bash", "BASH"
		case "python", "python3", "py":
			rt, wt = "python", "PYTHON"
		case "node", "nodejs", "js", "javascript":
			rt, wt = "node", "NODEJS"
		default:
			return nil, bad("runtime must be bash, python or node, got %q", req.Runtime)
		}
		if req.Script == "" {
			return nil, bad("script is required for a SCRIPT job")
		}
		j.Runtime = rt
		x.Script = &wireScript{Type: wt, Content: req.Script, WorkingDirectory: req.WorkingDirectory}
	case api.TypeHTTP:
		if req.HTTP == nil || req.HTTP.URL == "" {
			return nil, bad("http.url is required for an HTTP_REQUEST job")
		}
		h := &wireHTTP{Method: strings.ToUpper(req.HTTP.Method), URL: req.HTTP.URL, Headers: json.RawMessage("{}"), Body: req.HTTP.Body}
		if h.Method == "" {
			h.Method = http.MethodGet
		}
		if len(req.HTTP.Headers) > 0 && string(req.HTTP.Headers) != "null" {
			h.Headers = compactJSON(req.HTTP.Headers)
		}
		x.HTTP = h
	case api.TypeToolAction:
		if len(req.ToolAction) > 0 && string(req.ToolAction) != "null" {
			x.ToolAction = compactJSON(req.ToolAction)
		}
	default:
		return nil, bad("type must be SCRIPT, HTTP_REQUEST or TOOL_ACTION, got %q", req.Type)
	}
	serverIDs, err := req.serversOf()
	if err != nil {
		return nil, err
	}
	var servers []api.Server
	if len(serverIDs) > 0 {
		if typ != api.TypeScript {
			return nil, bad("servers apply to SCRIPT jobs only (a %s job runs on the agent)", typ)
		}
		if servers, err = loadServers(tx, serverIDs); err != nil {
			return nil, err
		}
		j.WireType, w.Type = "ssh", "ssh"
		x.Target = wireTarget{Type: "server", ServerID: servers[0].ID}
		if !req.OmitServerDetails {
			x.Target.ServerDetails = &servers[0]
		}
	}
	w.Metadata = wireMetadata{
		EventName: req.EventName, TriggeredBy: "manual", OriginalType: typ, UserID: req.UserID,
		LogID: nextCounter(tx, "logId"), EventID: nextCounter(tx, "eventId"),
	}
	if len(servers) > 0 {
		md := &w.Metadata
		md.EventID = strconv.FormatUint(md.EventID.(uint64), 10)
		md.EventVersion = 1
		md.ServerID = servers[0].ID
		if len(servers) > 1 {
			md.Servers, md.MultiServer, md.ServerCount = servers, true, len(servers)
		}
	}
	if w.Metadata.EventName == "" {
		w.Metadata.EventName = "dev job"
	}
	if w.Metadata.UserID == "" {
		w.Metadata.UserID = "dev-user"
	}
	b, err := marshal(w)
	if err != nil {
		return nil, err
	}
	j.Wire = b
	return j, nil
}

func (s *Server) handleDevJobs(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	var list []*jobRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bJobs).ForEach(func(_, v []byte) error {
			var j jobRecord
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			if status == "" || j.Status == status {
				list = append(list, &j)
			}
			return nil
		})
	})
	if err != nil {
		fail(w, err)
		return
	}
	sort.Slice(list, func(a, b int) bool { return list[a].Seq < list[b].Seq })
	out := make([]JobSummary, 0, len(list))
	for _, j := range list {
		out = append(out, j.summary())
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out, "count": len(out)})
}

func (s *Server) handleDevJob(w http.ResponseWriter, r *http.Request) {
	j, err := s.viewJob(r.PathValue("id"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j.view())
}

const (
	defaultLogLimit = 10000
	maxLogLimit     = 100000
)

func (s *Server) handleDevLogs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	q := r.URL.Query()
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("after must be a seq number, got %q", v))
			return
		}
		after = n
	}
	limit, ok := positiveQuery(w, q, "limit", defaultLogLimit, maxLogLimit)
	if !ok {
		return
	}
	page := LogPage{Entries: []LogLine{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		j, err := loadJob(tx, id)
		if err != nil {
			return err
		}
		if j == nil {
			return errJobNotFound
		}
		page.Status = j.Status
		lb := tx.Bucket(bLogs).Bucket([]byte(id))
		if lb == nil {
			return nil
		}
		c := lb.Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
			if len(page.Entries) == limit {
				page.More = true
				break
			}
			var l LogLine
			if err := json.Unmarshal(v, &l); err != nil {
				return err
			}
			page.Entries = append(page.Entries, l)
		}
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// handleDevCancel cancels a queued job at once, or asks the agent holding it
// to stop it (delivered in its next heartbeat's cancelJobs).
func (s *Server) handleDevCancel(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	j, err := s.updateJob(r.PathValue("id"), func(j *jobRecord) error {
		switch {
		case Terminal(j.Status):
			return errf(http.StatusConflict, "Job is already %s", j.Status)
		case j.Status == StatusQueued:
			j.Status = StatusCancelled
			j.CompletedAt = ptr(now)
			j.event(now, "cancelled", "while queued")
		case !j.CancelRequested:
			j.CancelRequested = true
			j.CancelRequestedAt = ptr(now)
			j.event(now, "cancel requested", j.OrchestratorID)
		}
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, CancelResult{ID: j.ID, Status: j.Status, CancelRequested: j.CancelRequested})
}

func (s *Server) handleDevExecution(w http.ResponseWriter, r *http.Request) {
	var e *ExecutionView
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		e, err = loadExec(tx, r.PathValue("id"))
		return err
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// handleDevJobExecutions lists a job's executions, in the order they were
// created, read in one snapshot.
func (s *Server) handleDevJobExecutions(w http.ResponseWriter, r *http.Request) {
	out := []ExecutionView{}
	err := s.db.View(func(tx *bolt.Tx) error {
		j, err := loadJob(tx, r.PathValue("id"))
		if err == nil && j == nil {
			err = errJobNotFound
		}
		if err != nil {
			return err
		}
		for _, id := range j.Executions {
			e, err := load[ExecutionView](tx, bExecs, id)
			if err != nil {
				return err
			}
			if e != nil {
				out = append(out, *e)
			}
		}
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"executions": out})
}

func (s *Server) handleDevOrchestrators(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	out := []OrchestratorView{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bOrchs).ForEach(func(_, v []byte) error {
			var o OrchestratorView
			if err := json.Unmarshal(v, &o); err != nil {
				return err
			}
			o.StateNow = o.State(now)
			out = append(out, o)
			return nil
		})
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"orchestrators": out})
}

func (s *Server) handleDevStats(w http.ResponseWriter, r *http.Request) {
	st := Stats{ByStatus: map[string]int{}, Completions: map[string]int{}, Duplicates: []string{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bJobs).ForEach(func(_, v []byte) error {
			var j jobRecord
			if err := json.Unmarshal(v, &j); err != nil {
				return err
			}
			st.Jobs++
			st.ByStatus[j.Status]++
			if n := len(j.Completions); n > 0 {
				st.Completions[j.ID] = n
				if n > 1 {
					st.Duplicates = append(st.Duplicates, j.ID)
				}
			}
			st.LogLines += j.LogLines
			return nil
		})
		st.Executions = tx.Bucket(bExecs).Stats().KeyN
		st.Orchestrators = tx.Bucket(bOrchs).Stats().KeyN
		st.Servers = tx.Bucket(bServers).Stats().KeyN
		return err
	})
	if err != nil {
		fail(w, err)
		return
	}
	sort.Strings(st.Duplicates)
	writeJSON(w, http.StatusOK, st)
}

// positiveQuery reads a positive integer parameter, def when absent and at
// most max; it answers 400 itself and reports false for anything else.
func positiveQuery(w http.ResponseWriter, q url.Values, name string, def, max int) (int, bool) {
	v := q.Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s must be a positive integer, got %q", name, v))
		return 0, false
	}
	return min(n, max), true
}
