// Package httpexec runs HTTP_REQUEST jobs: one request from the agent's
// host, under the outbound policy, its response as the job's output.
package httpexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/runner/netpolicy"
)

// Defaults of the options.
const (
	DefaultMaxBody        = 4 << 20
	DefaultConnectTimeout = netpolicy.DefaultConnectTimeout
	// maxRedirects is how many redirects one request follows.
	maxRedirects = 10
)

// Result is the outcome of one request.
type Result struct {
	StatusCode int
	Status     string
	Header     http.Header
	// Body is the response body up to the cap; Size is the whole body's
	// length, counted past the cap, and Truncated says Body is only its
	// start.
	Body      []byte
	Size      int64
	Truncated bool
	TimedOut  bool
	// Refused says the outbound policy refused a destination (the URL's
	// or a redirect's); the error names the rule.
	Refused bool
}

// Request is what to send.
type Request struct {
	Method  string
	URL     string
	Headers [][2]string
	Body    string
}

// Runner sends requests under one outbound policy.
type Runner struct {
	client         *http.Client
	policy         *netpolicy.Policy
	maxBody        int64
	connectTimeout time.Duration
	resolver       *net.Resolver
}

// Option configures New.
type Option func(*Runner)

// WithPolicy is the outbound policy every connection is checked against.
// Without one (or with nil) every request is refused: there is no
// unchecked way out.
func WithPolicy(p *netpolicy.Policy) Option { return func(r *Runner) { r.policy = p } }

// WithMaxBody bounds the response body kept (DefaultMaxBody when n <= 0).
func WithMaxBody(n int64) Option { return func(r *Runner) { r.maxBody = n } }

// WithConnectTimeout bounds name resolution plus connect, and the TLS
// handshake (DefaultConnectTimeout when d <= 0).
func WithConnectTimeout(d time.Duration) Option { return func(r *Runner) { r.connectTimeout = d } }

// WithResolver resolves host names (tests: a fake DNS server on loopback).
func WithResolver(res *net.Resolver) Option { return func(r *Runner) { r.resolver = res } }

// New returns a Runner. Proxies from the environment are ignored: the
// policy must see the real destination.
func New(opts ...Option) *Runner {
	r := &Runner{}
	for _, o := range opts {
		o(r)
	}
	if r.maxBody <= 0 {
		r.maxBody = DefaultMaxBody
	}
	if r.connectTimeout <= 0 {
		r.connectTimeout = DefaultConnectTimeout
	}
	dial := func(context.Context, string, string) (net.Conn, error) {
		return nil, &netpolicy.RefusedError{Reason: "no outbound policy is configured"}
	}
	if r.policy != nil {
		d := r.policy.Dialer(r.connectTimeout)
		d.Resolver = r.resolver
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return r.policy.Dial(ctx, d, network, addr)
		}
	}
	r.client = newClient(dial, r.connectTimeout)
	return r
}

// newClient is the client of a Runner, dialling with dial.
func newClient(dial func(ctx context.Context, network, addr string) (net.Conn, error), connectTimeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dial,
			ForceAttemptHTTP2:   true, // a custom dialer turns HTTP/2 off otherwise
			TLSHandshakeTimeout: connectTimeout,
			MaxIdleConns:        16,
			IdleConnTimeout:     30 * time.Second,
		},
		CheckRedirect: checkRedirect,
	}
}

// hops records the last redirect of a request, to name it in an error.
type hops struct{ last *url.URL }

type hopsKey struct{}

// checkRedirect follows http and https only (file://, gopher:// and the
// like are refused on every hop, not just the first), at most maxRedirects
// times. Each hop's address goes through the policy when it is dialled.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if h, ok := req.Context().Value(hopsKey{}).(*hops); ok {
		h.last = req.URL
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("refused: only http and https are followed")
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("refused: more than %d redirects", maxRedirects)
	}
	return nil
}

// Do sends the request, bounded by timeout (the whole of it: connect,
// redirects, and reading the body). An error means no usable response came
// (bad request, refused by the policy, unreachable, timed out); an HTTP
// error status is a Result.
func (r *Runner) Do(ctx context.Context, req Request, timeout time.Duration) (Result, error) {
	method := strings.ToUpper(strings.TrimSpace(req.Method))
	if method == "" {
		method = http.MethodGet
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Result{}, fmt.Errorf("invalid request URL %q: want http:// or https:// and a host", req.URL)
	}
	// Checked here rather than left to net/http so that the job's message
	// names the header, and nothing is dialled.
	for _, h := range req.Headers {
		if h[0] == "" || strings.ContainsAny(h[0], "\r\n") || strings.ContainsAny(h[1], "\r\n") {
			return Result{}, fmt.Errorf("%s %s: header %q refused: a CR or LF in its name or value (or no name); nothing was sent", method, u.Redacted(), h[0])
		}
	}
	h := &hops{}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, hopsKey{}, h), timeout)
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
		// On a refused redirect the previous response comes back too,
		// its body already closed: the error is the outcome.
		return r.failure(ctx, method, u, h, timeout, err)
	}
	defer resp.Body.Close()
	res := Result{StatusCode: resp.StatusCode, Status: resp.Status, Header: resp.Header}
	res.Body, res.Size, err = readCapped(resp.Body, r.maxBody, resp.ContentLength)
	res.Truncated = res.Size > int64(len(res.Body))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			res.TimedOut = true
			return res, fmt.Errorf("%s %s: the response body was still coming after %s (%d bytes read)", method, u.Redacted(), timeout, res.Size)
		}
		return res, fmt.Errorf("%s %s: reading the response: %w", method, u.Redacted(), err)
	}
	return res, nil
}

// failure turns the client's error into the job's: the policy's refusal
// (with the redirect hop it came on), a timeout, or what went wrong.
func (r *Runner) failure(ctx context.Context, method string, u *url.URL, h *hops, timeout time.Duration, err error) (Result, error) {
	what := fmt.Sprintf("%s %s", method, u.Redacted())
	if h.last != nil {
		what += fmt.Sprintf(": redirected to %s", h.last.Redacted())
	}
	var re *netpolicy.RefusedError
	if errors.As(err, &re) {
		return Result{Refused: true}, fmt.Errorf("%s: %w", what, re)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return Result{TimedOut: true}, fmt.Errorf("%s: no response within %s", what, timeout)
	}
	// url.Error repeats the method and the URL: what says them already.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return Result{}, fmt.Errorf("%s: %w", what, err)
}

// readCapped keeps the first max bytes of body and counts the rest without
// keeping it, so a response of any size costs at most max bytes of memory
// (and the time bound of the request). hint is the Content-Length, or -1.
func readCapped(body io.Reader, max, hint int64) ([]byte, int64, error) {
	size := int64(16 << 10)
	if hint >= 0 {
		size = hint + 1 // +1: the read that sees EOF needs room
	}
	buf := make([]byte, 0, min(size, max))
	for int64(len(buf)) < max {
		if len(buf) == cap(buf) {
			// Grow by doubling, never past max.
			nb := make([]byte, len(buf), min(2*int64(cap(buf))+512, max))
			copy(nb, buf)
			buf = nb
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, int64(len(buf)), nil
		}
		if err != nil {
			return buf, int64(len(buf)), err
		}
	}
	rest, err := io.Copy(io.Discard, body)
	return buf, int64(len(buf)) + rest, err
}
