package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/sidecar"
)

// connFlood is a Python job that opens workers×perWorker connections to its
// runtime API and keeps every one it can alive with a GET /health each
// round, for hold seconds. It prints one line per round with the number of
// connections that answered (alive) and that were refused, reset or closed
// (gone) since the start.
const connFlood = `
import os, select, socket, time, urllib.parse
u = urllib.parse.urlparse(os.environ["CRONIUM_RUNTIME_API"])
WORKERS, PER, HOLD = %d, %d, %d
REQ = b"GET /health HTTP/1.1\r\nHost: runtime-api\r\n\r\n"

def ping_all(socks):
    """Sends GET /health on every socket; returns those that answered 200
    within 5 s (all at once: a connection nobody accepts must not stall
    the others)."""
    pending = {}
    for s in socks:
        try:
            s.setblocking(False)
            s.send(REQ)
            pending[s] = b""
        except OSError:
            s.close()
    alive, deadline = [], time.time() + 5
    while pending and time.time() < deadline:
        ready, _, _ = select.select(list(pending), [], [], max(0, deadline - time.time()))
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 200"):
                alive.append(s)
            else:
                s.close()
            del pending[s]
    for s in pending:
        s.close()
    return alive

def worker(w, wfd):
    socks, gone = [], 0
    for _ in range(PER):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect((u.hostname, u.port))
            socks.append(s)
        except OSError:
            gone += 1
            s.close()
    end = time.time() + HOLD
    while True:
        alive = ping_all(socks)
        gone += len(socks) - len(alive)
        socks = alive
        os.write(wfd, ("%%d %%d %%d\n" %% (w, len(socks), gone)).encode())
        if time.time() >= end:
            break
        time.sleep(2)
    os._exit(0)

r, wfd = os.pipe()
for w in range(WORKERS):
    if os.fork() == 0:
        os.close(r)
        worker(w, wfd)
os.close(wfd)
state, rnd = {}, 0
with os.fdopen(r) as f:
    for line in f:
        w, alive, gone = map(int, line.split())
        state[w] = (alive, gone)
        if len(state) == WORKERS:
            rnd += 1
            print("round %%d alive %%d gone %%d" %% (rnd, sum(a for a, _ in state.values()), sum(g for _, g in state.values())), flush=True)
            state = {}
for _ in range(WORKERS):
    os.wait()
`

// helperJob uses every helper and checks that a dot key is refused.
const helperJob = `
import cronium
data = cronium.input()
cronium.set_variable("flood-check", {"n": data["n"]})
assert cronium.get_variable("flood-check") == {"n": data["n"]}
try:
    cronium.set_variable("..", 1)
    raise SystemExit("the key .. was accepted")
except cronium.CroniumError as e:
    assert e.status == 400, e.status
cronium.output({"seen": data["n"]})
cronium.set_condition(True)
print("helpers ok")
`

