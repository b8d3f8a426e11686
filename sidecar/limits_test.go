package sidecar_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cronium/cronium-agent/sidecar"
)

// logLines returns the JSON log records with message msg.
func logLines(t *testing.T, logs *lockedBuffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

const authRefusedMsg = "runtime api: requests without a valid token refused"

// Requests without a valid token are answered 401 up to the listener's
// budget, 429 beyond it, never touch a valid token's calls, and are logged
// once per interval with a count instead of once each.
func TestUnauthenticatedRateLimit(t *testing.T) {
	logs := &lockedBuffer{}
	e := newEnv(t, sidecar.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))
	a := e.start(t, testExec("jobA"))
	b := e.start(t, testExec("jobB"))
	xa := testExec("jobA")
	expired := sign(t, jwt.SigningMethodHS256, testSecret, with(claimsOf(xa), "exp", t0.Add(-time.Second).Unix()))
	bad := []string{"", "Bearer not-a-jwt", "Bearer " + expired, "Bearer " + a.Token() + "x", "Basic dXNlcjpwYXNz"}

	counts := map[int]int{}
	for i := range 100 {
		got := doHeader(t, e, "GET", a.url("/input"), bad[i%len(bad)])
		counts[got.status]++
		switch {
		case i < sidecar.DefaultAuthFailLimit && got.status != 401:
			t.Fatalf("bad request %d: %d %s, want 401", i, got.status, got.body)
		case i >= sidecar.DefaultAuthFailLimit:
			expectError(t, got, 429, "too many requests without a valid token: more than 60 in 1m0s")
			if ra := got.header.Get("Retry-After"); ra != "60" {
				t.Fatalf("Retry-After = %q", ra)
			}
		}
	}
	if counts[401] != 60 || counts[429] != 40 {
		t.Fatalf("answers %v, want 60 401s and 40 429s", counts)
	}

	input := `{"success":true,"data":{"n":1,"items":["a","b"]}}`
	tests := []struct {
		name   string
		url    string
		header string
		status int
	}{
		{"a valid token on the same listener", a.url("/input"), "Bearer " + a.Token(), 200},
		{"health on the same listener", a.base + "/health", "", 200},
		{"unknown path on the same listener", a.base + "/nope", "", 404},
		{"another job's listener has its own budget", b.url("/input"), "Bearer not-a-jwt", 401},
		{"another job's valid token", b.url("/input"), "Bearer " + b.Token(), 200},
		{"still refused on the flooded listener", a.url("/context"), "", 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := doHeader(t, e, "GET", tt.url, tt.header)
			if got.status != tt.status {
				t.Fatalf("got %d %s, want %d", got.status, got.body, tt.status)
			}
			if tt.status == 200 && strings.HasSuffix(tt.url, "/input") {
				expect(t, got, 200, input)
			}
		})
	}

	// One line so far for A: the first refusal, at once.
	e.clock.Advance(10 * time.Second)
	doHeader(t, e, "GET", a.url("/input"), "Bearer not-a-jwt") // the next line is due: 429 still
	e.clock.Advance(50 * time.Second)
	expectError(t, doHeader(t, e, "GET", a.url("/input"), ""), 401, "missing bearer token") // the window slid
	expectError(t, doHeader(t, e, "GET", a.url("/input"), ""), 401, "missing bearer token")
	a.Close() // flushes the last one
	b.Close()

	type line struct {
		refused, limited int
		reason           string
	}
	want := map[string][]line{
		a.id: {{1, 0, "missing bearer token"}, {101, 42, "token is malformed: token contains an invalid number of segments"}, {1, 0, "missing bearer token"}, {1, 0, "missing bearer token"}},
		b.id: {{1, 0, "token is malformed: token contains an invalid number of segments"}},
	}
	got := map[string][]line{}
	for _, rec := range logLines(t, logs, authRefusedMsg) {
		id, _ := rec["execution"].(string)
		refused, _ := rec["refused"].(float64)
		limited, _ := rec["rateLimited"].(float64)
		reason, _ := rec["lastReason"].(string)
		got[id] = append(got[id], line{int(refused), int(limited), reason})
	}
	for id, w := range want {
		if len(got[id]) != len(w) {
			t.Fatalf("%s: log lines %+v, want %+v\n%s", id, got[id], w, logs.String())
		}
		for i := range w {
			if got[id][i] != w[i] {
				t.Errorf("%s: log line %d is %+v, want %+v", id, i, got[id][i], w[i])
			}
		}
	}
	sig := a.Token()[strings.LastIndexByte(a.Token(), '.')+1:]
	for _, leak := range []string{a.Token(), sig, expired} {
		if strings.Contains(logs.String(), leak) {
			t.Fatalf("logs contain a token:\n%s", logs.String())
		}
	}
}

