package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/console"
	"github.com/cronium/cronium-agent/backend/devserver"
)

const token = "console-test-token"

type env struct {
	srv  *devserver.Server
	dev  *devserver.DevClient
	ts   *httptest.Server
	anon *http.Client // no session
}

func newEnv(t testing.TB, opts ...console.Option) *env {
	t.Helper()
	srv, err := devserver.New(t.TempDir(), token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	con, err := console.New(srv.InProcessClient(token), token, append([]console.Option{console.WithPollInterval(20 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", srv.Handler())
	mux.Handle("/", con)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	dev, err := devserver.NewDevClient(ts.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, dev: dev, ts: ts, anon: noRedirects(nil)}
}

func noRedirects(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login logs in and returns a client with the session and its CSRF token.
func (e *env) login(t testing.TB) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := noRedirects(jar)
	resp, err := c.PostForm(e.ts.URL+"/login", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/jobs" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	body := e.get(t, c, "/jobs", http.StatusOK)
	i := strings.Index(body, `<meta name="csrf" content="`)
	if i < 0 {
		t.Fatal("no csrf meta on /jobs")
	}
	rest := body[i+len(`<meta name="csrf" content="`):]
	return c, rest[:strings.IndexByte(rest, '"')]
}

func (e *env) get(t testing.TB, c *http.Client, path string, want int) string {
	t.Helper()
	resp, err := c.Get(e.ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, b)
	}
	return string(b)
}

func (e *env) post(t *testing.T, c *http.Client, path string, form url.Values) *http.Response {
	t.Helper()
	resp, err := c.PostForm(e.ts.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

// logs stores log lines for a job as an agent would send them.
func (e *env) logs(t testing.TB, id string, entries ...api.LogEntry) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"entries": entries})
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/api/internal/jobs/"+id+"/logs", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("post logs: %d %s", resp.StatusCode, out)
	}
}

func (e *env) submit(t testing.TB) string {
	t.Helper()
	id, err := e.dev.Submit(context.Background(), devserver.SubmitRequest{Runtime: "bash", Script: "echo hi"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Every page and call of the console: without a session a page goes to
// the login page and a call that changes something is refused; with one,
// a change without the CSRF token is refused with 403.
func TestEveryPageNeedsASession(t *testing.T) {
	e := newEnv(t)
	id := e.submit(t)
	c, _ := e.login(t)
	gets := []string{"/", "/jobs", "/jobs.json", "/jobs/" + id, "/jobs/" + id + "/state.json", "/jobs/" + id + "/lines?after=0&before=9&limit=5",
		"/jobs/" + id + "/log.txt", "/jobs/" + id + "/events", "/run", "/agents", "/servers", "/variables"}
	for _, p := range gets {
		t.Run("GET "+p, func(t *testing.T) {
			resp, err := e.anon.Get(e.ts.URL + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
				t.Errorf("without a session: %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
	posts := []string{"/logout", "/jobs/" + id + "/cancel", "/jobs/" + id + "/rerun", "/run", "/servers", "/servers/1/delete", "/variables", "/variables/delete"}
	for _, p := range posts {
		t.Run("POST "+p, func(t *testing.T) {
			if resp := e.post(t, e.anon, p, url.Values{}); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("without a session: %d, want 401", resp.StatusCode)
			}
			if resp := e.post(t, c, p, url.Values{}); resp.StatusCode != http.StatusForbidden {
				t.Errorf("without the CSRF token: %d, want 403", resp.StatusCode)
			}
			if resp := e.post(t, c, p, url.Values{"csrf": {"0123"}}); resp.StatusCode != http.StatusForbidden {
				t.Errorf("with a wrong CSRF token: %d, want 403", resp.StatusCode)
			}
		})
	}
	// Nothing was changed by the refused calls.
	v, err := e.dev.Job(context.Background(), id)
	if err != nil || v.Status != devserver.StatusQueued || v.CancelRequested {
		t.Errorf("job after the refused calls: %+v %v", v.JobSummary, err)
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	resp := e.post(t, e.anon, "/login", url.Values{"token": {"wrong"}})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "not the backend") {
		t.Errorf("wrong token: %d %s", resp.StatusCode, body)
	}
	if len(resp.Cookies()) != 0 {
		t.Errorf("wrong token set cookies %v", resp.Cookies())
	}
	resp = e.post(t, e.anon, "/login", url.Values{"token": {token}})
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "cronium_session" {
			ck = c
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || strings.Contains(ck.Value, token) {
		t.Fatalf("session cookie %+v", ck)
	}
	// The bearer-token API is unaffected, and refuses a session cookie.
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/api/dev/jobs", nil)
	req.AddCookie(ck)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with a session cookie: %d", r2.StatusCode)
	}
	// Logging out ends the session.
	jar, _ := cookiejar.New(nil)
	c := noRedirects(jar)
	u, _ := url.Parse(e.ts.URL)
	jar.SetCookies(u, []*http.Cookie{ck})
	page := e.get(t, c, "/jobs", http.StatusOK)
	i := strings.Index(page, `name="csrf" content="`) + len(`name="csrf" content="`)
	csrf := page[i : i+64]
	e.post(t, c, "/logout", url.Values{"csrf": {csrf}})
	jar.SetCookies(u, []*http.Cookie{ck})
	resp2, _ := c.Get(e.ts.URL + "/jobs")
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusSeeOther {
		t.Errorf("old cookie after logout: %d", resp2.StatusCode)
	}
}

// What a job printed is shown as text: markup inert, escape sequences
// stripped, invalid UTF-8 as replacement characters.
func TestJobOutputIsInert(t *testing.T) {
	e := newEnv(t)
	id := e.submit(t)
	e.logs(t, id,
		api.LogEntry{Seq: 1, Stream: "stdout", Line: "<script>alert(1)</script>"},
		api.LogEntry{Seq: 2, Stream: "stderr", Line: "\x1b[31mred\x1b[0m \x1b]0;title\x07done"},
		api.LogEntry{Seq: 3, Stream: "system", Line: "bad \xff byte"},
	)
	c, _ := e.login(t)
	page := e.get(t, c, "/jobs/"+id, http.StatusOK)
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", `class="l err" data-seq="2">red done<`, "bad \uFFFD byte"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script>alert", "\x1b"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q", bad)
		}
	}
	// The stream gives the same cleaned lines, as JSON text.
	ev := e.events(t, c, id, "")
	if len(ev) < 3 || ev[0].Line != "<script>alert(1)</script>" || ev[1].Line != "red done" || ev[2].Line != "bad \uFFFD byte" {
		t.Errorf("events %+v", ev)
	}
}

type line struct {
	ID     string
	Seq    uint64 `json:"seq"`
	Stream string `json:"stream"`
	Line   string `json:"line"`
}

// events reads a job's event stream until its end event (the job must be
// final) or 200 lines.
func (e *env) events(t *testing.T, c *http.Client, id, lastEventID string) []line {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.ts.URL+"/jobs/"+id+"/events", nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, ct)
	}
	var out []line
	var cur line
	var event string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "id: "):
			cur.ID = l[4:]
		case strings.HasPrefix(l, "event: "):
			event = l[7:]
		case strings.HasPrefix(l, "data: ") && event == "line":
			if err := json.Unmarshal([]byte(l[6:]), &cur); err != nil {
				t.Fatal(err)
			}
			out = append(out, cur)
			cur = line{}
		case strings.HasPrefix(l, "data: ") && event == "end":
			return out
		}
		if len(out) >= 200 {
			return out
		}
	}
	return out
}

// A reconnect resumes right after the last line it had (Last-Event-ID),
// with none lost or doubled.
func TestLiveLogResumes(t *testing.T) {
	e := newEnv(t)
	id := e.submit(t)
	for i := 1; i <= 50; i++ {
		e.logs(t, id, api.LogEntry{Seq: uint64(i), Stream: "stdout", Line: fmt.Sprintf("line %d", i)})
	}
	if _, err := e.dev.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	c, _ := e.login(t)
	all := e.events(t, c, id, "")
	rest := e.events(t, c, id, "20")
	if len(all) != 50 || len(rest) != 30 {
		t.Fatalf("got %d lines, then %d after 20", len(all), len(rest))
	}
	for i, l := range rest {
		if l.Seq != uint64(21+i) || l.ID != fmt.Sprint(21+i) || l.Line != fmt.Sprintf("line %d", 21+i) {
			t.Fatalf("after 20, line %d: %+v", i, l)
		}
	}
}

// The download is the log as `cronium-backend logs` writes it to a file,
// across pages of the backend's log API.
func TestDownload(t *testing.T) {
	e := newEnv(t)
	id := e.submit(t)
	var want strings.Builder
	var batch []api.LogEntry
	for i := 1; i <= 10500; i++ {
		stream := []string{"stdout", "stderr", "system"}[i%3]
		text := fmt.Sprintf("l%d \x1b[1m<b>", i)
		batch = append(batch, api.LogEntry{Seq: uint64(i), Stream: stream, Line: text})
		if stream == "system" {
			want.WriteString("[system] ")
		}
		want.WriteString(text + "\n")
		if len(batch) == 1000 {
			e.logs(t, id, batch...)
			batch = nil
		}
	}
	e.logs(t, id, batch...)
	c, _ := e.login(t)
	resp, err := c.Get(e.ts.URL + "/jobs/" + id + "/log.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if string(got) != want.String() {
		t.Errorf("download: %d bytes, want %d", len(got), want.Len())
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, id+".log") {
		t.Errorf("Content-Disposition %q", cd)
	}
}

// A long log shows its tail first, and earlier lines on demand.
func TestLongLogShowsTheTail(t *testing.T) {
	e := newEnv(t, console.WithTailLines(100))
	id := e.submit(t)
	var batch []api.LogEntry
	for i := 1; i <= 1000; i++ {
		batch = append(batch, api.LogEntry{Seq: uint64(i), Stream: "stdout", Line: fmt.Sprintf("n%d", i)})
	}
	e.logs(t, id, batch...)
	c, _ := e.login(t)
	page := e.get(t, c, "/jobs/"+id, http.StatusOK)
	if strings.Count(page, `class="l out"`) != 100 || !strings.Contains(page, ">n1000<") || strings.Contains(page, ">n900<") || !strings.Contains(page, `data-first="901"`) {
		t.Errorf("the page does not show lines 901-1000 alone")
	}
	var got struct {
		Lines []line `json:"lines"`
	}
	body := e.get(t, c, "/jobs/"+id+"/lines?after=800&before=901&limit=1000", http.StatusOK)
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Lines) != 100 || got.Lines[0].Seq != 801 || got.Lines[99].Seq != 900 {
		t.Errorf("earlier lines: %d %v", len(got.Lines), err)
	}
}

func TestRunForm(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.login(t)
	form := func(kv ...string) url.Values {
		v := url.Values{"csrf": {csrf}, "runtime": {"python"}, "script": {"print(1)"}, "timeout": {"30s"}, "input": {`{"a":1}`}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"input not JSON", form("input", "{a:1}"), "input is not a JSON object"},
		{"input an array", form("input", "[1]"), "input is not a JSON object"},
		{"runtime", form("runtime", "perl"), "choose bash, python or node"},
		{"empty script", form("script", "  "), "the script is empty"},
		{"timeout", form("timeout", "soon"), "give a duration"},
		{"env", form("env", "NOEQUALS"), "environment line 1"},
		{"unknown server", form("server", "99"), "99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.post(t, c, "/run", tc.form)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
				t.Errorf("%d, want 400 with %q: %s", resp.StatusCode, tc.want, body)
			}
		})
	}
	resp := e.post(t, c, "/run", form("env", "A=1\nB=x=y"))
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/jobs/job_") {
		t.Fatalf("submit: %d to %q", resp.StatusCode, loc)
	}
	v, err := e.dev.Job(context.Background(), strings.TrimPrefix(loc, "/jobs/"))
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		Execution struct {
			Environment map[string]string `json:"environment"`
			Timeout     int64             `json:"timeout"`
			InputData   map[string]any    `json:"inputData"`
			Script      struct {
				Type, Content string
			} `json:"script"`
		} `json:"execution"`
	}
	if err := json.Unmarshal(v.Job, &wire); err != nil {
		t.Fatal(err)
	}
	x := wire.Execution
	if x.Environment["A"] != "1" || x.Environment["B"] != "x=y" || x.Script.Content != "print(1)" || x.InputData["a"] != 1.0 {
		t.Errorf("job %s", v.Job)
	}
	// Run again queues a copy under a new id.
	resp = e.post(t, c, loc+"/rerun", url.Values{"csrf": {csrf}})
	loc2 := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc2 == loc || !strings.HasPrefix(loc2, "/jobs/job_") {
		t.Fatalf("rerun: %d to %q", resp.StatusCode, loc2)
	}
	v2, err := e.dev.Job(context.Background(), strings.TrimPrefix(loc2, "/jobs/"))
	if err != nil || v2.Status != devserver.StatusQueued || !strings.Contains(string(v2.Job), `"content":"print(1)"`) {
		t.Errorf("copy: %+v %v", v2.JobSummary, err)
	}
	// Cancel.
	resp = e.post(t, c, loc+"/cancel", url.Values{"csrf": {csrf}})
	if v, _ := e.dev.Job(context.Background(), strings.TrimPrefix(loc, "/jobs/")); resp.StatusCode != http.StatusSeeOther || v.Status != devserver.StatusCancelled {
		t.Errorf("cancel: %d, status %s", resp.StatusCode, v.Status)
	}
}

