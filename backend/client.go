// Package backend is the HTTP client for the Cronium backend's internal API
// (docs/backend-contract.md): requests, retries, and errors classified as
// transient or final. The contract's types and decoding are in backend/api.
package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
)

// apiPrefix is where the internal API lives; a path in the configured
// backend URL is ignored (contract preamble).
const apiPrefix = "/api/internal"

// maxResponse bounds what the client reads of one answer.
const maxResponse = 64 << 20

// Client speaks the backend's internal API (docs/backend-contract.md).
// It is safe for concurrent use. Every request carries the bearer token,
// X-Orchestrator-ID, Accept, User-Agent (and Content-Type with a body).
// Transport errors, 429 and 5xx are retried with exponential backoff and
// full jitter, within the caller's context; other answers are final.
type Client struct {
	base      url.URL // scheme and host only
	token     string
	orchID    string
	userAgent string
	// instance identifies this agent process; previous, the process that
	// had the same state before it; host, the machine's name. The backend
	// tells a restart (previous = the last instance it saw) from a second
	// live process under the same id.
	instance, previous, host string
	hc                       *http.Client
	maxAttempts              int
	baseDelay                time.Duration
	maxDelay                 time.Duration
	attemptTO                time.Duration
	envKey                   []byte
	longPoll                 time.Duration
	// queueWait is the longest claim wait the backend offered in its last
	// queue answer (0: none).
	queueWait atomic.Int64
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient uses hc instead of the client's own (which does not
// follow redirects: a 3xx is an APIError).
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithInstance sets the instance headers: this process's random id, the
// id of the process that ran before it with the same state ("" if none),
// and the host's name.
func WithInstance(instance, previous, host string) ClientOption {
	return func(c *Client) { c.instance, c.previous, c.host = instance, previous, host }
}

// WithUserAgentVersion sets the version in "User-Agent: cronium-agent/<v>"
// (default "dev").
func WithUserAgentVersion(v string) ClientOption {
	return func(c *Client) {
		if v = strings.TrimSpace(v); v != "" {
			c.userAgent = "cronium-agent/" + v
		}
	}
}

// WithRetry sets how many attempts a request gets (at least 1) and the
// backoff: attempt n waits a uniformly random time in [0, min(max,
// base·2ⁿ⁻¹)], at least what a Retry-After header asks (up to max).
// Defaults: 5 attempts, 200 ms, 10 s.
func WithRetry(maxAttempts int, base, max time.Duration) ClientOption {
	return func(c *Client) {
		c.maxAttempts = maxAttempts
		if c.maxAttempts < 1 {
			c.maxAttempts = 1
		}
		if base > 0 {
			c.baseDelay = base
		}
		if max > 0 {
			c.maxDelay = max
		}
		if c.maxDelay < c.baseDelay {
			c.maxDelay = c.baseDelay
		}
	}
}

// WithAttemptTimeout bounds each attempt (default 30 s); the caller's
// context bounds the whole call.
func WithAttemptTimeout(d time.Duration) ClientOption {
	return func(c *Client) {
		if d > 0 {
			c.attemptTO = d
		}
	}
}

// WithLongPoll sets how long a claim may wait for a job on a backend that
// offers it (api.QueueWaitHeader; at most what it offers): a job
// submitted meanwhile is claimed at once rather than at the next poll.
// Default 20 s; 0 never waits. Without the offer (the deployed backend)
// claims are never held.
func WithLongPoll(d time.Duration) ClientOption {
	return func(c *Client) { c.longPoll = max(d, 0) }
}

// WithEnvKey sets the key that decrypts the deployed backend's encrypted
// environment values in ClaimJobs (32 bytes, see ParseEnvKey).
func WithEnvKey(key []byte) ClientOption {
	return func(c *Client) { c.envKey = append([]byte(nil), key...) }
}

// NewClient returns a client of the backend at baseURL: only its scheme,
// host and port are used (a path, query or user info is ignored). token is
// the service token (INTERNAL_API_KEY), orchestratorID the agent's id.
func NewClient(baseURL, token, orchestratorID string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		return nil, fmt.Errorf("backend URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("backend URL %q: want http:// or https://", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("backend URL %q: no host", baseURL)
	}
	if token == "" {
		return nil, errors.New("backend token is empty")
	}
	if strings.ContainsAny(token, "\r\n\x00") {
		return nil, errors.New("backend token contains a line break")
	}
	if orchestratorID == "" || len(orchestratorID) > 256 || strings.ContainsFunc(orchestratorID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("orchestrator id %q: want 1-256 characters, no control characters", orchestratorID)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 16
	c := &Client{
		base:      url.URL{Scheme: u.Scheme, Host: u.Host},
		token:     token,
		orchID:    orchestratorID,
		userAgent: "cronium-agent/dev",
		hc: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		maxAttempts: 5,
		baseDelay:   200 * time.Millisecond,
		maxDelay:    10 * time.Second,
		attemptTO:   30 * time.Second,
		longPoll:    20 * time.Second,
	}
	for _, o := range opts {
		o(c)
	}
	if c.envKey != nil && len(c.envKey) != 32 {
		return nil, fmt.Errorf("environment encryption key: want 32 bytes, got %d", len(c.envKey))
	}
	return c, nil
}

// BaseURL is the backend's scheme and host, as used.
func (c *Client) BaseURL() string { return c.base.String() }

// OrchestratorID is the id the client sends.
func (c *Client) OrchestratorID() string { return c.orchID }

// request is one API call.
type request struct {
	method  string
	segs    []string // path segments after /api/internal, unescaped
	query   string   // encoded
	body    any      // nil: no body
	noRetry bool
	// dialRetryOnly: a transport error is retried only when no connection
	// was made (the request cannot have reached the backend).
	dialRetryOnly bool
	secret        bool // the answer holds secrets: keep no body in errors
	// hold is how long the backend may hold the request on purpose (a
	// long-poll claim), added to the attempt's timeout.
	hold time.Duration
	// header, if set, gets a 2xx answer's header.
	header func(http.Header)
}

// apiPath escapes each segment (so '/' and spaces in a variable key stay
// inside their segment) and refuses empty, "." and ".." segments.
func apiPath(segs []string) (path, raw string, err error) {
	var p, r strings.Builder
	p.WriteString(apiPrefix)
	r.WriteString(apiPrefix)
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return "", "", invalid("path segment %q", s)
		}
		p.WriteString("/" + s)
		r.WriteString("/" + url.PathEscape(s))
	}
	return p.String(), r.String(), nil
}

