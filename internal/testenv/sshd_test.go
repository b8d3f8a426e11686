package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// run runs cmd in a new session of c and returns its trimmed output.
func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("new session for %q: %v", cmd, err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%q: %v: %s", cmd, err, out)
	}
	return strings.TrimSpace(string(out))
}

// userProcs returns the pids of SSHDUser's processes whose command line is
// exactly cmdline.
func userProcs(t *testing.T, cmdline string) []string {
	t.Helper()
	out, err := exec.Command("pgrep", "-u", SSHDUser, "-x", "-f", cmdline).Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("pgrep: %v", err)
	}
	return strings.Fields(string(out))
}

// killUserProcs kills SSHDUser's processes whose command line is cmdline.
func killUserProcs(cmdline string) {
	_ = exec.Command("pkill", "-KILL", "-u", SSHDUser, "-x", "-f", cmdline).Run()
}

// uniqueSleep is a sleep command line no other test process runs.
func uniqueSleep(seconds int) string {
	return fmt.Sprintf("sleep %d.%06d", seconds, rand.IntN(1000000))
}

func TestSSHDLogins(t *testing.T) {
	start := time.Now()
	s := StartSSHD(t)
	t.Logf("StartSSHD took %v (%s, host key %s)", time.Since(start), s.Addr, ssh.FingerprintSHA256(s.HostKey))
	if s.Host != "127.0.0.1" || s.Addr != net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) {
		t.Fatalf("Addr %q, Host %q, Port %d", s.Addr, s.Host, s.Port)
	}
	for _, auth := range append(SSHDKeyTypes(), "password") {
		t.Run(auth, func(t *testing.T) {
			c := s.Dial(t, auth)
			if got := run(t, c, "id -un"); got != SSHDUser {
				t.Fatalf("id -un = %q, want %q", got, SSHDUser)
			}
		})
	}
	if !strings.Contains(s.Log(), "Accepted password for "+SSHDUser) {
		t.Errorf("the log tells no password login:\n%s", s.Log())
	}
	// A second server of the same process gets a port and host key of its own.
	s2 := StartSSHD(t)
	if s2.Port == s.Port || bytes.Equal(s2.HostKey.Marshal(), s.HostKey.Marshal()) {
		t.Errorf("two servers share port %d or host key", s.Port)
	}
}

