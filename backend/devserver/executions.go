package devserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ExecutionView is an execution (one run of a job) as the dev backend holds it.
type ExecutionView struct {
	ID         string `json:"id"`
	JobID      string `json:"jobId"`
	ServerID   *int64 `json:"serverId,omitempty"`
	ServerName string `json:"serverName,omitempty"`
	// Status is queued when created, running once an update says so, and
	// final once its job completes: the backend sets that itself, since an
	// update never carries a terminal status (§3 rule).
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Fields holds the last value of every field an update sent, except
	// status, metadata and executionMetadata (merged into their own maps).
	Fields            map[string]json.RawMessage `json:"fields,omitempty"`
	Metadata          map[string]json.RawMessage `json:"metadata,omitempty"`
	ExecutionMetadata map[string]json.RawMessage `json:"executionMetadata,omitempty"`
	Updates           int                        `json:"updates"`
	Output            json.RawMessage            `json:"output,omitempty"`
	Outputs           int                        `json:"outputs"`
	Condition         *bool                      `json:"condition,omitempty"`
}

// ExitCode is the exit code an update reported, or nil.
func (e ExecutionView) ExitCode() *int {
	var n int
	if v, ok := e.Fields["exitCode"]; !ok || json.Unmarshal(v, &n) != nil {
		return nil
	}
	return &n
}

// Duration is a duration field an update reported (setupDuration,
// executionDuration, cleanupDuration, totalDuration: milliseconds).
func (e ExecutionView) Duration(field string) (time.Duration, bool) {
	var ms float64
	if v, ok := e.Fields[field]; !ok || json.Unmarshal(v, &ms) != nil {
		return 0, false
	}
	return time.Duration(ms * float64(time.Millisecond)), true
}

// Time is a time field an update reported (startedAt, setupStartedAt, ...).
func (e ExecutionView) Time(field string) (time.Time, bool) {
	var t time.Time
	if v, ok := e.Fields[field]; !ok || json.Unmarshal(v, &t) != nil {
		return time.Time{}, false
	}
	return t, true
}

func loadExec(tx *bolt.Tx, id string) (*ExecutionView, error) {
	rec, err := load[ExecutionView](tx, bExecs, id)
	if err == nil && rec == nil {
		return nil, errf(http.StatusNotFound, "Execution not found")
	}
	return rec, err
}

func saveExec(tx *bolt.Tx, e *ExecutionView) error {
	b, err := marshal(e)
	if err != nil {
		return err
	}
	return tx.Bucket(bExecs).Put([]byte(e.ID), b)
}

// updateExec changes execution id as reported by caller (the
// X-Orchestrator-ID header): refused when its job was taken from caller as
// a lost agent.
func (s *Server) updateExec(id, caller string, fn func(e *ExecutionView) error) (*ExecutionView, error) {
	var out *ExecutionView
	err := s.batch(func(tx *bolt.Tx) error {
		e, err := loadExec(tx, id)
		if err != nil {
			return err
		}
		if j, err := loadJob(tx, e.JobID); err != nil {
			return err
		} else if j != nil {
			if err := superseded(j, caller); err != nil {
				return err
			}
		}
		if err := fn(e); err != nil {
			return err
		}
		e.UpdatedAt = s.now()
		out = e
		return saveExec(tx, e)
	})
	return out, err
}

// handleExecCreate creates an execution row (§3). Creating it again for the
// same job is harmless (a retried request); for another job it is a 409.
func (s *Server) handleExecCreate(w http.ResponseWriter, r *http.Request) {
	var body struct {
		JobID      string          `json:"jobId"`
		ServerID   json.RawMessage `json:"serverId"`
		ServerName string          `json:"serverName"`
	}
	if _, err := decodeBody(r, &body, true); err != nil {
		fail(w, err)
		return
	}
	if body.JobID == "" {
		writeError(w, http.StatusBadRequest, "jobId is required")
		return
	}
	var serverID *int64
	if len(body.ServerID) > 0 && string(body.ServerID) != "null" {
		var n int64
		if err := json.Unmarshal(body.ServerID, &n); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("serverId must be a number, got %s", body.ServerID))
			return
		}
		serverID = &n
	}
	id := r.PathValue("id")
	now := s.now()
	caller := strings.TrimSpace(r.Header.Get("X-Orchestrator-ID"))
	var out *ExecutionView
	existed := false
	err := s.batch(func(tx *bolt.Tx) error {
		out, existed = nil, false
		if prev, err := loadExec(tx, id); err == nil {
			if prev.JobID != body.JobID {
				return errf(http.StatusConflict, "Execution %s exists for job %s", id, prev.JobID)
			}
			out, existed = prev, true
			return nil
		}
		_, err := updateJobTx(tx, body.JobID, func(j *jobRecord) error {
			if err := superseded(j, caller); err != nil {
				return err
			}
			j.Executions = append(j.Executions, id)
			j.event(now, "execution created", id)
			return nil
		})
		if err != nil {
			return err
		}
		out = &ExecutionView{ID: id, JobID: body.JobID, ServerID: serverID, ServerName: body.ServerName, Status: StatusQueued, CreatedAt: now, UpdatedAt: now}
		return saveExec(tx, out)
	})
	if err != nil {
		fail(w, err)
		return
	}
	code := http.StatusCreated
	if existed {
		code = http.StatusOK
	}
	writeJSON(w, code, map[string]any{"success": true, "execution": out})
}

