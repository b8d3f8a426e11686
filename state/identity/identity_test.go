package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func machineFile(t *testing.T, id string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "machine-id")
	if err := os.WriteFile(p, []byte(id+"\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFirstStartAndAgain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	m := WithMachineIDFile(machineFile(t, "0123456789abcdef0123456789abcdef"))
	id, err := Load(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(id.ID, "agent-") || len(id.ID) != len("agent-")+16 || id.Machine == "" || id.Copied != nil || id.Warning != "" {
		t.Errorf("identity %+v", id)
	}
	fi, err := os.Stat(filepath.Join(dir, File))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file %v %v", fi, err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, File))
	if strings.Contains(string(data), "0123456789abcdef") {
		t.Errorf("the machine id itself is kept: %q", data)
	}
	again, err := Load(dir, m)
	if err != nil || again.ID != id.ID || again.Copied != nil {
		t.Errorf("second start %+v %v, want %s", again, err, id.ID)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".orchestrator-id-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if got, bound, err := Peek(dir); err != nil || got != id.ID || bound != id.Machine {
		t.Errorf("Peek: %q %q %v", got, bound, err)
	}
}

func TestConcurrentFirstStartsAgree(t *testing.T) {
	dir := t.TempDir()
	m := WithMachineIDFile(machineFile(t, "aaaa"))
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, _ := Load(dir, m)
			ids[i] = id.ID
		}()
	}
	wg.Wait()
	for _, x := range ids {
		if x != ids[0] || x == "" {
			t.Fatalf("ids %v", ids)
		}
	}
}

func TestBadOrHandWrittenFiles(t *testing.T) {
	m := WithMachineIDFile(machineFile(t, "bbbb"))
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, File), []byte("bad id with spaces\n"), 0o600)
	if _, err := Load(dir, m); err == nil {
		t.Error("corrupt id accepted")
	}
	// An id of an older agent (no machine line) is kept, and bound.
	os.WriteFile(filepath.Join(dir, File), []byte("agent-edge-01\n"), 0o600)
	id, err := Load(dir, m)
	if err != nil || id.ID != "agent-edge-01" || id.Copied != nil {
		t.Fatalf("%+v %v", id, err)
	}
	if _, bound, _ := Peek(dir); bound != id.Machine {
		t.Errorf("the old id was not bound: %q", bound)
	}
}

// A state directory made on another machine is moved aside, kept whole
// but for the pinned host keys and the helpers, and a new id is made.
func TestCopiedStateIsMovedAside(t *testing.T) {
	dir := t.TempDir()
	a := WithMachineIDFile(machineFile(t, "machine-a"))
	first, err := Load(dir, a)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"journal.db", "journal.key", "runtime-api.key", "known_hosts"} {
		os.WriteFile(filepath.Join(dir, f), []byte(f), 0o600)
	}
	os.MkdirAll(filepath.Join(dir, "runs", "cronium-job_x"), 0o700)
	os.MkdirAll(filepath.Join(dir, "helpers", "v1"), 0o755)

	b := WithMachineIDFile(machineFile(t, "machine-b"))
	second, err := Load(dir, b)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID == first.ID || second.Copied == nil || second.Copied.ID != first.ID || second.Copied.Machine != first.Machine {
		t.Fatalf("on machine b: %+v (copied %+v), first %+v", second, second.Copied, first)
	}
	if !strings.HasPrefix(filepath.Base(second.Copied.Dir), "copied-state-") || filepath.Dir(second.Copied.Dir) != dir {
		t.Errorf("copy moved to %s", second.Copied.Dir)
	}
	for _, f := range []string{"journal.db", "journal.key", "runtime-api.key", "runs", File} {
		if _, err := os.Stat(filepath.Join(second.Copied.Dir, f)); err != nil {
			t.Errorf("%s not kept in the copy: %v", f, err)
		}
	}
	for _, f := range []string{"journal.db", "journal.key", "runtime-api.key", "runs"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s still in the state directory", f)
		}
	}
	for _, f := range []string{"known_hosts", "helpers"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s moved: %v", f, err)
		}
	}
	// The next start on b keeps the new id and moves nothing.
	third, err := Load(dir, b)
	if err != nil || third.ID != second.ID || third.Copied != nil {
		t.Errorf("third start %+v %v", third, err)
	}
	// The original machine, given this directory back, sees b's state as
	// a copy in turn.
	back, err := Load(dir, a)
	if err != nil || back.Copied == nil || back.Copied.ID != second.ID || back.ID == first.ID {
		t.Errorf("back on a: %+v %v", back, err)
	}
	copies, _ := filepath.Glob(filepath.Join(dir, "copied-state-*"))
	if len(copies) != 2 {
		t.Errorf("copies %v", copies)
	}
}

// A copy whose journal an agent holds right now is not moved: that is a
// running agent's state (two agents given one directory), not a copy.
func TestCopiedStateInUseIsRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir, WithMachineIDFile(machineFile(t, "machine-a"))); err != nil {
		t.Fatal(err)
	}
	j, err := os.Create(filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := syscall.Flock(int(j.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_, err = Load(dir, WithMachineIDFile(machineFile(t, "machine-b")))
	if err == nil || !strings.Contains(err.Error(), "an agent is using its journal") {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "journal.db")); err != nil {
		t.Errorf("the journal moved: %v", err)
	}
}

func TestMachineSources(t *testing.T) {
	none := filepath.Join(t.TempDir(), "absent")
	dmi := machineFile(t, "4C4C4544-0042-3510-8051-B4C04F4E4A31")
	empty := machineFile(t, "")
	zero := machineFile(t, "00000000-0000-0000-0000-000000000000")
	for _, tc := range []struct {
		name       string
		file, dmi  string
		wantSource string
	}{
		{"machine-id", machineFile(t, "feedface"), none, "machine-id"},
		{"DMI when no machine-id", none, dmi, dmi},
		{"DMI when machine-id empty", empty, dmi, dmi},
		{"none", none, zero, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := Load(t.TempDir(), WithMachineIDFile(tc.file), WithDMIPath(tc.dmi))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantSource == "":
				if id.Source != "" || id.Machine != "" || !strings.Contains(id.Warning, "no identity") {
					t.Errorf("%+v", id)
				}
			case !strings.HasSuffix(id.Source, tc.wantSource) || id.Machine == "" || id.Warning != "":
				t.Errorf("%+v", id)
			}
		})
	}
}

func TestNextInstance(t *testing.T) {
	dir := t.TempDir()
	first, prev, err := NextInstance(dir)
	if err != nil || prev != "" || len(first) != 16 {
		t.Fatalf("first start: %q %q %v", first, prev, err)
	}
	second, prev, err := NextInstance(dir)
	if err != nil || prev != first || second == first {
		t.Fatalf("restart: %q after %q, want after %q (%v)", second, prev, first, err)
	}
}

func TestFree(t *testing.T) {
	dir := t.TempDir()
	if err := Free(dir); err != nil {
		t.Fatalf("no journal: %v", err)
	}
	j, err := os.Create(filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := Free(dir); err != nil {
		t.Fatalf("journal not held: %v", err)
	}
	if err := syscall.Flock(int(j.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if err := Free(dir); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "state.dir of its own") {
		t.Errorf("held journal: %v", err)
	}
}
