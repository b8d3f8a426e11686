package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
)

// sshServer registers s with the development backend, logging in with its
// ed25519 key or its password.
func sshServer(t *testing.T, b *devBackend, s *testenv.SSHD, name string, password bool) string {
	t.Helper()
	srv := api.Server{Name: name, Host: s.Host, Port: s.Port, Username: s.User}
	if password {
		srv.Password = s.Password
	} else {
		srv.PrivateKey = string(s.ClientKeys["ed25519"])
	}
	v, err := b.Client.AddServer(context.Background(), srv)
	if err != nil {
		t.Fatal(err)
	}
	return v.ID
}

// The agent binary is SIGKILLed while an SSH job runs: the next start
// adopts the remote run from the journal and completes it once, with its
// output whole; a run that ended while no agent ran is reported from its
// real exit status. Nothing secret is in the agent's log, in the journal
// file in clear, or on any process's command line.
func TestE2ESSHAgentKilled(t *testing.T) {
	testenv.Containerd(t)
	s := testenv.StartSSHD(t)
	b := startDevBackend(t, "")
	keyServer, pwServer := sshServer(t, b, s, "loopback-sshd", false), sshServer(t, b, s, "loopback-sshd", true)
	web1, web2 := sshServer(t, b, s, "web-1", false), sshServer(t, b, s, "web-2", true)
	state := stateDir(t)

	follow := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(40, "0.1", 0), ServerID: keyServer})
	ended := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: "echo before; sleep 2; echo after; echo oops >&2; exit 7", ServerID: pwServer})
	// Ends well within its timeout, which has passed when the next agent
	// starts: still reported from how it ended.
	pastTimeout := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: "echo quick; sleep 1; exit 4", ServerID: keyServer, Timeout: "3s"})
	// On two servers: each server's lines are skipped apart on adoption.
	multi := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(30, "0.1", 0), ServerIDs: []string{web1, web2}})
	first := startAgent(t, b.URL, state)
	waitLines(t, b, follow, 5)
	waitLines(t, b, ended, 1)
	waitLines(t, b, pastTimeout, 1)
	waitLines(t, b, multi, 6)
	assertNoSecretInCmdlines(t, s)
	first.signal(syscall.SIGKILL)
	first.waitDead(t, 10*time.Second)

	time.Sleep(4 * time.Second) // the other jobs' scripts end meanwhile
	second := startAgent(t, b.URL, state)

	v := waitJob(t, b, follow, time.Minute)
	if v.Status != "completed" || v.Completions != 1 {
		t.Errorf("followed job: %s, %d completing calls, output %+v", v.Status, v.Completions, v.Output)
	}
	assertNumbered(t, b, follow, 40)
	v = waitJob(t, b, ended, time.Minute)
	if v.Status != "failed" || exitCode(v) != 7 || v.Completions != 1 || v.Output == nil || v.Output.Stdout != "before\nafter\n" || v.Output.Stderr != "oops\n" {
		t.Errorf("job that ended meanwhile: %s exit %d, %d completing calls, output %+v", v.Status, exitCode(v), v.Completions, v.Output)
	}
	v = waitJob(t, b, pastTimeout, time.Minute)
	if v.Status != "failed" || exitCode(v) != 4 || v.Completions != 1 || v.Output == nil || v.Output.Stdout != "quick\n" {
		t.Errorf("job that ended before its timeout passed: %s exit %d, output %+v", v.Status, exitCode(v), v.Output)
	}
	v = waitJob(t, b, multi, time.Minute)
	if v.Status != "completed" || exitCode(v) != 0 || v.Completions != 1 {
		t.Errorf("multi-server job: %s exit %d, %d completing calls", v.Status, exitCode(v), v.Completions)
	}
	assertNumberedPerServer(t, b, multi, 30, "web-1", "web-2")
	for _, id := range []string{follow, ended, pastTimeout} {
		if execs := executions(t, b, id); len(execs) != 1 || execs[0].ServerID == nil || execs[0].ServerName != "loopback-sshd" {
			t.Errorf("%s: executions %+v, want one naming its server", id, execs)
		}
	}

	secrets := sshSecrets(s)
	for name, log := range map[string]string{"first agent": first.stderr.String(), "second agent": second.stderr.String()} {
		for _, sec := range secrets {
			if strings.Contains(log, sec) {
				t.Errorf("the %s's log holds a secret (%.12q...)", name, sec)
			}
		}
	}
	journal, err := os.ReadFile(filepath.Join(state, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range secrets {
		if bytes.Contains(journal, []byte(sec)) {
			t.Errorf("the journal file holds a secret in clear (%.12q...)", sec)
		}
	}
	// A work directory goes once its run's end is journaled, which may be
	// just after the backend has the job done.
	var dirs []string
	waitFor(t, 10*time.Second, func() bool {
		dirs = nil
		for _, id := range []string{follow, ended, pastTimeout} {
			more, _ := filepath.Glob("/tmp/cronium-" + id + "*")
			dirs = append(dirs, more...)
		}
		return len(dirs) == 0
	})
}

// sshSecrets are the credentials of s, as a log or a file would show them:
// the password, and a line of each private key's body.
func sshSecrets(s *testenv.SSHD) []string {
	out := []string{s.Password}
	for _, key := range s.ClientKeys {
		lines := strings.Split(string(key), "\n")
		if len(lines) > 2 {
			out = append(out, lines[1], lines[len(lines)/2])
		}
	}
	return out
}

// assertNoSecretInCmdlines reads every process's command line on this
// host (the agent's side and the server's: both are here).
func assertNoSecretInCmdlines(t *testing.T, s *testenv.SSHD) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	secrets := sshSecrets(s)
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, sec := range secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("%s holds a secret: %q", p, bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
			}
		}
	}
}
