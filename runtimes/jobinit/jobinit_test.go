package jobinit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is the init when started with this variable set, as the
// agent binary is under the name Name.
const asInit = "CRONIUM_TEST_AS_INIT"

func TestMain(m *testing.M) {
	if os.Getenv(asInit) == "1" {
		os.Exit(Main(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

// initCmd runs script under the init, as bash -c would in a job.
func initCmd(t *testing.T, script string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "bash", "-c", script)
	cmd.Env = append(os.Environ(), asInit+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

func exitOf(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		want         int
	}{
		{"zero", "true", 0},
		{"own", "exit 42", 42},
		{"signal", "kill -USR2 $$", 128 + int(syscall.SIGUSR2)},
		{"sigkill", "kill -KILL $$", 128 + int(syscall.SIGKILL)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, out := initCmd(t, tc.script)
			if got := exitOf(t, cmd.Run()); got != tc.want {
				t.Errorf("exit %d, want %d (%s)", got, tc.want, out)
			}
		})
	}
}

func TestCommandNotFound(t *testing.T) {
	cmd := exec.Command(os.Args[0], "no-such-command-here")
	cmd.Env = append(os.Environ(), asInit+"=1")
	out, err := cmd.CombinedOutput()
	if got := exitOf(t, err); got != exitNotFound || !strings.Contains(string(out), "no-such-command-here") || !strings.HasPrefix(string(out), Name+": ") {
		t.Errorf("exit %d, output %q", got, out)
	}
}

// SIGTERM to the init reaches the script's process group: the trap runs,
// and its foreground child is stopped too.
func TestForwardsSIGTERMToTheGroup(t *testing.T) {
	cmd, out := initCmd(t, "trap 'echo cleanup; exit 5' TERM; echo ready; sleep 30; echo after")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	time.Sleep(100 * time.Millisecond) // let bash start sleep
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	// Bash reports the stopped sleep ("Terminated") before its trap runs.
	if got := exitOf(t, cmd.Wait()); got != 5 || !strings.HasSuffix(out.String(), "cleanup\n") || strings.Contains(out.String(), "after") {
		t.Errorf("exit %d, output %q", got, out)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s: the sleep was not signalled", took)
	}
}

// Orphans of the script are reaped (the init is their subreaper here, as
// PID 1 is in a job), and the init exits with the script, not with them.
func TestReapsOrphans(t *testing.T) {
	cmd, out := initCmd(t, `for i in $(seq 200); do (sleep 0.01 &); done; sleep 1
z=0; for s in /proc/[0-9]*/stat; do read -r pid comm state ppid rest 2>/dev/null < "$s" || continue
[ "$state" = Z ] && [ "$ppid" = "$PPID" ] && z=$((z+1)); done; echo "zombies=$z"; sleep 300 & exit 3`)
	start := time.Now()
	if got := exitOf(t, cmd.Run()); got != 3 || out.String() != "zombies=0\n" {
		t.Errorf("exit %d, output %q", got, out)
	}
	if took := time.Since(start); took > 60*time.Second {
		t.Errorf("took %s: the init waited for the script's children", took)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}

// Other signals are the script's alone: its running command carries on.
func TestForwardsUSR1ToTheScript(t *testing.T) {
	cmd, out := initCmd(t, "trap 'echo got' USR1; echo ready; sleep 1; echo after")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGUSR1)
	if got := exitOf(t, cmd.Wait()); got != 0 || out.String() != "ready\ngot\nafter\n" {
		t.Errorf("exit %d, output %q", got, out)
	}
}

// A warm sandbox's init takes the command and the whole environment from
// its start file; a file it cannot read is the init's own error (126).
func TestStartFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	data, _ := json.Marshal(Start{Args: []string{"bash", "-c", `echo "$JOB_VAR:${SANDBOX_VAR-unset}"; exit 7`}, Env: []string{"JOB_VAR=from-start", "PATH=" + os.Getenv("PATH")}})
	if err := os.WriteFile(good, data, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		want       int
		out        string
	}{
		{"runs the job's command with the job's environment alone", good, 7, "from-start:unset\n"},
		{"missing file", filepath.Join(dir, "missing"), exitCannotRun, Name + ": read the job's start"},
		{"malformed file", bad, exitCannotRun, Name + ": read the job's start from " + bad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], StartFlag, tc.file)
			cmd.Env = append(os.Environ(), asInit+"=1", "SANDBOX_VAR=sandbox")
			out, err := cmd.CombinedOutput()
			if got := exitOf(t, err); got != tc.want || !strings.HasPrefix(string(out), tc.out) {
				t.Errorf("exit %d, output %q; want %d, %q", got, out, tc.want, tc.out)
			}
		})
	}
}