// do runs the request with retries and returns the body of a 2xx answer.
func (c *Client) do(ctx context.Context, rq request) ([]byte, error) {
	path, raw, err := apiPath(rq.segs)
	if err != nil {
		return nil, err
	}
	var payload []byte
	if rq.body != nil {
		if payload, err = json.Marshal(rq.body); err != nil {
			return nil, invalid("body: %v", err)
		}
	}
	u := c.base
	u.Path, u.RawPath, u.RawQuery = path, raw, rq.query
	target := u.String()
	attempts := c.maxAttempts
	if rq.noRetry {
		attempts = 1
	}
	for n := 1; ; n++ {
		body, retryAfter, err := c.once(ctx, rq, target, raw, payload)
		if err == nil {
			return body, nil
		}
		if n >= attempts || !IsTransient(err) || ctx.Err() != nil {
			return nil, err
		}
		if rq.dialRetryOnly && !isAPIError(err) && !isDialError(err) {
			return nil, err
		}
		if werr := sleep(ctx, c.backoff(n, retryAfter)); werr != nil {
			return nil, err
		}
	}
}

// backoff is the wait after failed attempt n (1-based): full jitter.
func (c *Client) backoff(n int, retryAfter time.Duration) time.Duration {
	ceil := c.maxDelay
	if n-1 < 30 {
		if d := c.baseDelay << (n - 1); d > 0 && d < ceil {
			ceil = d
		}
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	if retryAfter > d {
		d = min(retryAfter, c.maxDelay)
	}
	return d
}

func isAPIError(err error) bool {
	var ae *APIError
	return errors.As(err, &ae)
}

// isDialError tells whether a transport error happened before any
// connection was made.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// once is one attempt.
func (c *Client) once(ctx context.Context, rq request, target, path string, payload []byte) ([]byte, time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, c.attemptTO+rq.hold)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, rq.method, target, rd)
	if err != nil {
		return nil, 0, invalid("request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("X-Orchestrator-ID", c.orchID)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.instance != "" {
		req.Header.Set(api.InstanceHeader, c.instance)
		if c.previous != "" {
			req.Header.Set(api.PreviousInstanceHeader, c.previous)
		}
		if c.host != "" {
			req.Header.Set(api.HostHeader, c.host)
		}
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, &TransportError{Method: rq.method, Path: path, Err: err}
	}
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	resp.Body.Close()
	if rerr == nil && len(data) > maxResponse {
		rerr = fmt.Errorf("answer larger than %d bytes", maxResponse)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if rq.header != nil {
			rq.header(resp.Header)
		}
		// A write that was answered 2xx is done even if its answer was
		// cut; a read is tried again.
		if rerr != nil && rq.method == http.MethodGet {
			return nil, 0, &TransportError{Method: rq.method, Path: path, Err: rerr}
		}
		return data, 0, nil
	}
	if rq.secret {
		data = nil
	}
	ae := newAPIError(rq.method, path, resp.StatusCode, data, c.token)
	return nil, retryAfter(resp), ae
}

