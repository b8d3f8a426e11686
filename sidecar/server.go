package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of the options.
const (
	DefaultRateLimit        = 1000
	DefaultRatePeriod       = time.Minute
	DefaultMaxBody    int64 = 10 << 20

	// DefaultMaxConns bounds the connections one execution holds open on its
	// runtime API: each is a file descriptor of the agent's. The helpers use
	// one connection per call, so 64 leaves a job room for dozens of
	// parallel callers while a job cannot take more than 64 of the agent's
	// descriptors, however many processes it runs.
	DefaultMaxConns = 64

	// DefaultReadHeaderTimeout bounds the wait for a request's headers,
	// from the connection's accept (or its first byte once idle): over the
	// job's local bridge they arrive in microseconds, so a connection that
	// sends nothing is closed after 5 s instead of holding its slot.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultIdleTimeout closes a kept-alive connection idle that long, so
	// that idle connections do not keep their slots (DefaultMaxConns). The
	// helpers never reuse a connection; a script's own keep-alive client
	// dials again, as it does for any server's idle timeout.
	DefaultIdleTimeout = 10 * time.Second

	// DefaultAuthFailLimit is how many requests without a valid token one
	// listener answers 401 per DefaultAuthFailPeriod (sliding window); the
	// ones beyond get 429 until the window slides.
	DefaultAuthFailLimit  = 60
	DefaultAuthFailPeriod = time.Minute

	// refusalLogInterval: refused connections and requests without a valid
	// token are logged at most once per interval per session, with a count.
	refusalLogInterval = 10 * time.Second
)

// Timeouts of every session's http.Server.
const (
	readTimeout    = 2 * time.Minute // a 10 MiB body over a local bridge or an SSH forward
	writeTimeout   = 2 * time.Minute // store calls may wait on the backend
	maxHeaderBytes = 64 << 10
)

// Server issues runtime tokens and serves one Session per running execution.
// It is safe for concurrent use.
type Server struct {
	secret  []byte
	store   Store
	log     *slog.Logger
	now     func() time.Time
	rateN   int
	ratePer time.Duration
	maxBody int64
	parser  *jwt.Parser

	tools ToolRunner // nil: tool actions answer 501

	maxConns      int
	headerTimeout time.Duration
	idleTimeout   time.Duration
	authFailN     int
	authFailPer   time.Duration

	mu   sync.RWMutex
	live map[string]*Session // by execution id
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default slog.Default()). Tokens and variable
// values are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// WithClock sets the clock used for tokens, the rate limit and /health
// (tests).
func WithClock(now func() time.Time) Option {
	return func(s *Server) {
		if now != nil {
			s.now = now
		}
	}
}

// WithRateLimit allows each execution n calls per period (sliding window;
// default 1000 per minute). n <= 0 or per <= 0 disables the limit.
func WithRateLimit(n int, per time.Duration) Option {
	return func(s *Server) { s.rateN, s.ratePer = n, per }
}

// WithMaxBody sets the largest request body accepted (default 10 MiB);
// n <= 0 keeps the default.
func WithMaxBody(n int64) Option {
	return func(s *Server) {
		if n > 0 {
			s.maxBody = n
		}
	}
}

// WithMaxConns bounds the connections each execution may hold open on its
// listener at once (default DefaultMaxConns); a connection beyond the bound
// is closed at once with a reset. n <= 0 removes the bound.
func WithMaxConns(n int) Option {
	return func(s *Server) { s.maxConns = n }
}

// WithConnTimeouts sets how long a connection may take to send a request's
// headers (default DefaultReadHeaderTimeout) and may stay idle between
// requests (default DefaultIdleTimeout); a value <= 0 keeps its default.
func WithConnTimeouts(readHeader, idle time.Duration) Option {
	return func(s *Server) {
		if readHeader > 0 {
			s.headerTimeout = readHeader
		}
		if idle > 0 {
			s.idleTimeout = idle
		}
	}
}

// WithAuthFailureLimit lets each listener answer n requests without a valid
// token per period with 401 (sliding window; default 60 per minute); the
// ones beyond are answered 429. n <= 0 or per <= 0 disables the limit.
func WithAuthFailureLimit(n int, per time.Duration) Option {
	return func(s *Server) { s.authFailN, s.authFailPer = n, per }
}

// ToolRunner runs the tool actions of POST /tool-actions/execute (the
// agent's tool executor): the runtime API never reaches a service itself.
type ToolRunner interface {
	// ExecuteTool runs the action request (the request body as the job
	// sent it) for exec and returns the outcome, {success, data, error}
	// as JSON, served as the reply's data whether the action succeeded or
	// not (a failed action is not retried by the helpers: it may have had
	// an effect). An error means the request was refused before anything
	// was sent; its message (never holding a secret) is the 400's.
	ExecuteTool(ctx context.Context, exec Execution, request json.RawMessage) (result json.RawMessage, err error)
}

