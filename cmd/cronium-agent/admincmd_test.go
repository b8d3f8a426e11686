package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/state/admin"
	"github.com/cronium/cronium-agent/state/admin/admintest"
)

// serveAdmin serves src on a fresh socket until the test ends.
func serveAdmin(t *testing.T, src admin.Source) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	srv, err := admin.Listen(path, src, admin.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

var (
	adminT0     = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	adminStatus = admin.Status{
		Version: "1.2.3", OrchestratorID: "orch-1", Backend: "https://cronium.example",
		LastContact: adminT0.Add(-5 * time.Minute), LastError: "dial tcp 10.0.0.1:443: connection refused",
		Backlog: admin.Backlog{Jobs: 2, Items: 30, Bytes: 3 << 19, LogLines: 25},
		Running: []admin.RunningJob{
			{JobID: "job-2", ExecutionID: "exec-2", Attempt: 1, StartedAt: adminT0.Add(-90 * time.Second)},
			{JobID: "job-10", ExecutionID: "exec-10", Attempt: 3, StartedAt: adminT0.Add(-1500 * time.Millisecond)},
		},
		Journal:      admin.JournalInfo{Path: "/var/lib/cronium-agent/journal.db", FileBytes: 16 << 20, UsedBytes: 12 << 20, Budget: 256 << 20},
		ClaimsPaused: true,
	}
	adminJobs = []admin.JobSummary{
		{JobID: "job-2", ExecutionID: "exec-2", Attempt: 1, State: "running", ClaimedAt: adminT0.Add(-91 * time.Second),
			StartedAt: adminT0.Add(-90 * time.Second), Delivery: "pending", PendingItems: 3},
		{JobID: "job-1", ExecutionID: "exec-1", Attempt: 2, State: "finished", Status: "failed", ExitCode: new(3),
			ClaimedAt: adminT0.Add(-time.Hour), StartedAt: adminT0.Add(-time.Hour), FinishedAt: adminT0.Add(-time.Hour + 2500*time.Millisecond), Delivery: "delivered",
			Measured: true, CPUSeconds: new(1.234), PeakMemoryBytes: new(int64(52 << 20))},
		{JobID: "job-0", ExecutionID: "exec-0", Attempt: 1, State: "claimed", ClaimedAt: adminT0, Delivery: "pending", PendingItems: 1},
	}
)

func TestAdminPrintStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   admin.Status
		want string
	}{
		{"unreachable, busy", adminStatus, `version:      1.2.3
orchestrator: orch-1
backend:      https://cronium.example (unreachable: dial tcp 10.0.0.1:443: connection refused; last contact 5m0s ago)
claims:       paused
backlog:      2 jobs, 30 items, 1.5 MiB undelivered (25 log lines)
running:      2 jobs
  job-2       execution exec-2, attempt 1, for 1m30s
  job-10      execution exec-10, attempt 3, for 1.5s
journal:      12.0 MiB used of 256.0 MiB budget, file 16.0 MiB (/var/lib/cronium-agent/journal.db)
`},
		{"reachable, idle", admin.Status{Version: "dev", OrchestratorID: "o", Backend: "http://127.0.0.1:5001", BackendReachable: true, LastContact: adminT0.Add(-200 * time.Millisecond),
			Journal: admin.JournalInfo{Path: "/j", FileBytes: 32 << 10, UsedBytes: 100, Budget: 1 << 30}}, `version:      dev
orchestrator: o
backend:      http://127.0.0.1:5001 (reachable, last contact 200ms ago)
claims:       active
backlog:      nothing undelivered
running:      0 jobs
journal:      100 B used of 1.0 GiB budget, file 32.0 KiB (/j)
`},
		{"never reached", admin.Status{Backend: "https://b"}, "backend:      https://b (unreachable, never reached)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := printStatus(&b, tc.st, adminT0); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tc.want) {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
		})
	}
}

