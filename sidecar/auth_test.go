package sidecar_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cronium/cronium-agent/sidecar"
)

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// claimsOf returns the claims a valid token of exec carries at t0.
func claimsOf(x sidecar.Execution) jwt.MapClaims {
	return jwt.MapClaims{
		"executionId": x.ExecutionID,
		"jobId":       x.JobID,
		"userId":      x.UserID,
		"eventId":     x.EventID,
		"iss":         "cronium-agent",
		"sub":         "job:" + x.JobID,
		"iat":         t0.Unix(),
		"nbf":         t0.Unix(),
		"exp":         t0.Add(time.Hour).Unix(),
	}
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for kk, vv := range c {
		out[kk] = vv
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// unsigned crafts a token with alg "none" by hand.
func unsigned(t *testing.T, alg string, c jwt.MapClaims) string {
	t.Helper()
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	p, _ := json.Marshal(c)
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "."
}

func TestTokenClaims(t *testing.T) {
	e := newEnv(t)
	x := testExec("job1")
	x.StartTime = t0.Add(-time.Minute)
	s := e.start(t, x)
	parts := strings.Split(s.Token(), ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if !strings.Contains(string(hdr), `"alg":"HS256"`) {
		t.Fatalf("header %s", hdr)
	}
	var c map[string]any
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"executionId": x.ExecutionID, "jobId": "job1", "userId": "user-1", "eventId": "event-job1",
		"iss": "cronium-agent", "sub": "job:job1",
		"iat": float64(t0.Unix()), "nbf": float64(t0.Unix()),
		"exp": float64(x.StartTime.Add(x.Timeout + 5*time.Minute).Unix()),
	}
	if len(c) != len(want) {
		t.Fatalf("claims %v, want %v", c, want)
	}
	for k, v := range want {
		if c[k] != v {
			t.Fatalf("claim %s = %v, want %v", k, c[k], v)
		}
	}
}

func TestTokenAttacks(t *testing.T) {
	// Each attack is answered as such (TestUnauthenticatedRateLimit covers
	// the 429 a burst of them ends in).
	e := newEnv(t, sidecar.WithAuthFailureLimit(1000, time.Minute))
	x := testExec("job1")
	s := e.start(t, x)
	good := claimsOf(x)
	other := make([]byte, sidecar.SecretSize)
	tests := []struct {
		name   string
		header string // the whole Authorization header; "" sends none
		msg    string
	}{
		{"no token", "", "missing bearer token"},
		{"basic scheme", "Basic dXNlcjpwYXNz", "missing bearer token"},
		{"empty bearer", "Bearer ", "missing bearer token"},
		{"malformed", "Bearer not-a-jwt", "malformed token"},
		{"garbage segments", "Bearer a.b.c", "malformed token"},
		{"truncated signature", "Bearer " + s.Token()[:len(s.Token())-4], "invalid token"},
		{"other secret", "Bearer " + sign(t, jwt.SigningMethodHS256, other, good), "invalid token"},
		{"alg none", "Bearer " + unsigned(t, "none", good), "invalid token"},
		{"alg None", "Bearer " + unsigned(t, "None", good), "invalid token"},
		{"alg HS256 without signature", "Bearer " + unsigned(t, "HS256", good), "invalid token"},
		{"HS512 with the right secret", "Bearer " + sign(t, jwt.SigningMethodHS512, testSecret, good), "invalid token"},
		{"HS384 with the right secret", "Bearer " + sign(t, jwt.SigningMethodHS384, testSecret, good), "invalid token"},
		{"wrong issuer", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, with(good, "iss", "backend")), "invalid token"},
		{"no issuer", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, with(good, "iss", nil)), "invalid token"},
		{"no exp", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, with(good, "exp", nil)), "invalid token"},
		{"expired", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, with(good, "exp", t0.Add(-time.Second).Unix())), "token expired"},
		{"not yet valid", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, with(good, "nbf", t0.Add(time.Hour).Unix())), "invalid token"},
		{"issued in the future", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, with(good, "iat", t0.Add(time.Hour).Unix())), "invalid token"},
		{"subject of another job", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, with(good, "sub", "job:other")), "invalid token"},
		{"no execution id", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, with(good, "executionId", nil)), "invalid token"},
		{"execution id not a string", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, with(good, "executionId", 42)), "malformed token"},
		{"valid signature, unknown execution", "Bearer " + sign(t, jwt.SigningMethodHS256, testSecret, with(good, "executionId", "exec_ghost_1")), "not running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range []string{"/input", "/context", "/variables/k"} {
				got := doHeader(t, e, "GET", s.url(p), tt.header)
				expectError(t, got, 401, tt.msg)
				if got.header.Get("WWW-Authenticate") == "" {
					t.Fatal("no WWW-Authenticate")
				}
			}
		})
	}
	// The hand-made valid token is accepted (the attacks above differ from it
	// in one way only), and so is a lower-case scheme.
	expect(t, doHeader(t, e, "GET", s.url("/input"), "bearer "+sign(t, jwt.SigningMethodHS256, testSecret, good)), 200, `{"success":true,"data":{"n":1,"items":["a","b"]}}`)
}

