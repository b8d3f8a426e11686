package toolexec

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
)

// Bounds of what a tool call reads and reports.
const (
	// maxReply bounds how much of a service's reply is read.
	maxReply = 64 << 10
	// maxExcerpt bounds the excerpt of a failed reply in an error.
	maxExcerpt = 200
	// DefaultTimeout bounds a call whose context has no deadline.
	DefaultTimeout = 60 * time.Second
)

// Result is the outcome of one action: the job's scriptOutput and the
// runtime API's reply data.
type Result struct {
	Success bool   `json:"success"`
	Data    any    `json:"data,omitempty"`
	Error   string `json:"error,omitempty"`
}

// DialFunc dials a TCP connection (the SMTP server); the outbound policy's
// dialer fits here.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Runner runs tool actions with its HTTP client, its dialer (SMTP) and the
// agent's credentials. It is safe for concurrent use.
type Runner struct {
	client *http.Client
	dial   DialFunc
	tls    *tls.Config
	creds  map[string]Credential
	log    *slog.Logger
	now    func() time.Time
}

// Option configures a Runner.
type Option func(*Runner)

// WithHTTPClient sets the client of the HTTP tools (webhook, Slack,
// Discord, Teams); the outbound policy's client belongs here.
func WithHTTPClient(c *http.Client) Option {
	return func(r *Runner) {
		if c != nil {
			r.client = c
		}
	}
}

// WithDialer sets how the email tool reaches SMTP servers.
func WithDialer(d DialFunc) Option {
	return func(r *Runner) {
		if d != nil {
			r.dial = d
		}
	}
}

// WithTLSConfig sets the base TLS configuration of SMTP connections
// (RootCAs for a private CA; ServerName is always the server's host).
func WithTLSConfig(c *tls.Config) Option {
	return func(r *Runner) {
		if c != nil {
			r.tls = c.Clone()
		}
	}
}

// WithCredentials sets the agent's credentials by name (tools.credentials).
func WithCredentials(m map[string]Credential) Option {
	return func(r *Runner) {
		r.creds = make(map[string]Credential, len(m))
		for k, v := range m {
			r.creds[k] = v
		}
	}
}

// WithLogger sets the logger (default slog.Default()). Parameters and
// credentials are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(r *Runner) {
		if l != nil {
			r.log = l
		}
	}
}