// Server keys and passwords and variable values are never shown back.
func TestSecretsNotShownBack(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.login(t)
	resp := e.post(t, c, "/servers", url.Values{"csrf": {csrf}, "name": {"edge-1"}, "host": {"127.0.0.1"}, "port": {"2222"}, "username": {"ops"}, "password": {"hunter2-secret"}})
	if resp.StatusCode != http.StatusSeeOther {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("add server: %d %s", resp.StatusCode, body)
	}
	resp = e.post(t, c, "/variables", url.Values{"csrf": {csrf}, "user": {"u1"}, "key": {"API_KEY"}, "value": {"s3cr3t-value"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("set variable: %d", resp.StatusCode)
	}
	for _, p := range []string{"/servers", "/variables", "/run"} {
		page := e.get(t, c, p, http.StatusOK)
		if strings.Contains(page, "hunter2-secret") || strings.Contains(page, "s3cr3t-value") {
			t.Errorf("%s shows a secret", p)
		}
	}
	if page := e.get(t, c, "/servers", http.StatusOK); !strings.Contains(page, "edge-1") || !strings.Contains(page, "<td>set</td>") {
		t.Errorf("servers page lacks the server or its 'set'")
	}
	if page := e.get(t, c, "/variables", http.StatusOK); !strings.Contains(page, "API_KEY") || !strings.Contains(page, "set (12 bytes)") {
		t.Errorf("variables page lacks the variable")
	}
	resp = e.post(t, c, "/variables/delete", url.Values{"csrf": {csrf}, "user": {"u1"}, "key": {"API_KEY"}})
	if vars, _ := e.dev.Variables(context.Background()); resp.StatusCode != http.StatusSeeOther || len(vars) != 0 {
		t.Errorf("delete variable: %d, left %v", resp.StatusCode, vars)
	}
	servers, _ := e.dev.Servers(context.Background())
	resp = e.post(t, c, "/servers/"+servers[0].ID+"/delete", url.Values{"csrf": {csrf}})
	if servers, _ := e.dev.Servers(context.Background()); resp.StatusCode != http.StatusSeeOther || len(servers) != 0 {
		t.Errorf("remove server: %d, left %v", resp.StatusCode, servers)
	}
}

func TestJobsFilter(t *testing.T) {
	e := newEnv(t)
	a, b := e.submit(t), e.submit(t)
	if _, err := e.dev.Cancel(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	c, _ := e.login(t)
	var got struct {
		Jobs []struct{ ID, Status string } `json:"jobs"`
	}
	body := e.get(t, c, "/jobs.json?status=cancelled", http.StatusOK)
	_ = json.Unmarshal([]byte(body), &got)
	if len(got.Jobs) != 1 || got.Jobs[0].ID != b {
		t.Errorf("status filter: %+v", got.Jobs)
	}
	body = e.get(t, c, "/jobs.json?q="+a[len(a)-6:], http.StatusOK)
	_ = json.Unmarshal([]byte(body), &got)
	if len(got.Jobs) != 1 || got.Jobs[0].ID != a {
		t.Errorf("search: %+v", got.Jobs)
	}
	page := e.get(t, c, "/jobs?status=queued", http.StatusOK)
	if !strings.Contains(page, a) || strings.Contains(page, ">"+b+"<") {
		t.Errorf("jobs page with status=queued")
	}
}

func TestAgentsPage(t *testing.T) {
	e := newEnv(t)
	hb, _ := json.Marshal(api.Heartbeat{OrchestratorID: "agent-7", Timestamp: time.Now(), RunningJobs: []string{"job_x"}, Capacity: api.Capacity{MaxJobs: 4, CurrentJobs: 1, AvailableSlots: 3}})
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/api/internal/orchestrator/heartbeat", bytes.NewReader(hb))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Orchestrator-ID", "agent-7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c, _ := e.login(t)
	page := e.get(t, c, "/agents", http.StatusOK)
	for _, want := range []string{"agent-7", "1 of 4 running, 3 free", "job_x", "ago", ">online<"} {
		if !strings.Contains(page, want) {
			t.Errorf("agents page lacks %q", want)
		}
	}
}

func TestUnknownJob(t *testing.T) {
	e := newEnv(t)
	c, _ := e.login(t)
	for _, p := range []string{"/jobs/job_nope", "/jobs/job_nope/state.json", "/jobs/job_nope/events", "/jobs/job_nope/lines?after=0&before=5&limit=5", "/jobs/job_nope/log.txt"} {
		e.get(t, c, p, http.StatusNotFound)
	}
}
