package sidecar_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/sidecar"
)

var testSecret = bytes.Repeat([]byte{0x5a}, sidecar.SecretSize)

// t0 is the fake clock's start (whole seconds: JWT times are seconds).
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type varKey struct{ user, key string }

// memStore is an in-memory Store; fail makes every call fail, block makes
// every write wait for its context.
type memStore struct {
	mu         sync.Mutex
	vars       map[varKey]string
	outputs    map[string]json.RawMessage
	conditions map[string]bool
	fail       bool
	block      chan struct{} // closed when a blocked write started
}

func newMemStore() *memStore {
	return &memStore{vars: map[varKey]string{}, outputs: map[string]json.RawMessage{}, conditions: map[string]bool{}}
}

var errStore = errors.New("disk /var/lib/cronium/secret-path.db is on fire")

func (m *memStore) failing() error {
	if m.fail {
		return errStore
	}
	return nil
}

func (m *memStore) GetVariable(_ context.Context, user, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing(); err != nil {
		return "", false, err
	}
	v, ok := m.vars[varKey{user, key}]
	return v, ok, nil
}

func (m *memStore) SetVariable(_ context.Context, user, key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing(); err != nil {
		return err
	}
	m.vars[varKey{user, key}] = value
	return nil
}

func (m *memStore) SetOutput(ctx context.Context, id string, v json.RawMessage) error {
	m.mu.Lock()
	block := m.block
	m.mu.Unlock()
	if block != nil {
		close(block)
		<-ctx.Done()
		return ctx.Err()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing(); err != nil {
		return err
	}
	m.outputs[id] = bytes.Clone(v)
	return nil
}

func (m *memStore) SetCondition(_ context.Context, id string, v bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.failing(); err != nil {
		return err
	}
	m.conditions[id] = v
	return nil
}

func (m *memStore) variable(user, key string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vars[varKey{user, key}]
	return v, ok
}

// lockedBuffer collects logs written concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type env struct {
	srv   *sidecar.Server
	store *memStore
	clock *fakeClock
	hc    *http.Client
}

func newEnv(t testing.TB, opts ...sidecar.Option) *env {
	e := &env{store: newMemStore(), clock: &fakeClock{now: t0}}
	e.srv = sidecar.New(testSecret, e.store, append([]sidecar.Option{sidecar.WithClock(e.clock.Now)}, opts...)...)
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	e.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return e
}

func testExec(id string) sidecar.Execution {
	return sidecar.Execution{
		ExecutionID: "exec_" + id + "_1772366400",
		JobID:       id,
		UserID:      "user-1",
		EventID:     "event-" + id,
		EventName:   "Nightly " + id,
		EventType:   "PYTHON",
		Trigger:     "schedule",
		StartTime:   t0,
		Timeout:     10 * time.Minute,
		Input:       json.RawMessage(`{"n": 1, "items": ["a", "b"]}`),
		Metadata:    map[string]any{"workflowId": "wf-1", "attempt": 2},
	}
}

type session struct {
	*sidecar.Session
	base string // http://addr
	id   string
}

func (e *env) start(t testing.TB, exec sidecar.Execution) *session {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.srv.Start(context.Background(), exec, ln)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &session{Session: s, base: "http://" + ln.Addr().String(), id: exec.ExecutionID}
}

type reply struct {
	status int
	header http.Header
	body   string
}

// do sends a request; token "" sends no Authorization header.
func (e *env) do(t testing.TB, method, url, token string, body io.Reader) reply {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return e.send(t, method, url, h, body)
}

// doRaw sends a GET-like request with a verbatim Authorization header.
func (e *env) doRaw(t testing.TB, method, url, auth string) reply {
	t.Helper()
	return e.send(t, method, url, http.Header{"Authorization": {auth}}, nil)
}

// send sends a request with the headers h and reads the whole reply.
func (e *env) send(t testing.TB, method, url string, h http.Header, body io.Reader) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	res, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{res.StatusCode, res.Header, string(b)}
}

func (s *session) url(path string) string { return s.base + "/executions/" + s.id + path }

// expect checks a reply's status and exact body, and its content type.
func expect(t *testing.T, got reply, status int, body string) {
	t.Helper()
	if got.status != status || got.body != body {
		t.Fatalf("got %d %s\nwant %d %s", got.status, got.body, status, body)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
}

func errBody(status int, msg string) string {
	b, _ := json.Marshal(map[string]string{"error": http.StatusText(status), "message": msg})
	return string(b)
}

// expectError checks an error envelope's status and "error", and that the
// message contains want.
func expectError(t *testing.T, got reply, status int, want string) {
	t.Helper()
	var env struct{ Error, Message string }
	if err := json.Unmarshal([]byte(got.body), &env); err != nil || got.status != status ||
		env.Error != http.StatusText(status) || !strings.Contains(env.Message, want) {
		t.Fatalf("got %d %s; want %d with message containing %q", got.status, got.body, status, want)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
}
