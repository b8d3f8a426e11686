package api

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
)

// timeLayout is RFC 3339 with milliseconds in UTC, as the backend writes
// its own timestamps; log entries use RFC3339Nano.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatTime writes t as the backend writes its timestamps (timeLayout);
// a zero time is "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// DecodeOrphaned decodes the body of jobs/orphaned (see the client's
// Orphaned): a bare array of raw rows, or an object {"jobs":[...]}; rows
// without an id are skipped, unreadable timestamps are zero.
func DecodeOrphaned(body []byte) ([]OrphanRow, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		var wrapped struct {
			Jobs []json.RawMessage `json:"jobs"`
		}
		if err2 := json.Unmarshal(body, &wrapped); err2 != nil || wrapped.Jobs == nil {
			return nil, errors.New("not a JSON array of job rows")
		}
		list = wrapped.Jobs
	}
	rows := make([]OrphanRow, 0, len(list))
	for _, r := range list {
		var o obj
		if json.Unmarshal(r, &o) != nil || o == nil {
			continue
		}
		id := ""
		if ir, ok := o.get("id"); ok {
			id, _ = idText(ir)
		}
		if id == "" {
			continue
		}
		row := OrphanRow{ID: id}
		if sr, ok := o.get("status"); ok {
			row.Status, _ = str(sr)
		}
		row.StartedAt = firstTime(o, "started_at", "startedAt")
		row.ClaimedAt = firstTime(o, "claimed_at", "claimedAt")
		_ = json.Unmarshal(r, &row.Raw)
		rows = append(rows, row)
	}
	return rows, nil
}

func firstTime(o obj, keys ...string) time.Time {
	for _, k := range keys {
		if r, ok := o.get(k); ok {
			if t, ok := timeOf(r); ok {
				return t
			}
		}
	}
	return time.Time{}
}

// DecodeVariable decodes the body of a variables/{userId}/{key} answer:
// found is false when it has no "value"; ok is false when the body is not
// a JSON object.
func DecodeVariable(body []byte) (value string, found, ok bool) {
	var o obj
	if json.Unmarshal(body, &o) != nil || o == nil {
		return "", false, false
	}
	r, found := o.get("value")
	if !found {
		return "", false, true
	}
	return text(r), true, true
}

// HeartbeatAnswer is what a heartbeat's answer asks of the agent.
type HeartbeatAnswer struct {
	// CancelJobs are runs to stop as cancelled by a user (contract §5).
	CancelJobs []string
	// SupersededJobs are runs the backend took from this agent when it
	// declared it lost (SupersededJobsField; the development backend's
	// extension): to stop, reporting nothing more of them.
	SupersededJobs []string
}

// DecodeHeartbeatAnswer decodes a heartbeat's answer (ids sent as strings
// or numbers; empty ones skipped). An unreadable body asks nothing.
func DecodeHeartbeatAnswer(data []byte) HeartbeatAnswer {
	var resp struct {
		CancelJobs     []json.RawMessage `json:"cancelJobs"`
		SupersededJobs []json.RawMessage `json:"supersededJobs"`
	}
	if json.Unmarshal(data, &resp) != nil {
		return HeartbeatAnswer{}
	}
	ids := func(raw []json.RawMessage) []string {
		var out []string
		for _, r := range raw {
			if id, ok := idText(r); ok && id != "" {
				out = append(out, id)
			}
		}
		return out
	}
	return HeartbeatAnswer{CancelJobs: ids(resp.CancelJobs), SupersededJobs: ids(resp.SupersededJobs)}
}

// ServerInfo is a server as servers/{id} describes it.
type ServerInfo struct {
	ID       string
	Name     string
	Address  string
	Port     int
	Username string
	Online   bool
	Raw      json.RawMessage // the whole "server" object
}

