package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/testenv"
)

const cliDevToken = "cli-token"

// devBackend starts an in-process dev backend on 127.0.0.1.
func cliDevBackend(t *testing.T, opts ...devserver.Option) *httptest.Server {
	t.Helper()
	srv, err := devserver.New(t.TempDir(), cliDevToken, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	return ts
}

// testProgram is the program as cronium-backend presents it.
var testProgram = Program{Name: "cronium-backend", Version: "test"}

type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs `cronium-backend ARGS` in-process with this environment and
// an empty standard input.
func runCLI(ctx context.Context, environ []string, args ...string) cliResult {
	return runCLIStdin(ctx, environ, "", args...)
}

// runCLIStdin is runCLI with stdin as the standard input.
func runCLIStdin(ctx context.Context, environ []string, stdin string, args ...string) cliResult {
	var out, errb testenv.Buffer
	env := command.Env{Stdout: &out, Stderr: &errb, Environ: environ, Log: slog.New(slog.DiscardHandler)}
	p := testProgram
	p.Stdin = strings.NewReader(stdin)
	code := Main(ctx, env, p, args)
	return cliResult{code, out.String(), errb.String()}
}

// runBackendCLI runs `cronium-backend ARGS` in-process against the backend
// at url.
func runBackendCLI(t *testing.T, url string, args ...string) cliResult {
	t.Helper()
	return runCLI(context.Background(), []string{"CRONIUM_BACKEND_URL=" + url, "CRONIUM_BACKEND_TOKEN=" + cliDevToken}, args...)
}

// cliFakeAgent plays the agent's side of the contract for one job: claim,
// acknowledge, running, log lines, complete.
type cliFakeAgent struct {
	t    *testing.T
	url  string
	orch string
}

func (a cliFakeAgent) call(method, path string, body any) []byte {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+cliDevToken)
	req.Header.Set("X-Orchestrator-ID", a.orch)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Error(err)
		return nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		a.t.Errorf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return out
}