func TestSSHDConcurrentSessions(t *testing.T) {
	s := StartSSHD(t)
	c := s.Dial(t, "ed25519")
	const n = 10
	sessions := make([]*ssh.Session, n)
	for i := range sessions {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		defer sess.Close()
		sessions[i] = sess
	}
	// Each session waits until all ten run at once (or 10s pass).
	dir := SSHDHome + "/.sessions-" + strconv.Itoa(s.Port)
	t.Cleanup(func() { os.RemoveAll(dir) })
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, sess := range sessions {
		wg.Go(func() {
			out, err := sess.CombinedOutput(fmt.Sprintf(
				"mkdir -p %[1]s && touch %[1]s/s%[2]d && for _ in $(seq 100); do [ $(ls %[1]s | wc -l) -ge %[3]d ] && break; sleep 0.1; done; echo %[2]d $(ls %[1]s | wc -l)",
				dir, i, n))
			if err == nil && string(out) != fmt.Sprintf("%d %d\n", i, n) {
				err = fmt.Errorf("output %q", out)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("session %d: %v", i, err)
		}
	}
}

func TestSSHDRemoteForward(t *testing.T) {
	s := StartSSHD(t)
	c := s.Dial(t, "rsa")
	ln, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("remote forward: %v\n%s", err, s.Log())
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(conn, "through the tunnel\n")
			conn.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	got := run(t, c, fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d && cat <&3", port))
	if got != "through the tunnel" {
		t.Fatalf("read %q through the remote forward on port %d", got, port)
	}
}

func TestSSHDWithoutForwardingOrPassword(t *testing.T) {
	s := StartSSHD(t, WithoutForwarding(), WithoutPassword())
	c := s.Dial(t, "ecdsa")
	if ln, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
		t.Fatal("the server accepted a remote forward")
	}
	if c, err := ssh.Dial("tcp", s.Addr, s.ClientConfig(t, "password")); err == nil {
		c.Close()
		t.Fatal("the server accepted a password")
	}
	if got := run(t, c, "id -un"); got != SSHDUser {
		t.Fatalf("id -un = %q", got)
	}
}

func TestSSHDKillAndStart(t *testing.T) {
	s := StartSSHD(t)
	pinned := s.ClientConfig(t, "ed25519")
	c, err := ssh.Dial("tcp", s.Addr, pinned)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	detached, attached := uniqueSleep(30), uniqueSleep(600)
	t.Cleanup(func() { killUserProcs(detached); killUserProcs(attached) })
	run(t, c, "setsid nohup "+detached+" >/dev/null 2>&1 </dev/null &")
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Start("exec " + attached); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(userProcs(t, detached)) == 0 || len(userProcs(t, attached)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%q or %q did not start", detached, attached)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	listener := s.cmd.Process.Pid
	s.mu.Unlock()
	self, _ := unix.Getsid(0)
	before := sshdTree(readProcStats(), listener, self)
	if len(before) < 4 { // listener, monitor, user child, attached sleep
		t.Fatalf("the server's processes are %v", before)
	}

	dropped := make(chan error, 1)
	go func() { dropped <- c.Wait() }()
	killed := time.Now()
	s.Kill()
	select {
	case <-dropped:
		t.Logf("connection dropped %v after Kill began", time.Since(killed))
	case <-time.After(5 * time.Second):
		t.Fatal("the connection is still open after Kill")
	}
	for pid := range before {
		if p, ok := readProcStat(pid); ok && p.state != 'Z' {
			t.Errorf("process %d (%s) of the server survived Kill", pid, p.comm)
		}
	}
	if pids := userProcs(t, detached); len(pids) != 1 {
		t.Errorf("the setsid job %q: pids %v after Kill, want one", detached, pids)
	}
	if pids := userProcs(t, attached); len(pids) != 0 {
		t.Errorf("the session's own process %q survived Kill: %v", attached, pids)
	}
	if _, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		t.Error("something still listens on the killed server's port")
	}

	s.Start()
	c2, err := ssh.Dial("tcp", s.Addr, pinned) // the host key pinned before
	if err != nil {
		t.Fatalf("login after Start: %v\n%s", err, s.Log())
	}
	defer c2.Close()
	if got := run(t, c2, "id -un"); got != SSHDUser {
		t.Fatalf("id -un = %q", got)
	}
	s.Kill()
	s.Kill() // again: nothing to do
}

func TestSSHDRotateHostKey(t *testing.T) {
	s := StartSSHD(t)
	old := s.HostKey
	pinned := s.ClientConfig(t, "ed25519")
	open := s.Dial(t, "ed25519")

	s.RotateHostKey()
	if bytes.Equal(old.Marshal(), s.HostKey.Marshal()) {
		t.Fatal("RotateHostKey kept the host key")
	}
	if c, err := ssh.Dial("tcp", s.Addr, pinned); err == nil {
		c.Close()
		t.Fatal("a client that pinned the old host key logged in")
	} else if !strings.Contains(err.Error(), "host key mismatch") {
		t.Fatalf("with the old host key pinned: %v", err)
	}
	if got := run(t, s.Dial(t, "ecdsa"), "id -un"); got != SSHDUser {
		t.Fatalf("id -un = %q", got)
	}
	// A restart on SIGHUP leaves open connections alone.
	if got := run(t, open, "echo still here"); got != "still here" {
		t.Fatalf("open connection after the rotation: %q", got)
	}

	// After Kill, the new key is the one Start serves.
	s.Kill()
	s.RotateHostKey()
	s.Start()
	if got := run(t, s.Dial(t, "password"), "id -un"); got != SSHDUser {
		t.Fatalf("id -un = %q", got)
	}
}
