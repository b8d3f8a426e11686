package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client reads a running agent's admin socket.
type Client struct {
	path string
	hc   *http.Client
}

// Dial returns a client of the socket at path. It connects on every call,
// so that it does not matter whether the agent is up yet.
func Dial(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		// The commands make one request each: an idle connection would
		// only outlive them.
		DisableKeepAlives: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	return getJSON[Status](ctx, c, "/v1/status")
}

// HandOver makes the agent's next stop, if it comes within the given
// time, a hand-over: the running jobs are left running for the next start.
// An agent from before hand-overs answers 404: the error then says so.
func (c *Client) HandOver(ctx context.Context, within time.Duration) (HandOver, error) {
	target := "/v1/hand-over?within=" + url.QueryEscape(within.String())
	resp, err := c.do(ctx, http.MethodPost, target)
	if se, ok := errors.AsType[*statusError](err); ok && se.code == http.StatusNotFound {
		return HandOver{}, fmt.Errorf("the running agent cannot hand its jobs over (it is older than hand-overs): %w", err)
	}
	if err != nil {
		return HandOver{}, err
	}
	defer resp.Body.Close()
	var h HandOver
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return h, fmt.Errorf("read the agent's answer to %s: %w", target, err)
	}
	return h, nil
}

// Jobs returns the most recent jobs, newest claim first, at most limit
// (1 to MaxJobs).
func (c *Client) Jobs(ctx context.Context, limit int) ([]JobSummary, error) {
	return getJSON[[]JobSummary](ctx, c, "/v1/jobs?limit="+strconv.Itoa(limit))
}

// Logs calls fn with each line of a job's log with seq > after, in order:
// the lines there are now, or with follow also those that come, until the
// log is complete or ctx ends (then it returns ctx's error). An error from
// fn stops it and is returned as it is.
func (c *Client) Logs(ctx context.Context, jobID string, after uint64, follow bool, fn func(LogLine) error) error {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if follow {
		q.Set("follow", "1")
	}
	resp, err := c.get(ctx, "/v1/jobs/"+url.PathEscape(jobID)+"/logs?"+q.Encode())
	if se, ok := errors.AsType[*statusError](err); ok && se.code == http.StatusNotFound {
		return fmt.Errorf("%w %s", ErrUnknownJob, jobID)
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = readLines(resp.Body, follow, fn)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readLines reads a JSON array of lines, or with follow NDJSON lines until
// the agent ends the stream cleanly.
func readLines(r io.Reader, follow bool, fn func(LogLine) error) error {
	dec := json.NewDecoder(r)
	if !follow {
		if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
			return fmt.Errorf("read log lines: want a JSON array, got %v (%v)", tok, err)
		}
	}
	for follow || dec.More() {
		var l LogLine
		err := dec.Decode(&l)
		if follow && errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return brokeOff(err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return brokeOff(err)
	}
	return nil
}

func brokeOff(err error) error {
	return fmt.Errorf("the agent's log stream broke off (did the agent stop?): %w", err)
}

func getJSON[T any](ctx context.Context, c *Client, target string) (T, error) {
	var v T
	resp, err := c.get(ctx, target)
	if err != nil {
		return v, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("read the agent's answer to %s: %w", target, err)
	}
	return v, nil
}

// get returns the response to GET target if it is 200, a *statusError if
// the agent answered otherwise.
func (c *Client) get(ctx context.Context, target string) (*http.Response, error) {
	return c.do(ctx, http.MethodGet, target)
}

// do is get with another method.
func (c *Client) do(ctx context.Context, method, target string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+target, nil)
	if err != nil {
		return nil, fmt.Errorf("admin request %s: %w", target, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.explain(err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, readStatusError(resp)
}

// explain turns the ways of not reaching the agent into what they mean.
func (c *Client) explain(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err // its "Get URL" adds nothing: the URL is always the same
	}
	op, dial := errors.AsType[*net.OpError](err)
	dial = dial && op.Op == "dial"
	switch {
	case dial && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)):
		return fmt.Errorf("%w (nothing answers on %s): %w", ErrNotRunning, c.path, op.Err)
	case dial && errors.Is(err, syscall.EACCES):
		return fmt.Errorf("no access to %s: the admin socket is root's (run as root): %w", c.path, op.Err)
	case dial, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("admin socket %s: %w", c.path, err)
	}
	// Connected, and then no answer. The agent drops the connections of
	// users other than root unread, which net/http reports as EOF, a reset
	// or a closed idle connection, as the race goes.
	return fmt.Errorf("the agent on %s hung up without answering (it answers only root; or it stopped): %w", c.path, err)
}

// statusError is an answer other than 200.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("the agent answered %d %s: %s", e.code, http.StatusText(e.code), e.msg)
}

func readStatusError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &body) != nil || body.Error == "" {
		body.Error = strings.TrimSpace(string(data))
	}
	return &statusError{code: resp.StatusCode, msg: body.Error}
}
