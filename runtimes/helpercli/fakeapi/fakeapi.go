// Package fakeapi is an in-memory runtime API (the job side of
// docs/runtime-api.md, "Endpoints") for testing the helpers: it
// checks the bearer token and execution id, keeps input, output, variables,
// condition and context, answers POST /tool-actions/execute with a set
// result (or 501 when tool actions are off), records every request, and can
// be told to fail the next requests. For tests only.
package fakeapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
)

// Request is one request the server received.
type Request struct {
	Method     string
	RequestURI string // as sent, still percent-encoded
	Key        string // decoded variable key, for variable requests
	Body       string
	Auth       string
}

// Reply is a canned reply; Drop closes the connection without answering.
type Reply struct {
	Status int
	Body   string
	Drop   bool
}

// Server is a fake runtime API for one execution.
type Server struct {
	*httptest.Server
	ExecutionID string
	Token       string

	mu        sync.Mutex
	input     json.RawMessage
	context   json.RawMessage
	vars      map[string]json.RawMessage
	output    json.RawMessage
	condition *bool
	requests  []Request
	queued    []Reply
	tool      json.RawMessage // the tool action result
	toolsOff  bool
}

// NoTools is the message of the 501 the agent answers when tool actions
// are off.
const NoTools = "tool actions are not enabled on this agent: its configuration must set jobs.toolActions: true (CRONIUM_JOBS_TOOL_ACTIONS=true)"

// New starts a server on 127.0.0.1; it is closed when the test ends if
// cleanup is given (t.Cleanup), else the caller closes it.
func New(cleanup func(func())) *Server {
	s := &Server{
		ExecutionID: "exec_job1_1700000000",
		Token:       "test-token",
		input:       json.RawMessage(`null`),
		context:     json.RawMessage(`{"executionId":"exec_job1_1700000000","jobId":"job1","eventId":"42","eventName":"demo","eventType":"BASH","userId":"u1","startTime":"2024-01-01T00:00:00Z","trigger":"MANUAL","metadata":{}}`),
		vars:        map[string]json.RawMessage{},
		tool:        json.RawMessage(`{"success":true,"data":{"ok":true}}`),
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	if cleanup != nil {
		cleanup(s.Close)
	}
	return s
}

// Env is the job environment pointing at this server.
func (s *Server) Env() []string {
	return []string{
		"CRONIUM_RUNTIME_API=" + s.URL,
		"CRONIUM_EXECUTION_ID=" + s.ExecutionID,
		"CRONIUM_EXECUTION_TOKEN=" + s.Token,
		"CRONIUM_JOB_ID=job1",
		"CRONIUM_EVENT_ID=42",
		"CRONIUM_EXECUTION_MODE=container",
	}
}

// SetInput sets the step input (JSON text).
func (s *Server) SetInput(v string) { s.mu.Lock(); s.input = json.RawMessage(v); s.mu.Unlock() }

// SetContext sets the context reply (JSON text).
func (s *Server) SetContext(v string) { s.mu.Lock(); s.context = json.RawMessage(v); s.mu.Unlock() }

// SetVariable stores a variable (JSON text).
func (s *Server) SetVariable(k, v string) { s.mu.Lock(); s.vars[k] = json.RawMessage(v); s.mu.Unlock() }

// Variable returns a variable's JSON text and whether it is set.
func (s *Server) Variable(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vars[k]
	return string(v), ok
}

// Output returns the last output's JSON text ("" when none was set).
func (s *Server) Output() string { s.mu.Lock(); defer s.mu.Unlock(); return string(s.output) }

// SetToolResult sets the result of the next tool actions (JSON text, the
// reply's data).
func (s *Server) SetToolResult(v string) { s.mu.Lock(); s.tool = json.RawMessage(v); s.mu.Unlock() }

// SetToolActions turns tool actions on (the default) or off (501).
func (s *Server) SetToolActions(on bool) { s.mu.Lock(); s.toolsOff = !on; s.mu.Unlock() }

// Condition returns the last condition set, nil when none.
func (s *Server) Condition() *bool { s.mu.Lock(); defer s.mu.Unlock(); return s.condition }

// Queue makes the next requests get these replies, in order, before normal
// handling resumes.
func (s *Server) Queue(r ...Reply) { s.mu.Lock(); s.queued = append(s.queued, r...); s.mu.Unlock() }

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Reset forgets recorded requests, output and condition.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.output, s.condition, s.queued = nil, nil, nil, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": http.StatusText(status), "message": msg})
}

