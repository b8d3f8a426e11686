// Package console is the standalone backend's web console: jobs with their
// live logs, a form to run a job now, the agents, servers and user
// variables. It is server-rendered HTML with a little plain JavaScript, all
// embedded: it works offline and needs no build step.
//
// It is protected by the backend's service token: a login form exchanges
// the token for a session cookie (HttpOnly, SameSite=Strict), and every
// request that changes something carries the session's CSRF token.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Backend is what the console reads and changes: the development
// backend's operator API (devserver.DevClient implements it).
type Backend interface {
	Jobs(ctx context.Context) ([]devserver.JobSummary, error)
	Job(ctx context.Context, id string) (devserver.JobView, error)
	LogRange(ctx context.Context, id string, after uint64, limit int) (devserver.LogPage, error)
	Submit(ctx context.Context, req devserver.SubmitRequest) (string, error)
	Rerun(ctx context.Context, id string) (string, error)
	Cancel(ctx context.Context, id string) (devserver.CancelResult, error)
	Executions(ctx context.Context, jobID string) ([]devserver.ExecutionView, error)
	Orchestrators(ctx context.Context) ([]devserver.OrchestratorView, error)
	Servers(ctx context.Context) ([]devserver.ServerView, error)
	AddServer(ctx context.Context, s api.Server) (devserver.ServerView, error)
	RemoveServer(ctx context.Context, id string) error
	Variables(ctx context.Context) ([]devserver.VariableView, error)
	SetVariable(ctx context.Context, user, key, value string) error
	DeleteVariable(ctx context.Context, user, key string) error
}

// Console serves the web console.
type Console struct {
	b         Backend
	tokenHash [32]byte
	log       *slog.Logger
	pages     map[string]*template.Template
	mux       *http.ServeMux
	now       func() time.Time

	sessionTTL time.Duration
	poll       time.Duration
	tailLines  int

	mu       sync.Mutex
	sessions map[string]session
}

type session struct {
	csrf    string
	expires time.Time
}

// Option configures a Console.
type Option func(*Console)

// WithLogger logs refused logins and backend errors to l.
func WithLogger(l *slog.Logger) Option { return func(c *Console) { c.log = l } }

// WithPollInterval sets how often a live log looks for new lines
// (default 200ms).
func WithPollInterval(d time.Duration) Option { return func(c *Console) { c.poll = d } }

// WithTailLines sets how many of a log's last lines a job's page shows
// first (default 1000); earlier ones load on demand.
func WithTailLines(n int) Option { return func(c *Console) { c.tailLines = n } }

const (
	sessionCookie = "cronium_session"
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
)

// New returns the console of backend b, whose service token is token.
func New(b Backend, token string, opts ...Option) (*Console, error) {
	if token == "" {
		return nil, errors.New("console: empty token")
	}
	c := &Console{
		b: b, tokenHash: sha256.Sum256([]byte(token)), log: slog.New(slog.DiscardHandler), now: time.Now,
		sessionTTL: 12 * time.Hour, poll: 200 * time.Millisecond, tailLines: 1000,
		sessions: map[string]session{},
	}
	for _, o := range opts {
		o(c)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.mux = c.routes()
	return c, nil
}

func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := n[len("templates/") : len(n)-len(".html")]
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Everything the console shows is its own: no frame, no script or
	// style from elsewhere, no inline script.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheStatic(http.FileServerFS(static))))
	mux.HandleFunc("GET /login", c.loginPage)
	mux.HandleFunc("POST /login", c.login)
	page := func(pattern string, h func(http.ResponseWriter, *http.Request, session)) {
		mux.HandleFunc(pattern, c.authed(h))
	}
	page("POST /logout", c.logout)
	page("GET /{$}", func(w http.ResponseWriter, r *http.Request, _ session) {
		http.Redirect(w, r, "/jobs", http.StatusSeeOther)
	})
	page("GET /jobs", c.jobsPage)
	page("GET /jobs.json", c.jobsJSON)
	page("GET /jobs/{id}", c.jobPage)
	page("GET /jobs/{id}/state.json", c.jobState)
	page("GET /jobs/{id}/events", c.jobEvents)
	page("GET /jobs/{id}/lines", c.jobLines)
	page("GET /jobs/{id}/log.txt", c.jobDownload)
	page("POST /jobs/{id}/cancel", c.jobCancel)
	page("POST /jobs/{id}/rerun", c.jobRerun)
	page("GET /run", c.runPage)
	page("POST /run", c.runSubmit)
	page("GET /agents", c.agentsPage)
	page("GET /servers", c.serversPage)
	page("POST /servers", c.serverAdd)
	page("POST /servers/{id}/delete", c.serverRemove)
	page("GET /variables", c.variablesPage)
	page("POST /variables", c.variableSet)
	page("POST /variables/delete", c.variableDelete)
	return mux
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// authed lets h run only with a session: a request without one goes to
// the login page (an API-like request gets 401), and one that changes
// something must carry the session's CSRF token (403 otherwise).
func (c *Console) authed(h func(http.ResponseWriter, *http.Request, session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.session(r)
		if !ok {
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			got := r.Header.Get(csrfHeader)
			if got == "" {
				got = r.PostFormValue(csrfField)
			}
			if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
				http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		h(w, r, s)
	}
}

func (c *Console) session(r *http.Request) (session, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return session{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sessions[sessionKey(ck.Value)]
	if !ok || c.now().After(s.expires) {
		delete(c.sessions, sessionKey(ck.Value))
		return session{}, false
	}
	return s, true
}

// sessionKey is what the sessions map keeps of a cookie: its hash, so that
// the map holds nothing a cookie could be made from.
func sessionKey(cookie string) string {
	h := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(h[:])
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", session{}, map[string]any{"Error": ""})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	tok := r.PostFormValue("token")
	h := sha256.Sum256([]byte(tok))
	if tok == "" || subtle.ConstantTimeCompare(h[:], c.tokenHash[:]) != 1 {
		c.log.Info("console login refused: wrong token", "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "login", session{}, map[string]any{"Error": "That is not the backend's service token."})
		return
	}
	cookie := randomToken()
	now := c.now()
	c.mu.Lock()
	for k, s := range c.sessions {
		if now.After(s.expires) {
			delete(c.sessions, k)
		}
	}
	c.sessions[sessionKey(cookie)] = session{csrf: randomToken(), expires: now.Add(c.sessionTTL)}
	c.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: cookie, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil, MaxAge: int(c.sessionTTL / time.Second),
	})
	http.Redirect(w, r, "/jobs", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ session) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.mu.Lock()
		delete(c.sessions, sessionKey(ck.Value))
		c.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// render writes page name with data; the layout gets the session's CSRF
// token for its forms and scripts.
func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, s session, data map[string]any) {
	t := c.pages[name]
	if data == nil {
		data = map[string]any{}
	}
	data["CSRF"] = s.csrf
	data["LoggedIn"] = s.csrf != ""
	data["Page"] = name
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if err := t.Execute(w, data); err != nil {
		c.log.Warn("console page failed", "page", name, "error", err)
	}
}

// backendError answers a failed backend call: a refusal with its status
// and message, anything else as 502.
func (c *Console) backendError(w http.ResponseWriter, r *http.Request, s session, err error) {
	code, msg := http.StatusBadGateway, err.Error()
	var ae *devserver.APIError
	if errors.As(err, &ae) {
		code, msg = ae.StatusCode, ae.Message
	}
	if code >= 500 {
		c.log.Warn("console: backend call failed", "path", r.URL.Path, "error", err)
	}
	c.render(w, r, code, "error", s, map[string]any{"Status": code, "Message": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

// plainError answers a script's call whose backend call failed: the
// backend's refusal with its status (404 for an unknown job), anything
// else as 502.
func plainError(w http.ResponseWriter, err error) {
	code, msg := http.StatusBadGateway, err.Error()
	var ae *devserver.APIError
	if errors.As(err, &ae) {
		code, msg = ae.StatusCode, ae.Message
	}
	http.Error(w, msg, code)
}