// claimOne waits for a job to appear and claims it.
func (a cliFakeAgent) claimOne() string {
	for range 200 {
		var q struct{ Jobs []struct{ ID string } }
		json.Unmarshal(a.call("GET", "/api/internal/jobs/queue?batchSize=1", nil), &q)
		if len(q.Jobs) == 1 {
			id := q.Jobs[0].ID
			a.call("POST", "/api/internal/jobs/"+id+"/acknowledge", map[string]string{"orchestratorId": a.orch, "timestamp": time.Now().Format(time.RFC3339)})
			a.call("PUT", "/api/internal/jobs/"+id+"/status", map[string]any{"status": "running", "timestamp": time.Now().Format(time.RFC3339)})
			return id
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.t.Error("no job to claim")
	return ""
}

func (a cliFakeAgent) logs(id string, from int, lines ...[2]string) {
	var entries []map[string]any
	for i, l := range lines {
		entries = append(entries, map[string]any{"seq": from + i, "stream": l[0], "line": l[1], "timestamp": time.Now().Format(time.RFC3339Nano)})
	}
	a.call("POST", "/api/internal/jobs/"+id+"/logs", map[string]any{"executionId": "exec_" + id + "_1", "entries": entries})
}

// execution creates an execution of the job and sends its start and end
// updates, as the agent does for a script that exits with code.
func (a cliFakeAgent) execution(id string, code int) {
	exec := "/api/internal/executions/exec_" + id + "_1"
	a.call("POST", exec+"/create", map[string]any{"jobId": id})
	a.call("PUT", exec+"/update", map[string]any{"status": "running", "startedAt": "2026-11-27T12:00:00.000Z", "executionStartedAt": "2026-11-27T12:00:00.812Z"})
	a.call("PUT", exec+"/update", map[string]any{"exitCode": code, "executionCompletedAt": "2026-11-27T12:00:02.012Z",
		"setupDuration": 812, "executionDuration": 1200, "cleanupDuration": 95, "totalDuration": 2107})
}

func (a cliFakeAgent) complete(id, status string, code int, stdout, stderr string) {
	a.call("POST", "/api/internal/jobs/"+id+"/complete", map[string]any{"status": status, "exitCode": code,
		"output": map[string]string{"stdout": stdout, "stderr": stderr}, "condition": true, "scriptOutput": map[string]int{"n": 1},
		"metrics":   map[string]any{"startTime": time.Now().Format(time.RFC3339), "endTime": time.Now().Format(time.RFC3339), "duration": 15},
		"timestamp": time.Now().Format(time.RFC3339)})
}

func TestBackendSubmitWait(t *testing.T) {
	ts := cliDevBackend(t)
	a := cliFakeAgent{t, ts.URL, "agent-cli"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		id := a.claimOne()
		a.logs(id, 1, [2]string{"stdout", "line one"}, [2]string{"stderr", "warning"})
		time.Sleep(300 * time.Millisecond) // the CLI polls in between
		a.logs(id, 3, [2]string{"stdout", "line two"}, [2]string{"system", "pulling image"})
		a.execution(id, 3)
		a.complete(id, "completed", 3, "line one\nline two\n", "warning\n")
	}()
	r := runBackendCLI(t, ts.URL, "submit", "--runtime", "python", "-c", "print(1)", "--env", "A=1", "--input", `{"x":1}`,
		"--timeout", "30s", "--priority", "4", "--user", "u1", "--wait")
	<-done
	if r.code != 3 || r.stdout != "line one\nline two\n" || !strings.Contains(r.stderr, "warning\n") || !strings.Contains(r.stderr, "[system] pulling image\n") {
		t.Errorf("submit --wait: %+v", r)
	}
	if !regexp.MustCompile(`submitted job_[A-Za-z0-9]{12}\n`).MatchString(r.stderr) {
		t.Errorf("stderr lacks the job id: %q", r.stderr)
	}

	// What was submitted reached the queue as asked.
	c, _ := devserver.NewDevClient(ts.URL, cliDevToken)
	jobs, err := c.Jobs(context.Background())
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs: %v %v", jobs, err)
	}
	v, err := c.Job(context.Background(), jobs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{`"PYTHON"`, `"environment":{"A":"1"}`, `"timeout":30000000000`, `"inputData":{"x":1}`, `"priority":4`, `"userId":"u1"`} {
		if !strings.Contains(string(v.Job), frag) {
			t.Errorf("wire job lacks %s: %s", frag, v.Job)
		}
	}

	// show, logs, jobs
	id := jobs[0].ID
	r = runBackendCLI(t, ts.URL, "show", id)
	for _, frag := range []string{"status:", "completed (exit code 3)", "completions: 1", "condition:   true", `output:      {"n":1}`, "--- stdout\nline one\nline two\n", "--- stderr\nwarning\n", "agent:       agent-cli"} {
		if !strings.Contains(r.stdout, frag) {
			t.Errorf("show lacks %q:\n%s", frag, r.stdout)
		}
	}
	// Each execution on a line of its own: status, exit code, phase durations.
	if !regexp.MustCompile(`(?m)^executions:\n +ID +STATUS +EXIT +SETUP +EXECUTION +CLEANUP +TOTAL\n +exec_` + id + `_1 +completed +3 +812ms +1\.2s +95ms +2\.107s\n`).MatchString(r.stdout) {
		t.Errorf("show lacks the executions:\n%s", r.stdout)
	}
	r = runBackendCLI(t, ts.URL, "show", id, "--json")
	var jv devserver.JobView
	if err := json.Unmarshal([]byte(r.stdout), &jv); err != nil || jv.ID != id || jv.Completions != 1 {
		t.Errorf("show --json: %v %s", err, r.stdout)
	}
	r = runBackendCLI(t, ts.URL, "logs", "--after", "1", id)
	if r.code != 0 || r.stdout != "line two\n" || r.stderr != "warning\n[system] pulling image\n" {
		t.Errorf("logs --after 1: %+v", r)
	}
	r = runBackendCLI(t, ts.URL, "logs", id, "-f")
	if r.code != 0 || r.stdout != "line one\nline two\n" {
		t.Errorf("logs -f of a finished job: %+v", r)
	}
	r = runBackendCLI(t, ts.URL, "jobs")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(lines) != 2 || !strings.Contains(lines[1], id) ||
		!strings.Contains(lines[1], "completed") || !strings.Contains(lines[1], "SCRIPT/python") || !strings.HasPrefix(lines[0], "ID") {
		t.Errorf("jobs: %+v", r)
	}
}

func TestBackendSubmitWaitWithoutLogEndpoint(t *testing.T) {
	ts := cliDevBackend(t, devserver.WithoutLogEndpoint())
	a := cliFakeAgent{t, ts.URL, "agent-cli"}
	go func() {
		id := a.claimOne()
		a.complete(id, "completed", 0, "final out\n", "final err\n")
	}()
	r := runBackendCLI(t, ts.URL, "submit", "-c", "echo x", "--wait")
	if r.code != 0 || r.stdout != "final out\n" || !strings.HasSuffix(r.stderr, "final err\n") {
		t.Errorf("submit --wait against a backend without logs: %+v", r)
	}
}

func TestBackendSubmitWaitExitCodes(t *testing.T) {
	for _, tc := range []struct {
		status string
		code   int
		want   int
	}{
		{"completed", 0, 0}, {"completed", 7, 7}, {"completed", 102, 102}, {"timeout", -1, 124},
		{"cancelled", -2, 130}, {"failed", 2, 2}, {"failed", -1, 1}, {"completed", -1, 124},
	} {
		t.Run(fmt.Sprintf("%s_%d", tc.status, tc.code), func(t *testing.T) {
			ts := cliDevBackend(t)
			a := cliFakeAgent{t, ts.URL, "agent-cli"}
			go func() {
				id := a.claimOne()
				a.complete(id, tc.status, tc.code, "", "")
			}()
			r := runBackendCLI(t, ts.URL, "submit", "-c", "true", "--wait")
			if r.code != tc.want {
				t.Errorf("exit %d, want %d (%+v)", r.code, tc.want, r)
			}
		})
	}
	// failed through jobs/{id}/fail without an exit code: 1, and the error.
	ts := cliDevBackend(t)
	a := cliFakeAgent{t, ts.URL, "agent-cli"}
	go func() {
		id := a.claimOne()
		a.call("POST", "/api/internal/jobs/"+id+"/fail", map[string]any{"error": "unsupported runtime", "timestamp": time.Now().Format(time.RFC3339)})
	}()
	r := runBackendCLI(t, ts.URL, "submit", "-c", "true", "--wait")
	if r.code != 1 || !strings.Contains(r.stderr, "unsupported runtime") {
		t.Errorf("failed via fail: %+v", r)
	}
}

func TestBackendCancel(t *testing.T) {
	ts := cliDevBackend(t)
	r := runBackendCLI(t, ts.URL, "submit", "-c", "sleep 100")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(id, "job_") {
		t.Fatalf("submit: %+v", r)
	}
	a := cliFakeAgent{t, ts.URL, "agent-cli"}
	queued := strings.TrimSpace(runBackendCLI(t, ts.URL, "submit", "-c", "true", "--priority", "-1").stdout)
	a.claimOne() // id: the higher priority
	r = runBackendCLI(t, ts.URL, "cancel", id)
	if r.code != 0 || !strings.Contains(r.stdout, "cancel requested") {
		t.Errorf("cancel of a running job: %+v", r)
	}
	r = runBackendCLI(t, ts.URL, "cancel", queued)
	if r.code != 0 || r.stdout != queued+" cancelled\n" {
		t.Errorf("cancel of a queued job: %+v", r)
	}
	r = runBackendCLI(t, ts.URL, "cancel", queued)
	if r.code != 1 || !strings.Contains(r.stderr, "already cancelled") {
		t.Errorf("second cancel: %+v", r)
	}
	var hb struct{ CancelJobs []string }
	json.Unmarshal(a.call("POST", "/api/internal/orchestrator/heartbeat", map[string]any{"orchestratorId": a.orch, "timestamp": time.Now().Format(time.RFC3339)}), &hb)
	if len(hb.CancelJobs) != 1 || hb.CancelJobs[0] != id {
		t.Errorf("heartbeat cancelJobs %v, want [%s]", hb.CancelJobs, id)
	}
}

func TestBackendClientErrors(t *testing.T) {
	ts := cliDevBackend(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name    string
		environ []string
		args    []string
		code    int
		stderr  string
	}{
		{"no URL", []string{"CRONIUM_BACKEND_TOKEN=x"}, []string{"jobs"}, 2, "CRONIUM_BACKEND_URL"},
		{"no token", []string{"CRONIUM_BACKEND_URL=" + ts.URL}, []string{"jobs"}, 2, "CRONIUM_BACKEND_TOKEN"},
		{"unreachable", []string{"CRONIUM_BACKEND_URL=" + dead, "CRONIUM_BACKEND_TOKEN=x"}, []string{"jobs"}, 125, dead},
		{"unreachable submit", nil, []string{"submit", "--backend", dead, "--token", "x", "-c", "true"}, 125, dead},
		{"bad token", []string{"CRONIUM_BACKEND_URL=" + ts.URL, "CRONIUM_BACKEND_TOKEN=wrong"}, []string{"jobs"}, 2, "refused the token"},
		{"flags override env", []string{"CRONIUM_BACKEND_URL=" + dead, "CRONIUM_BACKEND_TOKEN=wrong"}, []string{"jobs", "--backend", ts.URL, "--token", cliDevToken}, 0, ""},
		{"unknown job", []string{"CRONIUM_BACKEND_URL=" + ts.URL, "CRONIUM_BACKEND_TOKEN=" + cliDevToken}, []string{"show", "job_None00000000"}, 1, "Job not found"},
		{"no script", nil, []string{"submit"}, 2, "exactly one of"},
		{"bad input", nil, []string{"submit", "-c", "x", "--input", "{"}, 2, "--input"},
		{"bad runtime", []string{"CRONIUM_BACKEND_URL=" + ts.URL, "CRONIUM_BACKEND_TOKEN=" + cliDevToken}, []string{"submit", "-c", "x", "--runtime", "ruby"}, 1, "runtime"},
		{"show without job", nil, []string{"show"}, 2, "missing JOB"},
		{"unknown command", nil, []string{"frobnicate"}, 2, `cronium-backend: unknown command "frobnicate"`},
		{"no command", nil, nil, 2, "usage: cronium-backend <command>"},
		{"help", nil, []string{"--help"}, 0, "  serve "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(context.Background(), tc.environ, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.stderr)
			}
			if r.code == 125 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
				t.Errorf("unreachable: not one line: %q", r.stderr)
			}
		})
	}
}