func succeed(w http.ResponseWriter, data any) {
	if data == nil {
		writeJSON(w, http.StatusOK, map[string]any{"success": true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "data": data})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := Request{Method: r.Method, RequestURI: r.RequestURI, Body: string(body), Auth: r.Header.Get("Authorization")}

	// /executions/{id}/{what}[/{key}] on the raw path, so %2F stays in the key
	raw := r.URL.EscapedPath()
	parts := strings.Split(strings.TrimPrefix(raw, "/"), "/")
	if len(parts) == 4 && parts[2] == "variables" {
		if k, err := url.PathUnescape(parts[3]); err == nil {
			req.Key = k
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	if len(s.queued) > 0 {
		q := s.queued[0]
		s.queued = s.queued[1:]
		if q.Drop {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(q.Status)
		_, _ = w.Write([]byte(q.Body))
		return
	}

	if req.Auth != "Bearer "+s.Token {
		fail(w, http.StatusUnauthorized, "missing or invalid token")
		return
	}
	if raw == "/tool-actions/execute" {
		s.toolAction(w, r.Method, body)
		return
	}
	if len(parts) < 3 || parts[0] != "executions" {
		fail(w, http.StatusNotFound, "not found")
		return
	}
	if id, _ := url.PathUnescape(parts[1]); id != s.ExecutionID {
		fail(w, http.StatusForbidden, "execution ID mismatch")
		return
	}
	switch {
	case len(parts) == 3 && parts[2] == "input" && r.Method == http.MethodGet:
		succeed(w, s.input)
	case len(parts) == 3 && parts[2] == "context" && r.Method == http.MethodGet:
		succeed(w, s.context)
	case len(parts) == 3 && parts[2] == "output" && r.Method == http.MethodPost:
		var in struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			fail(w, http.StatusBadRequest, "invalid JSON body")
			return
		}
		if in.Data == nil {
			in.Data = json.RawMessage(`null`)
		}
		s.output = in.Data
		succeed(w, nil)
	case len(parts) == 3 && parts[2] == "condition" && r.Method == http.MethodPost:
		var in struct {
			Condition *bool `json:"condition"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.Condition == nil {
			fail(w, http.StatusBadRequest, "condition must be a boolean")
			return
		}
		s.condition = in.Condition
		succeed(w, nil)
	case len(parts) == 4 && parts[2] == "variables" && req.Key != "" && len(req.Key) <= 255:
		switch r.Method {
		case http.MethodGet:
			v, found := s.vars[req.Key]
			if !found {
				v = json.RawMessage(`null`)
			}
			succeed(w, map[string]any{"key": req.Key, "value": v})
		case http.MethodPut:
			var in struct {
				Value json.RawMessage `json:"value"`
			}
			if err := json.Unmarshal(body, &in); err != nil {
				fail(w, http.StatusBadRequest, "invalid JSON body")
				return
			}
			if in.Value == nil {
				in.Value = json.RawMessage(`null`)
			}
			s.vars[req.Key] = in.Value
			succeed(w, nil)
		default:
			fail(w, http.StatusMethodNotAllowed, "method not allowed")
		}
	default:
		fail(w, http.StatusNotFound, "not found")
	}
}

// toolAction answers POST /tool-actions/execute as the agent does: 501 when
// tool actions are off, 400 for a body that is not an object naming a known
// tool (nothing sent), else 200 with the set result.
func (s *Server) toolAction(w http.ResponseWriter, method string, body []byte) {
	if method != http.MethodPost {
		fail(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if s.toolsOff {
		fail(w, http.StatusNotImplemented, NoTools)
		return
	}
	var in struct {
		Tool string `json:"tool"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		fail(w, http.StatusBadRequest, "the request must be a JSON object")
		return
	}
	switch in.Tool {
	case "webhook", "slack", "discord", "teams", "email":
	default:
		fail(w, http.StatusBadRequest, `tool: unknown tool "`+in.Tool+`": want one of webhook, slack, discord, teams, email`)
		return
	}
	succeed(w, s.tool)
}