// A burst of refused requests in real time writes one log line, not one
// each (the probe saw 1 850 lines a second).
func TestUnauthenticatedBurstLogsOnce(t *testing.T) {
	logs := &lockedBuffer{}
	e := newEnv(t, sidecar.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))), sidecar.WithClock(time.Now))
	x := testExec("jobA")
	x.StartTime = time.Now()
	a := e.start(t, x)
	for range 500 {
		doHeader(t, e, "GET", a.url("/input"), "Bearer x.y.z")
	}
	if n := len(logLines(t, logs, authRefusedMsg)); n > 2 {
		t.Fatalf("%d log lines for a burst of 500 refused requests", n)
	}
	a.Close()
	total := 0
	for _, rec := range logLines(t, logs, authRefusedMsg) {
		n, _ := rec["refused"].(float64)
		total += int(n)
	}
	if total != 500 {
		t.Fatalf("the log lines count %d refused requests, want 500", total)
	}
}

// conn is a raw client connection that keeps itself alive with GET /health.
type conn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, base string) *conn {
	t.Helper()
	c, err := tryDial(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tryDial connects to base; a connection refused over the bound may fail
// here already (the reset can come before connect returns).
func tryDial(base string) (*conn, error) {
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &conn{c, bufio.NewReader(c)}, nil
}

// health sends GET /health and reads the answer; it returns the error of a
// connection the server closed or refused.
func (c *conn) health() error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET /health HTTP/1.1\r\nHost: runtime-api\r\n\r\n")); err != nil {
		return err
	}
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		return errors.New(res.Status)
	}
	return nil
}

// closedByServer waits up to within for the server to close c, and reports
// whether it did (rather than the wait timing out).
func (c *conn) closedByServer(within time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(within))
	_, err := c.r.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

const connRefusedMsg = "runtime api: connections refused over the per-job bound"