// WithToolRunner serves POST /tool-actions/execute through t; without it
// the endpoint answers 501, naming the setting that turns it on.
func WithToolRunner(t ToolRunner) Option {
	return func(s *Server) { s.tools = t }
}

// New returns a Server that signs tokens with secret (at least SecretSize
// bytes; with a shorter one the Server fails closed: IssueToken and Start
// return an error and no token is accepted) and keeps data in store.
func New(secret []byte, store Store, opts ...Option) *Server {
	s := &Server{
		secret:  bytes.Clone(secret),
		store:   store,
		log:     slog.Default(),
		now:     time.Now,
		rateN:   DefaultRateLimit,
		ratePer: DefaultRatePeriod,
		maxBody: DefaultMaxBody,
		live:    make(map[string]*Session),

		maxConns:      DefaultMaxConns,
		headerTimeout: DefaultReadHeaderTimeout,
		idleTimeout:   DefaultIdleTimeout,
		authFailN:     DefaultAuthFailLimit,
		authFailPer:   DefaultAuthFailPeriod,
	}
	for _, o := range opts {
		o(s)
	}
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(s.now),
	)
	return s
}

// Session serves the runtime API of one execution on one listener.
type Session struct {
	srv     *Server
	exec    Execution
	token   string
	input   []byte // rendered data of GET input
	context []byte // rendered data of GET context
	limiter *slidingWindow
	http    *http.Server
	ln      net.Listener
	cancel  context.CancelFunc
	stop    func() bool // stops the AfterFunc on Start's ctx; guarded by mu
	served  chan struct{}

	// authFails limits the requests without a valid token on this
	// listener; nil when unlimited.
	authFails *slidingWindow
	authLog   logThrottle // requests without a valid token
	connLog   logThrottle // connections over the bound

	// gate is held for reading by every request in flight; Close takes it
	// for writing, so that it returns only once no handler is running.
	gate   sync.RWMutex
	closed bool

	writeMu sync.Mutex // orders store writes of output and condition with what is recorded
	mu      sync.Mutex
	output  json.RawMessage
	hasOut  bool
	cond    bool
	hasCond bool

	closeOnce sync.Once
	closeErr  error
}

// Start serves exec on ln until the Session is closed (or ctx is done, which
// closes it). It takes ownership of ln only when it returns no error.
// Starting an execution that already has a live Session is an error.
func (s *Server) Start(ctx context.Context, exec Execution, ln net.Listener) (*Session, error) {
	if ln == nil {
		return nil, errors.New("sidecar: nil listener")
	}
	if s.store == nil {
		return nil, errors.New("sidecar: nil store")
	}
	if exec.StartTime.IsZero() {
		exec.StartTime = s.now()
	}
	token, err := s.IssueToken(exec)
	if err != nil {
		return nil, err
	}
	input := []byte("null")
	if exec.Input != nil {
		if !json.Valid(exec.Input) {
			return nil, fmt.Errorf("sidecar: execution %s: input is not valid JSON", exec.ExecutionID)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, exec.Input); err != nil {
			return nil, fmt.Errorf("sidecar: execution %s: input: %w", exec.ExecutionID, err)
		}
		input = buf.Bytes()
	}
	meta := exec.Metadata
	if meta == nil {
		meta = map[string]any{}
	}
	ctxData, err := json.Marshal(contextData{
		ExecutionID: exec.ExecutionID,
		JobID:       exec.JobID,
		EventID:     exec.EventID,
		EventName:   exec.EventName,
		EventType:   exec.EventType,
		UserID:      exec.UserID,
		StartTime:   exec.StartTime.UTC().Format(timeFormat),
		Trigger:     exec.Trigger,
		Metadata:    meta,
	})
	if err != nil {
		return nil, fmt.Errorf("sidecar: execution %s: metadata: %w", exec.ExecutionID, err)
	}
	exec.Input = nil
	exec.Metadata = nil

	sess := &Session{
		srv:     s,
		exec:    exec,
		token:   token,
		input:   input,
		context: ctxData,
		ln:      ln,
		served:  make(chan struct{}),
		authLog: logThrottle{every: refusalLogInterval},
		connLog: logThrottle{every: refusalLogInterval},
	}
	if s.rateN > 0 && s.ratePer > 0 {
		sess.limiter = newSlidingWindow(s.rateN, s.ratePer)
	}
	if s.authFailN > 0 && s.authFailPer > 0 {
		sess.authFails = newSlidingWindow(s.authFailN, s.authFailPer)
	}
	if s.maxConns > 0 {
		sess.ln = newLimitListener(ln, s.maxConns, sess.connRefused)
	}
	base, cancel := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), executionKey{}, exec.ExecutionID))
	sess.cancel = cancel
	sess.http = &http.Server{
		Handler:           http.HandlerFunc(sess.serveHTTP),
		ReadHeaderTimeout: s.headerTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       s.idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}

	s.mu.Lock()
	if _, dup := s.live[exec.ExecutionID]; dup {
		s.mu.Unlock()
		cancel()
		return nil, fmt.Errorf("sidecar: execution %s already has a runtime API", exec.ExecutionID)
	}
	s.live[exec.ExecutionID] = sess
	s.mu.Unlock()

	go sess.serve()
	stop := context.AfterFunc(ctx, func() { _ = sess.Close() })
	sess.mu.Lock()
	sess.stop = stop
	sess.mu.Unlock()
	s.log.Debug("runtime api started", "execution", exec.ExecutionID, "addr", ln.Addr().String())
	return sess, nil
}

