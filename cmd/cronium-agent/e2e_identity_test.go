package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/state/identity"
)

// machineIDFile makes a machine-id file for an agent that plays another
// host, and returns the variable that points the agent at it.
func machineIDFile(t *testing.T, id string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "machine-id")
	if err := os.WriteFile(p, []byte(id+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	return "CRONIUM_MACHINE_ID_FILE=" + p
}

// A host installed from an image of another (its state directory copied,
// agent id included) gets an id and a journal of its own, and touches
// nothing of the first host's: agent A, running a long job, is SIGKILLed,
// its state directory copied; A restarts and completes the job once; B,
// started from the copy on "another machine", moves the copy aside, takes
// a new id, and neither releases, adopts nor reports A's job.
func TestE2EClonedStateGetsItsOwnIdentity(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	stateA := stateDir(t)
	onA := machineIDFile(t, "11111111111111111111111111111111")
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(60, "0.1", 0)})
	a := startAgent(t, b.URL, stateA, onA)
	waitLines(t, b, id, 5)
	a.signal(syscall.SIGKILL)
	a.waitDead(t, 10*time.Second)
	idA, boundA, err := identity.Peek(stateA)
	if err != nil || boundA == "" {
		t.Fatalf("A's id: %q bound %q, %v", idA, boundA, err)
	}

	// The image: A's state directory as it was left.
	stateB := stateDir(t)
	if out, err := exec.Command("cp", "-a", stateA+"/.", stateB).CombinedOutput(); err != nil {
		t.Fatalf("copy the state: %v %s", err, out)
	}
	os.Remove(filepath.Join(stateB, "admin.sock"))

	startAgent(t, b.URL, stateA, onA)
	// Generous: under the whole suite an adoption can take long.
	waitFor(t, 3*time.Minute, func() bool {
		v, _ := b.Client.Job(context.Background(), id)
		return v.LogLines > 15 // A has adopted the job and goes on
	})
	bProc := startAgent(t, b.URL, stateB, machineIDFile(t, "22222222222222222222222222222222"))

	v := waitJob(t, b, id, 2*time.Minute)
	if v.Status != "completed" || v.Completions != 1 || v.Orchestrator != idA || v.Releases != 0 {
		t.Errorf("job: %s, %d completing calls, by %s (A is %s), %d releases", v.Status, v.Completions, v.Orchestrator, idA, v.Releases)
	}
	assertNumbered(t, b, id, 60)

	idB, boundB, err := identity.Peek(stateB)
	if err != nil || idB == idA || boundB == boundA || boundB == "" {
		t.Fatalf("B's id %q bound %q (%v); A's %q bound %q", idB, boundB, err, idA, boundA)
	}
	copies, _ := filepath.Glob(filepath.Join(stateB, "copied-state-*-"+idA))
	if len(copies) != 1 {
		t.Fatalf("the copy was not moved aside: %v", copies)
	}
	if _, err := os.Stat(filepath.Join(copies[0], "journal.db")); err != nil {
		t.Errorf("the copied journal is not kept: %v", err)
	}
	// One warning naming both ids and where the copy went.
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(bProc.stderr.String(), "moved aside") })
	logB := bProc.stderr.String()
	for _, l := range strings.Split(logB, "\n") {
		if strings.Contains(l, "moved aside") {
			t.Logf("B's warning: %s", l)
		}
	}
	if strings.Count(logB, "moved aside") != 1 || !strings.Contains(logB, idA) || !strings.Contains(logB, idB) || !strings.Contains(logB, copies[0]) {
		t.Errorf("B's log:\n%s", logB)
	}
	// B calls the backend as itself, holding nothing.
	waitFor(t, 10*time.Second, func() bool {
		orchs, _ := b.Client.Orchestrators(context.Background())
		return slices.ContainsFunc(orchs, func(o devserver.OrchestratorView) bool { return o.ID == idB })
	})
	for _, h := range v.History {
		if strings.Contains(h.Detail, idB) {
			t.Errorf("B in the job's history: %+v", h)
		}
	}
	// Its status says what its id is bound to.
	cmd := exec.Command(agentBin, "status")
	cmd.Env = append(os.Environ(), "CRONIUM_STATE_DIR="+stateB, "CRONIUM_ADMIN_SOCKET="+filepath.Join(stateB, "admin.sock"))
	out, err := cmd.CombinedOutput()
	t.Logf("B's status:\n%s", out)
	if err != nil || !strings.Contains(string(out), idB) || !strings.Contains(string(out), "bound to this machine") {
		t.Errorf("status: %v\n%s", err, out)
	}
}

