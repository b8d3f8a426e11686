package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
)

// maskScript prints $API_TOKEN on stdout, split across two writes (the
// line's head, then its rest 0.3 s later), across two entries (a line
// longer than output.MaxLine is cut into fragments: its first ends with
// the secret's first 5 bytes), on stderr, and last without a newline; and
// an ordinary value.
const maskScript = `echo "$API_TOKEN"
printf '%s' "${API_TOKEN:0:5}"; sleep 0.3; printf '%s\n' "${API_TOKEN:5}"
printf '%*s' 65531 '' | tr ' ' x; echo "$API_TOKEN"
echo "$API_TOKEN" >&2
echo "plain $GREETING"
printf '%s' "$API_TOKEN"
`

const (
	maskSecret = "s3cr3t-T0ken-value-42"
	maskPlain  = "visible-value-17"
)

// TestE2ESecretsMasked runs a script printing a secret through the agent
// binary and containerd: the backend's live log and completion, `cronium-
// agent logs` and the journal file never show it; with logs.mask off
// (CRONIUM_LOGS_MASK=false) the completion does.
func TestE2ESecretsMasked(t *testing.T) {
	testenv.Containerd(t)
	b := startDevBackend(t, "")
	state := stateDir(t)
	a := startAgent(t, b.URL, state)
	id := submit(t, b, devserver.SubmitRequest{Runtime: "bash", Script: maskScript,
		Env: map[string]string{"API_TOKEN": maskSecret, "GREETING": maskPlain}})
	v := waitJob(t, b, id, time.Minute)
	if exitCode(v) != 0 || v.Output == nil {
		t.Fatalf("job ended %s, exit %d, output %+v", v.Status, exitCode(v), v.Output)
	}
	long := strings.Repeat("x", 65531)
	if want := "***\n***\n" + long + "***\nplain " + maskPlain + "\n***"; v.Output.Stdout != want {
		t.Errorf("completion stdout %.200q, want %.200q", v.Output.Stdout, want)
	}
	if want := "***\n"; v.Output.Stderr != want {
		t.Errorf("completion stderr %q, want %q", v.Output.Stderr, want)
	}
	lines := assertLogsInOrder(t, b, id)
	// The long line's first fragment without the head of the secret, held
	// back for the next entry: the rest of the line.
	if i := slices.Index(lines, "stdout:"+long); i < 0 || !slices.Contains(lines[i+1:], "stdout:***") {
		t.Errorf("live log has no fragment %q followed by ***", "x…x")
	}
	live := strings.ReplaceAll(strings.Join(lines, "\n"), long, "x…x")
	t.Logf("live log:\n%s", live)
	if strings.Contains(live, maskSecret) || !strings.Contains(live, "stderr:***") || !strings.Contains(live, "plain "+maskPlain) {
		t.Errorf("live log:\n%s", live)
	}

	r := agentEnv(t, []string{"CRONIUM_ADMIN_SOCKET=" + filepath.Join(state, "admin.sock")}, "logs", id)
	if r.code != 0 || strings.Contains(r.stdout, maskSecret) || !strings.Contains(r.stdout, "***") || !strings.Contains(r.stdout, maskPlain) {
		t.Errorf("cronium-agent logs: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	a.signal(syscall.SIGTERM)
	a.wait(t, 30*time.Second)
	raw, err := os.ReadFile(filepath.Join(state, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(maskSecret)) {
		t.Error("the journal file holds the secret")
	}
	if !bytes.Contains(raw, []byte("plain "+maskPlain)) {
		t.Error("the journal file does not hold the ordinary value: the search proves nothing")
	}

	// logs.mask: false shows it.
	b2 := startDevBackend(t, "")
	startAgent(t, b2.URL, stateDir(t), "CRONIUM_LOGS_MASK=false")
	id = submit(t, b2, devserver.SubmitRequest{Runtime: "bash", Script: maskScript,
		Env: map[string]string{"API_TOKEN": maskSecret, "GREETING": maskPlain}})
	v = waitJob(t, b2, id, time.Minute)
	if v.Output == nil || v.Output.Stderr != maskSecret+"\n" || strings.Count(v.Output.Stdout, maskSecret) != 4 {
		t.Errorf("with logs.mask false: output %+v", v.Output)
	}
}
