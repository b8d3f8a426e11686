package devserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cronium/cronium-agent/backend/api"
)

const (
	defaultBatchSize = 10
	maxBatchSize     = 1000
)

// handleQueue claims up to batchSize due jobs of the asked types (§2.1).
func (s *Server) handleQueue(w http.ResponseWriter, r *http.Request) {
	orch, err := orchestratorHeader(r)
	if err != nil {
		fail(w, err)
		return
	}
	q := r.URL.Query()
	batch, ok := positiveQuery(w, q, "batchSize", defaultBatchSize, maxBatchSize)
	if !ok {
		return
	}
	var types map[string]bool
	for t := range strings.SplitSeq(q.Get("jobTypes"), ",") {
		if t = strings.ToUpper(strings.TrimSpace(t)); t != "" {
			if types == nil {
				types = map[string]bool{}
			}
			types[t] = true
		}
	}
	wait, err := parseWait(q.Get("wait"))
	if err != nil {
		fail(w, errf(http.StatusBadRequest, "%v", err))
		return
	}
	w.Header().Set(api.QueueWaitHeader, maxQueueWait.String())
	if !s.checkInstance(w, r, orch) {
		return
	}
	deadline := time.Now().Add(wait)
	for {
		// Taken before the claim: a job queued after it wakes this wait.
		woken := s.queued.wait()
		jobs, next, err := s.claim(orch, batch, types)
		if err != nil {
			fail(w, err)
			return
		}
		left := time.Until(deadline)
		if len(jobs) > 0 || left <= 0 || s.queued.ended() {
			writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs, "count": len(jobs)})
			return
		}
		if !next.IsZero() {
			// A scheduled job comes due: claim it then.
			left = min(left, max(next.Sub(s.now()), time.Millisecond))
		}
		t := time.NewTimer(left)
		select {
		case <-woken:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// claim claims up to batch queued jobs of types (nil: any) for orch; next
// is when the first job scheduled for later comes due (zero: none).
func (s *Server) claim(orch string, batch int, types map[string]bool) (jobs []json.RawMessage, next time.Time, err error) {
	now := s.now()
	jobs = []json.RawMessage{}
	due := func(tx *bolt.Tx) ([]string, error) {
		var ids []string
		var others *bool
		next = time.Time{}
		c := tx.Bucket(bQueue).Cursor()
		for k, v := c.First(); k != nil && len(ids) < batch; k, v = c.Next() {
			j, err := loadJob(tx, string(v))
			if err != nil {
				return nil, err
			}
			if j == nil || j.Status != StatusQueued {
				continue // a stale index entry; never expected
			}
			if !j.ScheduledFor.IsZero() && j.ScheduledFor.After(now) {
				if next.IsZero() || j.ScheduledFor.Before(next) {
					next = j.ScheduledFor
				}
				continue
			}
			if types != nil && !types[strings.ToUpper(j.OriginalType)] {
				continue
			}
			if j.lostBy(orch) {
				// Taken from this agent when it was lost: another agent
				// runs it, unless none is online.
				if others == nil {
					o, err := otherOnline(tx, orch, now)
					if err != nil {
						return nil, err
					}
					others = &o
				}
				if *others {
					continue
				}
			}
			ids = append(ids, j.ID)
		}
		return ids, nil
	}
	// Looked at first in a read transaction: an empty poll (and a waiting
	// claim woken for another agent's job) costs no write.
	var found bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		ids, err := due(tx)
		found = len(ids) > 0
		return err
	}); err != nil || !found {
		return jobs, next, err
	}
	err = s.batch(func(tx *bolt.Tx) error {
		jobs = []json.RawMessage{}
		ids, err := due(tx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			j, err := updateJobTx(tx, id, func(j *jobRecord) error {
				j.Status = StatusClaimed
				j.OrchestratorID = orch
				j.ClaimedAt = ptr(now)
				j.AcknowledgedAt, j.StartedAt = nil, nil
				j.Claims++
				j.event(now, "claimed", orch)
				return nil
			})
			if err != nil {
				return err
			}
			jobs = append(jobs, j.Wire)
		}
		return nil
	})
	return jobs, next, err
}

