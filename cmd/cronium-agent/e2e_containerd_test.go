package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/testenv"
)

// privateAgentEnv points an agent at a containerd of the test's own (these
// tests take containerd away under running jobs, which must not touch the
// other tests'). The network state stays the host's: agents sharing a host
// share it.
func privateAgentEnv(t *testing.T, d *testenv.Daemon) []string {
	t.Helper()
	ref, err := os.ReadFile(filepath.Join(testenv.ImageCache(), "bash.ref"))
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		"CRONIUM_CONTAINERD_ADDRESS=" + d.Address(),
		"CRONIUM_RUNTIMES_BASH_IMAGE=" + strings.TrimSpace(string(ref)),
	}
}

// cniRunDir is the agents' default network run dir (the tests keep it).
const cniRunDir = "/run/cronium-agent/cni"

// rebootNetwork removes what a reboot removes of a job's network: its
// namespace mount and its files in the run dir (record, lock, IP lease).
// The bridge stays, as a stale agent's would not after a real reboot, to
// check that the sweep removes it. It returns the bridge's name.
func rebootNetwork(t *testing.T, jobID string) string {
	t.Helper()
	var netID string
	for _, name := range mustReadDir(t, filepath.Join(cniRunDir, "nets")) {
		if id, ok := strings.CutSuffix(name, ".json"); ok && strings.Contains(id, jobID) {
			netID = id
		}
	}
	if netID == "" {
		t.Fatalf("no network record of job %s", jobID)
	}
	netns, bridge := cni.Names(netID)
	syscall.Unmount(filepath.Join("/run/netns", netns), syscall.MNT_DETACH)
	os.Remove(filepath.Join("/run/netns", netns))
	for _, f := range filesOf(t, cniRunDir, netID) {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	return bridge
}

// filesOf lists the files below dir whose name or content names id.
func filesOf(t *testing.T, dir, id string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(path)
		if strings.Contains(e.Name(), id) || strings.Contains(string(data), id) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

func TestE2EContainerdRestartWhileJobsRun(t *testing.T) {
	d := testenv.PrivateContainerd(t)
	env := privateAgentEnv(t, d)
	b := startDevBackend(t, "")
	state := stateDir(t)
	a := startAgent(t, b.URL, state, env...)
	const n = 80
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(n, "0.1", 0)})
	waitLines(t, b, id, 10)
	d.Restart(t)
	v := waitJob(t, b, id, 2*time.Minute)
	if v.Status != "completed" || exitCode(v) != 0 || v.Completions != 1 {
		t.Errorf("job across a containerd restart: %s exit %d, %d completing calls (error %q)\n%s", v.Status, exitCode(v), v.Completions, v.Error, a.stderr.String())
	}
	assertNumbered(t, b, id, n)
}

// TestE2EHostReboot simulates a power cycle while a job runs: the agent dies,
// the job's processes and shim die, containerd's and the network's state in
// /run is gone, containerd starts again. The next agent reports the run
// failed with a clear message, with what it printed, and cleans up.
func TestE2EHostReboot(t *testing.T) {
	d := testenv.PrivateContainerd(t)
	env := privateAgentEnv(t, d)
	b := startDevBackend(t, "")
	state := stateDir(t)
	first := startAgent(t, b.URL, state, env...)
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(600, "0.1", 0)})
	waitLines(t, b, id, 5)
	first.signal(syscall.SIGKILL)
	first.waitDead(t, 10*time.Second)
	// What a reboot clears: the job's processes and shims, /run.
	d.PowerCycle(t)
	bridge := rebootNetwork(t, id)

	startAgent(t, b.URL, state, env...)
	v := waitJob(t, b, id, 2*time.Minute)
	if v.Status != "failed" || v.Completions != 1 || v.Output == nil || !strings.Contains(v.Output.Stderr, "restart") || !strings.Contains(v.Output.Stdout, "n 1\n") {
		t.Errorf("job lost in a reboot: %s exit %d, %d completing calls, output %+v", v.Status, exitCode(v), v.Completions, v.Output)
	}
	lines := assertLogsInOrder(t, b, id)
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "system:") {
		t.Errorf("the live log does not end with the agent's explanation: %q", last)
	}
	// The sweep at start removed the dead run's bridge; nothing of its
	// network is left.
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Errorf("bridge %s of the run lost in the reboot is still there", bridge)
	}
	if left := filesOf(t, cniRunDir, strings.TrimPrefix(id, "job_")); len(left) > 0 {
		t.Errorf("network files left: %v", left)
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