// One job flooding its runtime API with connections (1200, from three
// processes) can hold at most its bound of them; the agent, limited to 1024
// open files, keeps running a second job and answering its admin socket
// meanwhile. Without the bound the agent reached 1024 of 1024 open files,
// the second job failed with "create run lock: ... too many open files" and
// the admin socket's accept failed.
func TestE2ESidecarConnectionFlood(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	state := stateDir(t)
	a := startAgent(t, b.URL, state, "CRONIUM_JOBS_MAX_CONCURRENT=3")
	pid := a.cmd.Process.Pid

	// The Go runtime raises the soft limit of open files to the hard one at
	// start: an operator's LimitNOFILE is what the agent gets.
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != lim.Max {
		t.Errorf("agent's open files limit: soft %d, hard %d; want soft raised to hard", lim.Cur, lim.Max)
	}
	// Then 1024 (the usual default soft limit), so that the flood below
	// would exhaust an agent that accepted every connection.
	const fdLimit = 1024
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: fdLimit, Max: fdLimit}, nil); err != nil {
		t.Fatal(err)
	}

	warm := submit(t, b, devserver.SubmitRequest{Runtime: "python", Script: "import cronium; cronium.output(1)"})
	if v := waitJob(t, b, warm, time.Minute); v.Status != "completed" {
		t.Fatalf("warm-up job: %s %s", v.Status, v.Error)
	}
	baseline := openFiles(t, pid)

	const workers, perWorker, hold = 3, 400, 20
	flood := submit(t, b, devserver.SubmitRequest{Runtime: "python", Timeout: "2m",
		Script: fmt.Sprintf(connFlood, workers, perWorker, hold)})
	waitFor(t, time.Minute, func() bool {
		l, _ := b.Client.Logs(context.Background(), flood, 0)
		return len(l) > 0
	})
	during := openFiles(t, pid)

	// A second job runs meanwhile and uses its helpers normally.
	second := submit(t, b, devserver.SubmitRequest{Runtime: "python", Script: helperJob, Input: json.RawMessage(`{"n":7}`)})
	st := agentEnv(t, []string{"CRONIUM_ADMIN_SOCKET=" + filepath.Join(state, "admin.sock")}, "status")
	if st.code != 0 || !strings.Contains(st.stdout, b.URL) {
		t.Errorf("status during the flood: %d %q %q", st.code, st.stdout, st.stderr)
	}
	v := waitJob(t, b, second, time.Minute)
	if v.Status != "completed" || exitCode(v) != 0 || v.Output == nil || !strings.Contains(v.Output.Stdout, "helpers ok") {
		t.Errorf("second job during the flood: %s exit %d, error %q, output %+v", v.Status, exitCode(v), v.Error, v.Output)
	}
	if string(v.ScriptOutput) != `{"seen":7}` || v.Condition == nil || !*v.Condition {
		t.Errorf("second job: scriptOutput %s, condition %v", v.ScriptOutput, v.Condition)
	}
	during = max(during, openFiles(t, pid))
	if fv, _ := b.Client.Job(context.Background(), flood); fv.Status != "running" {
		t.Errorf("the flood was over (%s) before the second job completed: the test proves nothing", fv.Status)
	}

	fv := waitJob(t, b, flood, 2*time.Minute)
	if fv.Status != "completed" || fv.Output == nil {
		t.Fatalf("flood job: %s exit %d, error %q", fv.Status, exitCode(fv), fv.Error)
	}
	rounds := regexp.MustCompile(`round (\d+) alive (\d+) gone (\d+)`).FindAllStringSubmatch(fv.Output.Stdout, -1)
	if len(rounds) < 2 {
		t.Fatalf("flood job printed %q, stderr %q", fv.Output.Stdout, fv.Output.Stderr)
	}
	for _, r := range rounds {
		alive, _ := strconv.Atoi(r[2])
		gone, _ := strconv.Atoi(r[3])
		if alive > sidecar.DefaultMaxConns || alive+gone != workers*perWorker {
			t.Errorf("round %s: %d connections alive, %d refused or closed; want at most %d of %d alive", r[1], alive, gone, sidecar.DefaultMaxConns, workers*perWorker)
		}
	}
	last := rounds[len(rounds)-1]
	if alive, _ := strconv.Atoi(last[2]); alive == 0 {
		t.Errorf("no connection of the flood job stayed alive: the bound refuses too much")
	}
	t.Logf("agent's open files: %d before the flood, %d during it (limit %d); flood job: %s", baseline, during, fdLimit, strings.TrimSpace(fv.Output.Stdout))
	if during > baseline+sidecar.DefaultMaxConns+100 {
		t.Errorf("agent held %d open files during the flood (%d before)", during, baseline)
	}
	// The refusals are logged once per interval, not once per connection.
	if n := strings.Count(a.stderr.String(), "connections refused"); n == 0 || n > 2+hold/10 {
		t.Errorf("%d log lines about refused connections:\n%s", n, a.stderr.String())
	}
	if strings.Contains(a.stderr.String(), "too many open files") {
		t.Errorf("the agent ran out of open files:\n%s", a.stderr.String())
	}
	assertOneCompletion(t, b)
}

// openFiles counts a process's open file descriptors.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