// retryAfter reads a Retry-After of seconds or an HTTP date.
func retryAfter(resp *http.Response) time.Duration {
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" || !retryableStatus(resp.StatusCode) {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}

func stamp(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return api.FormatTime(t)
}

// ---- jobs (§2) ----

// ClaimJobs claims up to batchSize jobs of the given backend job types
// (SCRIPT, HTTP_REQUEST, TOOL_ACTION; none: all) and decodes them one by
// one (api.DecodeQueue, with the client's environment key). Only an
// unreadable envelope is an error; a malformed job is an item with Err.
func (c *Client) ClaimJobs(ctx context.Context, batchSize int, jobTypes []string) ([]api.QueueItem, error) {
	if batchSize < 1 {
		return nil, invalid("batch size %d", batchSize)
	}
	q := "batchSize=" + strconv.Itoa(batchSize)
	if len(jobTypes) > 0 {
		esc := make([]string, 0, len(jobTypes))
		for _, t := range jobTypes {
			if t = strings.TrimSpace(t); t != "" {
				esc = append(esc, url.QueryEscape(t))
			}
		}
		if len(esc) > 0 {
			q += "&jobTypes=" + strings.Join(esc, ",")
		}
	}
	items, held, err := c.claim(ctx, q)
	if err == nil && len(items) == 0 && !held && c.claimWait() > 0 {
		// The backend offers to hold claims, which this answer just said:
		// wait there now rather than at the caller's next poll.
		items, _, err = c.claim(ctx, q)
	}
	return items, err
}

// claim is one jobs/queue call with query q, held by the backend when it
// offers that (held).
func (c *Client) claim(ctx context.Context, q string) (items []api.QueueItem, held bool, err error) {
	rq := request{method: http.MethodGet, segs: []string{"jobs", "queue"}, dialRetryOnly: true, header: c.noteQueueWait}
	if wait := c.claimWait(); wait > 0 {
		q += "&wait=" + wait.String()
		rq.hold, held = wait, true
	}
	rq.query = q
	// A claim whose answer was lost is not sent again (it would claim more
	// jobs while the lost ones stay claimed); the caller polls again.
	body, err := c.do(ctx, rq)
	if err != nil {
		return nil, held, err
	}
	items, err = api.DecodeQueue(body, api.DecodeOptions{EnvKey: c.envKey})
	if err != nil {
		return nil, held, fmt.Errorf("backend GET %s/jobs/queue: %w", apiPrefix, err)
	}
	return items, held, nil
}

// claimWait is how long a claim asks the backend to hold it (0: not).
func (c *Client) claimWait() time.Duration {
	return min(c.longPoll, time.Duration(c.queueWait.Load()))
}

// noteQueueWait keeps the longest claim wait the backend offers (none when
// its answer does not say).
func (c *Client) noteQueueWait(h http.Header) {
	d, err := time.ParseDuration(h.Get(api.QueueWaitHeader))
	if err != nil || d < 0 {
		d = 0
	}
	c.queueWait.Store(int64(d))
}

// Acknowledge tells the backend this agent takes the claimed job. A 403
// (not claimed by this agent) is ErrNotClaimed: the job must not run.
func (c *Client) Acknowledge(ctx context.Context, jobID string, at time.Time) error {
	body := map[string]any{"orchestratorId": c.orchID, "timestamp": stamp(at)}
	_, err := c.do(ctx, request{method: http.MethodPost, segs: []string{"jobs", jobID, "acknowledge"}, body: body})
	if IsStatus(err, http.StatusForbidden) {
		return fmt.Errorf("%w: %w", ErrNotClaimed, err)
	}
	return err
}

// SetStatus reports a job's status: running, completed or failed (the
// backend refuses others). The agent uses it for running only; the end of
// a job goes through Complete or Fail.
func (c *Client) SetStatus(ctx context.Context, jobID, status, message string) error {
	switch status {
	case "running", "completed", "failed":
	default:
		return invalid("job status %q (want running, completed or failed)", status)
	}
	details := map[string]any{}
	if message != "" {
		details["message"] = message
		if status == "failed" {
			details["error"] = message
		}
	}
	body := map[string]any{"status": status, "timestamp": stamp(time.Time{}), "details": details}
	_, err := c.do(ctx, request{method: http.MethodPut, segs: []string{"jobs", jobID, "status"}, body: body})
	return err
}

type completionWire struct {
	Status       string          `json:"status"`
	ExitCode     int             `json:"exitCode"`
	Output       api.Output      `json:"output"`
	ScriptOutput json.RawMessage `json:"scriptOutput,omitempty"`
	Condition    *bool           `json:"condition,omitempty"`
	Metrics      metricsWire     `json:"metrics"`
	Timestamp    string          `json:"timestamp"`
}

type metricsWire struct {
	StartTime string `json:"startTime,omitempty"`
	EndTime   string `json:"endTime,omitempty"`
	Duration  int64  `json:"duration"`
}

// Complete is the one completing call of a job run (§2.4). Status is
// completed, failed, timeout or cancelled; ScriptOutput (valid JSON) and
// Condition are sent only when set; zero metric times are left out and a
// zero Timestamp is now. Output is sent as given (the caller caps it).
func (c *Client) Complete(ctx context.Context, jobID string, comp api.Completion) error {
	switch comp.Status {
	case "completed", "failed", "timeout", "cancelled":
	default:
		return invalid("completion status %q (want completed, failed, timeout or cancelled)", comp.Status)
	}
	if len(comp.ScriptOutput) > 0 && !json.Valid(comp.ScriptOutput) {
		return invalid("scriptOutput is not valid JSON")
	}
	w := completionWire{
		Status:       comp.Status,
		ExitCode:     comp.ExitCode,
		Output:       comp.Output,
		ScriptOutput: comp.ScriptOutput,
		Condition:    comp.Condition,
		Metrics: metricsWire{
			StartTime: api.FormatTime(comp.Metrics.StartTime),
			EndTime:   api.FormatTime(comp.Metrics.EndTime),
			Duration:  comp.Metrics.Duration,
		},
		Timestamp: stamp(comp.Timestamp),
	}
	_, err := c.do(ctx, request{method: http.MethodPost, segs: []string{"jobs", jobID, "complete"}, body: w})
	return err
}

// Fail fails a job that could not run (§2.5); it is a completing call too.
// An empty message is sent as "job failed".
func (c *Client) Fail(ctx context.Context, jobID, message string, exitCode int) error {
	if strings.TrimSpace(message) == "" {
		message = "job failed"
	}
	body := map[string]any{"error": message, "exitCode": exitCode, "timestamp": stamp(time.Time{})}
	_, err := c.do(ctx, request{method: http.MethodPost, segs: []string{"jobs", jobID, "fail"}, body: body})
	return err
}

type logEntryWire struct {
	Seq       uint64 `json:"seq"`
	Stream    string `json:"stream"`
	Line      string `json:"line"`
	Timestamp string `json:"timestamp"`
}

// SendLogs sends live log lines of a run (§2.6). 404 or 405 is
// ErrNoLogEndpoint (the backend has none: stop sending to it). No entries,
// no request.
func (c *Client) SendLogs(ctx context.Context, jobID, executionID string, entries []api.LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	w := make([]logEntryWire, len(entries))
	for i, e := range entries {
		ts := e.Timestamp
		if ts.IsZero() {
			ts = time.Now()
		}
		w[i] = logEntryWire{Seq: e.Seq, Stream: e.Stream, Line: e.Line, Timestamp: ts.UTC().Format(time.RFC3339Nano)}
	}
	body := map[string]any{"executionId": executionID, "entries": w}
	_, err := c.do(ctx, request{method: http.MethodPost, segs: []string{"jobs", jobID, "logs"}, body: body})
	if IsStatus(err, http.StatusNotFound) || IsStatus(err, http.StatusMethodNotAllowed) {
		return fmt.Errorf("%w: %w", ErrNoLogEndpoint, err)
	}
	return err
}

// Release puts a job this agent claimed but will not run back in the queue.
func (c *Client) Release(ctx context.Context, jobID, message string) error {
	_, err := c.do(ctx, request{method: http.MethodPost, segs: []string{"jobs", jobID, "release"}, body: map[string]any{"message": message}})
	return err
}

// Orphaned lists the jobs the backend believes this agent holds (claimed
// or running): a bare array of raw rows with snake_case or camelCase
// fields (an object {"jobs":[...]} is read too). Rows without an id are
// skipped; unreadable timestamps are zero.
func (c *Client) Orphaned(ctx context.Context) ([]api.OrphanRow, error) {
	body, err := c.do(ctx, request{method: http.MethodGet, segs: []string{"jobs", "orphaned"}, query: "orchestratorId=" + url.QueryEscape(c.orchID)})
	if err != nil {
		return nil, err
	}
	rows, err := api.DecodeOrphaned(body)
	if err != nil {
		return nil, fmt.Errorf("backend GET %s/jobs/orphaned: %w", apiPrefix, err)
	}
	return rows, nil
}

// ---- executions (§3) ----

// CreateExecution creates the execution row; it must happen before the
// script starts.
func (c *Client) CreateExecution(ctx context.Context, executionID string, body api.CreateExecution) error {
	_, err := c.do(ctx, request{method: http.MethodPost, segs: []string{"executions", executionID, "create"}, body: body})
	return err
}

// UpdateExecution sends the set fields of u. An update with nothing set
// sends nothing. The type cannot carry completedAt or a status (§3 rule).
func (c *Client) UpdateExecution(ctx context.Context, executionID string, u api.ExecutionUpdate) error {
	b, err := json.Marshal(u)
	if err != nil {
		return invalid("execution update: %v", err)
	}
	if string(b) == "{}" {
		return nil
	}
	_, err = c.do(ctx, request{method: http.MethodPut, segs: []string{"executions", executionID, "update"}, body: json.RawMessage(b)})
	return err
}

// SetExecutionOutput forwards a script's cronium.output() value (any JSON;
// empty is null) to the execution. It is informational: only the
// completion's scriptOutput reaches workflows.
func (c *Client) SetExecutionOutput(ctx context.Context, executionID string, value json.RawMessage) error {
	if len(bytes.TrimSpace(value)) == 0 {
		value = json.RawMessage("null")
	}
	if !json.Valid(value) {
		return invalid("output is not valid JSON")
	}
	body := map[string]any{"output": value, "timestamp": stamp(time.Time{})}
	_, err := c.do(ctx, request{method: http.MethodPost, segs: []string{"executions", executionID, "output"}, body: body})
	return err
}

// SetExecutionCondition forwards a script's condition to the execution
// (the deployed backend ignores it; only the completion's counts).
func (c *Client) SetExecutionCondition(ctx context.Context, executionID string, value bool) error {
	body := map[string]any{"condition": value, "timestamp": stamp(time.Time{})}
	_, err := c.do(ctx, request{method: http.MethodPost, segs: []string{"executions", executionID, "condition"}, body: body})
	return err
}

// ---- variables (§4) ----

// GetVariable reads a user's variable. Unset (404, or a null value) is
// found == false with no error.
func (c *Client) GetVariable(ctx context.Context, userID, key string) (string, bool, error) {
	body, err := c.do(ctx, request{method: http.MethodGet, segs: []string{"variables", userID, key}})
	if IsStatus(err, http.StatusNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	value, found, ok := api.DecodeVariable(body)
	if !ok {
		return "", false, fmt.Errorf("backend GET variable %q: answer is not a JSON object", key)
	}
	return value, found, nil
}

// SetVariable writes a user's variable (values are strings on the wire).
func (c *Client) SetVariable(ctx context.Context, userID, key, value string) error {
	_, err := c.do(ctx, request{method: http.MethodPut, segs: []string{"variables", userID, key}, body: map[string]any{"value": value}})
	return err
}

// ---- agent health, heartbeat, metrics (§5) ----

// Heartbeat sends the heartbeat and returns what the backend asks of the
// agent: runs to cancel, runs superseded (the deployed backend asks
// neither). An empty OrchestratorID is the client's, a zero Timestamp now.
func (c *Client) Heartbeat(ctx context.Context, hb api.Heartbeat) (api.HeartbeatAnswer, error) {
	if hb.OrchestratorID == "" {
		hb.OrchestratorID = c.orchID
	}
	if hb.RunningJobs == nil {
		hb.RunningJobs = []string{}
	}
	body := map[string]any{
		"orchestratorId": hb.OrchestratorID,
		"timestamp":      stamp(hb.Timestamp),
		"runningJobs":    hb.RunningJobs,
		"capacity":       hb.Capacity,
	}
	data, err := c.do(ctx, request{method: http.MethodPost, segs: []string{"orchestrator", "heartbeat"}, body: body})
	if err != nil {
		return api.HeartbeatAnswer{}, err
	}
	return api.DecodeHeartbeatAnswer(data), nil
}

// SendMetrics sends the agent's metrics for the last minute.
func (c *Client) SendMetrics(ctx context.Context, m api.AgentMetrics) error {
	body := map[string]any{"orchestratorId": c.orchID, "timestamp": stamp(time.Time{}), "period": "minute", "metrics": m}
	_, err := c.do(ctx, request{method: http.MethodPost, segs: []string{"orchestrator", "metrics"}, body: body})
	return err
}

// BackendHealth probes the backend (GET orchestrator/health): nil when it
// answers 2xx. One attempt, no retries: it is a probe. Nothing calls it
// yet: it is kept for the coming `cronium-agent doctor` command, which
// checks that the configured backend answers before the agent is started.
func (c *Client) BackendHealth(ctx context.Context) error {
	_, err := c.do(ctx, request{method: http.MethodGet, segs: []string{"orchestrator", "health"}, noRetry: true})
	return err
}

// ---- servers (§6) ----

// GetServer reads a server's description (no credentials).
func (c *Client) GetServer(ctx context.Context, serverID string) (*api.ServerInfo, error) {
	body, err := c.do(ctx, request{method: http.MethodGet, segs: []string{"servers", serverID}})
	if err != nil {
		return nil, err
	}
	si, err := api.DecodeServerInfo(body)
	if err != nil {
		return nil, fmt.Errorf("backend GET server %s: %s", serverID, err)
	}
	return si, nil
}

// ServerCredentials reads a server's SSH credentials as a Server (ID set
// to serverID). They are secrets: the client never keeps the answer in an
// error, and Server's String hides them.
func (c *Client) ServerCredentials(ctx context.Context, serverID string) (*api.Server, error) {
	body, err := c.do(ctx, request{method: http.MethodGet, segs: []string{"servers", serverID, "credentials"}, secret: true})
	if err != nil {
		return nil, err
	}
	s, err := api.DecodeCredentials(body)
	if err != nil {
		return nil, fmt.Errorf("backend GET server %s credentials: %s", serverID, err)
	}
	if s.ID == "" {
		s.ID = serverID
	}
	return s, nil
}
