package sshexec_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver/devtest"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner/sshconn"
)

// BenchmarkSSH times a trivial bash job over a pooled connection on
// loopback, one job after another, against the reference a simple
// orchestrator would use: the OpenSSH client over a warm ControlMaster
// connection running the same script. Both talk to the same sshd in the
// same run.
//
//	agent                  submit to completion as the backend records it
//	                       (createdAt to completedAt: no polling in the
//	                       figure), p50 and p90, with its parts (p50 each):
//	                       queue-ms   submit to claim (the development
//	                                  backend holds the agent's claim until a
//	                                  job comes: a long poll)
//	                       setup-ms   claim to launch (journal, acknowledge,
//	                                  forward, upload)
//	                       run-ms     launch to the end of the follow
//	                       finish-ms  end of the follow to the backend's
//	                                  completedAt (state, remove, journal,
//	                                  delivery)
//	                       claimed-p50-ms  claim to completion: the agent
//	                                  without the queue
//	                       (launch and end are the completion's metrics,
//	                       whole milliseconds)
//	openssh-controlmaster  one `ssh ... bash -s` process over the master,
//	                       script on stdin, fork/exec to exit
//
// The agent runs on its connection's worker (runner/sshexec/sshworker),
// started by the warm-up job: one session per connection, so 0 per job.
//
// Both report sessions/job and logins/job as the server logged them and
// rtts/job, the round trips on the wire: counted by a relay in front of
// the server, over a few extra jobs outside the timed loop (so the relay
// adds nothing to the times). A round trip is bytes from the server after
// bytes from the client; exchanges that overlap count once, as they cost
// one wait. The agent also reports dials/job (its pool).
//
//	go test -run '^$' -bench BenchmarkSSH -benchtime 30x ./runner/sshexec/
func BenchmarkSSH(b *testing.B) {
	if _, err := os.Stat(sshClientPath); err != nil {
		b.Skipf("needs the OpenSSH client for the reference: %v", err)
	}
	s := testenv.StartSSHD(b)
	floor := fmt.Sprintf("cpu: %s, %d CPUs (GOMAXPROCS %d); %s; sshd on %s", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), sshClientVersion(), s.Addr)
	relay := startTurnRelay(b, s.Addr)

	be := devtest.Start(b, "", token)
	// The agent's default keepalive (15 s: keepalives do not count as
	// round trips) and log level.
	pool := startAgent(b, be, agentOptions{keepalive: 15 * time.Second, quiet: true}).pool
	direct := job{script: benchScript}.raw(s)
	viaRelay := withPort(b, direct, relay.port())
	var logged sync.Once
	b.Run("agent", func(b *testing.B) {
		// Here, once: a parent benchmark's log is not printed.
		logged.Do(func() { b.Log(floor) })
		benchAgent(b, s, be, pool, relay, direct, viaRelay)
	})

	cm := newOpenSSH(b, s, s.Port)
	cmRelay := newOpenSSH(b, s, relay.port())
	b.Run("openssh-controlmaster", func(b *testing.B) {
		benchOpenSSH(b, s, cm, cmRelay, relay)
	})
}

// benchScript is the job: trivial, one line of output.
const (
	benchScript = "echo ok"
	benchOutput = "ok\n"
	// rttJobs is how many extra jobs count the round trips.
	rttJobs = 5
)

func benchAgent(b *testing.B, s *testenv.SSHD, be *devtest.Backend, pool *sshconn.Pool, relay *turnRelay, direct, viaRelay json.RawMessage) {
	// Warm: the connection pooled, the helper program on the server, the
	// connection's worker started.
	runAgentJob(b, be, direct)
	sessions, logins, dials := logCount(s, sessionLine), logCount(s, loginLine), pool.Dials()
	times := make([]agentTiming, 0, b.N)
	b.ResetTimer()
	for range b.N {
		times = append(times, runAgentJob(b, be, direct))
	}
	b.StopTimer()
	n := float64(b.N)
	sessionsPerJob := float64(logCount(s, sessionLine)-sessions) / n
	loginsPerJob := float64(logCount(s, loginLine)-logins) / n
	dialsPerJob := float64(pool.Dials()-dials) / n

	// Round trips, through the relay (a connection of its own: warm it).
	runAgentJob(b, be, viaRelay)
	turns := relay.turns()
	for range rttJobs {
		runAgentJob(b, be, viaRelay)
	}
	rtts := float64(relay.turns()-turns) / rttJobs

	pick := func(f func(agentTiming) time.Duration) []time.Duration {
		out := make([]time.Duration, len(times))
		for i, t := range times {
			out[i] = f(t)
		}
		return out
	}
	total := pick(func(t agentTiming) time.Duration { return t.total })
	b.ReportMetric(ms(percentile(total, 0.5)), "p50-ms")
	b.ReportMetric(ms(percentile(total, 0.9)), "p90-ms")
	b.ReportMetric(ms(percentile(pick(func(t agentTiming) time.Duration { return t.total - t.queue }), 0.5)), "claimed-p50-ms")
	b.ReportMetric(ms(percentile(pick(func(t agentTiming) time.Duration { return t.queue }), 0.5)), "queue-ms")
	b.ReportMetric(ms(percentile(pick(func(t agentTiming) time.Duration { return t.setup }), 0.5)), "setup-ms")
	b.ReportMetric(ms(percentile(pick(func(t agentTiming) time.Duration { return t.run }), 0.5)), "run-ms")
	b.ReportMetric(ms(percentile(pick(func(t agentTiming) time.Duration { return t.finish }), 0.5)), "finish-ms")
	b.ReportMetric(sessionsPerJob, "sessions/job")
	b.ReportMetric(loginsPerJob, "logins/job")
	b.ReportMetric(dialsPerJob, "dials/job")
	b.ReportMetric(rtts, "rtts/job")
}