func TestAdminPrintJobs(t *testing.T) {
	var b bytes.Buffer
	if err := printJobs(&b, adminJobs, adminT0); err != nil {
		t.Fatal(err)
	}
	started := func(d time.Duration) string { return adminT0.Add(d).Local().Format("2006-01-02 15:04:05") }
	want := "JOB    EXECUTION           STATE     STATUS  EXIT  STARTED              DURATION  CPU   PEAK MEM  DELIVERY\n" +
		"job-2  exec-2              running   -       -     " + started(-90*time.Second) + "  1m30s     -     -         pending (3 items)\n" +
		"job-1  exec-1 (attempt 2)  finished  failed  3     " + started(-time.Hour) + "  2.5s      1.2s  52.0 MiB  delivered\n" +
		"job-0  exec-0              claimed   -       -     -                    -         -     -         pending (1 items)\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// The CPU and PEAK MEM columns tell a figure the run's cgroup did not
// give from a run nothing measured.
func TestAdminJobsUsageColumns(t *testing.T) {
	for _, tc := range []struct {
		name      string
		j         admin.JobSummary
		cpu, peak string
	}{
		{"not measured (running, HTTP, older journal)", admin.JobSummary{CPUSeconds: new(1.0)}, "-", "-"},
		{"both figures", admin.JobSummary{Measured: true, CPUSeconds: new(0.0421), PeakMemoryBytes: new(int64(3 << 30))}, "42ms", "3.0 GiB"},
		{"long CPU time", admin.JobSummary{Measured: true, CPUSeconds: new(125.4), PeakMemoryBytes: new(int64(512))}, "2m5s", "512 B"},
		{"no memory.peak (cgroup v2 before Linux 5.19)", admin.JobSummary{Measured: true, CPUSeconds: new(2.0)}, "2s", "unknown"},
		{"lost with its cgroup", admin.JobSummary{Measured: true}, "unknown", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if cpu, peak := usageColumns(tc.j); cpu != tc.cpu || peak != tc.peak {
				t.Errorf("columns %q %q, want %q %q", cpu, peak, tc.cpu, tc.peak)
			}
		})
	}
}

// The commands, run as the built binary against an in-test server.
func TestAdminCommands(t *testing.T) {
	src := admintest.New(adminStatus, adminJobs...)
	src.Append("job-1", admin.LogLine{Stream: "stdout", Line: "one"}, admin.LogLine{Stream: "stderr", Line: "two"},
		admin.LogLine{Stream: "system", Line: "three"}, admin.LogLine{Stream: "stdout", Line: "  four <&> "})
	src.Complete("job-1")
	t.Setenv("CRONIUM_ADMIN_SOCKET", serveAdmin(t, src))
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // a part of stdout (all of it for logs)
		stderr string // a part of stderr
		lines  int    // how many lines stdout has, if not 0
	}{
		{args: []string{"status"}, stdout: "backend:      https://cronium.example (unreachable: dial tcp 10.0.0.1:443: connection refused; last contact "},
		{args: []string{"status"}, stdout: "\n  job-10      execution exec-10, attempt 3, for "},
		{args: []string{"jobs"}, stdout: "\njob-1  exec-1 (attempt 2)  finished  failed  3     ", lines: 4},
		{args: []string{"jobs"}, stdout: "  1.2s  52.0 MiB  delivered\n"},
		{args: []string{"jobs", "--limit", "1"}, stdout: "DELIVERY\njob-2 ", lines: 2},
		{args: []string{"logs", "job-1"}, stdout: "one\n[stderr] two\n[system] three\n  four <&> \n"},
		{args: []string{"logs", "job-1", "-f"}, stdout: "one\n[stderr] two\n[system] three\n  four <&> \n"},
		{args: []string{"logs", "nope"}, code: 125, stderr: "cronium-agent logs: unknown job nope\n"},
		{args: []string{"logs"}, code: 2, stderr: "missing JOB"},
		{args: []string{"logs", "a", "b"}, code: 2, stderr: `unexpected argument "b"`},
		{args: []string{"jobs", "--limit", "0"}, code: 2, stderr: "--limit must be from 1 to 1000"},
		{args: []string{"jobs", "--limit", "1001"}, code: 2, stderr: "--limit must be from 1 to 1000"},
		{args: []string{"status", "--bogus"}, code: 2, stderr: "flag provided but not defined: -bogus"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := agent(t, t.TempDir(), tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr %q", r.code, tc.code, r.stderr)
			}
			if tc.args[0] == "logs" && r.code == 0 && r.stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", r.stdout, tc.stdout)
			}
			if !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stdout %q\nstderr %q\nwant them to contain %q and %q", r.stdout, r.stderr, tc.stdout, tc.stderr)
			}
			if n := strings.Count(r.stdout, "\n"); tc.lines != 0 && n != tc.lines {
				t.Errorf("%d lines, want %d:\n%s", n, tc.lines, r.stdout)
			}
		})
	}
	for _, tc := range []struct {
		cmd  string
		into any
		want any
	}{
		{"status", &admin.Status{}, &adminStatus},
		{"jobs", &[]admin.JobSummary{}, &adminJobs},
	} {
		r := agent(t, t.TempDir(), tc.cmd, "--json")
		if err := json.Unmarshal([]byte(r.stdout), tc.into); err != nil || r.code != 0 {
			t.Fatalf("%s --json: %d %v %q %q", tc.cmd, r.code, err, r.stdout, r.stderr)
		}
		if !reflect.DeepEqual(tc.into, tc.want) {
			t.Errorf("%s --json:\n got %+v\nwant %+v", tc.cmd, tc.into, tc.want)
		}
	}
}

