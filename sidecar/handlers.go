package sidecar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	timeFormat   = "2006-01-02T15:04:05.000Z07:00" // RFC 3339 with milliseconds
	maxKeyLength = 255
	msgMismatch  = "execution ID mismatch"
)

// route is an endpoint of the runtime API.
type route int

const (
	routeNone route = iota
	routeHealth
	routeInput
	routeOutput
	routeVariable
	routeCondition
	routeContext
	routeToolAction
)

var routeNames = [...]string{"none", "health", "input", "output", "variable", "condition", "context", "tool-action"}

func (r route) String() string { return routeNames[r] }

// methods lists the methods each route accepts (the Allow header of a 405).
func (r route) methods() []string {
	switch r {
	case routeHealth, routeInput, routeContext:
		return []string{http.MethodGet}
	case routeOutput, routeCondition, routeToolAction:
		return []string{http.MethodPost}
	case routeVariable:
		return []string{http.MethodGet, http.MethodPut}
	}
	return nil
}

// match maps an escaped path to a route, with the escaped execution id and
// variable key when the route has them.
func match(escaped string) (rt route, id, key string) {
	switch escaped {
	case "/health":
		return routeHealth, "", ""
	case "/tool-actions/execute":
		return routeToolAction, "", ""
	}
	rest, ok := strings.CutPrefix(escaped, "/executions/")
	if !ok {
		return routeNone, "", ""
	}
	id, tail, ok := strings.Cut(rest, "/")
	if !ok {
		return routeNone, "", ""
	}
	switch tail {
	case "input":
		return routeInput, id, ""
	case "output":
		return routeOutput, id, ""
	case "condition":
		return routeCondition, id, ""
	case "context":
		return routeContext, id, ""
	}
	if key, ok := strings.CutPrefix(tail, "variables/"); ok {
		return routeVariable, id, key
	}
	return routeNone, "", ""
}

// call is one request in flight.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	status int
}

func (c *call) header() http.Header { return c.w.Header() }

func (c *call) writeJSON(status int, body []byte) {
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.status = status
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body)
}

// fail answers with the error envelope.
func (c *call) fail(status int, msg string) {
	body, _ := json.Marshal(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{http.StatusText(status), msg})
	c.writeJSON(status, body)
}

// ok answers with the success envelope; data nil omits "data", otherwise it
// is JSON text.
func (c *call) ok(data []byte) {
	if data == nil {
		c.writeJSON(http.StatusOK, []byte(`{"success":true}`))
		return
	}
	body := make([]byte, 0, len(data)+len(`{"success":true,"data":}`))
	body = append(body, `{"success":true,"data":`...)
	body = append(body, data...)
	body = append(body, '}')
	c.writeJSON(http.StatusOK, body)
}

type contextData struct {
	ExecutionID string         `json:"executionId"`
	JobID       string         `json:"jobId"`
	EventID     string         `json:"eventId"`
	EventName   string         `json:"eventName"`
	EventType   string         `json:"eventType"`
	UserID      string         `json:"userId"`
	StartTime   string         `json:"startTime"`
	Trigger     string         `json:"trigger"`
	Metadata    map[string]any `json:"metadata"`
}

func (sess *Session) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := &call{w: w, r: r}
	rt, execID := sess.handle(c)
	sess.srv.log.Debug("runtime api call",
		"execution", sess.exec.ExecutionID,
		"route", rt.String(),
		"method", r.Method,
		"status", c.status,
		"tokenExecution", execID,
		"duration", time.Since(start))
}