// DecodeServerInfo decodes the body of a servers/{id} answer.
func DecodeServerInfo(body []byte) (*ServerInfo, error) {
	var w struct {
		Server json.RawMessage `json:"server"`
	}
	var o obj
	if json.Unmarshal(body, &w) != nil || json.Unmarshal(w.Server, &o) != nil || o == nil {
		return nil, errors.New("no server object in the answer")
	}
	d := &jobDecoder{}
	si := &ServerInfo{Raw: append(json.RawMessage(nil), w.Server...)}
	if r, ok := o.get("id"); ok {
		si.ID, _ = idText(r)
	}
	si.Name = d.stringField("name", o, "name")
	si.Address = d.stringField("address", o, "address")
	if si.Address == "" {
		si.Address = d.stringField("host", o, "host")
	}
	if r, ok := o.get("port"); ok {
		if p, ok := d.integer("port", r, 0); ok && p <= 65535 {
			si.Port = int(p)
		}
	}
	si.Username = d.stringField("username", o, "username")
	if r, ok := o.get("online"); ok {
		si.Online = text(r) == "true"
	}
	return si, nil
}

// DecodeCredentials decodes the body of a servers/{id}/credentials answer
// into a Server (ID as sent, possibly empty). Its errors never hold the
// secrets.
func DecodeCredentials(body []byte) (*Server, error) {
	var w struct {
		Credentials json.RawMessage `json:"credentials"`
	}
	if json.Unmarshal(body, &w) != nil || isNull(w.Credentials) {
		return nil, errors.New("no credentials object in the answer")
	}
	d := &jobDecoder{}
	s := d.server("credentials", w.Credentials)
	if s == nil {
		fields := make([]string, len(d.errs))
		for i, e := range d.errs {
			fields[i] = e.Error()
		}
		return nil, errors.New(strings.Join(fields, "; "))
	}
	return s, nil
}