func doHeader(t *testing.T, e *env, method, url, auth string) reply {
	t.Helper()
	if auth == "" {
		return e.do(t, method, url, "", nil)
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if ok {
		return e.do(t, method, url, tok, nil)
	}
	return e.doRaw(t, method, url, auth)
}

func TestTokenExpiresWithTheRun(t *testing.T) {
	e := newEnv(t)
	x := testExec("job1") // starts at t0, timeout 10 min: exp = t0 + 15 min
	s := e.start(t, x)
	e.clock.Advance(15*time.Minute - time.Second)
	expect(t, e.do(t, "GET", s.url("/input"), s.Token(), nil), 200, `{"success":true,"data":{"n":1,"items":["a","b"]}}`)
	e.clock.Advance(2 * time.Second)
	expectError(t, e.do(t, "GET", s.url("/input"), s.Token(), nil), 401, "token expired")
}

func TestExecutionMismatch(t *testing.T) {
	e := newEnv(t)
	a := e.start(t, testExec("jobA"))
	b := e.start(t, testExec("jobB"))
	forbidden := errBody(403, "execution ID mismatch")
	tests := []struct {
		name, url, token string
	}{
		{"path id differs from token", a.base + "/executions/exec_other_1/input", a.Token()},
		{"path id of another live execution", a.base + "/executions/" + b.id + "/context", a.Token()},
		{"token of A at B, A's id in path", b.base + "/executions/" + a.id + "/input", a.Token()},
		{"token of A at B, B's id in path", b.base + "/executions/" + b.id + "/input", a.Token()},
		{"token of A at B, variables", b.base + "/executions/" + a.id + "/variables/k", a.Token()},
		{"token of A at B, tool actions", b.base + "/tool-actions/execute", a.Token()},
		{"path id percent-encoded differently", a.base + "/executions/" + strings.Replace(a.id, "_", "%5F", 1) + "x/input", a.Token()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "GET"
			if strings.HasSuffix(tt.url, "/execute") {
				method = "POST"
			}
			expect(t, e.do(t, method, tt.url, tt.token, nil), 403, forbidden)
		})
	}
	// An encoded form of the right id is the right id.
	expect(t, e.do(t, "GET", a.base+"/executions/"+strings.Replace(a.id, "_", "%5F", 1)+"/input", a.Token(), nil), 200, `{"success":true,"data":{"n":1,"items":["a","b"]}}`)
	// No write crossed over.
	if _, ok := b.Output(); ok {
		t.Fatal("B has an output")
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t)
	a := e.start(t, testExec("jobA"))
	b := e.start(t, testExec("jobB"))
	ok, limited := 0, 0
	for i := range 1500 {
		got := e.do(t, "GET", a.url("/input"), a.Token(), nil)
		switch got.status {
		case 200:
			if limited > 0 {
				t.Fatalf("call %d succeeded after a 429", i)
			}
			ok++
		case 429:
			if limited == 0 {
				expectError(t, got, 429, "rate limit exceeded")
				if ra := got.header.Get("Retry-After"); ra != "60" {
					t.Fatalf("Retry-After = %q", ra)
				}
			}
			limited++
		default:
			t.Fatalf("call %d: %d %s", i, got.status, got.body)
		}
	}
	if ok != 1000 || limited != 500 {
		t.Fatalf("%d succeeded, %d limited; want 1000, 500", ok, limited)
	}
	// Another execution has its own budget.
	expect(t, e.do(t, "GET", b.url("/input"), b.Token(), nil), 200, `{"success":true,"data":{"n":1,"items":["a","b"]}}`)
	// A's calls at B count against A (and are refused 429 before the 403).
	expectError(t, e.do(t, "GET", b.url("/input"), a.Token(), nil), 429, "rate limit")
	// The window slides: a minute after the first call, calls pass again.
	e.clock.Advance(59 * time.Second)
	expectError(t, e.do(t, "GET", a.url("/input"), a.Token(), nil), 429, "rate limit")
	e.clock.Advance(time.Second)
	expect(t, e.do(t, "GET", a.url("/input"), a.Token(), nil), 200, `{"success":true,"data":{"n":1,"items":["a","b"]}}`)
	// Health is not counted (and not limited).
	expect(t, e.do(t, "GET", a.base+"/health", "", nil), 200, `{"status":"healthy","time":"2026-03-01T12:01:00Z"}`)
}

