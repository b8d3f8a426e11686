package sshexec_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/backend/devserver/devtest"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/sshconn"
	"github.com/cronium/cronium-agent/runner/sshexec"
	"github.com/cronium/cronium-agent/sidecar"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/journal"
	"github.com/cronium/cronium-agent/state/syncer"
)

// The SSH executor's tests run it as the agent does (journal, syncer,
// dispatcher, the development backend on loopback) against real OpenSSH
// servers on loopback (testenv.StartSSHD).

const (
	token     = "sshexec-test-token"
	orch      = "sshexec-test-agent"
	waitLimit = 60 * time.Second
)

// agent is the dispatcher with the SSH executor, in the test process.
type agent struct {
	t      testing.TB
	be     *devtest.Backend
	pool   *sshconn.Pool
	logs   *testenv.Buffer
	cancel context.CancelFunc
	done   chan struct{}
	jr     *journal.Journal
	dir    string
}

type agentOptions struct {
	policy sshconn.Policy
	known  string // known_hosts path; default in the state directory
	grace  time.Duration
	// keepalive is the pool's (default 1 s, to find dead connections
	// soon); quiet logs at Info, the agent's default level, not Debug.
	keepalive time.Duration
	quiet     bool
	// shell: every run takes the shell path, not the worker (set by
	// onBothPaths).
	shell bool
}

// onBothPaths runs test once on the worker (the path a server with the
// helper program takes) and once on the shell path (the one without), as
// subtests "worker" and "shell"; startAgent takes the path from the
// subtest's name.
func onBothPaths(t *testing.T, test func(t *testing.T)) {
	t.Run("worker", test)
	t.Run("shell", test)
}

// shellPath: t runs under onBothPaths' "shell".
func shellPath(t testing.TB) bool { return strings.Contains(t.Name(), "/shell") }

func startAgent(t testing.TB, be *devtest.Backend, o agentOptions) *agent {
	t.Helper()
	dir := t.TempDir()
	a := &agent{t: t, be: be, logs: &testenv.Buffer{}, done: make(chan struct{}), dir: dir}
	level := slog.LevelDebug
	if o.quiet {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(a.logs, &slog.HandlerOptions{Level: level}))
	client, err := backend.NewClient(be.URL, token, orch)
	if err != nil {
		t.Fatal(err)
	}
	key, err := sidecar.LoadOrCreateSecret(filepath.Join(dir, "journal.key"))
	if err != nil {
		t.Fatal(err)
	}
	a.jr, err = journal.Open(filepath.Join(dir, "journal.db"), journal.WithSecretKey(key))
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := state.NewJobs(a.jr)
	if err != nil {
		t.Fatal(err)
	}
	sy := syncer.New(a.jr, client, syncer.WithLogger(log), syncer.WithRetry(20*time.Millisecond, 200*time.Millisecond))
	jobs.OnAppend(sy.Notify)
	if o.policy == "" {
		o.policy = sshconn.PolicyTOFU
	}
	if o.known == "" {
		o.known = filepath.Join(dir, "known_hosts")
	}
	if o.grace == 0 {
		o.grace = 2 * time.Second
	}
	if o.keepalive == 0 {
		o.keepalive = time.Second
	}
	hk, err := sshconn.OpenHostKeys(o.known, o.policy, sshconn.WithSystemKnownHosts(""), sshconn.WithHostKeysLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	a.pool = sshconn.New(hk, sshconn.WithLogger(log), sshconn.WithKeepalive(o.keepalive), sshconn.WithDialTimeout(5*time.Second),
		sshconn.WithDialRetries(2, 100*time.Millisecond), sshconn.WithBreaker(1000, time.Second))
	secret, err := sidecar.LoadOrCreateSecret(filepath.Join(dir, "runtime-api.key"))
	if err != nil {
		t.Fatal(err)
	}
	apiSrv := sidecar.New(secret, runner.NewJournalStore(jobs, client, log), sidecar.WithLogger(log))
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	exe := helperBin
	x := sshexec.New(a.pool, runner.DefaultPolicy(), sshexec.WithRuntimeAPI(apiSrv), sshexec.WithLogger(log),
		sshexec.WithHelperProgram(exe), sshexec.WithStopGrace(o.grace), sshexec.WithCredentials(client),
		sshexec.WithWorker(!o.shell && !shellPath(t)))
	d := runner.NewDispatcher(client, jobs, sy, runner.Executors{runner.TargetServer: x}, runner.DispatchConfig{
		OrchestratorID: orch, MaxConcurrent: 4, PollInterval: 20 * time.Millisecond, PollMaxInterval: 100 * time.Millisecond,
		Heartbeat: 50 * time.Millisecond, Metrics: time.Second,
	}, log)
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = sy.Run(ctx) }()
	go func() { defer wg.Done(); _ = d.Run(ctx, nil) }()
	go func() { wg.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", a.logs.String())
		}
	})
	return a
}