func TestConnectionBound(t *testing.T) {
	tests := []struct {
		name string
		opts []sidecar.Option
		max  int
	}{
		{"default", nil, sidecar.DefaultMaxConns},
		{"WithMaxConns(3)", []sidecar.Option{sidecar.WithMaxConns(3)}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			e := newEnv(t, append(tt.opts, sidecar.WithLogger(slog.New(slog.NewJSONHandler(logs, nil))))...)
			a := e.start(t, testExec("jobA"))
			b := e.start(t, testExec("jobB"))
			var held []*conn
			for i := range tt.max {
				c := dial(t, a.base)
				if err := c.health(); err != nil {
					t.Fatalf("connection %d within the bound: %v", i+1, err)
				}
				held = append(held, c)
			}
			// Over the bound: closed at once, whether the client talks or
			// waits.
			for i := range 20 {
				c, err := tryDial(a.base)
				if err != nil {
					continue // refused before connect returned
				}
				if i%2 == 0 {
					if err := c.health(); err == nil {
						t.Fatalf("connection %d over the bound was served", tt.max+i+1)
					}
				} else if !c.closedByServer(2 * time.Second) {
					t.Fatalf("connection %d over the bound left open", tt.max+i+1)
				}
				c.Close()
			}
			// The held ones still work; so does a job with the same bound
			// on its own listener, calls with its token included.
			for i, c := range held {
				if err := c.health(); err != nil {
					t.Fatalf("held connection %d: %v", i+1, err)
				}
			}
			for range tt.max - 1 { // and one for the call below
				if err := dial(t, b.base).health(); err != nil {
					t.Fatalf("the other job's listener: %v", err)
				}
			}
			expect(t, e.do(t, "GET", b.url("/input"), b.Token(), nil), 200, `{"success":true,"data":{"n":1,"items":["a","b"]}}`)
			// A closed connection gives its slot back.
			held[0].Close()
			waitUntil(t, 5*time.Second, func() bool {
				c, err := tryDial(a.base)
				if err != nil {
					return false
				}
				defer c.Close()
				return c.health() == nil
			})
			a.Close()
			refused := 0
			for _, rec := range logLines(t, logs, connRefusedMsg) {
				if rec["execution"] != a.id || rec["maxConns"] != float64(tt.max) {
					t.Fatalf("log line %v", rec)
				}
				n, _ := rec["refused"].(float64)
				refused += int(n)
			}
			// The fake clock stands still: the first refusal at once, the
			// others (and any refused while the slot came back) at Close.
			if n := len(logLines(t, logs, connRefusedMsg)); n != 2 || refused < 20 {
				t.Fatalf("%d log lines counting %d refused connections, want 2 counting at least 20:\n%s", n, refused, logs.String())
			}
		})
	}
}

func TestConnectionBoundDisabled(t *testing.T) {
	e := newEnv(t, sidecar.WithMaxConns(0))
	a := e.start(t, testExec("jobA"))
	for i := range sidecar.DefaultMaxConns + 10 {
		if err := dial(t, a.base).health(); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
	}
}

// A connection that sends nothing, and one left idle, are closed after
// their timeouts and give their slots back.
func TestConnectionTimeouts(t *testing.T) {
	t.Run("options", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, sidecar.WithMaxConns(2), sidecar.WithConnTimeouts(300*time.Millisecond, 600*time.Millisecond))
		a := e.start(t, testExec("jobA"))
		silent, idle := dial(t, a.base), dial(t, a.base)
		if err := idle.health(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if c, err := tryDial(a.base); err == nil {
			if c.health() == nil {
				t.Fatal("a third connection was served with a bound of 2")
			}
			c.Close()
		}
		if !silent.closedByServer(3 * time.Second) {
			t.Fatal("silent connection not closed")
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Fatalf("silent connection closed after %s, before its header timeout", d)
		}
		if !idle.closedByServer(3 * time.Second) {
			t.Fatal("idle connection not closed")
		}
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Fatalf("idle connection closed after %s, before its idle timeout", d)
		}
		// Both slots come back (the server closes a connection, then frees
		// its slot).
		var back []*conn
		waitUntil(t, 5*time.Second, func() bool {
			if c, err := tryDial(a.base); err == nil && c.health() == nil {
				back = append(back, c)
			}
			return len(back) == 2
		})
		for _, c := range back {
			c.Close()
		}
	})
	for _, tt := range []struct {
		name string
		want time.Duration
		prep func(*conn) error
	}{
		{"default header timeout", sidecar.DefaultReadHeaderTimeout, func(*conn) error { return nil }},
		{"default idle timeout", sidecar.DefaultIdleTimeout, (*conn).health},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			a := e.start(t, testExec("jobA"))
			c := dial(t, a.base)
			if err := tt.prep(c); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if !c.closedByServer(tt.want + 3*time.Second) {
				t.Fatalf("connection still open after %s", time.Since(start))
			}
			if d := time.Since(start); d < tt.want-time.Second {
				t.Fatalf("connection closed after %s, want about %s", d, tt.want)
			}
		})
	}
}

func waitUntil(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