// Two agent processes given one explicit id (and state directories of
// their own): the backend refuses the second's claims and orphan listing
// with 409, the second says so in its log and status and claims nothing;
// the first's running job is neither released nor run twice.
func TestE2ETwoAgentsOneIDSecondRefused(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	const shared = "CRONIUM_ORCHESTRATOR_ID=agent-shared"
	long := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: printer(40, "0.1", 0)})
	startAgent(t, b.URL, stateDir(t), shared)
	waitLines(t, b, long, 3)
	stateB := stateDir(t)
	second := startAgent(t, b.URL, stateB, shared)
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(second.stderr.String(), "the backend refuses this agent") })
	more := []string{
		submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: "echo one"}),
		submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: "echo two"}),
	}
	for _, id := range append(more, long) {
		v := waitJob(t, b, id, 2*time.Minute)
		if v.Status != "completed" || v.Completions != 1 || v.Releases != 0 || v.Claims != 1 {
			t.Errorf("job %s: %s, %d completions, %d releases, %d claims", id, v.Status, v.Completions, v.Releases, v.Claims)
		}
	}
	assertNumbered(t, b, long, 40)
	if n := strings.Count(second.stderr.String(), "the backend refuses this agent"); n != 1 {
		t.Errorf("the refusal logged %d times:\n%s", n, second.stderr.String())
	}
	cmd := exec.Command(agentBin, "status")
	cmd.Env = append(os.Environ(), "CRONIUM_STATE_DIR="+stateB, "CRONIUM_ADMIN_SOCKET="+filepath.Join(stateB, "admin.sock"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "refused by the backend: another live agent uses this id") {
		t.Errorf("second's status: %v\n%s", err, out)
	}
	// The agents view names the live process and counts the refusals.
	cmd = exec.Command(agentBin, "backend", "agents", "--json")
	cmd.Env = append(os.Environ(), "CRONIUM_BACKEND_URL="+b.URL, "CRONIUM_BACKEND_TOKEN="+e2eToken)
	out, err = cmd.Output()
	host, _ := os.Hostname()
	if err != nil || !strings.Contains(string(out), `"id": "agent-shared"`) || !strings.Contains(string(out), `"state": "online"`) ||
		!strings.Contains(string(out), `"host": "`+host+`"`) || strings.Contains(string(out), `"refusals": 0`) || !strings.Contains(string(out), `"refusals"`) {
		t.Errorf("agents: %v\n%s", err, out)
	}
}

// A second agent given the state directory of a running one refuses at
// once with a clear error, and changes nothing of that state: the running
// agent's instance is still the one a restart of it names.
func TestE2ESecondAgentOnOneStateDirRefuses(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	state := stateDir(t)
	first := startAgent(t, b.URL, state)
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: "echo one"})
	waitJob(t, b, id, time.Minute)
	before, err := os.ReadFile(filepath.Join(state, identity.InstanceFile))
	if err != nil {
		t.Fatal(err)
	}
	second := exec.Command(agentBin, "run")
	second.Env = append(os.Environ(), "CRONIUM_API_ENDPOINT="+b.URL, "CRONIUM_API_TOKEN="+e2eToken,
		"CRONIUM_CONTAINERD_ADDRESS="+testenv.Address(), "CRONIUM_STATE_DIR="+state,
		"CRONIUM_ADMIN_SOCKET="+filepath.Join(t.TempDir(), "admin.sock"), "CRONIUM_METRICS_LISTEN=127.0.0.1:0")
	out, err := second.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitAgent || !strings.Contains(string(out), "in use by another agent") || !strings.Contains(string(out), state) {
		t.Fatalf("second agent: %v\n%s", err, out)
	}
	after, _ := os.ReadFile(filepath.Join(state, identity.InstanceFile))
	if string(after) != string(before) {
		t.Errorf("the instance file changed: %q to %q", before, after)
	}
	// The first goes on taking jobs.
	id = submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: "echo two"})
	if v := waitJob(t, b, id, time.Minute); v.Status != "completed" {
		t.Errorf("after the refused start: %s\n%s", v.Status, first.stderr.String())
	}
}