var execTimeFields = map[string]bool{
	"startedAt": true, "setupStartedAt": true, "setupCompletedAt": true,
	"executionStartedAt": true, "executionCompletedAt": true,
	"cleanupStartedAt": true, "cleanupCompletedAt": true,
}

var execDurationFields = map[string]bool{
	"setupDuration": true, "executionDuration": true, "cleanupDuration": true, "totalDuration": true,
}

// terminalExecStatus are the statuses that end a run on the deployed backend.
var terminalExecStatus = map[string]bool{
	"completed": true, "complete": true, "success": true, "succeeded": true,
	"failed": true, "failure": true, "error": true,
	"timeout": true, "timed_out": true, "timedout": true,
	"cancelled": true, "canceled": true, "partial": true,
}

// handleExecUpdate merges an update into an execution (§3). It refuses what
// the plan forbids: completedAt, a terminal status, a zero or malformed time.
func (s *Server) handleExecUpdate(w http.ResponseWriter, r *http.Request) {
	var body map[string]json.RawMessage
	if _, err := decodeBody(r, &body, true); err != nil {
		fail(w, err)
		return
	}
	if err := checkExecUpdate(body); err != nil {
		fail(w, err)
		return
	}
	e, err := s.updateExec(r.PathValue("id"), strings.TrimSpace(r.Header.Get("X-Orchestrator-ID")), func(e *ExecutionView) error {
		if e.Fields == nil {
			e.Fields = map[string]json.RawMessage{}
		}
		for k, v := range body {
			switch k {
			case "status":
				var st string
				_ = json.Unmarshal(v, &st) // checked above
				// A late update never takes a finished execution back.
				if !Terminal(e.Status) {
					e.Status = st
				}
			case "metadata", "executionMetadata":
				var m map[string]json.RawMessage
				_ = json.Unmarshal(v, &m)
				dst := &e.Metadata
				if k == "executionMetadata" {
					dst = &e.ExecutionMetadata
				}
				if *dst == nil {
					*dst = map[string]json.RawMessage{}
				}
				for mk, mv := range m {
					(*dst)[mk] = mv
				}
			default:
				e.Fields[k] = v
			}
		}
		e.Updates++
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "execution": e})
}

func checkExecUpdate(body map[string]json.RawMessage) error {
	bad := func(format string, args ...any) error { return errf(http.StatusBadRequest, format, args...) }
	if _, ok := body["completedAt"]; ok {
		return bad("completedAt is not accepted in an execution update: the end of a run is reported by jobs/{id}/complete only")
	}
	for k, v := range body {
		switch {
		case k == "status":
			var st string
			if err := json.Unmarshal(v, &st); err != nil {
				return bad("status must be a string")
			}
			if terminalExecStatus[strings.ToLower(st)] {
				return bad("terminal status %q is not accepted in an execution update: the end of a run is reported by jobs/{id}/complete only", st)
			}
		case execTimeFields[k]:
			var ts string
			if err := json.Unmarshal(v, &ts); err != nil {
				return bad("%s must be an RFC 3339 string, got %s", k, v)
			}
			t, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return bad("%s is not RFC 3339: %q", k, ts)
			}
			if t.Year() <= 1 {
				return bad("%s is a zero time", k)
			}
		case execDurationFields[k]:
			var n float64
			if err := json.Unmarshal(v, &n); err != nil || n < 0 {
				return bad("%s must be a non-negative number of milliseconds, got %s", k, v)
			}
		case k == "exitCode":
			var n int
			if err := json.Unmarshal(v, &n); err != nil {
				return bad("exitCode must be an integer, got %s", v)
			}
		case k == "error" || k == "output":
			var str *string
			if err := json.Unmarshal(v, &str); err != nil {
				return bad("%s must be a string", k)
			}
		case k == "metadata" || k == "executionMetadata":
			var m map[string]json.RawMessage
			if err := json.Unmarshal(v, &m); err != nil || m == nil {
				return bad("%s must be an object", k)
			}
		}
	}
	return nil
}