// handle serves one request; it returns the route and the execution id of
// the token presented (for the log).
func (sess *Session) handle(c *call) (route, string) {
	r := c.r
	rt, rawID, rawKey := match(r.URL.EscapedPath())
	if rt == routeNone {
		c.fail(http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.EscapedPath())
		return rt, ""
	}
	methods := rt.methods()
	allowed := false
	for _, m := range methods {
		allowed = allowed || r.Method == m
	}
	if !allowed {
		c.header().Set("Allow", strings.Join(methods, ", "))
		c.fail(http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here; use "+strings.Join(methods, " or "))
		return rt, ""
	}
	if rt == routeHealth {
		body, _ := json.Marshal(struct {
			Status string `json:"status"`
			Time   string `json:"time"`
		}{"healthy", sess.srv.now().UTC().Format(time.RFC3339)})
		c.writeJSON(http.StatusOK, body)
		return rt, ""
	}

	sess.gate.RLock()
	defer sess.gate.RUnlock()
	if sess.closed {
		c.fail(http.StatusUnauthorized, "execution is not running")
		return rt, ""
	}

	// Authentication: a valid token of a live execution.
	raw, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		sess.unauthorized(c, `Bearer realm="cronium-runtime"`, "missing bearer token", "missing bearer token")
		return rt, ""
	}
	cl, err := sess.srv.verify(raw)
	if err != nil {
		sess.unauthorized(c, challengeInvalid, tokenMessage(err), err.Error())
		return rt, ""
	}
	owner := sess.srv.lookup(cl.ExecutionID)
	if owner == nil {
		sess.unauthorized(c, challengeInvalid, "token revoked: its execution is not running",
			"token of execution "+cl.ExecutionID+", which is not running")
		return rt, cl.ExecutionID
	}

	// Every authenticated call counts against the token's execution.
	if owner.limiter != nil {
		if ok, wait := owner.limiter.allow(sess.srv.now()); !ok {
			c.header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			c.fail(http.StatusTooManyRequests, fmt.Sprintf("rate limit exceeded: more than %d calls in %s", sess.srv.rateN, sess.srv.ratePer))
			return rt, cl.ExecutionID
		}
	}

	// Authorization: this listener serves one execution, and the path must
	// name it.
	if owner != sess {
		c.fail(http.StatusForbidden, msgMismatch)
		return rt, cl.ExecutionID
	}
	if rt != routeToolAction {
		id, err := url.PathUnescape(rawID)
		if err != nil || id != cl.ExecutionID {
			c.fail(http.StatusForbidden, msgMismatch)
			return rt, cl.ExecutionID
		}
	}

	switch rt {
	case routeInput:
		c.ok(sess.input)
	case routeContext:
		c.ok(sess.context)
	case routeOutput:
		sess.postOutput(c)
	case routeCondition:
		sess.postCondition(c)
	case routeVariable:
		key, err := url.PathUnescape(rawKey)
		switch {
		case err != nil:
			c.fail(http.StatusBadRequest, "variable key is not validly URL-encoded")
		case len(key) == 0 || len(key) > maxKeyLength:
			c.fail(http.StatusBadRequest, fmt.Sprintf("variable key must be 1 to %d bytes, got %d", maxKeyLength, len(key)))
		case key == "." || key == "..":
			// The backend's variable URLs carry the key as a path segment,
			// where "." and ".." are dot-segments: it refuses them, so a
			// write accepted here would be lost.
			c.fail(http.StatusBadRequest, fmt.Sprintf("variable key %q is reserved: \".\" and \"..\" (also percent-encoded) cannot name a variable", key))
		case r.Method == http.MethodGet:
			sess.getVariable(c, key)
		default:
			sess.putVariable(c, key)
		}
	case routeToolAction:
		sess.postToolAction(c)
	}
	return rt, cl.ExecutionID
}

const challengeInvalid = `Bearer realm="cronium-runtime", error="invalid_token"`

// unauthorized answers a request without a valid token: 401 with the
// challenge and msg, or 429 once this listener has answered its budget of
// such requests (the job is probing, not calling). Either way it is counted
// for the session's next log line (reason says why; never the token).
func (sess *Session) unauthorized(c *call, challenge, msg, reason string) {
	now := sess.srv.now()
	allowed, wait := true, time.Duration(0)
	if sess.authFails != nil {
		allowed, wait = sess.authFails.allow(now)
	}
	if allowed {
		c.header().Set("WWW-Authenticate", challenge)
		c.fail(http.StatusUnauthorized, msg)
	} else {
		c.header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		c.fail(http.StatusTooManyRequests, fmt.Sprintf("too many requests without a valid token: more than %d in %s", sess.srv.authFailN, sess.srv.authFailPer))
	}
	if t, ok := sess.authLog.add(now, reason, !allowed); ok {
		sess.logAuthRefused(t)
	}
}

// bearer extracts the token of an "Authorization: Bearer <token>" header
// (scheme case-insensitive).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func tokenMessage(err error) string {
	switch {
	case errors.Is(err, errShortSecret):
		return "token verification unavailable"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	}
	return "invalid token"
}

// body reads a JSON object body of at most the configured size. It answers
// 413 or 400 itself and returns false then.
func (sess *Session) body(c *call) (map[string]json.RawMessage, bool) {
	max := sess.srv.maxBody
	if c.r.ContentLength > max {
		// Most clients send the whole body before they read the reply: a
		// reply mid-upload reaches them as a reset connection, not a 413.
		// A body of up to 4 times the limit is read and dropped first.
		if c.r.ContentLength <= 4*max {
			_, _ = io.Copy(io.Discard, c.r.Body)
		}
		c.fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", max))
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, max))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			c.fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", max))
		} else {
			c.fail(http.StatusBadRequest, "could not read the request body")
		}
		return nil, false
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		c.fail(http.StatusBadRequest, "request body must be a JSON object")
		return nil, false
	}
	return m, true
}

// field returns a required member of a JSON object body.
func field(c *call, m map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	v, ok := m[name]
	if !ok {
		c.fail(http.StatusBadRequest, fmt.Sprintf("missing required field %q", name))
	}
	return v, ok
}

// storeFailed answers a failed store call with 503 (helpers retry 5xx); the
// error is logged, never shown.
func (sess *Session) storeFailed(c *call, op string, err error) {
	sess.srv.log.Warn("runtime api: store call failed", "execution", sess.exec.ExecutionID, "op", op, "err", err)
	c.header().Set("Retry-After", "1")
	c.fail(http.StatusServiceUnavailable, op+" is temporarily unavailable; retry")
}

