// Package httpexec runs HTTP_REQUEST jobs: one request from the agent's
// host, its response as the job's output.
package httpexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxBody bounds how much of a response is read.
const maxBody = 4 << 20

// Result is the outcome of one request.
type Result struct {
	StatusCode int
	Status     string
	Header     http.Header
	Body       []byte
	Truncated  bool
	TimedOut   bool
}

// Request is what to send.
type Request struct {
	Method  string
	URL     string
	Headers [][2]string
	Body    string
}

// Runner sends requests with its client.
type Runner struct {
	client *http.Client
}

// New returns a Runner; a nil client means a default one that does not
// follow redirects to other schemes and ignores proxies from the environment.
func New(client *http.Client) *Runner {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConns: 16, IdleConnTimeout: 30 * time.Second}}
	}
	return &Runner{client: client}
}

// Do sends the request, bounded by timeout. An error means no response
// came (bad request, refused, timed out); an HTTP error status is a Result.
func (r *Runner) Do(ctx context.Context, req Request, timeout time.Duration) (Result, error) {
	method := strings.ToUpper(strings.TrimSpace(req.Method))
	if method == "" {
		method = http.MethodGet
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Result{}, fmt.Errorf("invalid request URL %q: want http:// or https:// and a host", req.URL)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if req.Body != "" {
		body = strings.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return Result{}, fmt.Errorf("build request: %w", err)
	}
	for _, h := range req.Headers {
		hr.Header.Add(h[0], h[1])
	}
	resp, err := r.client.Do(hr)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Result{TimedOut: true}, fmt.Errorf("%s %s: no response within %s", method, u.Redacted(), timeout)
		}
		return Result{}, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	res := Result{StatusCode: resp.StatusCode, Status: resp.Status, Header: resp.Header}
	if len(data) > maxBody {
		data, res.Truncated = data[:maxBody], true
	}
	res.Body = data
	if err != nil {
		return res, fmt.Errorf("%s %s: reading the response: %w", method, u.Redacted(), err)
	}
	return res, nil
}