// settleExecutions gives the executions of a job that just completed their
// final status, as the backend's own bookkeeping: the last one (the run the
// completion reports) takes the job's status; an earlier one (an attempt
// that was retried) the status its reported exit code means. An earlier
// one that never started and reported nothing is left as it is.
func settleExecutions(tx *bolt.Tx, j *jobRecord, now time.Time) error {
	for i, id := range j.Executions {
		e, err := load[ExecutionView](tx, bExecs, id)
		if err != nil {
			return err
		}
		if e == nil || Terminal(e.Status) {
			continue
		}
		switch code := e.ExitCode(); {
		case i == len(j.Executions)-1:
			e.Status = j.Status
		case code != nil:
			e.Status = statusOfExit(*code)
		case e.Status == StatusRunning:
			e.Status = StatusFailed
		default:
			continue
		}
		e.UpdatedAt = now
		if err := saveExec(tx, e); err != nil {
			return err
		}
	}
	return nil
}

// statusOfExit is the status an exit code means to the backend (§2.4).
func statusOfExit(code int) string {
	switch code {
	case 0:
		return StatusCompleted
	case -1:
		return StatusTimeout
	case -2:
		return StatusCancelled
	}
	return StatusFailed
}

func (s *Server) handleExecOutput(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Output    json.RawMessage `json:"output"`
		Timestamp *time.Time      `json:"timestamp"`
	}
	if _, err := decodeBody(r, &body, true); err != nil {
		fail(w, err)
		return
	}
	if len(body.Output) == 0 {
		writeError(w, http.StatusBadRequest, "output is required")
		return
	}
	_, err := s.updateExec(r.PathValue("id"), strings.TrimSpace(r.Header.Get("X-Orchestrator-ID")), func(e *ExecutionView) error {
		e.Output = compactJSON(body.Output)
		e.Outputs++
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

func (s *Server) handleExecCondition(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Condition *bool      `json:"condition"`
		Timestamp *time.Time `json:"timestamp"`
	}
	if _, err := decodeBody(r, &body, true); err != nil {
		fail(w, err)
		return
	}
	if body.Condition == nil {
		writeError(w, http.StatusBadRequest, "condition (a boolean) is required")
		return
	}
	_, err := s.updateExec(r.PathValue("id"), strings.TrimSpace(r.Header.Get("X-Orchestrator-ID")), func(e *ExecutionView) error {
		e.Condition = body.Condition
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// handleExecContext answers the run's context (§3).
func (s *Server) handleExecContext(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var e *ExecutionView
	var j *jobRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if e, err = loadExec(tx, id); err != nil {
			return err
		}
		j, err = loadJob(tx, e.JobID)
		return err
	})
	if err != nil {
		fail(w, err)
		return
	}
	md := map[string]any{}
	var event any
	if j != nil {
		md = jobMetadata(j.Wire)
		if md["eventId"] != nil {
			event = map[string]any{"id": md["eventId"], "name": md["eventName"], "type": j.OriginalType}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"executionId": e.ID,
		"jobId":       e.JobID,
		"eventId":     md["eventId"],
		"userId":      md["userId"],
		"metadata":    md,
		"event":       event,
		"user":        nil,
	})
}

// varRecord is a stored variable.
type varRecord struct {
	Value     string    `json:"value"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func (s *Server) handleVarGet(w http.ResponseWriter, r *http.Request) {
	user, key := r.PathValue("user"), r.PathValue("key")
	var rec *varRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bVars).Bucket([]byte(user))
		if ub == nil {
			return nil
		}
		if v := ub.Get([]byte(key)); v != nil {
			rec = new(varRecord)
			return json.Unmarshal(v, rec)
		}
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	if rec == nil {
		writeError(w, http.StatusNotFound, "Variable not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "value": rec.Value, "updatedAt": timeText(rec.UpdatedAt)})
}

func (s *Server) handleVarPut(w http.ResponseWriter, r *http.Request) {
	user, key := r.PathValue("user"), r.PathValue("key")
	if user == "" || key == "" || len(user) > bolt.MaxKeySize || len(key) > bolt.MaxKeySize {
		writeError(w, http.StatusBadRequest, "invalid user id or key")
		return
	}
	var body struct {
		Value json.RawMessage `json:"value"`
	}
	if _, err := decodeBody(r, &body, true); err != nil {
		fail(w, err)
		return
	}
	var value string
	if err := json.Unmarshal(body.Value, &value); err != nil || body.Value[0] != '"' {
		writeError(w, http.StatusBadRequest, "value must be a string (helpers JSON-encode other values)")
		return
	}
	rec := varRecord{Value: value, UpdatedAt: s.now()}
	err := s.update(func(tx *bolt.Tx) error {
		ub, err := tx.Bucket(bVars).CreateBucketIfNotExists([]byte(user))
		if err != nil {
			return err
		}
		b, err := marshal(rec)
		if err != nil {
			return err
		}
		return ub.Put([]byte(key), b)
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}