// New returns a Runner. Without options it uses a client that ignores
// proxies from the environment and follows no redirect (a webhook URL is a
// secret: it goes nowhere but where it says), and a plain dialer.
func New(opts ...Option) *Runner {
	r := &Runner{
		client: &http.Client{
			Transport: &http.Transport{
				Proxy:                 nil,
				DialContext:           (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
				TLSHandshakeTimeout:   15 * time.Second,
				ResponseHeaderTimeout: DefaultTimeout,
				MaxIdleConns:          8,
				IdleConnTimeout:       30 * time.Second,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		dial: (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
		log:  slog.Default(),
		now:  time.Now,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Action is a request made ready to run: its parameters checked and its
// credential resolved, nothing sent yet.
type Action struct {
	Tool, Name string
	run        func(ctx context.Context) (any, error)
	secrets    []string
	log        *slog.Logger
}

// Secrets are the values of the action's credential, for the caller to
// mask wherever the job's text goes.
func (a *Action) Secrets() []string { return append([]string(nil), a.secrets...) }

// Prepare checks a request and resolves its credential without sending
// anything: an error means the action cannot run as given (its message
// never holds a secret).
func (r *Runner) Prepare(req Request) (*Action, error) {
	tool, err := canonicalTool(req.Tool)
	if err != nil {
		return nil, err
	}
	req.Tool = tool
	if req.Params == nil {
		req.Params = map[string]any{}
	}
	cred, err := resolve(req, r.creds)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tool, err)
	}
	a := &Action{Tool: tool, Name: req.Action, secrets: cred.secrets(), log: r.log}
	p := params(req.Params)
	switch tool {
	case "webhook":
		a.Name, a.run, err = r.webhook(req.Action, p, cred)
	case "slack":
		a.Name, a.run, err = r.slack(req.Action, p, cred)
	case "discord":
		a.Name, a.run, err = r.discord(req.Action, p, cred)
	case "teams":
		a.Name, a.run, err = r.teams(req.Action, p, cred)
	case "email":
		a.Name, a.run, err = r.email(req.Action, p, cred)
	}
	if err != nil {
		return nil, errors.New(a.mask(tool + ": " + err.Error()))
	}
	return a, nil
}

// Run prepares and runs a request; the error is Prepare's.
func (r *Runner) Run(ctx context.Context, req Request) (Result, error) {
	a, err := r.Prepare(req)
	if err != nil {
		return Result{}, err
	}
	return a.Do(ctx), nil
}

// Do runs the action once. A failure is a Result with the service's status
// and an excerpt of its reply, credentials masked.
func (a *Action) Do(ctx context.Context) Result {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	start := time.Now()
	data, err := a.run(ctx)
	if err != nil {
		msg := a.describe(ctx, err)
		a.log.Debug("tool action failed", "tool", a.Tool, "action", a.Name, "duration", time.Since(start), "error", msg)
		return Result{Success: false, Error: msg}
	}
	a.log.Debug("tool action done", "tool", a.Tool, "action", a.Name, "duration", time.Since(start))
	return Result{Success: true, Data: data}
}

// describe turns a failure into its message: the tool, what failed, the
// remote's status and an excerpt of its reply, masked.
func (a *Action) describe(ctx context.Context, err error) string {
	if he, ok := errors.AsType[*httpError](err); ok {
		ex := excerpt(a.mask(string(he.body)))
		msg := fmt.Sprintf("%s: %s: HTTP %s", a.Tool, he.what, he.status)
		if he.detail != "" {
			msg += ": " + he.detail
		}
		if ex != "" {
			msg += ": " + ex
		}
		return a.mask(msg)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("no reply in time: %w", err)
	}
	return excerptLong(a.mask(a.Tool + ": " + err.Error()))
}

// mask replaces every secret of the action's credential in s, also as it
// appears escaped in JSON or in a URL, and a URL secret's path alone.
func (a *Action) mask(s string) string {
	for _, sec := range a.secrets {
		if len(sec) < 4 {
			continue
		}
		forms := []string{sec, url.QueryEscape(sec), url.PathEscape(sec)}
		if j, err := json.Marshal(sec); err == nil {
			forms = append(forms, string(j[1:len(j)-1]))
		}
		if u, err := url.Parse(sec); err == nil && u.Host != "" && len(u.RequestURI()) >= 8 {
			forms = append(forms, u.RequestURI(), u.EscapedPath())
		}
		for _, f := range forms {
			if len(f) >= 4 {
				s = strings.ReplaceAll(s, f, "***")
			}
		}
	}
	return s
}

// excerpt is the start of a reply, on one line, at most maxExcerpt bytes.
func excerpt(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len(s) <= maxExcerpt {
		return s
	}
	return strings.ToValidUTF8(s[:maxExcerpt], "") + "…"
}

// excerptLong bounds an error message of the agent's own (4 excerpts).
func excerptLong(s string) string {
	if len(s) <= 4*maxExcerpt {
		return s
	}
	return strings.ToValidUTF8(s[:4*maxExcerpt], "") + "…"
}

// httpError is a reply that says the call failed.
type httpError struct {
	what   string // the call: "POST hooks.slack.com"
	status string // "500 Internal Server Error"
	detail string // what the service's reply said, when it says it apart
	body   []byte
}

func (e *httpError) Error() string { return e.what + ": HTTP " + e.status }

// reply is a service's answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// send makes one HTTP call; a reply outside 2xx is an *httpError.
func (r *Runner) send(ctx context.Context, method, target string, header http.Header, body []byte) (reply, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL may be the secret: not quoted.
		return reply{}, errors.New("the URL is not an http:// or https:// URL with a host")
	}
	what := method + " " + u.Host
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return reply{}, fmt.Errorf("%s: build request: %w", what, err)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "cronium-agent")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		// url.Error quotes the whole URL (a webhook's secret): keep what
		// it wraps.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return reply{}, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return reply{}, fmt.Errorf("%s: read the reply: %w", what, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return reply{}, &httpError{what: what, status: resp.Status, body: b}
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// postJSON sends v as a JSON body.
func (r *Runner) postJSON(ctx context.Context, target string, header http.Header, v any) (reply, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return reply{}, fmt.Errorf("encode the payload: %w", err)
	}
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json; charset=utf-8")
	return r.send(ctx, http.MethodPost, target, header, b)
}

// decodeBody is a reply's body as JSON when it is, else as text.
func decodeBody(b []byte) any {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if len(bytes.TrimSpace(b)) > 0 && dec.Decode(&v) == nil && !dec.More() {
		return v
	}
	return string(b)
}

// checkAction accepts an action a tool has (canonical names), "" meaning
// the first.
func checkAction(action string, accepted ...string) (string, error) {
	if action == "" {
		return accepted[0], nil
	}
	for _, a := range accepted {
		if a == action {
			return accepted[0], nil
		}
	}
	return "", fmt.Errorf("no action %q (it has: %s)", clip(action, 40), strings.Join(accepted, ", "))
}

// statusText is a status as net/http writes it: "200 OK".
func statusText(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }
