package doctor

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/backend/devserver/devtest"
	"github.com/cronium/cronium-agent/internal/config"
)

const testToken = "doctor-test-token"

func devBackend(t *testing.T) *devtest.Backend {
	t.Helper()
	return devtest.Start(t, "", testToken, devserver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
}

// closedURL is a loopback address nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// lenientBackend answers its health probe whatever the token, as a backend
// may, and guards the variables with it, as every backend does; health
// answers healthStatus, variables varStatus to the right token.
func lenientBackend(t *testing.T, healthStatus, varStatus int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/internal/orchestrator/health":
			w.WriteHeader(healthStatus)
			io.WriteString(w, `{"status":"healthy"}`)
		case r.Header.Get("Authorization") != "Bearer "+testToken:
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"Unauthorized"}`)
		case strings.HasPrefix(r.URL.Path, "/api/internal/variables/"):
			w.WriteHeader(varStatus)
			io.WriteString(w, `{"error":"nope"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestBackend(t *testing.T) {
	dev := devBackend(t)
	for _, tc := range []struct {
		name       string
		url, token func(t *testing.T) string
		want       want
	}{
		{"not configured", none, none,
			want{status: Warn, detail: []string{"not configured"}, fix: []string{"backend.url", "backend.token", "/etc/test/agent.yaml", "CRONIUM_BACKEND_URL", "CRONIUM_BACKEND_TOKEN"}}},
		{"no token", is(dev.URL), none,
			want{status: Fail, detail: []string{"backend.token is not"}, fix: []string{"backend.token"}}},
		{"right token", is(dev.URL), is(testToken),
			want{status: Pass, detail: []string{dev.URL, "accepts the token"}}},
		{"wrong token", is(dev.URL), is("not-" + testToken),
			want{status: Fail, detail: []string{"token refused", "401"}, fix: []string{"backend.token", "CRONIUM_BACKEND_TOKEN"}, absent: []string{testToken}}},
		{"unreachable", closedURL, is(testToken),
			want{status: Fail, detail: []string{"not reachable", "connection refused"}, fix: []string{"backend.url"}}},
		{"not http", is("ftp://backend.example"), is(testToken),
			want{status: Fail, detail: []string{"want http:// or https://"}}},
		{"health ignores the token, variables do not", func(t *testing.T) string { return lenientBackend(t, 200, 404) }, is("wrong"),
			want{status: Fail, detail: []string{"token refused", "variables"}}},
		{"lenient backend, right token", func(t *testing.T) string { return lenientBackend(t, 200, 404) }, is(testToken),
			want{status: Pass}},
		{"unhealthy", func(t *testing.T) string { return lenientBackend(t, 503, 404) }, is(testToken),
			want{status: Warn, detail: []string{"accepts the token, but its health probe failed", "503"}}},
		{"token not confirmed", func(t *testing.T) string { return lenientBackend(t, 200, 500) }, is(testToken),
			want{status: Warn, detail: []string{"not confirmed", "500"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.State.Dir = t.TempDir()
			cfg.Backend.URL, cfg.Backend.Token = tc.url(t), tc.token(t)
			tc.want.check(t, runCheck(t, cfg, "backend", WithConfigPath("/etc/test/agent.yaml"), WithTimeout(2*time.Second)))
		})
	}
}

func none(*testing.T) string { return "" }

func is(s string) func(*testing.T) string { return func(*testing.T) string { return s } }

// A backend's id is the agent's when it has one, and doctor makes none.
func TestBackendOrchestratorID(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Orchestrator-ID"))
		mu.Unlock()
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	cfg := config.Default()
	cfg.Backend.URL, cfg.Backend.Token = srv.URL, testToken
	cfg.State.Dir = t.TempDir()
	writeTree(t, cfg.State.Dir, map[string]string{"orchestrator-id": "agent-0123456789abcdef\n"})
	runCheck(t, cfg, "backend")
	cfg.State.Dir = t.TempDir() // no id yet
	runCheck(t, cfg, "backend")
	want := []string{"agent-0123456789abcdef", "agent-0123456789abcdef", doctorOrchID, doctorOrchID}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("ids sent %q, want %q", seen, want)
	}
	if entries, err := os.ReadDir(cfg.State.Dir); err != nil || len(entries) != 0 {
		t.Errorf("doctor wrote %v into the state directory (%v)", entries, err)
	}
}

// skewedBackend answers with a Date header skew away from this host's
// clock; with noDate it sends none.
func skewedBackend(t *testing.T, skew time.Duration, noDate bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if noDate {
			w.Header()["Date"] = nil // net/http adds none then
		} else {
			w.Header().Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
		}
		w.WriteHeader(http.StatusUnauthorized) // the header counts, not the token
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestClock(t *testing.T) {
	dev := devBackend(t)
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
		want want
	}{
		{"no backend", none, want{status: Pass, detail: []string{"not checked"}}},
		{"development backend", is(dev.URL), want{status: Pass}},
		{"in step", func(t *testing.T) string { return skewedBackend(t, 0, false) }, want{status: Pass}},
		{"host behind", func(t *testing.T) string { return skewedBackend(t, 10*time.Second, false) },
			want{status: Warn, detail: []string{"10s behind the backend's"}, fix: []string{"timedatectl set-ntp true"}}},
		{"host ahead", func(t *testing.T) string { return skewedBackend(t, -10*time.Second, false) },
			want{status: Warn, detail: []string{"10s ahead of the backend's"}}},
		{"far off", func(t *testing.T) string { return skewedBackend(t, 2*time.Minute, false) },
			want{status: Fail, detail: []string{"2m0s behind", "more than 1m0s"}}},
		{"no Date header", func(t *testing.T) string { return skewedBackend(t, 0, true) },
			want{status: Warn, detail: []string{"not checked", "no Date header"}}},
		{"unreachable", closedURL, want{status: Warn, detail: []string{"not checked", "connection refused"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Backend.URL, cfg.Backend.Token = tc.url(t), testToken
			tc.want.check(t, runCheck(t, cfg, "clock", WithTimeout(2*time.Second)))
		})
	}
}

func TestJudgeSkew(t *testing.T) {
	for _, tc := range []struct {
		skew   time.Duration
		status Status
		detail string
	}{
		{0, Pass, "within a second"},
		{400 * time.Millisecond, Pass, "within a second"},
		{-3 * time.Second, Pass, "3s ahead of"},
		{5 * time.Second, Pass, "5s behind"},
		{5*time.Second + time.Millisecond, Warn, "5s behind"},
		{-59 * time.Second, Warn, "59s ahead of"},
		{61 * time.Second, Fail, "1m1s behind"},
		{-time.Hour, Fail, "1h0m0s ahead of"},
	} {
		r := judgeSkew(tc.skew)
		if r.Status != tc.status || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("skew %s: %s %q, want %s and %q", tc.skew, r.Status, r.Detail, tc.status, tc.detail)
		}
	}
}
