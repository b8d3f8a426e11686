package sshexec

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/sshconn"
)

// A server of another architecture than the helper program's gets
// neither the program nor a worker (its jobs take the shell path), says
// why, and is not asked again.
func TestHelperOtherArchitecture(t *testing.T) {
	s := testenv.StartSSHD(t)
	hk, err := sshconn.OpenHostKeys(filepath.Join(t.TempDir(), "known_hosts"), sshconn.PolicyTOFU, sshconn.WithSystemKnownHosts(""))
	if err != nil {
		t.Fatal(err)
	}
	pool := sshconn.New(hk, sshconn.WithDialRetries(1, 10*time.Millisecond))
	t.Cleanup(func() { _ = pool.Close() })
	// Any file will do as the program: it must never be uploaded.
	bin := filepath.Join(t.TempDir(), "cronium")
	if err := os.WriteFile(bin, []byte("not for this server"), 0o700); err != nil {
		t.Fatal(err)
	}
	x := New(pool, runner.DefaultPolicy(), WithHelperProgram(bin))
	x.arch = "riscv128"
	ep := sshconn.Endpoint{Name: "test", Host: s.Host, Port: s.Port, User: s.User, PrivateKey: s.ClientKeys["ed25519"]}
	lease, err := pool.Get(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release()
	for range 2 {
		rel, err := x.ensureHelper(context.Background(), lease, ep)
		if rel != "" || err == nil || !strings.Contains(err.Error(), "the agent's helper program is built for riscv128") {
			t.Fatalf("ensureHelper = %q, %v", rel, err)
		}
		if w := x.worker(context.Background(), lease, ep); w != nil {
			t.Fatal("a worker on a server of another architecture")
		}
	}
	if n := strings.Count(s.Log(), "Starting session: command"); n != 1 {
		t.Errorf("%d sessions: the server was asked again", n)
	}
	u, err := user.Lookup(s.User)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(u.HomeDir, x.helperPath())); !os.IsNotExist(err) {
		t.Errorf("the program was uploaded: %v", err)
	}
}
