// Package devserver is the development backend: an HTTP server that
// implements the Cronium backend's internal API as the contract
// (docs/backend-contract.md) plans it, with the deployed backend's
// quirks fixed, plus a small operator API under /api/dev/ to submit jobs and
// read back what an agent reported. Everything is kept in a bbolt file, so a
// restart keeps the state.
//
// It is what tests, end-to-end runs and the demo use as "the backend". It is
// deliberately strict where the plan states a rule the agent must follow
// (an execution update never carries completedAt or a terminal status, log
// streams are stdout/stderr/system, variable values are strings), so that
// the agent's mistakes show up as 400s in tests.
package devserver

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// DBFile is the name of the bbolt file in the data directory.
const DBFile = "devbackend.db"

// maxBody bounds a request body (a completion carries two capped outputs).
const maxBody = 64 << 20

// Server is the development backend. Its handler is safe for concurrent use.
type Server struct {
	db          *bolt.DB
	tokenHash   [32]byte
	log         *slog.Logger
	now         func() time.Time
	logEndpoint bool
	handler     http.Handler
	// queued wakes the claims waiting for a job (jobs/queue?wait=).
	queued *broadcast
	// lostAfter: see WithLostAfter; the sweeper runs until stopSweep closes.
	lostAfter  time.Duration
	stopSweep  chan struct{}
	sweeperEnd chan struct{}
}

type options struct {
	log         *slog.Logger
	now         func() time.Time
	noLogRoutes bool
	lostAfter   time.Duration
	// noSweeper leaves SweepLost to the caller (tests with a fake clock,
	// whose counts a background sweep would take).
	noSweeper bool
}

// Option configures a Server.
type Option func(*options)

// WithLogger logs requests (debug) and refused requests (info) to l.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithoutLogEndpoint makes the server behave like the deployed backend,
// which has no jobs/{id}/logs endpoint: it answers 404 there.
func WithoutLogEndpoint() Option { return func(o *options) { o.noLogRoutes = true } }

// WithClock replaces time.Now (claims compare scheduledFor with it, and it
// stamps every record).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New opens (creating it, mode 0600) dataDir/devbackend.db and returns a
// server that accepts requests bearing token.
func New(dataDir, token string, opts ...Option) (*Server, error) {
	if token == "" {
		return nil, errors.New("devserver: empty token")
	}
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now, lostAfter: DefaultLostAfter}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("devserver: %w", err)
	}
	path := filepath.Join(dataDir, DBFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("devserver: %s is in use by another process", path)
		}
		return nil, fmt.Errorf("devserver: open %s: %w", path, err)
	}
	// Batched writes (Server.batch) wait this long for company: short
	// beside an fsync, so that a lone call is hardly delayed.
	db.MaxBatchDelay = time.Millisecond
	if err := initBuckets(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("devserver: initialize %s: %w", path, err)
	}
	s := &Server{
		db:          db,
		tokenHash:   sha256.Sum256([]byte(token)),
		log:         o.log,
		now:         func() time.Time { return o.now().UTC() },
		logEndpoint: !o.noLogRoutes,
		queued:      newBroadcast(),
		lostAfter:   o.lostAfter,
		stopSweep:   make(chan struct{}),
		sweeperEnd:  make(chan struct{}),
	}
	s.handler = s.routes()
	if s.lostAfter > 0 && !o.noSweeper {
		go s.runSweeper(s.stopSweep, s.sweeperEnd)
	} else {
		close(s.sweeperEnd)
	}
	return s, nil
}

// Handler returns the HTTP handler of the internal and the dev API.
func (s *Server) Handler() http.Handler { return s.handler }

