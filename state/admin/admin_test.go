package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/state/admin"
	"github.com/cronium/cronium-agent/state/admin/admintest"
)

// serve serves src on a socket in a directory that does not exist yet, and
// stops it when the test ends.
func serve(t *testing.T, src admin.Source, opts ...admin.Option) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "admin.sock")
	stop := serveAt(t, path, src, opts...)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

// serveAt serves src on path; stop ends Serve and returns what it returned.
func serveAt(t *testing.T, path string, src admin.Source, opts ...admin.Option) (stop func() error) {
	t.Helper()
	srv, err := admin.Listen(path, src, append([]admin.Option{admin.WithPollInterval(10 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	return func() error {
		cancel()
		select {
		case err := <-served:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Serve did not return 10 s after its context ended")
		}
	}
}

func at(sec int) time.Time { return time.Date(2025, 3, 1, 12, 0, sec, 0, time.UTC) }

func ptr[T any](v T) *T { return &v }

var (
	testStatus = admin.Status{
		Version: "1.2.3", OrchestratorID: "orch-1", Backend: "https://cronium.example",
		BackendReachable: false, LastContact: at(1), LastError: "dial tcp: connection refused",
		Backlog: admin.Backlog{Jobs: 2, Items: 30, Bytes: 4096, LogLines: 25},
		Running: []admin.RunningJob{{JobID: "job-2", ExecutionID: "exec-2", Attempt: 1, StartedAt: at(2)}},
		Journal: admin.JournalInfo{Path: "/var/lib/cronium-agent/journal.db", FileBytes: 1 << 20, UsedBytes: 1 << 19, Budget: 1 << 30},
	}
	testJobs = []admin.JobSummary{
		{JobID: "job-2", ExecutionID: "exec-2", Attempt: 1, State: "running", ClaimedAt: at(1), StartedAt: at(2), Delivery: "pending", PendingItems: 3},
		{JobID: "job-1", ExecutionID: "exec-1", Attempt: 2, State: "finished", Status: "failed", ExitCode: ptr(3),
			ClaimedAt: at(0), StartedAt: at(0), FinishedAt: at(1), Delivery: "delivered"},
		{JobID: "job-0", ExecutionID: "exec-0", Attempt: 1, State: "claimed", ClaimedAt: at(0), Delivery: "pending", PendingItems: 1},
	}
)

func TestStatusAndJobsRoundTrip(t *testing.T) {
	c := admin.Dial(serve(t, admintest.New(testStatus, testJobs...)))
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, testStatus) {
		t.Errorf("status\n got %+v\nwant %+v", st, testStatus)
	}
	for _, limit := range []int{1, 3, admin.MaxJobs} {
		jobs, err := c.Jobs(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		if want := testJobs[:min(limit, len(testJobs))]; !reflect.DeepEqual(jobs, want) {
			t.Errorf("jobs(%d)\n got %+v\nwant %+v", limit, jobs, want)
		}
	}
}

// rawGet speaks HTTP on the socket without Client, to see what Client
// would hide.
func rawGet(t *testing.T, path, method, target string) (*http.Response, []byte) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequest(method, "http://agent"+target, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestHTTPAnswers(t *testing.T) {
	src := admintest.New(admin.Status{Version: "v"})
	src.Append("job 1/x", admin.LogLine{Stream: "stdout", Line: "a <b> & c"})
	path := serve(t, src)
	for _, tc := range []struct {
		method, target string
		code           int
		body           string // the exact body, or with code != 200 a part of the error
	}{
		{"GET", "/v1/status", 200, `{"version":"v","orchestratorId":"","backend":"","backendReachable":false,"backlog":{"jobs":0,"items":0,"bytes":0,"logLines":0},"running":[],"journal":{"path":"","fileBytes":0,"usedBytes":0,"budget":0},"claimsPaused":false}` + "\n"},
		{"GET", "/v1/jobs", 200, "[]\n"},
		{"GET", "/v1/jobs/job%201%2Fx/logs", 200, `[{"seq":1,"stream":"stdout","line":"a <b> & c"}` + "\n]\n"},
		{"GET", "/v1/jobs/job%201%2Fx/logs?after=1", 200, "[]\n"},
		{"GET", "/v1/jobs?limit=0", 400, "limit must be a number from 1 to 1000"},
		{"GET", "/v1/jobs?limit=1001", 400, "limit must be"},
		{"GET", "/v1/jobs?limit=ten", 400, "limit must be"},
		{"GET", "/v1/jobs/x/logs?after=-1", 400, "after must be"},
		{"GET", "/v1/jobs/x/logs?follow=maybe", 400, "follow must be"},
		{"GET", "/v1/jobs/nope/logs", 404, "unknown job nope"},
		{"GET", "/v1/nope", 404, "no such endpoint"},
		{"POST", "/v1/status", 405, "POST is not allowed"},
		{"DELETE", "/v1/jobs/x/logs", 405, "DELETE is not allowed"},
		{"GET", "/v1/hand-over", 405, "GET is not allowed (only POST)"},
		{"POST", "/v1/hand-over?within=0s", 400, "within must be a duration above 0 and at most 1h0m0s"},
		{"POST", "/v1/hand-over?within=2h", 400, "within must be"},
		{"POST", "/v1/hand-over?within=soon", 400, "within must be"},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			resp, body := rawGet(t, path, tc.method, tc.target)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			if tc.code == 200 {
				if string(body) != tc.body {
					t.Errorf("body\n%s\nwant\n%s", body, tc.body)
				}
				return
			}
			var e struct{ Error string }
			if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, tc.body) {
				t.Errorf("body %s, want a JSON error containing %q", body, tc.body)
			}
			if tc.code == 405 && resp.Header.Get("Allow") != "GET" && tc.target != "/v1/hand-over" {
				t.Errorf("Allow: %q", resp.Header.Get("Allow"))
			}
		})
	}
}

func TestSocketIsRootsAndGoesWithTheServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "admin.sock")
	stop := serveAt(t, path, admintest.New(admin.Status{}))
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o755 {
		t.Errorf("socket directory: %v %v, want 0755", di.Mode(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("the socket's directory holds %d entries, want the socket alone", len(entries))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Serve returned: %v", err)
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	// What a killed agent leaves: the socket file, and nothing listening.
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dead.SetUnlinkOnClose(false)
	dead.Close()
	stop := serveAt(t, path, admintest.New(admin.Status{Version: "new"}))
	defer stop()
	st, err := admin.Dial(path).Status(context.Background())
	if err != nil || st.Version != "new" {
		t.Errorf("status from the new server: %+v %v", st, err)
	}
}

func TestListenRefuses(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	stop := serveAt(t, live, admintest.New(admin.Status{Version: "first"}))
	defer stop()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{live, "admin socket " + live + ": another agent is serving it"},
		{file, file + " exists and is not a socket"},
	} {
		if srv, err := admin.Listen(tc.path, admintest.New(admin.Status{})); err == nil || !strings.Contains(err.Error(), tc.want) {
			if srv != nil {
				srv.Close()
			}
			t.Errorf("Listen(%s): %v, want an error containing %q", tc.path, err, tc.want)
		}
	}
	if st, err := admin.Dial(live).Status(context.Background()); err != nil || st.Version != "first" {
		t.Errorf("the first server was disturbed: %+v %v", st, err)
	}
	if data, err := os.ReadFile(file); err != nil || string(data) != "keep me" {
		t.Errorf("the file at the socket's path was touched: %q %v", data, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("%d entries in the socket's directory, want 2 (no temporary directory left)", len(entries))
	}
}

// peerEnv names the socket a re-executed test binary reads as another user.
const peerEnv = "ADMIN_TEST_PEER_SOCKET"

// TestPeerHelper is the client TestPeerCheck runs as another user.
func TestPeerHelper(t *testing.T) {
	path := os.Getenv(peerEnv)
	if path == "" {
		t.Skip("run by TestPeerCheck")
	}
	_, err := admin.Dial(path).Status(context.Background())
	fmt.Println("status error:", err)
	os.Exit(0)
}

// A user other than root is refused even when the socket's mode lets it
// connect.
func TestPeerCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	// Everything the other user needs (the binary, the way to the socket)
	// must be reachable by it: t.TempDir is 0700.
	dir, err := os.MkdirTemp("", "admin-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "admin.test")
	if err := copyFile(t, bin); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "run", "admin.sock")
	stop := serveAt(t, path, admintest.New(admin.Status{Version: "v"}))
	defer stop()

	asNobody := func() string {
		cmd := exec.Command(bin, "-test.run=^TestPeerHelper$")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), peerEnv+"="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as uid 65534: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := asNobody(); !strings.Contains(out, "no access to "+path+": the admin socket is root's") {
		t.Errorf("with mode 0600: %s", out)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if out := asNobody(); !strings.Contains(out, "hung up without answering (it answers only root") {
		t.Errorf("with mode 0666: %s", out)
	}
	if st, err := admin.Dial(path).Status(context.Background()); err != nil || st.Version != "v" {
		t.Errorf("root after a refused peer: %+v %v", st, err)
	}
}

func copyFile(t *testing.T, to string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}

func collect(t *testing.T, c *admin.Client, job string, after uint64, follow bool) ([]admin.LogLine, error) {
	t.Helper()
	var got []admin.LogLine
	err := c.Logs(context.Background(), job, after, follow, func(l admin.LogLine) error {
		got = append(got, l)
		return nil
	})
	return got, err
}

func TestLogsWithoutFollow(t *testing.T) {
	src := admintest.New(admin.Status{})
	// More than one page of the server's reads from its Source.
	for i := range 2500 {
		src.Append("job", admin.LogLine{Stream: "stdout", Line: fmt.Sprint("line ", i+1), Time: at(i % 60)})
	}
	src.Append("empty")
	c := admin.Dial(serve(t, src))
	for _, tc := range []struct {
		job         string
		after       uint64
		first, last uint64 // the seqs expected, 0 for none
	}{
		{"job", 0, 1, 2500},
		{"job", 999, 1000, 2500},
		{"job", 2400, 2401, 2500},
		{"job", 2500, 0, 0},
		{"empty", 0, 0, 0},
	} {
		// The log is not complete: without follow that does not matter.
		got, err := collect(t, c, tc.job, tc.after, false)
		if err != nil {
			t.Fatalf("%s after %d: %v", tc.job, tc.after, err)
		}
		want := 0
		if tc.last > 0 {
			want = int(tc.last - tc.first + 1)
		}
		if len(got) != want {
			t.Fatalf("%s after %d: %d lines, want %d", tc.job, tc.after, len(got), want)
		}
		for i, l := range got {
			if seq := tc.first + uint64(i); l.Seq != seq || l.Line != fmt.Sprint("line ", seq) || !l.Time.Equal(at(int(seq-1)%60)) {
				t.Fatalf("%s after %d: line %d is %+v", tc.job, tc.after, i, l)
			}
		}
	}
	stop := errors.New("enough")
	n := 0
	err := c.Logs(context.Background(), "job", 0, false, func(admin.LogLine) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Errorf("fn's error: %v after %d lines, want it returned after 3", err, n)
	}
}

func TestLogsFollow(t *testing.T) {
	src := admintest.New(admin.Status{})
	src.Append("job", admin.LogLine{Stream: "stdout", Line: "one"}, admin.LogLine{Stream: "stderr", Line: "two"})
	c := admin.Dial(serve(t, src))
	lines := make(chan admin.LogLine)
	done := make(chan error, 1)
	go func() {
		done <- c.Logs(context.Background(), "job", 1, true, func(l admin.LogLine) error {
			lines <- l
			return nil
		})
	}()
	next := func() admin.LogLine {
		t.Helper()
		select {
		case l := <-lines:
			return l
		case err := <-done:
			t.Fatalf("Logs returned early: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no line within 10 s")
		}
		return admin.LogLine{}
	}
	if l := next(); l.Seq != 2 || l.Line != "two" || l.Stream != "stderr" {
		t.Fatalf("first line %+v, want seq 2", l)
	}
	src.Append("job", admin.LogLine{Stream: "stdout", Line: "three"})
	if l := next(); l.Seq != 3 || l.Line != "three" {
		t.Fatalf("appended line %+v", l)
	}
	src.Append("job", admin.LogLine{Stream: "system", Line: "four"})
	src.Complete("job")
	if l := next(); l.Seq != 4 || l.Line != "four" {
		t.Fatalf("last line %+v", l)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Logs of a complete log: %v", err)
		}
	case l := <-lines:
		t.Errorf("line after the last: %+v", l)
	case <-time.After(10 * time.Second):
		t.Error("Logs did not return once the log was complete")
	}
}

// A follow the agent ends before the log is complete is an error, not a
// log that looks whole; one the client ends returns its context's error.
func TestLogsFollowCutOff(t *testing.T) {
	src := admintest.New(admin.Status{})
	src.Append("job", admin.LogLine{Stream: "stdout", Line: "one"})
	path := filepath.Join(t.TempDir(), "admin.sock")
	stopServer := serveAt(t, path, src)
	c := admin.Dial(path)

	ctx, cancel := context.WithCancel(context.Background())
	err := c.Logs(ctx, "job", 0, true, func(admin.LogLine) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("follow ended by the client: %v, want context.Canceled", err)
	}

	got := make(chan admin.LogLine, 1)
	done := make(chan error, 1)
	go func() {
		done <- c.Logs(context.Background(), "job", 0, true, func(l admin.LogLine) error { got <- l; return nil })
	}()
	<-got
	if err := stopServer(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "broke off") {
			t.Errorf("follow cut by the agent stopping: %v, want an error", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the follow did not end when the server stopped")
	}
}

func TestNotRunning(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dead.SetUnlinkOnClose(false)
	dead.Close()
	for _, tc := range []struct{ name, path, cause string }{
		{"no socket", filepath.Join(dir, "missing.sock"), "connect: no such file or directory"},
		{"nobody listening", stale, "connect: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := admin.Dial(tc.path).Status(context.Background())
			want := "the agent is not running (nothing answers on " + tc.path + "): " + tc.cause
			if !errors.Is(err, admin.ErrNotRunning) || err.Error() != want {
				t.Errorf("got %v\nwant %s", err, want)
			}
		})
	}
}

func TestUnknownJob(t *testing.T) {
	c := admin.Dial(serve(t, admintest.New(admin.Status{})))
	for _, follow := range []bool{false, true} {
		_, err := collect(t, c, "nope", 0, follow)
		if !errors.Is(err, admin.ErrUnknownJob) || err.Error() != "unknown job nope" {
			t.Errorf("follow %t: %v, want ErrUnknownJob", follow, err)
		}
	}
}

// POST /v1/hand-over arms the Source's hand-over for the time asked (a
// minute by default); a Source that cannot hand over answers 501.
func TestHandOver(t *testing.T) {
	src := admintest.New(admin.Status{Running: []admin.RunningJob{{JobID: "a"}, {JobID: "b"}}})
	c := admin.Dial(serve(t, src))
	for _, tc := range []struct {
		within time.Duration
	}{{90 * time.Second}, {admin.DefaultHandOverWithin}} {
		before := time.Now()
		h, err := c.HandOver(context.Background(), tc.within)
		if err != nil {
			t.Fatal(err)
		}
		if h.Running != 2 || h.Until.Before(before.Add(tc.within)) || h.Until.After(time.Now().Add(tc.within)) || !src.Armed().Equal(h.Until) {
			t.Errorf("HandOver(%s) = %+v (armed %s), want 2 running, until now+%s", tc.within, h, src.Armed(), tc.within)
		}
	}
	resp, body := rawGet(t, serve(t, src), "POST", "/v1/hand-over")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"running":2`) {
		t.Errorf("POST without within: %d %s", resp.StatusCode, body)
	}

	// An agent whose Source cannot hand over (an older one answers 404:
	// the client says what that means).
	old := admin.Dial(serve(t, statusOnly{src}))
	if _, err := old.HandOver(context.Background(), time.Minute); err == nil || !strings.Contains(err.Error(), "cannot hand its jobs over") {
		t.Errorf("HandOver of a Source without it: %v", err)
	}
}

// statusOnly is a Source without HandOver.
type statusOnly struct{ admin.Source }