// handleAcknowledge confirms a claim (§2.2): 403 unless the caller holds it.
func (s *Server) handleAcknowledge(w http.ResponseWriter, r *http.Request) {
	var body struct {
		OrchestratorID string `json:"orchestratorId"`
		Timestamp      string `json:"timestamp"`
	}
	if _, err := decodeBody(r, &body, false); err != nil {
		fail(w, err)
		return
	}
	orch, err := orchestratorOf(r, body.OrchestratorID)
	if err != nil {
		fail(w, err)
		return
	}
	now := s.now()
	j, err := s.updateJob(r.PathValue("id"), func(j *jobRecord) error {
		if !j.held() || j.OrchestratorID != orch {
			return errf(http.StatusForbidden, "Job is not claimed by this orchestrator")
		}
		if j.AcknowledgedAt == nil {
			j.AcknowledgedAt = ptr(now)
			j.event(now, "acknowledged", orch)
		}
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "job": j.row()})
}

// handleStatus records a status update (§2.3).
func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Status    string          `json:"status"`
		Timestamp string          `json:"timestamp"`
		Details   json.RawMessage `json:"details"`
	}
	if _, err := decodeBody(r, &body, true); err != nil {
		fail(w, err)
		return
	}
	switch body.Status {
	case StatusRunning, StatusCompleted, StatusFailed:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Invalid status %q: accepted are running, completed, failed", body.Status))
		return
	}
	var message string
	if len(body.Details) > 0 && string(body.Details) != "null" {
		var details map[string]json.RawMessage
		if err := json.Unmarshal(body.Details, &details); err != nil {
			writeError(w, http.StatusBadRequest, "details must be an object")
			return
		}
		for _, k := range []string{"error", "message"} {
			v, ok := details[k]
			if !ok {
				continue
			}
			var str string
			if err := json.Unmarshal(v, &str); err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("details.%s must be a string", k))
				return
			}
			if message == "" {
				message = str
			}
		}
	}
	now := s.now()
	at := now
	if body.Timestamp != "" {
		t, err := time.Parse(time.RFC3339Nano, body.Timestamp)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("timestamp is not RFC 3339: %q", body.Timestamp))
			return
		}
		at = t.UTC()
	}
	caller := strings.TrimSpace(r.Header.Get("X-Orchestrator-ID"))
	_, err := s.updateJob(r.PathValue("id"), func(j *jobRecord) error {
		if err := superseded(j, caller); err != nil {
			return err
		}
		if Terminal(j.Status) && body.Status == StatusRunning {
			// A late "running" never takes a finished job back.
			j.event(now, "status ignored", "running after "+j.Status)
			return nil
		}
		j.Status = body.Status
		if message != "" {
			j.StatusMessage = message
		}
		switch body.Status {
		case StatusRunning:
			if j.StartedAt == nil {
				j.StartedAt = ptr(at)
			}
		default:
			j.CompletedAt = ptr(now)
		}
		j.event(now, "status "+body.Status, message)
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// completeBody is §2.4's body, typed so that a wrong type is a 400.
type completeBody struct {
	Status       string          `json:"status"`
	ExitCode     *int            `json:"exitCode"`
	Output       *api.Output     `json:"output"`
	ScriptOutput json.RawMessage `json:"scriptOutput"`
	Condition    *bool           `json:"condition"`
	Metrics      json.RawMessage `json:"metrics"`
	Timestamp    *time.Time      `json:"timestamp"`
}

// handleComplete records the completing call (§2.4). Every call is kept and
// counted: exactly-once is the agent's duty, and tests check it here.
func (s *Server) handleComplete(w http.ResponseWriter, r *http.Request) {
	var body completeBody
	raw, err := decodeBody(r, &body, true)
	if err != nil {
		fail(w, err)
		return
	}
	switch body.Status {
	case StatusCompleted, StatusFailed, StatusTimeout, StatusCancelled:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Invalid status %q: accepted are completed, failed, timeout, cancelled", body.Status))
		return
	}
	if body.ExitCode == nil {
		writeError(w, http.StatusBadRequest, "exitCode is required")
		return
	}
	if len(body.Metrics) > 0 && body.Metrics[0] != '{' && string(body.Metrics) != "null" {
		writeError(w, http.StatusBadRequest, "metrics must be an object")
		return
	}
	s.complete(w, r, "complete", raw, func(j *jobRecord) {
		j.Status = body.Status
		j.ExitCode = body.ExitCode
		j.Output = body.Output
		j.ScriptOutput = nil
		if string(body.ScriptOutput) != "null" {
			j.ScriptOutput = body.ScriptOutput
		}
		j.Condition = body.Condition
		j.Metrics = nil
		if string(body.Metrics) != "null" {
			j.Metrics = body.Metrics
		}
		j.Error = ""
	})
}

// handleFail records a failure before anything ran (§2.5); also completing.
func (s *Server) handleFail(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Error     *string    `json:"error"`
		ExitCode  *int       `json:"exitCode"`
		Timestamp *time.Time `json:"timestamp"`
	}
	raw, err := decodeBody(r, &body, true)
	if err != nil {
		fail(w, err)
		return
	}
	if body.Error == nil || strings.TrimSpace(*body.Error) == "" {
		writeError(w, http.StatusBadRequest, "error is required")
		return
	}
	s.complete(w, r, "fail", raw, func(j *jobRecord) {
		j.Status = StatusFailed
		j.ExitCode = body.ExitCode
		j.Error = *body.Error
		j.Output, j.ScriptOutput, j.Condition, j.Metrics = nil, nil, nil, nil
	})
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request, endpoint string, raw []byte, set func(j *jobRecord)) {
	now := s.now()
	compact := compactJSON(raw)
	caller := strings.TrimSpace(r.Header.Get("X-Orchestrator-ID"))
	record := func(j *jobRecord) error {
		if err := superseded(j, caller); err != nil {
			return err
		}
		set(j)
		j.CompletedAt = ptr(now)
		j.Completions = append(j.Completions, CompletionCall{Endpoint: endpoint, ReceivedAt: now, Body: compact})
		detail := j.Status
		if j.ExitCode != nil {
			detail += " exit " + strconv.Itoa(*j.ExitCode)
		}
		if n := len(j.Completions); n > 1 {
			detail += fmt.Sprintf(" (completing call #%d)", n)
		}
		j.event(now, endpoint, detail)
		return nil
	}
	// The executions are settled in the same transaction: whoever sees the
	// job completed sees its executions final.
	var j *jobRecord
	err := s.batch(func(tx *bolt.Tx) error {
		var err error
		if j, err = updateJobTx(tx, r.PathValue("id"), record); err != nil {
			return err
		}
		return settleExecutions(tx, j, now)
	})
	if err != nil {
		fail(w, err)
		return
	}
	if len(j.Completions) > 1 {
		s.log.Warn("dev backend: job completed more than once", "job", j.ID, "completions", len(j.Completions))
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// handleLogs stores live log lines (§2.6); the first copy of a seq wins.
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ExecutionID string         `json:"executionId"`
		Entries     []api.LogEntry `json:"entries"`
	}
	if _, err := decodeBody(r, &body, true); err != nil {
		fail(w, err)
		return
	}
	for i, e := range body.Entries {
		if e.Seq == 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("entries[%d]: seq must be at least 1", i))
			return
		}
		switch e.Stream {
		case "stdout", "stderr", "system":
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("entries[%d]: stream must be stdout, stderr or system, got %q", i, e.Stream))
			return
		}
	}
	id := r.PathValue("id")
	now := s.now()
	var accepted, dups int
	caller := strings.TrimSpace(r.Header.Get("X-Orchestrator-ID"))
	err := s.batch(func(tx *bolt.Tx) error {
		accepted, dups = 0, 0
		_, err := updateJobTx(tx, id, func(j *jobRecord) error {
			if err := superseded(j, caller); err != nil {
				return err
			}
			lb, err := tx.Bucket(bLogs).CreateBucketIfNotExists([]byte(id))
			if err != nil {
				return err
			}
			for _, e := range body.Entries {
				e.Seq += j.LogSeqBase
				k := seqKey(e.Seq)
				if lb.Get(k) != nil {
					dups++
					continue
				}
				v, err := marshal(LogLine{LogEntry: e, ExecutionID: body.ExecutionID})
				if err != nil {
					return err
				}
				if err := lb.Put(k, v); err != nil {
					return err
				}
				accepted++
				j.LogLines++
				j.LastLogSeq = max(j.LastLogSeq, e.Seq)
			}
			j.UpdatedAt = now
			return nil
		})
		if errors.Is(err, errJobNotFound) {
			// Not 404: on this route a 404 means "no log endpoint" to the agent.
			return errf(http.StatusBadRequest, "Unknown job %s", id)
		}
		return err
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "accepted": accepted, "duplicates": dups})
}

