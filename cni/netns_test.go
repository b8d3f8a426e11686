package cni

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cronium/cronium-agent/internal/testenv"
)

// A job's namespace stays removable when someone runs `ip netns add` on
// the host while it exists: on a machine where /run/netns is not yet a
// mount point, ip's first bind of it would hide the namespaces mounted
// there before (as a fresh CI machine showed). The agent binds it first.
//
// The test runs in a private mount namespace of its own (a child process
// under unshare), where it can make /run/netns a plain directory again
// without touching the host's.
func TestNetnsDirBoundBeforeIPNetnsAdd(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "network tests must run as root")
	}
	if os.Getenv("CRONIUM_NETNS_CHILD") == "" {
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0],
			"-test.run=^TestNetnsDirBoundBeforeIPNetnsAdd$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "CRONIUM_NETNS_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestNetnsDirBoundBeforeIPNetnsAdd") {
			t.Fatalf("in a private mount namespace: %v\n%s", err, out)
		}
		return
	}
	dir, err := filepath.EvalSymlinks(netnsDir)
	if err != nil {
		t.Fatal(err)
	}
	// As on a fresh machine: /run/netns a plain directory.
	for unix.Unmount(dir, unix.MNT_DETACH) == nil {
	}
	name := "cronium-job_nettest-ipadd"
	if err := createNetNS(name); err != nil {
		t.Fatal(err)
	}
	other := "crtest-ipadd"
	if out, err := exec.Command("ip", "netns", "add", other).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", other).Run()
	if err := deleteNetNS(name); err != nil {
		t.Fatalf("remove the job's namespace after ip netns add: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
		t.Errorf("the job's namespace file is still there: %v", err)
	}
}