func TestBackendServe(t *testing.T) {
	data := t.TempDir()
	serve := func() (url string, stop func() cliResult) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		var out, errb testenv.Buffer
		env := command.Env{Stdout: &out, Stderr: &errb, Environ: []string{"CRONIUM_BACKEND_TOKEN=" + cliDevToken}, Log: slog.New(slog.DiscardHandler)}
		res := make(chan int, 1)
		go func() {
			res <- Main(ctx, env, testProgram, []string{"serve", "--listen", "127.0.0.1:0", "--data", data})
		}()
		re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
		for range 500 {
			if m := re.FindStringSubmatch(out.String()); m != nil {
				return m[1], func() cliResult {
					cancel()
					return cliResult{<-res, out.String(), errb.String()}
				}
			}
			select {
			case code := <-res:
				cancel()
				t.Fatalf("serve ended: exit code %d; stderr %s", code, errb.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
		cancel()
		t.Fatal("serve did not print its address")
		return "", nil
	}
	url, stop := serve()
	r := runBackendCLI(t, url, "submit", "-c", "echo kept")
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	if r := stop(); r.code != 0 {
		t.Fatalf("serve: %+v", r)
	}
	// Restarted on the same data, the job is still there.
	url, stop = serve()
	defer stop()
	if r := runBackendCLI(t, url, "show", id); r.code != 0 || !strings.Contains(r.stdout, "queued") {
		t.Errorf("after restart: %+v", r)
	}

	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"serve", "--listen", "0.0.0.0:0", "--data", t.TempDir(), "--token", "t"}, "not a loopback address"},
		{[]string{"serve", "--listen", ":0", "--data", t.TempDir(), "--token", "t"}, "not a loopback address"},
		{[]string{"serve", "--data", t.TempDir()}, "no token"},
		{[]string{"serve", "--token", "t"}, "no data directory"},
	} {
		if r := runCLI(context.Background(), nil, tc.args...); r.code != 2 || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("%v: exit %d, stderr %q", tc.args, r.code, r.stderr)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:5001": true, "localhost:5001": true, "[::1]:5001": true, "127.0.0.2:1": true,
		"0.0.0.0:5001": false, ":5001": false, "192.0.2.1:5001": false, "[::]:5001": false, "example.com:80": false, "nonsense": false,
	} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v", addr, err)
		}
	}
}