func TestCloseRevokesTokenAndStopsListening(t *testing.T) {
	e := newEnv(t)
	a := e.start(t, testExec("jobA"))
	b := e.start(t, testExec("jobB"))
	expect(t, e.do(t, "POST", a.url("/output"), a.Token(), strings.NewReader(`{"data":"done"}`)), 200, `{"success":true}`)
	// Before: A's token at B is a mismatch.
	expect(t, e.do(t, "GET", b.url("/input"), a.Token(), nil), 403, errBody(403, "execution ID mismatch"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// After: refused everywhere as unauthenticated.
	for _, u := range []string{b.url("/input"), b.base + "/executions/" + a.id + "/input"} {
		expectError(t, e.do(t, "GET", u, a.Token(), nil), 401, "not running")
	}
	// B still works.
	expect(t, e.do(t, "GET", b.url("/input"), b.Token(), nil), 200, `{"success":true,"data":{"n":1,"items":["a","b"]}}`)
	// A's listener refuses connections.
	e.hc.Transport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(a.base, "http://"), 2*time.Second)
	if err == nil {
		conn.Close()
		t.Fatal("closed session still accepts connections")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial: %v, want connection refused", err)
	}
	// What the job set is still there.
	if out, ok := a.Output(); !ok || string(out) != `"done"` {
		t.Fatalf("Output() after Close = %s, %v", out, ok)
	}
	// A new session of the same execution (agent restart) accepts the token
	// the job already holds.
	a2 := e.start(t, testExec("jobA"))
	expect(t, e.do(t, "GET", a2.url("/input"), a.Token(), nil), 200, `{"success":true,"data":{"n":1,"items":["a","b"]}}`)
}

func TestCloseKillsOpenConnections(t *testing.T) {
	e := newEnv(t)
	a := e.start(t, testExec("jobA"))
	conn, err := net.Dial("tcp", strings.TrimPrefix(a.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := conn.Read(buf); err != nil {
		t.Fatal(err)
	}
	a.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(buf); err == nil {
		t.Fatal("kept-alive connection still open after Close")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("kept-alive connection not closed by Close")
	}
}

func TestCloseWaitsForHandlers(t *testing.T) {
	e := newEnv(t)
	a := e.start(t, testExec("jobA"))
	started := make(chan struct{})
	e.store.mu.Lock()
	e.store.block = started
	e.store.mu.Unlock()
	done := make(chan error, 1)
	req, err := http.NewRequest("POST", a.url("/output"), strings.NewReader(`{"data":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.Token())
	go func() {
		res, err := e.hc.Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	<-started
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return: the blocked handler's context was not canceled")
	}
	if _, ok := a.Output(); ok {
		t.Fatal("output recorded although its store call failed")
	}
	<-done
}

func TestStartContextClosesSession(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	ln := listen(t)
	s, err := e.srv.Start(ctx, testExec("jobA"), ln)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("session still listening after its context was canceled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