// ErrorMessage reads the message of an error answer's body: it reads {"error":"..."} / {"message":"..."} / "details"
// (strings; anything else as compact JSON, and a nested {"message":...}).
func ErrorMessage(body []byte) string {
	var o map[string]json.RawMessage
	if err := json.Unmarshal(body, &o); err != nil || o == nil {
		return ""
	}
	part := func(k string) string {
		r, ok := o[k]
		if !ok || isNull(r) {
			return ""
		}
		if s, ok := str(r); ok {
			return strings.TrimSpace(s)
		}
		var nested map[string]json.RawMessage
		if json.Unmarshal(r, &nested) == nil {
			if m, ok := nested["message"]; ok {
				if s, ok := str(m); ok {
					return s
				}
			}
		}
		t := text(r)
		if len(t) > 500 {
			t = t[:500] + "..."
		}
		return t
	}
	var parts []string
	for _, k := range []string{"error", "message", "details"} {
		if p := part(k); p != "" && !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	msg := strings.Join(parts, ": ")
	if len(msg) > 1000 {
		msg = msg[:1000] + "..."
	}
	return strings.ToValidUTF8(msg, "\uFFFD")
}

func optMs(d *time.Duration) *int64 {
	if d == nil {
		return nil
	}
	v := d.Milliseconds()
	return &v
}

// MarshalJSON writes the wire body: only the set fields, times in RFC 3339
// (a zero time is never written), durations in milliseconds. There is no
// way to make it write completedAt or a status other than "running".
func (u ExecutionUpdate) MarshalJSON() ([]byte, error) {
	type wire struct {
		Status               string         `json:"status,omitempty"`
		StartedAt            string         `json:"startedAt,omitempty"`
		ExitCode             *int           `json:"exitCode,omitempty"`
		Output               *string        `json:"output,omitempty"`
		Error                *string        `json:"error,omitempty"`
		Metadata             map[string]any `json:"metadata,omitempty"`
		SetupStartedAt       string         `json:"setupStartedAt,omitempty"`
		SetupCompletedAt     string         `json:"setupCompletedAt,omitempty"`
		ExecutionStartedAt   string         `json:"executionStartedAt,omitempty"`
		ExecutionCompletedAt string         `json:"executionCompletedAt,omitempty"`
		CleanupStartedAt     string         `json:"cleanupStartedAt,omitempty"`
		CleanupCompletedAt   string         `json:"cleanupCompletedAt,omitempty"`
		SetupDuration        *int64         `json:"setupDuration,omitempty"`
		ExecutionDuration    *int64         `json:"executionDuration,omitempty"`
		CleanupDuration      *int64         `json:"cleanupDuration,omitempty"`
		TotalDuration        *int64         `json:"totalDuration,omitempty"`
		ExecutionMetadata    map[string]any `json:"executionMetadata,omitempty"`
	}
	status := ""
	if u.Running {
		status = "running"
	}
	return json.Marshal(wire{
		Status:               status,
		StartedAt:            FormatTime(u.StartedAt),
		ExitCode:             u.ExitCode,
		Output:               u.Output,
		Error:                u.Error,
		Metadata:             u.Metadata,
		SetupStartedAt:       FormatTime(u.SetupStartedAt),
		SetupCompletedAt:     FormatTime(u.SetupCompletedAt),
		ExecutionStartedAt:   FormatTime(u.ExecutionStartedAt),
		ExecutionCompletedAt: FormatTime(u.ExecutionCompletedAt),
		CleanupStartedAt:     FormatTime(u.CleanupStartedAt),
		CleanupCompletedAt:   FormatTime(u.CleanupCompletedAt),
		SetupDuration:        optMs(u.SetupDuration),
		ExecutionDuration:    optMs(u.ExecutionDuration),
		CleanupDuration:      optMs(u.CleanupDuration),
		TotalDuration:        optMs(u.TotalDuration),
		ExecutionMetadata:    u.ExecutionMetadata,
	})
}

// UnmarshalJSON reads the wire body back (for journals that store it).
// Unknown keys, completedAt and any status but "running" included, are
// ignored.
func (u *ExecutionUpdate) UnmarshalJSON(b []byte) error {
	var w struct {
		Status               string         `json:"status"`
		StartedAt            time.Time      `json:"startedAt"`
		ExitCode             *int           `json:"exitCode"`
		Output               *string        `json:"output"`
		Error                *string        `json:"error"`
		Metadata             map[string]any `json:"metadata"`
		SetupStartedAt       time.Time      `json:"setupStartedAt"`
		SetupCompletedAt     time.Time      `json:"setupCompletedAt"`
		ExecutionStartedAt   time.Time      `json:"executionStartedAt"`
		ExecutionCompletedAt time.Time      `json:"executionCompletedAt"`
		CleanupStartedAt     time.Time      `json:"cleanupStartedAt"`
		CleanupCompletedAt   time.Time      `json:"cleanupCompletedAt"`
		SetupDuration        *int64         `json:"setupDuration"`
		ExecutionDuration    *int64         `json:"executionDuration"`
		CleanupDuration      *int64         `json:"cleanupDuration"`
		TotalDuration        *int64         `json:"totalDuration"`
		ExecutionMetadata    map[string]any `json:"executionMetadata"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	dur := func(p *int64) *time.Duration {
		if p == nil {
			return nil
		}
		d := time.Duration(*p) * time.Millisecond
		return &d
	}
	*u = ExecutionUpdate{
		Running:   w.Status == "running",
		StartedAt: w.StartedAt, ExitCode: w.ExitCode, Output: w.Output, Error: w.Error, Metadata: w.Metadata,
		SetupStartedAt: w.SetupStartedAt, SetupCompletedAt: w.SetupCompletedAt,
		ExecutionStartedAt: w.ExecutionStartedAt, ExecutionCompletedAt: w.ExecutionCompletedAt,
		CleanupStartedAt: w.CleanupStartedAt, CleanupCompletedAt: w.CleanupCompletedAt,
		SetupDuration: dur(w.SetupDuration), ExecutionDuration: dur(w.ExecutionDuration),
		CleanupDuration: dur(w.CleanupDuration), TotalDuration: dur(w.TotalDuration),
		ExecutionMetadata: w.ExecutionMetadata,
	}
	return nil
}

// Ptr returns a pointer to v (for ExecutionUpdate's optional fields).
func Ptr[T any](v T) *T { return &v }