// writeTestKey writes a fresh unencrypted OpenSSH ed25519 key to a file and
// returns its path and text.
func writeTestKey(t *testing.T) (path, key string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "cli test")
	if err != nil {
		t.Fatal(err)
	}
	key = string(pem.EncodeToMemory(blk))
	path = filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, []byte(key), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, key
}

// queuedJob decodes a job's wire form as the agent decodes a claimed batch.
func queuedJob(t *testing.T, c *devserver.DevClient, id string) *api.Job {
	t.Helper()
	v, err := c.Job(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	items, err := api.DecodeQueue([]byte(`{"jobs":[`+string(v.Job)+`]}`), api.DecodeOptions{})
	if err != nil || len(items) != 1 || items[0].Err != nil {
		t.Fatalf("decode %s: %v %+v", v.Job, err, items)
	}
	return items[0].Job
}

func TestBackendServers(t *testing.T) {
	ts := cliDevBackend(t)
	c, _ := devserver.NewDevClient(ts.URL, cliDevToken)
	env := []string{"CRONIUM_BACKEND_URL=" + ts.URL, "CRONIUM_BACKEND_TOKEN=" + cliDevToken}
	keyFile, key := writeTestKey(t)
	const password = "pw-from-stdin-Q7"

	r := runBackendCLI(t, ts.URL, "servers", "add", "--name", "web-1", "--host", "127.0.0.1", "--port", "2222", "--user", "deploy", "--key", keyFile)
	if r.code != 0 || r.stdout != "1\n" || r.stderr != "" {
		t.Fatalf("servers add --key: %+v", r)
	}
	r = runCLIStdin(context.Background(), env, password+"\n", "servers", "add", "--name", "web-2", "--host", "::1", "--user", "ops", "--password-stdin")
	if r.code != 0 || r.stdout != "2\n" {
		t.Fatalf("servers add --password-stdin: %+v", r)
	}
	// What was registered is what the agent gets: the key byte for byte,
	// the password without its line end.
	web1 := api.Server{ID: "1", Name: "web-1", Host: "127.0.0.1", Port: 2222, Username: "deploy", PrivateKey: key}
	web2 := api.Server{ID: "2", Name: "web-2", Host: "::1", Port: 22, Username: "ops", Password: password}

	// list: a table and JSON, never a secret.
	r = runBackendCLI(t, ts.URL, "servers", "list")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 3 ||
		!regexp.MustCompile(`^ID +NAME +ADDRESS +AUTH$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^1 +web-1 +deploy@127\.0\.0\.1:2222 +key$`).MatchString(lines[1]) ||
		!regexp.MustCompile(`^2 +web-2 +ops@\[::1\]:22 +password$`).MatchString(lines[2]) {
		t.Errorf("servers list: %+v", r)
	}
	rj := runBackendCLI(t, ts.URL, "servers", "list", "--json")
	var views []devserver.ServerView
	if err := json.Unmarshal([]byte(rj.stdout), &views); err != nil || len(views) != 2 || !views[0].HasKey || !views[1].HasPassword {
		t.Errorf("servers list --json: %v %+v", err, rj)
	}
	for _, out := range []cliResult{r, rj} {
		for _, secret := range []string{key, password, "PRIVATE KEY", strings.Split(key, "\n")[1]} {
			if strings.Contains(out.stdout+out.stderr, secret) {
				t.Errorf("servers list shows %.40q:\n%s", secret, out.stdout)
			}
		}
	}

	// submit --server: one server, then two.
	r = runBackendCLI(t, ts.URL, "submit", "-c", "hostname", "--server", "1")
	if r.code != 0 {
		t.Fatalf("submit --server 1: %+v", r)
	}
	j := queuedJob(t, c, strings.TrimSpace(r.stdout))
	if j.Type != api.WireSSH || j.Target.Type != "server" || j.Target.ServerID != "1" || j.Target.Server == nil || *j.Target.Server != web1 ||
		j.Metadata.MultiServer || j.Metadata.Servers != nil || j.Script.Content != "hostname" {
		t.Errorf("one-server job: target %+v metadata %+v", j.Target, j.Metadata)
	}
	r = runBackendCLI(t, ts.URL, "submit", "--runtime", "python", "-c", "print(1)", "--server", "1, 2")
	if r.code != 0 {
		t.Fatalf("submit --server 1,2: %+v", r)
	}
	j = queuedJob(t, c, strings.TrimSpace(r.stdout))
	if j.Type != api.WireSSH || j.Target.ServerID != "1" || j.Target.Server == nil || *j.Target.Server != web1 ||
		!j.Metadata.MultiServer || !slices.Equal(j.Metadata.Servers, []api.Server{web1, web2}) || j.Metadata.Raw["serverCount"] != 2.0 {
		t.Errorf("two-server job: target %+v metadata %+v", j.Target, j.Metadata)
	}

	// rm
	r = runBackendCLI(t, ts.URL, "servers", "rm", "2")
	if r.code != 0 || r.stdout != "server 2 removed\n" {
		t.Errorf("servers rm: %+v", r)
	}
	r = runBackendCLI(t, ts.URL, "servers", "rm", "2")
	if r.code != 1 || !strings.Contains(r.stderr, "Server not found") {
		t.Errorf("servers rm again: %+v", r)
	}
	r = runBackendCLI(t, ts.URL, "submit", "-c", "true", "--server", "1,2")
	if r.code != 1 || !strings.Contains(r.stderr, "server 2 is not registered") {
		t.Errorf("submit to a removed server: %+v", r)
	}
	if r = runBackendCLI(t, ts.URL, "servers", "list"); r.code != 0 || strings.Count(r.stdout, "\n") != 2 || strings.Contains(r.stdout, "web-2") {
		t.Errorf("servers list after rm: %+v", r)
	}
}

func TestBackendServersErrors(t *testing.T) {
	ts := cliDevBackend(t)
	env := []string{"CRONIUM_BACKEND_URL=" + ts.URL, "CRONIUM_BACKEND_TOKEN=" + cliDevToken}
	keyFile, _ := writeTestKey(t)
	notKey := filepath.Join(t.TempDir(), "notakey")
	os.WriteFile(notKey, []byte("hello\n"), 0o600)
	add := func(extra ...string) []string {
		return append([]string{"servers", "add", "--name", "n", "--host", "h", "--user", "u"}, extra...)
	}
	for _, tc := range []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stderr string
	}{
		{"no subcommand", "", []string{"servers"}, 2, "usage: cronium-backend servers <command>"},
		{"help", "", []string{"servers", "-h"}, 0, "COMMANDS\n    add   register a server"},
		{"add help", "", []string{"servers", "add", "-h"}, 0, "-password-stdin"},
		{"unknown subcommand", "", []string{"servers", "frob"}, 2, `unknown command "frob"`},
		{"missing fields", "", []string{"servers", "add", "--key", keyFile}, 2, "missing --name, --host, --user"},
		{"no secret", "", add(), 2, "exactly one of --key FILE or --password-stdin"},
		{"both secrets", "pw\n", add("--key", keyFile, "--password-stdin"), 2, "exactly one of"},
		{"password as a flag", "", add("--password", "pw"), 2, "flag provided but not defined: -password"},
		{"bad port", "", add("--key", keyFile, "--port", "0"), 2, "--port must be between 1 and 65535, got 0"},
		{"no key file", "", add("--key", filepath.Join(t.TempDir(), "none")), 2, "--key: open"},
		{"not a key", "", add("--key", notKey), 2, "--key " + notKey + ": not a private key"},
		{"empty stdin", "", add("--password-stdin"), 2, "standard input held no password"},
		{"two lines", "a\nb\n", add("--password-stdin"), 2, "more than one line"},
		{"backend refuses", "pw\n", []string{"servers", "add", "--name", "n", "--host", "a b", "--user", "u", "--password-stdin"}, 1, "host must not hold blanks"},
		{"rm without id", "", []string{"servers", "rm"}, 2, "missing ID (see cronium-backend servers rm -h)"},
		{"rm unknown", "", []string{"servers", "rm", "42"}, 1, "Server not found (DELETE /api/dev/servers/42)"},
		{"list extra argument", "", []string{"servers", "list", "x"}, 2, `unexpected argument "x"`},
		{"submit to an unknown server", "", []string{"submit", "-c", "true", "--server", "99"}, 1, "server 99 is not registered"},
		{"submit --server with --raw", "", []string{"submit", "--raw", keyFile, "--server", "1"}, 2, "--server applies to script jobs, not to --raw"},
		{"submit empty server id", "", []string{"submit", "-c", "true", "--server", "1,,2"}, 2, "without empty ids"},
		{"top-level help lists servers", "", []string{"--help"}, 0, "  servers (add ... | list | rm ID)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLIStdin(context.Background(), env, tc.stdin, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.stderr)
			}
		})
	}
	if r := runBackendCLI(t, ts.URL, "servers", "list"); r.stdout != "ID  NAME  ADDRESS  AUTH\n" {
		t.Errorf("a refused add registered something: %+v", r)
	}
}
