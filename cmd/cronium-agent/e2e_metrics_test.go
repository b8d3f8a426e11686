package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
)

// The metrics listener during mixed jobs: the job counters match the
// jobs run, the gauges are there, and /readyz turns unready while
// containerd cannot be reached (a relay in front of its socket is
// stopped) and ready again when it can.
func TestE2EMetricsAndReadiness(t *testing.T) {
	testenv.Containerd(t)
	relay := startSocketRelay(t, testenv.Address())
	be := startDevBackend(t, "")
	state := stateDir(t)
	a := startAgent(t, be.URL, state, "CRONIUM_CONTAINERD_ADDRESS="+relay.path)
	base := "http://" + metricsAddr(t, a)

	want := map[string]int{}
	for _, j := range []struct {
		req    devserver.SubmitRequest
		status string
	}{
		{devserver.SubmitRequest{Runtime: "bash", Script: "echo one"}, "completed"},
		{devserver.SubmitRequest{Runtime: "python", Script: "print('two')"}, "completed"},
		{devserver.SubmitRequest{Runtime: "bash", Script: "exit 3"}, "failed"},
		{devserver.SubmitRequest{Runtime: "bash", Script: "echo four"}, "completed"},
	} {
		id := submit(t, be, j.req)
		if v := waitJob(t, be, id, 2*time.Minute); v.Status != j.status {
			t.Fatalf("job %s: %s, want %s", id, v.Status, j.status)
		}
		want[j.status]++
	}
	// The completion reaches the backend after the metrics count it.
	var body string
	waitFor(t, 10*time.Second, func() bool {
		body = get(t, base+"/metrics", 200)
		return metricValue(body, `cronium_jobs_total{status="completed",target="container"}`) == 3
	})
	for status, n := range want {
		if got := metricValue(body, `cronium_jobs_total{status="`+status+`",target="container"}`); got != float64(n) {
			t.Errorf("cronium_jobs_total %s = %v, want %d", status, got, n)
		}
	}
	for _, name := range []string{
		`cronium_job_phase_seconds_count{phase="run",target="container"} 4`,
		`cronium_claim_latency_seconds_count{target="container"} 4`,
		"cronium_running_jobs 0", "cronium_free_slots ", "cronium_journal_file_bytes ", "cronium_undelivered_items ",
		"cronium_oldest_undelivered_age_seconds ", "cronium_backend_reachable 1", "cronium_sync_errors_total ",
		`cronium_component_up{component="containerd"} 1`, `cronium_component_up{component="journal"} 1`,
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics has no %q", name)
		}
	}
	get(t, base+"/healthz", 200)
	get(t, base+"/readyz", 200)

	relay.stop()
	if out := get(t, base+"/readyz", 503); !strings.Contains(out, "containerd: FAIL") || !strings.Contains(out, "journal: ok") {
		t.Errorf("/readyz with containerd away:\n%s", out)
	}
	get(t, base+"/healthz", 200)
	relay.start(t)
	if out := get(t, base+"/readyz", 200); !strings.Contains(out, "containerd: ok") {
		t.Errorf("/readyz with containerd back:\n%s", out)
	}
}

var listenRe = regexp.MustCompile(`msg="metrics and health served" addr=(\S+)`)

// metricsAddr is the listener's address, from the agent's log.
func metricsAddr(t *testing.T, a *agentProc) string {
	t.Helper()
	var addr string
	waitFor(t, 30*time.Second, func() bool {
		m := listenRe.FindStringSubmatch(a.stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return addr
}

func get(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d:\n%s", url, resp.StatusCode, want, b)
	}
	return string(b)
}

// metricValue is the value of the exposition line starting with name
// (with its labels), -1 when absent.
func metricValue(body, name string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// socketRelay forwards a unix socket to another; stopping it closes the
// listener and every connection, as a stopped daemon does.
type socketRelay struct {
	path, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startSocketRelay(t *testing.T, target string) *socketRelay {
	t.Helper()
	r := &socketRelay{path: filepath.Join(t.TempDir(), "containerd.sock"), target: target, conns: map[net.Conn]bool{}}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *socketRelay) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("unix", r.path)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("unix", r.target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns[c], r.conns[s] = true, true
			r.mu.Unlock()
			r.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer r.wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
}

func (r *socketRelay) stop() {
	r.mu.Lock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		c.Close()
	}
	r.conns = map[net.Conn]bool{}
	r.mu.Unlock()
	r.wg.Wait()
}

// Under systemd (NOTIFY_SOCKET): READY=1 once recovery is done and the
// backend answered, STOPPING=1 on SIGTERM.
func TestE2ESystemdNotify(t *testing.T) {
	testenv.Containerd(t)
	sock := filepath.Join(t.TempDir(), "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	be := startDevBackend(t, "")
	a := startAgent(t, be.URL, stateDir(t), "NOTIFY_SOCKET="+sock)
	next := func(want string) string {
		t.Helper()
		deadline := time.After(time.Minute)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed before %q", want)
				}
				if strings.Contains(m, want) {
					return m
				}
			case <-deadline:
				t.Fatalf("no %q from the agent", want)
			}
		}
	}
	if m := next("READY=1"); !strings.Contains(m, "STATUS=taking jobs") {
		t.Errorf("ready message %q", m)
	}
	a.signal(syscall.SIGTERM)
	next("STOPPING=1")
	a.wait(t, time.Minute)
}
