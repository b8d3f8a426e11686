package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// logPage is how many lines the server asks its Source for at once.
const logPage = 1000

// Server serves a Source on the admin socket.
type Server struct {
	src  Source
	log  *slog.Logger
	poll time.Duration
	ln   *rootListener
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets where refused connections and failed requests are logged.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithPollInterval sets how often a followed log asks the Source for new
// lines (default 200 ms).
func WithPollInterval(d time.Duration) Option { return func(s *Server) { s.poll = d } }

// Listen creates the socket at path (mode 0600, its directory 0755 if
// missing), replacing one a dead agent left but refusing one a live agent
// serves. Nothing is served until Serve.
func Listen(path string, src Source, opts ...Option) (*Server, error) {
	s := &Server{src: src, log: slog.New(slog.DiscardHandler), poll: 200 * time.Millisecond}
	for _, o := range opts {
		o(s)
	}
	ln, fi, err := listenPrivate(path)
	if err != nil {
		return nil, err
	}
	s.ln = &rootListener{UnixListener: ln, path: path, file: fi, self: uint32(os.Geteuid()), log: s.log}
	return s, nil
}

// Serve answers requests until ctx ends, then ends the requests in flight
// (a followed log included) and removes the socket.
func (s *Server) Serve(ctx context.Context) error {
	hs := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(s.ln) }()
	select {
	case err := <-served:
		if cerr := s.Close(); errors.Is(err, net.ErrClosed) {
			return cerr // Close was called: not a failure
		}
		return fmt.Errorf("admin socket %s: %w", s.ln.path, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-served
	return errors.Join(err, s.Close())
}

// Close stops listening and removes the socket; it is for a server whose
// Serve is not running (Serve does it itself when its ctx ends).
func (s *Server) Close() error {
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close admin socket %s: %w", s.ln.path, err)
	}
	return nil
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/status", onlyGet(s.status))
	mux.HandleFunc("/v1/jobs", onlyGet(s.jobs))
	mux.HandleFunc("/v1/jobs/{id}/logs", onlyGet(s.logs))
	mux.HandleFunc("/v1/hand-over", onlyPost(s.handOver))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	return mux
}

// onlyGet answers 405 to other methods, with a JSON body like every other
// error (the mux's own 405 is plain text).
func onlyGet(h http.HandlerFunc) http.HandlerFunc { return only(http.MethodGet, h) }

func onlyPost(h http.HandlerFunc) http.HandlerFunc { return only(http.MethodPost, h) }

func only(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed (only "+method+")")
			return
		}
		h(w, r)
	}
}

func (s *Server) handOver(w http.ResponseWriter, r *http.Request) {
	src, ok := s.src.(HandOverSource)
	if !ok {
		writeError(w, http.StatusNotImplemented, "this agent cannot hand its jobs over")
		return
	}
	within := DefaultHandOverWithin
	if v := r.URL.Query().Get("within"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > MaxHandOverWithin {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("within must be a duration above 0 and at most %s, not %q", MaxHandOverWithin, v))
			return
		}
		within = d
	}
	h, err := src.HandOver(r.Context(), time.Now().Add(within))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("the next stop hands the running jobs over to the next start", "until", h.Until.Format(time.RFC3339), "running", h.Running)
	writeJSON(w, h)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.src.Status(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if st.Running == nil {
		st.Running = []RunningJob{} // [] rather than null for --json readers
	}
	writeJSON(w, st)
}

func (s *Server) jobs(w http.ResponseWriter, r *http.Request) {
	limit := DefaultJobs
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxJobs {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be a number from 1 to %d, not %q", MaxJobs, v))
			return
		}
		limit = n
	}
	jobs, err := s.src.Jobs(r.Context(), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if jobs == nil {
		jobs = []JobSummary{}
	}
	writeJSON(w, jobs)
}

func (s *Server) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("after must be a log line's seq, not %q", v))
			return
		}
		after = n
	}
	follow := false
	if v := q.Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("follow must be 1 or 0, not %q", v))
			return
		}
		follow = b
	}
	// The first page is read before the answer starts, so that an unknown
	// job is still a 404.
	id := r.PathValue("id")
	lines, complete, err := s.src.Logs(r.Context(), id, after, logPage)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if follow {
		s.follow(w, r, id, after, lines, complete)
		return
	}
	s.all(w, r, id, after, lines)
}

// all writes every line there is now, the first page lines included, as
// one JSON array, without holding the whole log in memory.
func (s *Server) all(w http.ResponseWriter, r *http.Request, id string, after uint64, lines []LogLine) {
	w.Header().Set("Content-Type", "application/json")
	enc := newEncoder(w)
	io.WriteString(w, "[")
	sep := ""
	for {
		for _, l := range lines {
			io.WriteString(w, sep)
			enc.Encode(l)
			sep, after = ",", l.Seq
		}
		if len(lines) < logPage {
			break
		}
		var err error
		if lines, _, err = s.src.Logs(r.Context(), id, after, logPage); err != nil {
			s.abort(r, err)
		}
	}
	io.WriteString(w, "]\n")
}

// follow writes lines as NDJSON as they come, until the log is complete.
func (s *Server) follow(w http.ResponseWriter, r *http.Request, id string, after uint64, lines []LogLine, complete bool) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	rc := http.NewResponseController(w)
	enc := newEncoder(w)
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	for {
		for _, l := range lines {
			if err := enc.Encode(l); err != nil {
				return // the client went away
			}
			after = l.Seq
		}
		if len(lines) < logPage {
			if complete {
				return
			}
			rc.Flush()
			select {
			case <-r.Context().Done(): // the client went away or the agent stops
				s.abort(r, r.Context().Err())
			case <-tick.C:
			}
		}
		var err error
		if lines, complete, err = s.src.Logs(r.Context(), id, after, logPage); err != nil {
			s.abort(r, err)
		}
	}
}

// abort ends an answer that has begun without ending it cleanly: the client
// sees the connection break rather than a log that merely looks shorter.
func (s *Server) abort(r *http.Request, err error) {
	if r.Context().Err() == nil {
		s.log.Warn("admin socket: reading a log failed", "path", r.URL.Path, "error", err)
	}
	panic(http.ErrAbortHandler)
}

// fail answers a Source's error before any of the answer is written.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrUnknownJob) {
		writeError(w, http.StatusNotFound, "unknown job "+r.PathValue("id"))
		return
	}
	s.log.Warn("admin socket: request failed", "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, err.Error())
}

func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // log lines are shown as they are, < and & included
	return enc
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	newEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	newEncoder(w).Encode(map[string]string{"error": msg})
}