// `logs -f` prints lines that come after it started, and ends when the
// log is complete.
func TestAdminLogsFollow(t *testing.T) {
	src := admintest.New(admin.Status{})
	src.Append("job", admin.LogLine{Stream: "stdout", Line: "first"})
	cmd := exec.Command(agentBin, "logs", "-f", "job")
	cmd.Env = append(os.Environ(), "CRONIUM_ADMIN_SOCKET="+serveAdmin(t, src))
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for out.String() != "first\n" {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no first line: %q %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	src.Append("job", admin.LogLine{Stream: "stderr", Line: "second"})
	src.Complete("job")
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil || out.String() != "first\n[stderr] second\n" {
			t.Errorf("logs -f: %v, stdout %q, stderr %q", err, out.String(), errb.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Errorf("logs -f did not end when the log was complete: %q", out.String())
	}
}

func TestAdminNotRunning(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "admin.sock")
	t.Setenv("CRONIUM_ADMIN_SOCKET", missing)
	for _, args := range [][]string{{"status"}, {"jobs"}, {"logs", "job-1"}, {"logs", "-f", "job-1"}} {
		r := agent(t, t.TempDir(), args...)
		want := "cronium-agent " + args[0] + ": the agent is not running (nothing answers on " + missing + "): connect: no such file or directory (start it"
		if r.code != 125 || !strings.HasPrefix(r.stderr, want) || !strings.Contains(r.stderr, "CRONIUM_ADMIN_SOCKET") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: %d %q, want 125 and one line starting %q", args, r.code, r.stderr, want)
		}
	}
}

// Without CRONIUM_ADMIN_SOCKET the socket is admin.socket of the config.
func TestAdminSocketFromConfig(t *testing.T) {
	path := serveAdmin(t, admintest.New(admin.Status{Version: "from-config"}))
	t.Setenv("CRONIUM_ADMIN_SOCKET", "")
	os.Unsetenv("CRONIUM_ADMIN_SOCKET")
	r := agent(t, t.TempDir(), "status", "--config", writeFile(t, "admin:\n  socket: "+path+"\n"))
	if r.code != 0 || !strings.HasPrefix(r.stdout, "version:      from-config\n") {
		t.Errorf("status: %d %q %q", r.code, r.stdout, r.stderr)
	}
}