func compact(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw // already validated by json.Unmarshal
	}
	return buf.Bytes()
}

func (sess *Session) postOutput(c *call) {
	m, ok := sess.body(c)
	if !ok {
		return
	}
	data, ok := field(c, m, "data")
	if !ok {
		return
	}
	data = compact(data)
	sess.writeMu.Lock()
	defer sess.writeMu.Unlock()
	if err := sess.srv.store.SetOutput(c.r.Context(), sess.exec.ExecutionID, data); err != nil {
		sess.storeFailed(c, "recording the output", err)
		return
	}
	sess.mu.Lock()
	sess.output, sess.hasOut = data, true
	sess.mu.Unlock()
	c.ok(nil)
}

func (sess *Session) postCondition(c *call) {
	m, ok := sess.body(c)
	if !ok {
		return
	}
	raw, ok := field(c, m, "condition")
	if !ok {
		return
	}
	var cond bool
	switch string(raw) {
	case "true":
		cond = true
	case "false":
	default:
		c.fail(http.StatusBadRequest, `field "condition" must be true or false`)
		return
	}
	sess.writeMu.Lock()
	defer sess.writeMu.Unlock()
	if err := sess.srv.store.SetCondition(c.r.Context(), sess.exec.ExecutionID, cond); err != nil {
		sess.storeFailed(c, "recording the condition", err)
		return
	}
	sess.mu.Lock()
	sess.cond, sess.hasCond = cond, true
	sess.mu.Unlock()
	c.ok(nil)
}

type variable struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"` // nil is null
}

// noUser refuses variable calls of a job that came without a user: there is
// nowhere to keep its variables, and retrying will not change that.
func (sess *Session) noUser(c *call) bool {
	if sess.exec.UserID != "" {
		return false
	}
	c.fail(http.StatusConflict, "variables are unavailable: this job has no user (metadata.userId)")
	return true
}

func (sess *Session) getVariable(c *call, key string) {
	if sess.noUser(c) {
		return
	}
	v, found, err := sess.srv.store.GetVariable(c.r.Context(), sess.exec.UserID, key)
	if err != nil {
		sess.storeFailed(c, "reading the variable", err)
		return
	}
	out := variable{Key: key}
	if found {
		out.Value = decodeValue(v)
	}
	data, err := json.Marshal(out)
	if err != nil { // not reachable: the value is valid JSON
		c.fail(http.StatusInternalServerError, "could not encode the variable")
		return
	}
	c.ok(data)
}

// decodeValue turns a stored value string into the JSON served: the string
// parsed when it is JSON text, else the string itself.
func decodeValue(v string) json.RawMessage {
	if json.Valid([]byte(v)) {
		return compact(json.RawMessage(v))
	}
	s, _ := json.Marshal(v)
	return s
}

// encodeValue turns the JSON of a PUT into the stored string: a JSON string
// is stored as its text, any other JSON as its (compact) JSON text.
func encodeValue(raw json.RawMessage) (string, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	return string(compact(raw)), nil
}

func (sess *Session) putVariable(c *call, key string) {
	m, ok := sess.body(c)
	if !ok {
		return
	}
	raw, ok := field(c, m, "value")
	if !ok || sess.noUser(c) {
		return
	}
	v, err := encodeValue(raw)
	if err != nil {
		c.fail(http.StatusBadRequest, `field "value" is not valid JSON`)
		return
	}
	if err := sess.srv.store.SetVariable(c.r.Context(), sess.exec.UserID, key, v); err != nil {
		sess.storeFailed(c, "writing the variable", err)
		return
	}
	c.ok(nil)
}

// msgNoTools answers tool actions on an agent that does not run them.
const msgNoTools = "tool actions are not enabled on this agent: its configuration must set jobs.toolActions: true (CRONIUM_JOBS_TOOL_ACTIONS=true)"

// postToolAction runs a tool action through the agent's ToolRunner. The
// body is never logged: it may hold credentials.
func (sess *Session) postToolAction(c *call) {
	if sess.srv.tools == nil {
		c.fail(http.StatusNotImplemented, msgNoTools)
		return
	}
	m, ok := sess.body(c)
	if !ok {
		return
	}
	req, err := json.Marshal(m)
	if err != nil { // not reachable: m came from JSON
		c.fail(http.StatusBadRequest, "request body must be a JSON object")
		return
	}
	res, err := sess.srv.tools.ExecuteTool(c.r.Context(), sess.exec, req)
	if err != nil {
		c.fail(http.StatusBadRequest, err.Error())
		return
	}
	if !json.Valid(res) {
		sess.srv.log.Warn("runtime api: the tool runner returned invalid JSON", "execution", sess.exec.ExecutionID)
		c.fail(http.StatusInternalServerError, "the tool action's result could not be encoded")
		return
	}
	c.ok(compact(res))
}