func benchOpenSSH(b *testing.B, s *testenv.SSHD, cm, cmRelay *openSSH, relay *turnRelay) {
	// Warm: the first run starts the master; the rest share it.
	cm.run(b)
	if _, err := cm.masterPID(); err != nil {
		b.Fatalf("no ControlMaster after the first run: %v", err)
	}
	sessions, logins := logCount(s, sessionLine), logCount(s, loginLine)
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		times = append(times, cm.run(b))
	}
	b.StopTimer()
	n := float64(b.N)
	sessionsPerJob := float64(logCount(s, sessionLine)-sessions) / n
	loginsPerJob := float64(logCount(s, loginLine)-logins) / n

	cmRelay.run(b)
	turns := relay.turns()
	for range rttJobs {
		cmRelay.run(b)
	}
	rtts := float64(relay.turns()-turns) / rttJobs

	b.ReportMetric(ms(percentile(times, 0.5)), "p50-ms")
	b.ReportMetric(ms(percentile(times, 0.9)), "p90-ms")
	b.ReportMetric(sessionsPerJob, "sessions/job")
	b.ReportMetric(loginsPerJob, "logins/job")
	b.ReportMetric(rtts, "rtts/job")
}

// agentTiming is one job's times as the backend recorded them.
type agentTiming struct {
	total, queue, setup, run, finish time.Duration
}

// runAgentJob submits raw and returns once the backend has the job done,
// checking it completed with the script's output.
func runAgentJob(tb testing.TB, be *devtest.Backend, raw json.RawMessage) agentTiming {
	tb.Helper()
	ctx := context.Background()
	id, err := be.Client.SubmitRaw(ctx, raw)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for {
		v, err := be.Client.Job(ctx, id)
		if err == nil && v.Done() {
			if v.Status != "completed" || v.Output == nil || v.Output.Stdout != benchOutput || v.ClaimedAt == nil || v.CompletedAt == nil {
				tb.Fatalf("job %s: %s, output %+v, error %q", id, v.Status, v.Output, v.Error)
			}
			var m api.RunMetrics
			if err := json.Unmarshal(v.Metrics, &m); err != nil {
				tb.Fatalf("job %s: metrics %s: %v", id, v.Metrics, err)
			}
			return agentTiming{
				total:  v.CompletedAt.Sub(v.CreatedAt),
				queue:  v.ClaimedAt.Sub(v.CreatedAt),
				setup:  m.StartTime.Sub(*v.ClaimedAt),
				run:    m.EndTime.Sub(m.StartTime),
				finish: v.CompletedAt.Sub(m.EndTime),
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("job %s did not end within %s (status %s)", id, waitLimit, v.Status)
		}
		// The times are the backend's: polling only paces the next submit.
		time.Sleep(2 * time.Millisecond)
	}
}

// withPort is raw with the server's port replaced.
func withPort(tb testing.TB, raw json.RawMessage, port int) json.RawMessage {
	tb.Helper()
	var j map[string]any
	if err := json.Unmarshal(raw, &j); err != nil {
		tb.Fatal(err)
	}
	details := j["execution"].(map[string]any)["target"].(map[string]any)["serverDetails"].(map[string]any)
	details["port"] = port
	out, err := json.Marshal(j)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// sshd's VERBOSE log lines: one per session (a command), one per login.
const (
	sessionLine = "Starting session: "
	loginLine   = "Accepted publickey for "
)

func logCount(s *testenv.SSHD, line string) int { return strings.Count(s.Log(), line) }

// sshClientPath is the OpenSSH client of the reference.
const sshClientPath = "/usr/bin/ssh"

// openSSH runs the benchmark's script with the OpenSSH client over a
// ControlMaster connection of its own to port of 127.0.0.1 (the server's,
// or the relay's). The key and the known host are files of a private
// directory; no option file of the system or the user is read.
type openSSH struct {
	dir, ctl string
	args     []string
}

func newOpenSSH(tb testing.TB, s *testenv.SSHD, port int) *openSSH {
	tb.Helper()
	// Not tb.TempDir: a control socket's path must stay short (sun_path).
	dir, err := os.MkdirTemp("", "cronium-cm-")
	if err != nil {
		tb.Fatal(err)
	}
	o := &openSSH{dir: dir, ctl: filepath.Join(dir, "cm")}
	tb.Cleanup(func() {
		o.exit(tb)
		_ = os.RemoveAll(dir)
	})
	key := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(key, s.ClientKeys["ed25519"], 0o600); err != nil {
		tb.Fatal(err)
	}
	known := filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{net.JoinHostPort(s.Host, strconv.Itoa(port))}, s.HostKey) + "\n"
	if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
		tb.Fatal(err)
	}
	o.args = []string{"-F", "/dev/null",
		"-o", "BatchMode=yes",
		"-o", "ControlMaster=auto", "-o", "ControlPath=" + o.ctl, "-o", "ControlPersist=60",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + known, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", key,
		"-o", "LogLevel=ERROR",
		"-p", strconv.Itoa(port), s.User + "@" + s.Host,
	}
	return o
}

