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
)

// Timeouts of every session's http.Server.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 2 * time.Minute // a 10 MiB body over a local bridge or an SSH forward
	writeTimeout      = 2 * time.Minute // store calls may wait on the backend
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
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
	}
	if s.rateN > 0 && s.ratePer > 0 {
		sess.limiter = newSlidingWindow(s.rateN, s.ratePer)
	}
	base, cancel := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), executionKey{}, exec.ExecutionID))
	sess.cancel = cancel
	sess.http = &http.Server{
		Handler:           http.HandlerFunc(sess.serveHTTP),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
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