func (sess *Session) serve() {
	defer close(sess.served)
	err := sess.http.Serve(sess.ln)
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		sess.srv.log.Warn("runtime api stopped serving", "execution", sess.exec.ExecutionID, "err", err)
		go sess.Close()
	}
}

// connRefused notes a connection closed over the bound.
func (sess *Session) connRefused() {
	if t, ok := sess.connLog.add(sess.srv.now(), "", false); ok {
		sess.logConnRefused(t)
	}
}

func (sess *Session) logConnRefused(t tally) {
	sess.srv.log.Warn("runtime api: connections refused over the per-job bound",
		"execution", sess.exec.ExecutionID, "refused", t.count, "maxConns", sess.srv.maxConns)
}

func (sess *Session) logAuthRefused(t tally) {
	sess.srv.log.Info("runtime api: requests without a valid token refused",
		"execution", sess.exec.ExecutionID, "refused", t.count, "rateLimited", t.limited, "lastReason", t.reason)
}

// lookup returns the live Session of an execution, if any.
func (s *Server) lookup(executionID string) *Session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.live[executionID]
}

func (s *Server) forget(sess *Session) {
	s.mu.Lock()
	if s.live[sess.exec.ExecutionID] == sess {
		delete(s.live, sess.exec.ExecutionID)
	}
	s.mu.Unlock()
}

// Token returns the runtime token of this execution. It must never be logged
// or put on a command line.
func (sess *Session) Token() string { return sess.token }

// Execution returns the execution served (without Input and Metadata).
func (sess *Session) Execution() Execution { return sess.exec }

// Addr returns the listener's address.
func (sess *Session) Addr() net.Addr { return sess.ln.Addr() }

// Output returns the last output the job set, and whether it set one.
func (sess *Session) Output() (json.RawMessage, bool) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return bytes.Clone(sess.output), sess.hasOut
}

// Condition returns the last condition the job set, and whether it set one.
func (sess *Session) Condition() (bool, bool) {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.cond, sess.hasCond
}

// Close stops serving at once: it revokes the token (refused everywhere from
// now on), closes the listener and every connection, cancels the contexts of
// requests in flight and waits for their handlers to return, so that Output
// and Condition are final once it returns. It is idempotent.
func (sess *Session) Close() error {
	sess.closeOnce.Do(func() {
		sess.srv.forget(sess)
		sess.cancel()
		err := sess.http.Close()
		if lerr := sess.ln.Close(); err == nil && lerr != nil && !errors.Is(lerr, net.ErrClosed) {
			err = lerr
		}
		if err != nil && !errors.Is(err, net.ErrClosed) {
			sess.closeErr = fmt.Errorf("sidecar: close runtime api of %s: %w", sess.exec.ExecutionID, err)
		}
		sess.gate.Lock()
		sess.closed = true
		sess.gate.Unlock()
		sess.mu.Lock()
		stop := sess.stop
		sess.mu.Unlock()
		if stop != nil {
			stop()
		}
		<-sess.served
		if t, ok := sess.connLog.flush(); ok {
			sess.logConnRefused(t)
		}
		if t, ok := sess.authLog.flush(); ok {
			sess.logAuthRefused(t)
		}
		sess.srv.log.Debug("runtime api closed", "execution", sess.exec.ExecutionID)
	})
	return sess.closeErr
}

// Live counts the executions being served: each has a listener open.
func (s *Server) Live() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.live)
}

type executionKey struct{}

// ExecutionOf returns the execution a Store call is made for: the contexts
// the runtime API passes to its Store carry it, so that a store can file a
// variable write with the run that made it.
func ExecutionOf(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(executionKey{}).(string)
	return id, ok && id != ""
}
