package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
)

// DevClient speaks the dev backend's operator API (/api/dev/).
type DevClient struct {
	base  string // scheme://host[:port]
	token string
	// HTTPClient is used for every request; nil means a client with a
	// 30 s timeout.
	HTTPClient *http.Client
}

// NewDevClient returns a client of the dev backend at baseURL (only its
// scheme, host and port are used) that sends token.
func NewDevClient(baseURL, token string) (*DevClient, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backend URL %q: want http://host:port", baseURL)
	}
	return &DevClient{base: u.Scheme + "://" + u.Host, token: token}, nil
}

// URL returns the backend's base URL.
func (c *DevClient) URL() string { return c.base }

// APIError is a refusal by the backend: its status and {"error"} text.
type APIError struct {
	Method, Path string
	StatusCode   int
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.StatusCode, e.Message)
}

// UnreachableError is a request that got no HTTP answer.
type UnreachableError struct {
	URL string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("backend %s is unreachable: %v", e.URL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

func (c *DevClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &UnreachableError{URL: c.base, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return &UnreachableError{URL: c.base, Err: err}
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return &APIError{Method: method, Path: path, StatusCode: resp.StatusCode, Message: msg}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// Submit queues a job and returns its id.
func (c *DevClient) Submit(ctx context.Context, req SubmitRequest) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := c.do(ctx, http.MethodPost, "/api/dev/jobs", req, &out)
	return out.ID, err
}

// SubmitRaw queues a complete wire job (as in the contract's fixtures).
func (c *DevClient) SubmitRaw(ctx context.Context, raw json.RawMessage) (string, error) {
	return c.Submit(ctx, SubmitRequest{Raw: raw})
}

// Jobs lists every job, oldest first.
func (c *DevClient) Jobs(ctx context.Context) ([]JobSummary, error) {
	var out struct {
		Jobs []JobSummary `json:"jobs"`
	}
	err := c.do(ctx, http.MethodGet, "/api/dev/jobs", nil, &out)
	return out.Jobs, err
}

// Job returns everything the backend knows about a job.
func (c *DevClient) Job(ctx context.Context, id string) (JobView, error) {
	var out JobView
	err := c.do(ctx, http.MethodGet, "/api/dev/jobs/"+url.PathEscape(id), nil, &out)
	return out, err
}

// LogPage returns a job's live log lines with seq > after, and its status.
func (c *DevClient) LogPage(ctx context.Context, id string, after uint64) (LogPage, error) {
	var out LogPage
	err := c.do(ctx, http.MethodGet, "/api/dev/jobs/"+url.PathEscape(id)+"/logs?after="+strconv.FormatUint(after, 10), nil, &out)
	return out, err
}

// Logs returns a job's live log lines with seq > after, in seq order.
func (c *DevClient) Logs(ctx context.Context, id string, after uint64) ([]api.LogEntry, error) {
	var all []api.LogEntry
	for {
		page, err := c.LogPage(ctx, id, after)
		if err != nil {
			return all, err
		}
		for _, l := range page.Entries {
			all = append(all, l.LogEntry)
			after = l.Seq
		}
		if !page.More {
			return all, nil
		}
	}
}

// Cancel cancels a queued job, or asks its agent to stop it.
func (c *DevClient) Cancel(ctx context.Context, id string) (CancelResult, error) {
	var out CancelResult
	err := c.do(ctx, http.MethodPost, "/api/dev/jobs/"+url.PathEscape(id)+"/cancel", struct{}{}, &out)
	return out, err
}

// Execution returns an execution row.
func (c *DevClient) Execution(ctx context.Context, id string) (ExecutionView, error) {
	var out ExecutionView
	err := c.do(ctx, http.MethodGet, "/api/dev/executions/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Executions returns a job's execution rows, in the order they were created.
func (c *DevClient) Executions(ctx context.Context, jobID string) ([]ExecutionView, error) {
	var out struct {
		Executions []ExecutionView `json:"executions"`
	}
	err := c.do(ctx, http.MethodGet, "/api/dev/jobs/"+url.PathEscape(jobID)+"/executions", nil, &out)
	return out.Executions, err
}

// AddServer registers an SSH server (host, username, and a private key or
// a password; port 0 means 22; an empty ID means a new one) and returns it
// as listed, without its secret. A server the backend refuses (a missing
// field, a key that does not parse) is an *APIError with status 400.
func (c *DevClient) AddServer(ctx context.Context, s api.Server) (ServerView, error) {
	var out struct {
		Server ServerView `json:"server"`
	}
	err := c.do(ctx, http.MethodPost, "/api/dev/servers", s, &out)
	return out.Server, err
}

// RegisterServer is AddServer returning only the new server's id.
func (c *DevClient) RegisterServer(ctx context.Context, s api.Server) (string, error) {
	v, err := c.AddServer(ctx, s)
	return v.ID, err
}

// Servers lists the registered servers by id, without their secrets.
func (c *DevClient) Servers(ctx context.Context) ([]ServerView, error) {
	var out struct {
		Servers []ServerView `json:"servers"`
	}
	err := c.do(ctx, http.MethodGet, "/api/dev/servers", nil, &out)
	return out.Servers, err
}

// RemoveServer forgets a server; an unknown id is an *APIError with
// status 404.
func (c *DevClient) RemoveServer(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/dev/servers/"+url.PathEscape(id), nil, nil)
}

// Orchestrators returns what the backend last heard from each agent.
func (c *DevClient) Orchestrators(ctx context.Context) ([]OrchestratorView, error) {
	var out struct {
		Orchestrators []OrchestratorView `json:"orchestrators"`
	}
	err := c.do(ctx, http.MethodGet, "/api/dev/orchestrators", nil, &out)
	return out.Orchestrators, err
}

// Stats sums up the backend's state.
func (c *DevClient) Stats(ctx context.Context) (Stats, error) {
	var out Stats
	err := c.do(ctx, http.MethodGet, "/api/dev/stats", nil, &out)
	return out, err
}

// Wait polls a job until it reaches a final status (or ctx ends).
func (c *DevClient) Wait(ctx context.Context, id string, every time.Duration) (JobView, error) {
	if every <= 0 {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		v, err := c.Job(ctx, id)
		if err != nil || v.Done() {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-t.C:
		}
	}
}