// command is the client with the options, then extra.
func (o *openSSH) command(extra ...string) *exec.Cmd {
	cmd := exec.Command(sshClientPath, append(slices.Clone(o.args), extra...)...)
	// A master started by a run keeps no pipe of it (it moves its standard
	// streams to /dev/null); should one, Wait does not hang on it.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs the script on stdin with `bash -s` and returns how long the
// client process took, start to exit.
func (o *openSSH) run(tb testing.TB) time.Duration {
	tb.Helper()
	cmd := o.command("bash -s")
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(benchScript + "\n")
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil || out.String() != benchOutput {
		tb.Fatalf("ssh: %v, output %q, stderr %q", err, out.String(), errb.String())
	}
	return d
}

var masterPIDRe = regexp.MustCompile(`pid=(\d+)`)

// masterPID asks the master for its pid.
func (o *openSSH) masterPID() (int, error) {
	out, err := o.command("-O", "check").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ssh -O check: %v: %s", err, bytes.TrimSpace(out))
	}
	m := masterPIDRe.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("ssh -O check: no pid in %q", out)
	}
	return strconv.Atoi(string(m[1]))
}

// exit stops the master, if one runs, and waits until its process is
// gone; one that outlives `ssh -O exit` is killed (by its pid).
func (o *openSSH) exit(tb testing.TB) {
	if _, err := os.Stat(o.ctl); err != nil {
		return
	}
	pid, err := o.masterPID()
	if err != nil {
		return
	}
	if out, err := o.command("-O", "exit").CombinedOutput(); err != nil {
		tb.Errorf("ssh -O exit: %v: %s", err, bytes.TrimSpace(out))
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !alive(pid) {
			return
		}
	}
	tb.Errorf("the ControlMaster (pid %d) outlived ssh -O exit; killing it", pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// alive: process pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// turnRelay forwards the TCP connections it accepts on 127.0.0.1 to
// target and counts round trips: on each connection, bytes from the
// server that follow bytes from the client count one.
type turnRelay struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	n     int
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startTurnRelay(tb testing.TB, target string) *turnRelay {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &turnRelay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.serve()
	tb.Cleanup(r.close)
	return r
}

func (r *turnRelay) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

func (r *turnRelay) turns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func (r *turnRelay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		r.mu.Lock()
		r.conns[c], r.conns[s] = struct{}{}, struct{}{}
		r.mu.Unlock()
		clientSpoke := false // guarded by r.mu
		pipe := func(dst, src net.Conn, fromClient bool) {
			defer r.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					r.mu.Lock()
					if fromClient {
						clientSpoke = true
					} else if clientSpoke {
						r.n++
						clientSpoke = false
					}
					r.mu.Unlock()
					if _, werr := dst.Write(buf[:n]); werr != nil {
						err = werr
					}
				}
				if err != nil {
					// Either side's end (or a write failing) ends both.
					_ = c.Close()
					_ = s.Close()
					r.mu.Lock()
					delete(r.conns, c)
					delete(r.conns, s)
					r.mu.Unlock()
					return
				}
			}
		}
		r.wg.Add(2)
		go pipe(s, c, true)
		go pipe(c, s, false)
	}
}

func (r *turnRelay) close() {
	_ = r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// percentile is the nearest-rank p-th (0..1) of d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuModel is /proc/cpuinfo's first model name.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func sshClientVersion() string {
	out, _ := exec.Command(sshClientPath, "-V").CombinedOutput()
	return strings.TrimSpace(string(out))
}