// handleRelease puts a claimed job back in the queue (§2.7).
func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Message string `json:"message"`
	}
	if _, err := decodeBody(r, &body, false); err != nil {
		fail(w, err)
		return
	}
	caller := strings.TrimSpace(r.Header.Get("X-Orchestrator-ID"))
	if !s.checkInstance(w, r, caller) {
		return
	}
	now := s.now()
	j, err := s.updateJob(r.PathValue("id"), func(j *jobRecord) error {
		switch {
		case Terminal(j.Status):
			return errf(http.StatusConflict, "Job is already %s", j.Status)
		case j.Status == StatusQueued:
			return nil
		case caller != "" && j.OrchestratorID != "" && caller != j.OrchestratorID:
			return errf(http.StatusForbidden, "Job is not claimed by this orchestrator")
		}
		j.OrchestratorID = ""
		j.ClaimedAt, j.AcknowledgedAt, j.StartedAt = nil, nil, nil
		j.Releases++
		if j.CancelRequested {
			// A user cancelled it meanwhile: it goes nowhere.
			j.Status = StatusCancelled
			j.CompletedAt = ptr(now)
			j.event(now, "released, cancelled", body.Message)
			return nil
		}
		j.Status = StatusQueued
		j.event(now, "released", body.Message)
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "status": j.Status})
}