func (a *agent) stop() {
	a.cancel()
	select {
	case <-a.done:
	case <-time.After(waitLimit):
		a.t.Errorf("the agent did not stop")
	}
	_ = a.pool.Close()
	_ = a.jr.Close()
}

// helperBin is the agent binary, the bash helpers' program, built once
// for the package's tests into a directory removed after them.
var helperBin string
var helperErr error

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sshexec-helper-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helperBin = filepath.Join(dir, "cronium-agent")
	cmd := exec.Command("go", "build", "-o", helperBin, "github.com/cronium/cronium-agent/cmd/cronium-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		helperErr = fmt.Errorf("build the agent: %v\n%s", err, out)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// job is an ssh job for server s as the deployed backend sends it.
type job struct {
	runtime, script string
	env             map[string]string
	input           any
	timeout         time.Duration
	password        bool
	keyType         string
	workdir         string
}

func (j job) raw(s *testenv.SSHD) json.RawMessage {
	details := map[string]any{"id": "7", "name": "web-1", "host": s.Host, "port": s.Port, "username": s.User}
	if j.password {
		details["password"] = s.Password
	} else {
		kt := j.keyType
		if kt == "" {
			kt = "ed25519"
		}
		details["privateKey"] = string(s.ClientKeys[kt])
	}
	rt := j.runtime
	if rt == "" {
		rt = "BASH"
	}
	if j.timeout == 0 {
		j.timeout = 37 * time.Second
	}
	if j.env == nil {
		j.env = map[string]string{}
	}
	if j.input == nil {
		j.input = map[string]any{}
	}
	raw, _ := json.Marshal(map[string]any{
		"type": "ssh",
		"execution": map[string]any{
			"environment": j.env, "timeout": j.timeout.Nanoseconds(), "inputData": j.input,
			"target": map[string]any{"type": "server", "serverId": "7", "serverDetails": details},
			"script": map[string]any{"type": rt, "content": j.script, "workingDirectory": j.workdir},
		},
		"metadata": map[string]any{"eventName": "ssh test", "triggeredBy": "manual", "originalType": "SCRIPT", "eventId": "40", "userId": "u1", "serverId": "7"},
	})
	return raw
}

func submit(t *testing.T, be *devtest.Backend, raw json.RawMessage) string {
	t.Helper()
	id, err := be.Client.SubmitRaw(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func waitDone(t *testing.T, be *devtest.Backend, id string) devserver.JobView {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		v, err := be.Client.Job(context.Background(), id)
		if err == nil && v.Done() {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not end within %s (status %s)", id, waitLimit, v.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exitCode(v devserver.JobView) int {
	if v.ExitCode == nil {
		return -1000
	}
	return *v.ExitCode
}

// remoteLeftovers lists what the jobs ids left on the server: their work
// directories, and the processes of the test user whose command line
// matches marker (a pattern unique to the test: other packages' tests
// use the same account at the same time).
func remoteLeftovers(t *testing.T, s *testenv.SSHD, marker string, ids ...string) []string {
	t.Helper()
	// A work directory goes once the run's end is journaled, which may be
	// just after the backend has the job done: wait a little for it.
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if left = remoteLeftoversNow(t, s, marker, ids...); len(left) == 0 || time.Now().After(deadline) {
			return left
		}
	}
}

func remoteLeftoversNow(t *testing.T, s *testenv.SSHD, marker string, ids ...string) []string {
	t.Helper()
	var left []string
	for _, id := range ids {
		dirs, _ := filepath.Glob("/tmp/cronium-" + id + "-*")
		left = append(left, dirs...)
	}
	if marker != "" {
		out, _ := exec.Command("pgrep", "-u", s.User, "-f", marker).Output()
		for _, pid := range strings.Fields(string(out)) {
			cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
			left = append(left, "process "+pid+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return left
}

func TestSSHJobs(t *testing.T) { onBothPaths(t, testSSHJobs) }

func testSSHJobs(t *testing.T) {
	s := testenv.StartSSHD(t)
	be := devtest.Start(t, "", token)
	a := startAgent(t, be, agentOptions{})
	long := strings.Repeat("x", 100_000)
	var ids []string
	for _, tc := range []struct {
		name   string
		job    job
		status string
		exit   int
		stdout string
		stderr string
	}{
		{"bash, key, exit code and both streams", job{script: "echo out; echo err >&2; printf 'no newline'; exit 3"},
			"failed", 3, "out\nno newline", "err\n"},
		{"bash, password", job{password: true, script: "echo \"$CRONIUM_EXECUTION_MODE $CRONIUM_JOB_ID\" | cut -c1-8"},
			"completed", 0, "ssh job_\n", ""},
		{"rsa key", job{keyType: "rsa", script: "echo rsa"}, "completed", 0, "rsa\n", ""},
		{"ecdsa key", job{keyType: "ecdsa", script: "echo ecdsa"}, "completed", 0, "ecdsa\n", ""},
		{"environment, quoted values", job{env: map[string]string{"GREETING": "it's a \"test\" $HOME `x`"}, script: `printf '%s\n' "$GREETING"`},
			"completed", 0, "it's a \"test\" $HOME `x`\n", ""},
		{"long line", job{script: "printf '" + long + "\\n'"}, "completed", 0, long + "\n", ""},
		{"python", job{runtime: "PYTHON", script: "import sys\nprint('py')\nsys.exit(4)"}, "failed", 4, "py\n", ""},
		{"node", job{runtime: "NODEJS", script: "console.log('js'); console.error('warn')"}, "completed", 0, "js\n", "warn\n"},
		{"working directory", job{workdir: "/var/lib", script: "pwd"}, "completed", 0, "/var/lib\n", ""},
		{"what the script leaves running goes with it", job{script: "sleep 123.25 & echo bye"}, "completed", 0, "bye\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := submit(t, be, tc.job.raw(s))
			ids = append(ids, id)
			v := waitDone(t, be, id)
			if v.Status != tc.status || exitCode(v) != tc.exit || v.Completions != 1 {
				t.Fatalf("%s exit %d, %d completing calls; want %s %d once (error %q)", v.Status, exitCode(v), v.Completions, tc.status, tc.exit, v.Error)
			}
			if v.Output == nil || v.Output.Stdout != tc.stdout || v.Output.Stderr != tc.stderr {
				t.Errorf("output %+v\nwant stdout %.80q stderr %q", v.Output, tc.stdout, tc.stderr)
			}
		})
	}
	// Nor the watchdog's sleep (the job's timeout plus 30 s: 67 s here).
	if left := remoteLeftovers(t, s, "^sleep (123.25|67)$", ids...); len(left) > 0 {
		t.Errorf("left on the server: %v", left)
	}
	if d := a.pool.Dials(); d >= 10 {
		t.Errorf("%d dials for 10 jobs on 4 credentials: connections are not reused", d)
	}
}

func owner(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	u, err := user.LookupId(strconv.Itoa(int(st.Uid)))
	if err != nil {
		return ""
	}
	return u.Username
}

// The helpers work over the link in the three languages, with both name
// styles: input, variables, output and condition reach the backend.
func TestSSHHelpers(t *testing.T) { onBothPaths(t, testSSHHelpers) }

func testSSHHelpers(t *testing.T) {
	s := testenv.StartSSHD(t)
	be := devtest.Start(t, "", token)
	startAgent(t, be, agentOptions{})
	for _, tc := range []struct {
		name, runtime, script string
	}{
		{"bash", "BASH", `n=$(cronium_input | sed 's/.*"n": *\([0-9]*\).*/\1/')
cronium_set_variable ssh_k "v-$n"
cronium.getVariable ssh_k
cronium_output "{\"n\": $n, \"lang\": \"bash\"}"
cronium.setCondition true`},
		{"python", "PYTHON", `import cronium
n = cronium.input()["n"]
cronium.set_variable("ssh_k", "v-%d" % n)
print(cronium.getVariable("ssh_k"))
cronium.output({"n": n, "lang": "python"})
cronium.setCondition(True)`},
		{"node", "NODEJS", `const cronium = require('cronium');
(async () => {
  const n = (await cronium.input()).n;
  await cronium.set_variable('ssh_k', 'v-' + n);
  console.log(await cronium.getVariable('ssh_k'));
  await cronium.output({n: n, lang: 'node'});
  await cronium.setCondition(true);
})().catch((e) => { console.error(String(e)); process.exit(1); });`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := submit(t, be, job{runtime: tc.runtime, script: tc.script, input: map[string]any{"n": 7}}.raw(s))
			v := waitDone(t, be, id)
			if v.Status != "completed" || v.Output == nil || v.Output.Stdout != "v-7\n" {
				t.Fatalf("%s exit %d, output %+v", v.Status, exitCode(v), v.Output)
			}
			var out map[string]any
			if err := json.Unmarshal(v.ScriptOutput, &out); err != nil || out["n"] != 7.0 || out["lang"] != tc.name {
				t.Errorf("script output %s (%v)", v.ScriptOutput, err)
			}
			if v.Condition == nil || !*v.Condition {
				t.Errorf("condition %v, want true", v.Condition)
			}
		})
	}
}

// waitLog waits for a live log line of job id containing text.
func waitLog(t *testing.T, be *devtest.Backend, id, text string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		entries, err := be.Client.Logs(context.Background(), id, 0)
		if err == nil {
			for _, e := range entries {
				if strings.Contains(e.Line, text) {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no log line %q of job %s within %s", text, id, waitLimit)
}

// Timeout and cancellation stop the whole remote process group, children
// included, and are reported -1 and -2.
func TestSSHStop(t *testing.T) { onBothPaths(t, testSSHStop) }

func testSSHStop(t *testing.T) {
	s := testenv.StartSSHD(t)
	be := devtest.Start(t, "", token)
	startAgent(t, be, agentOptions{grace: time.Second})
	for _, tc := range []struct {
		name   string
		marker string
		stop   func(id string)
		status string
		exit   int
	}{
		{"timeout", "sleep 301.5", nil, "timeout", -1},
		{"cancel", "sleep 302.5", func(id string) {
			if _, err := be.Client.Cancel(context.Background(), id); err != nil {
				t.Error(err)
			}
		}, "cancelled", -2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A child that ignores SIGTERM, and one in the background.
			script := fmt.Sprintf("(trap '' TERM; %s) & %s & echo started; wait", tc.marker, tc.marker)
			j := job{script: script}
			if tc.stop == nil {
				j.timeout = 2 * time.Second
			}
			id := submit(t, be, j.raw(s))
			waitLog(t, be, id, "started")
			if tc.stop != nil {
				tc.stop(id)
			}
			v := waitDone(t, be, id)
			if v.Status != tc.status || exitCode(v) != tc.exit || v.Completions != 1 {
				t.Errorf("%s exit %d, %d completing calls; want %s %d", v.Status, exitCode(v), v.Completions, tc.status, tc.exit)
			}
			if left := remoteLeftovers(t, s, tc.marker, id); len(left) > 0 {
				t.Errorf("left on the server: %v", left)
			}
		})
	}
}

// sshd dies mid-job (every connection drops) and comes back: the output
// goes on from where it stopped, nothing lost or doubled, one completion.
func TestSSHReconnect(t *testing.T) { onBothPaths(t, testSSHReconnect) }

func testSSHReconnect(t *testing.T) {
	s := testenv.StartSSHD(t)
	be := devtest.Start(t, "", token)
	a := startAgent(t, be, agentOptions{})
	id := submit(t, be, job{script: "for i in $(seq 1 40); do echo line $i; echo err $i >&2; sleep 0.05; done"}.raw(s))
	waitLog(t, be, id, "line 3")
	s.Kill()
	time.Sleep(500 * time.Millisecond)
	s.Start()
	v := waitDone(t, be, id)
	var wantOut, wantErr strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&wantOut, "line %d\n", i)
		fmt.Fprintf(&wantErr, "err %d\n", i)
	}
	if v.Status != "completed" || v.Completions != 1 || v.Output == nil || v.Output.Stdout != wantOut.String() || v.Output.Stderr != wantErr.String() {
		t.Errorf("%s, %d completing calls, output %+v", v.Status, v.Completions, v.Output)
	}
	entries, err := be.Client.Logs(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	reconnected := false
	for _, e := range entries {
		if e.Stream != "system" {
			seen[e.Stream+" "+e.Line]++
		} else if strings.Contains(e.Line, "reconnected") {
			reconnected = true
		}
	}
	if !reconnected {
		t.Errorf("no system line says the agent reconnected: the connection did not drop?")
	}
	if len(seen) != 80 {
		t.Errorf("%d distinct live lines, want 80", len(seen))
	}
	for line, n := range seen {
		if n != 1 {
			t.Errorf("live line %q sent %d times", line, n)
		}
	}
	if d := a.pool.Dials(); d < 2 {
		t.Errorf("%d dials: the connection was not dialled again", d)
	}
}

// A multi-server job runs on every server at once, one execution each
// (exec_<job>_<server>_<unix>) whose runtime API works, its lines
// prefixed with the server's name; one server down makes it completed
// with 100 + 1 (§2.4).
func TestSSHMultiServer(t *testing.T) {
	s1, s2 := testenv.StartSSHD(t), testenv.StartSSHD(t)
	be := devtest.Start(t, "", token)
	startAgent(t, be, agentOptions{})
	down := freePort(t)
	server := func(id, name string, s *testenv.SSHD, port int) map[string]any {
		return map[string]any{"id": id, "name": name, "host": "127.0.0.1", "port": port, "username": s.User, "privateKey": string(s.ClientKeys["ed25519"])}
	}
	servers := []any{server("3", "web-1", s1, s1.Port), server("4", "web-2", s2, s2.Port), server("5", "web-3", s1, down)}
	raw, _ := json.Marshal(map[string]any{
		"type": "ssh",
		"execution": map[string]any{
			"environment": map[string]string{}, "timeout": (30 * time.Second).Nanoseconds(), "inputData": map[string]any{},
			"target": map[string]any{"type": "server", "serverId": "3", "serverDetails": servers[0]},
			"script": map[string]any{"type": "BASH", "content": `cronium_output "{\"on\": \"$CRONIUM_EXECUTION_ID\"}" && echo "on $CRONIUM_EXECUTION_ID"`, "workingDirectory": ""},
		},
		"metadata": map[string]any{"originalType": "SCRIPT", "eventId": "41", "userId": "u1", "serverId": "3",
			"multiServer": true, "serverCount": 3, "servers": servers},
	})
	id := submit(t, be, raw)
	v := waitDone(t, be, id)
	if v.Status != "completed" || exitCode(v) != 101 || v.Completions != 1 {
		t.Fatalf("%s exit %d, %d completing calls; want completed 101 once (output %+v)", v.Status, exitCode(v), v.Completions, v.Output)
	}
	execs, err := be.Client.Executions(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if len(execs) != 3 {
		t.Fatalf("%d executions, want 3: %+v", len(execs), execs)
	}
	for _, sid := range []string{"3", "4", "5"} {
		prefix := "exec_" + id + "_" + sid + "_"
		found := false
		for _, e := range execs {
			if strings.HasPrefix(e.ID, prefix) {
				found = true
				if sid != "5" && !strings.Contains(v.Output.Stdout, "] on "+e.ID+"\n") {
					t.Errorf("stdout %q lacks the line of %s", v.Output.Stdout, e.ID)
				}
			}
		}
		if !found {
			t.Errorf("no execution %s*", prefix)
		}
	}
	for _, want := range []string{"[web-1] on exec_", "[web-2] on exec_", "web-3 (5): failed"} {
		if !strings.Contains(v.Output.Stdout+v.Output.Stderr, want) {
			t.Errorf("output %+v lacks %q", v.Output, want)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// What a server can refuse fails the job alone, with a message that says
// what to do: an unknown host under strict, a changed host key, a missing
// interpreter; a server that refuses port forwarding still runs the job,
// whose helpers then say the runtime API is not there.
func TestSSHRefusals(t *testing.T) {
	be := devtest.Start(t, "", token)
	t.Run("unknown host, strict", func(t *testing.T) {
		s := testenv.StartSSHD(t)
		startAgent(t, be, agentOptions{policy: sshconn.PolicyStrict})
		v := waitDone(t, be, submit(t, be, job{script: "echo never"}.raw(s)))
		if v.Status != "failed" || !strings.Contains(v.Error, "cronium-agent ssh trust") {
			t.Errorf("%s, error %q", v.Status, v.Error)
		}
	})
	t.Run("changed host key", func(t *testing.T) {
		s := testenv.StartSSHD(t)
		a := startAgent(t, be, agentOptions{})
		old := fingerprint(s)
		if v := waitDone(t, be, submit(t, be, job{script: "echo pinned"}.raw(s))); v.Status != "completed" {
			t.Fatalf("first job: %s %q", v.Status, v.Error)
		}
		// The next agent (a connection pooled by this one would hide the
		// new key) trusts what this one recorded.
		a.stop()
		s.RotateHostKey()
		startAgent(t, be, agentOptions{known: filepath.Join(a.dir, "known_hosts")})
		v := waitDone(t, be, submit(t, be, job{script: "echo never"}.raw(s)))
		if v.Status != "failed" || !strings.Contains(v.Error, old) || !strings.Contains(v.Error, fingerprint(s)) {
			t.Errorf("%s, error %q; want both %s and %s", v.Status, v.Error, old, fingerprint(s))
		}
	})
	t.Run("forwarding refused", func(t *testing.T) {
		s := testenv.StartSSHD(t, testenv.WithoutForwarding())
		startAgent(t, be, agentOptions{})
		v := waitDone(t, be, submit(t, be, job{runtime: "PYTHON", script: "import cronium\nprint('ran')\ncronium.output(1)"}.raw(s)))
		if v.Status != "failed" || v.Output == nil || !strings.HasPrefix(v.Output.Stdout, "ran\n") || !strings.Contains(v.Output.Stderr, "CRONIUM_RUNTIME_API is not set") {
			t.Errorf("%s exit %d, output %+v", v.Status, exitCode(v), v.Output)
		}
	})
}

func fingerprint(s *testenv.SSHD) string { return ssh.FingerprintSHA256(s.HostKey) }

// Jobs on one server at once each get their own runtime API forward.
func TestSSHConcurrentJobs(t *testing.T) { onBothPaths(t, testSSHConcurrentJobs) }

func testSSHConcurrentJobs(t *testing.T) {
	s := testenv.StartSSHD(t)
	be := devtest.Start(t, "", token)
	startAgent(t, be, agentOptions{})
	var ids []string
	for i := range 4 {
		ids = append(ids, submit(t, be, job{runtime: "PYTHON", input: map[string]any{"i": i},
			script: "import cronium, time\ni = cronium.input()['i']\ntime.sleep(0.5)\ncronium.output({'i': i})\nprint(i)"}.raw(s)))
	}
	for i, id := range ids {
		v := waitDone(t, be, id)
		if v.Status != "completed" || string(v.ScriptOutput) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Errorf("job %d: %s, output %s %+v", i, v.Status, v.ScriptOutput, v.Output)
		}
	}
}

// A server that dies for good mid-job: the job fails at its timeout with
// the reason and the output received before.
func TestSSHServerGone(t *testing.T) { onBothPaths(t, testSSHServerGone) }

func testSSHServerGone(t *testing.T) {
	s := testenv.StartSSHD(t)
	be := devtest.Start(t, "", token)
	startAgent(t, be, agentOptions{})
	id := submit(t, be, job{timeout: 3 * time.Second, script: "echo before; sleep 30.75; echo never"}.raw(s))
	waitLog(t, be, id, "before")
	s.Kill()
	v := waitDone(t, be, id)
	if v.Status != "failed" || v.Completions != 1 || v.Output == nil || v.Output.Stdout != "before\n" ||
		!strings.Contains(v.Output.Stderr, "could not be reached again before the job's timeout") {
		t.Errorf("%s exit %d, output %+v", v.Status, exitCode(v), v.Output)
	}
	// A server that is gone keeps what it had; here it is this host:
	// stop what it ran and remove the work directory, as an operator
	// would once the server is back.
	_ = exec.Command("pkill", "-u", s.User, "-f", "^sleep 30.75$").Run()
	dirs, _ := filepath.Glob("/tmp/cronium-" + id + "-*")
	for _, d := range dirs {
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(d, "status")); err == nil {
				break // the run has ended: nothing writes there any more
			}
		}
		_ = os.RemoveAll(d)
	}
}

// A job that names its server without its details (the plan's shape):
// the agent asks servers/{id}/credentials (§6) and runs it there.
func TestSSHServerByID(t *testing.T) {
	s := testenv.StartSSHD(t)
	be := devtest.Start(t, "", token)
	startAgent(t, be, agentOptions{})
	srv, err := be.Client.AddServer(context.Background(), api.Server{Name: "by-id", Host: s.Host, Port: s.Port, Username: s.User,
		PrivateKey: string(s.ClientKeys["ed25519"])})
	if err != nil {
		t.Fatal(err)
	}
	id, err := be.Client.Submit(context.Background(), devserver.SubmitRequest{Runtime: "bash", Script: "echo fetched", ServerID: srv.ID, OmitServerDetails: true})
	if err != nil {
		t.Fatal(err)
	}
	if v := waitDone(t, be, id); v.Status != "completed" || v.Output == nil || v.Output.Stdout != "fetched\n" {
		t.Errorf("%s %q, output %+v", v.Status, v.Error, v.Output)
	}
}

// The worker is killed mid-run (its runs' parent): the run goes on, the
// agent follows it to its end through the shell path with nothing lost,
// and reports it failed for want of a status, saying so.
func TestSSHWorkerKilled(t *testing.T) {
	s := testenv.StartSSHD(t)
	be := devtest.Start(t, "", token)
	startAgent(t, be, agentOptions{})
	id := submit(t, be, job{script: "for i in $(seq 1 30); do echo line $i; sleep 0.05; done"}.raw(s))
	waitLog(t, be, id, "line 3")
	dirs, _ := filepath.Glob("/tmp/cronium-" + id + "-*")
	if len(dirs) != 1 {
		t.Fatalf("work directories %v", dirs)
	}
	pid, err := os.ReadFile(filepath.Join(dirs[0], "pid"))
	if err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid ...: the script's parent is the worker.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	worker, _ := strconv.Atoi(f[1])
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", worker)); !strings.Contains(string(cmdline), "ssh-worker") {
		t.Fatalf("the script's parent %d is %q, not the worker", worker, cmdline)
	}
	if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	v := waitDone(t, be, id)
	var want strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if v.Status != "failed" || exitCode(v) != 1 || v.Completions != 1 || v.Output == nil || v.Output.Stdout != want.String() ||
		!strings.Contains(v.Output.Stderr, "ended without an exit status") {
		t.Errorf("%s exit %d, %d completing calls, output %+v", v.Status, exitCode(v), v.Completions, v.Output)
	}
	if left := remoteLeftovers(t, s, "", id); len(left) > 0 {
		t.Errorf("left on the server: %v", left)
	}
}