// Close closes the bbolt file. Requests after Close fail with 500.
func (s *Server) Close() error {
	s.EndWaits()
	select {
	case <-s.stopSweep:
	default:
		close(s.stopSweep)
	}
	<-s.sweeperEnd
	return s.db.Close()
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	in := "/api/internal/"
	handle := func(method, path string, h func(http.ResponseWriter, *http.Request)) {
		mux.HandleFunc(method+" "+path, h)
	}
	// §2 job queue
	handle("GET", in+"jobs/queue", s.handleQueue)
	handle("POST", in+"jobs/{id}/acknowledge", s.handleAcknowledge)
	handle("PUT", in+"jobs/{id}/status", s.handleStatus)
	handle("POST", in+"jobs/{id}/complete", s.handleComplete)
	handle("POST", in+"jobs/{id}/fail", s.handleFail)
	if s.logEndpoint {
		handle("POST", in+"jobs/{id}/logs", s.handleLogs)
	}
	handle("POST", in+"jobs/{id}/release", s.handleRelease)
	handle("GET", in+"jobs/orphaned", s.handleOrphaned)
	// §3 executions
	handle("POST", in+"executions/{id}/create", s.handleExecCreate)
	handle("PUT", in+"executions/{id}/update", s.handleExecUpdate)
	handle("POST", in+"executions/{id}/output", s.handleExecOutput)
	handle("POST", in+"executions/{id}/condition", s.handleExecCondition)
	handle("GET", in+"executions/{id}/context", s.handleExecContext)
	// §4 variables
	handle("GET", in+"variables/{user}/{key}", s.handleVarGet)
	handle("PUT", in+"variables/{user}/{key}", s.handleVarPut)
	// §5 orchestrator
	handle("GET", in+"orchestrator/health", s.handleHealthGet)
	handle("POST", in+"orchestrator/heartbeat", s.handleHeartbeat)
	handle("POST", in+"orchestrator/metrics", s.handleMetrics)
	handle("POST", in+"orchestrator/health", s.handleHealthPost)
	// §6 servers
	handle("GET", in+"servers/{id}", s.handleServer)
	handle("GET", in+"servers/{id}/credentials", s.handleCredentials)

	// The operator API.
	dev := "/api/dev/"
	handle("POST", dev+"jobs", s.handleDevSubmit)
	handle("GET", dev+"jobs", s.handleDevJobs)
	handle("GET", dev+"jobs/{id}", s.handleDevJob)
	handle("GET", dev+"jobs/{id}/logs", s.handleDevLogs)
	handle("POST", dev+"jobs/{id}/cancel", s.handleDevCancel)
	handle("GET", dev+"jobs/{id}/executions", s.handleDevJobExecutions)
	handle("GET", dev+"executions/{id}", s.handleDevExecution)
	handle("POST", dev+"servers", s.handleDevServerAdd)
	handle("GET", dev+"servers", s.handleDevServers)
	handle("DELETE", dev+"servers/{id}", s.handleDevServerRemove)
	handle("GET", dev+"orchestrators", s.handleDevOrchestrators)
	handle("GET", dev+"stats", s.handleDevStats)
	handle("GET", dev+"variables", s.handleDevVariables)
	handle("DELETE", dev+"variables/{user}/{key}", s.handleDevVariableDelete)
	handle("POST", dev+"jobs/{id}/rerun", s.handleDevRerun)

	// Anything else, including a known path with another method, is a JSON
	// 404 (the agent reads 404/405 on jobs/{id}/logs as "no log endpoint").
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not found")
	})
	return s.middleware(mux)
}

// middleware checks the bearer token and logs the request.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		if !s.authorized(r) {
			writeError(rec, http.StatusUnauthorized, "Unauthorized")
		} else {
			r.Body = http.MaxBytesReader(rec, r.Body, maxBody)
			next.ServeHTTP(rec, r)
		}
		level := slog.LevelDebug
		if rec.code >= 400 {
			level = slog.LevelInfo
		}
		s.log.Log(r.Context(), level, "dev backend request", "method", r.Method, "path", r.URL.EscapedPath(),
			"status", rec.code, "error", rec.errText, "duration", time.Since(start).Round(time.Microsecond))
	})
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], s.tokenHash[:]) == 1
}

type statusRecorder struct {
	http.ResponseWriter
	code    int
	errText string
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// apiError is an error with the HTTP status it answers with.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func errf(code int, format string, args ...any) error {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

// writeJSON answers v as JSON. HTML characters are not escaped, so that
// stored raw jobs go out byte for byte as they came in.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"encode response"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, code int, msg string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.errText = msg
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

// fail answers with err: its own status for an apiError, 500 otherwise.
func fail(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae.code, ae.msg)
		return
	}
	writeError(w, http.StatusInternalServerError, err.Error())
}

// readBody reads the request body; an empty body is an error when required.
func readBody(r *http.Request, required bool) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", mbe.Limit)
		}
		return nil, errf(http.StatusBadRequest, "read body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		if required {
			return nil, errf(http.StatusBadRequest, "request body required")
		}
		return nil, nil
	}
	return b, nil
}

// decodeBody reads a JSON object into v.
func decodeBody(r *http.Request, v any, required bool) ([]byte, error) {
	b, err := readBody(r, required)
	if err != nil || b == nil {
		return b, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, errf(http.StatusBadRequest, "invalid body: %v", err)
	}
	return b, nil
}

// orchestratorHeader returns X-Orchestrator-ID or a 400.
func orchestratorHeader(r *http.Request) (string, error) {
	id := strings.TrimSpace(r.Header.Get("X-Orchestrator-ID"))
	if id == "" {
		return "", errf(http.StatusBadRequest, "X-Orchestrator-ID header is required")
	}
	return id, nil
}

// timeText formats t as the backend does (UTC, milliseconds).
func timeText(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func timePtrText(t *time.Time) any {
	if t == nil {
		return nil
	}
	return timeText(*t)
}

func ptr[T any](v T) *T { return &v }