// handleOrphaned lists the raw rows of the jobs an orchestrator holds (§2.8),
// as a bare array in snake_case like the deployed backend's DB rows.
func (s *Server) handleOrphaned(w http.ResponseWriter, r *http.Request) {
	orch, err := orchestratorOf(r, r.URL.Query().Get("orchestratorId"))
	if err != nil {
		fail(w, err)
		return
	}
	if !s.checkInstance(w, r, orch) {
		return
	}
	rows := []map[string]any{}
	err = s.db.View(func(tx *bolt.Tx) error {
		return forPrefix(tx.Bucket(bActive), orchPrefix(orch), func(k, _ []byte) error {
			j, err := loadJob(tx, string(k[len(orch)+1:]))
			if err != nil || j == nil {
				return err
			}
			rows = append(rows, j.row())
			return nil
		})
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rows)
}

// row is the job as a raw database row, snake_case.
func (j *jobRecord) row() map[string]any {
	var wire struct {
		Execution json.RawMessage `json:"execution"`
		Metadata  json.RawMessage `json:"metadata"`
		Attempts  json.RawMessage `json:"attempts"`
	}
	_ = json.Unmarshal(j.Wire, &wire)
	md := jobMetadata(j.Wire)
	var result any
	if j.ExitCode != nil || j.Output != nil {
		result = map[string]any{"exitCode": j.ExitCode, "output": j.Output}
	}
	var lastError any
	if j.Error != "" {
		lastError = j.Error
	}
	var orch any
	if j.OrchestratorID != "" {
		orch = j.OrchestratorID
	}
	attempts := json.RawMessage("0")
	if len(wire.Attempts) > 0 {
		attempts = wire.Attempts
	}
	metadata := json.RawMessage("{}")
	if len(wire.Metadata) > 0 && wire.Metadata[0] == '{' {
		metadata = wire.Metadata
	}
	return map[string]any{
		"id":              j.ID,
		"event_id":        md["eventId"],
		"user_id":         md["userId"],
		"type":            j.OriginalType,
		"status":          j.Status,
		"priority":        j.Priority,
		"payload":         wire.Execution,
		"scheduled_for":   timeText(j.dueAt()),
		"orchestrator_id": orch,
		"started_at":      timePtrText(j.StartedAt),
		"completed_at":    timePtrText(j.CompletedAt),
		"result":          result,
		"attempts":        attempts,
		"last_error":      lastError,
		"metadata":        metadata,
		"created_at":      timeText(j.CreatedAt),
		"updated_at":      timeText(j.UpdatedAt),
	}
}

func (j *jobRecord) dueAt() time.Time {
	if j.ScheduledFor.IsZero() {
		return j.CreatedAt
	}
	return j.ScheduledFor
}

// jobMetadata returns the wire job's metadata object (empty when absent).
func jobMetadata(wire json.RawMessage) map[string]any {
	var w struct {
		Metadata map[string]any `json:"metadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(wire))
	dec.UseNumber()
	_ = dec.Decode(&w)
	if w.Metadata == nil {
		return map[string]any{}
	}
	return w.Metadata
}

func compactJSON(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return json.RawMessage(b)
	}
	return json.RawMessage(buf.Bytes())
}
