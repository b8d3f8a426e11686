package container

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cronium/cronium-agent/internal/testenv"
)

// The shim wrapper answers containerd's clean-up call itself only when the
// shim's clean deletion is visible; every other call, and that one when
// anything is left, reaches the real shim with its arguments unchanged.
func TestShimWrapper(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "the shim wrapper test writes below /run/containerd/runc: it must run as root")
	}
	dir := t.TempDir()
	wrapper, runc, err := installWrappers(filepath.Join(dir, "shim"))
	if err != nil {
		t.Fatal(err)
	}
	// Installing again keeps the files (tasks' bundles name them).
	fi0, _ := os.Stat(wrapper)
	ri0, _ := os.Stat(runc)
	if again, againRunc, err := installWrappers(filepath.Join(dir, "shim")); err != nil || again != wrapper || againRunc != runc {
		t.Fatalf("second install: %s %s %v", again, againRunc, err)
	}
	fi1, _ := os.Stat(wrapper)
	ri1, _ := os.Stat(runc)
	if !os.SameFile(fi0, fi1) || fi1.Mode().Perm() != 0o755 || !os.SameFile(ri0, ri1) || ri1.Mode().Perm() != 0o755 {
		t.Errorf("second install replaced a wrapper or changed its mode: %v %v", fi1.Mode(), ri1.Mode())
	}
	// A stand-in for containerd's shim, first in PATH, records its calls.
	bin := filepath.Join(dir, "bin")
	calls := filepath.Join(dir, "calls")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	fake := "#!/bin/sh\necho \"$*\" >> " + calls + "\necho real-shim-answer\n"
	if err := os.WriteFile(filepath.Join(bin, "containerd-shim-runc-v2"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	ns, id := "cronium-shimtest", "job_shimtest"
	state := filepath.Join("/run/containerd/runc", ns, id)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(state)) })
	bundle := filepath.Join(dir, "bundle")
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	base := []string{"-namespace", ns, "-address", "/run/x/containerd.sock", "-publish-binary", "/usr/bin/containerd", "-id", id}
	deleteArgs := append(append([]string{}, base...), "-bundle", bundle, "delete")
	for _, tc := range []struct {
		name     string
		args     []string
		state    bool // runc still has state for the container
		mounted  bool // its root file system is still mounted
		noGrep   bool // the mount check cannot run
		wantReal bool
	}{
		{"start goes to the shim", append(append([]string{}, base...), "start"), false, false, false, true},
		{"clean-up after a clean deletion is answered", deleteArgs, false, false, false, false},
		{"clean-up of a container runc still has", deleteArgs, true, false, false, true},
		{"clean-up with the root file system still mounted", deleteArgs, false, true, false, true},
		{"clean-up when the mount check fails", deleteArgs, false, false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(calls)
			os.RemoveAll(state)
			if tc.state {
				if err := os.MkdirAll(state, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if tc.mounted {
				if err := unix.Mount("tmpfs", rootfs, "tmpfs", 0, "size=64k"); err != nil {
					t.Fatal(err)
				}
				defer unix.Unmount(rootfs, unix.MNT_DETACH)
			}
			cmd := exec.Command(wrapper, tc.args...)
			cmd.Dir = bundle
			cmd.Env = []string{"PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin"}
			if tc.noGrep {
				cmd.Env = []string{"PATH=" + bin}
			}
			// Its answer is stdout, what containerd reads; stderr is for
			// containerd's log.
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("wrapper: %v %s", err, stderr.String())
			}
			got, _ := os.ReadFile(calls)
			if tc.wantReal {
				if strings.TrimSpace(string(got)) != strings.Join(tc.args, " ") || strings.TrimSpace(string(out)) != "real-shim-answer" {
					t.Errorf("the shim got %q and answered %q, want %q", got, out, strings.Join(tc.args, " "))
				}
			} else if len(got) != 0 || len(out) != 0 {
				t.Errorf("the shim was called (%q) or the wrapper answered %q, want an empty answer", got, out)
			}
		})
	}
}

// The runc wrapper starts a created container itself (it opens the exec
// fifo its init waits on, as runc start does) only when the call is the
// shim's and the init waits at its barrier; everything else reaches runc
// with its arguments unchanged.
func TestRuncWrapper(t *testing.T) {
	dir := t.TempDir()
	_, wrapper, err := installWrappers(filepath.Join(dir, "shim"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	calls := filepath.Join(dir, "calls")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	fake := "#!/bin/sh\necho \"$*\" >> " + calls + "\n"
	if err := os.WriteFile(filepath.Join(bin, "runc"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	id := "job_runctest"
	ctrDir := filepath.Join(root, id)
	fifo := filepath.Join(ctrDir, "exec.fifo")
	global := []string{"--root", root, "--log", filepath.Join(dir, "log.json"), "--log-format", "json"}
	startArgs := append(append([]string{}, global...), "start", id)
	for _, tc := range []struct {
		name     string
		args     []string
		init     string // "waiting": an init at its barrier; "stuck": alive, never opens the fifo; "dead": exited; "": none
		wantReal bool
		wantErr  string
	}{
		{"start of a waiting init", startArgs, "waiting", false, ""},
		{"start with the systemd flag", append(append(append([]string{}, global...), "--systemd-cgroup"), "start", id), "waiting", false, ""},
		{"start of a dead init", startArgs, "dead", true, ""},
		{"start of a zombie init", startArgs, "zombie", true, ""},
		{"start of an init that never takes it", startArgs, "stuck", false, "did not take its start within 10s"},
		{"start without a fifo (started already)", startArgs, "", true, ""},
		{"start with flags of its own", append(append([]string{}, global...), "start", "--foo", id), "waiting", true, ""},
		{"create", append(append([]string{}, global...), "create", "--bundle", "/b", "--pid-file", "/p", id), "", true, ""},
		{"delete", append(append([]string{}, global...), "delete", id), "", true, ""},
		{"state", append(append([]string{}, global...), "state", id), "", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(calls)
			os.Remove(filepath.Join(dir, "init.pid"))
			os.RemoveAll(ctrDir)
			if err := os.MkdirAll(ctrDir, 0o700); err != nil {
				t.Fatal(err)
			}
			var initProc *exec.Cmd
			pid := 0
			switch tc.init {
			case "waiting":
				if err := unix.Mkfifo(fifo, 0o622); err != nil {
					t.Fatal(err)
				}
				// As runc's init: open the fifo for writing (which waits
				// for a reader), write one byte, go on.
				initProc = exec.Command("sh", "-c", `printf 0 > "$1"`, "init", fifo)
				if err := initProc.Start(); err != nil {
					t.Fatal(err)
				}
				defer func() { initProc.Process.Kill(); initProc.Wait() }()
				pid = initProc.Process.Pid
			case "stuck":
				if err := unix.Mkfifo(fifo, 0o622); err != nil {
					t.Fatal(err)
				}
				initProc = exec.Command("sleep", "60")
				if err := initProc.Start(); err != nil {
					t.Fatal(err)
				}
				defer func() { initProc.Process.Kill(); initProc.Wait() }()
				pid = initProc.Process.Pid
			case "zombie":
				if err := unix.Mkfifo(fifo, 0o622); err != nil {
					t.Fatal(err)
				}
				initProc = exec.Command("true")
				if err := initProc.Start(); err != nil {
					t.Fatal(err)
				}
				defer initProc.Wait()
				pid = initProc.Process.Pid
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					if stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); bytes.Contains(stat, []byte(") Z ")) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("true did not become a zombie")
					}
				}
			case "dead":
				if err := unix.Mkfifo(fifo, 0o622); err != nil {
					t.Fatal(err)
				}
				gone := exec.Command("true")
				if err := gone.Run(); err != nil {
					t.Fatal(err)
				}
				pid = gone.Process.Pid
			}
			// The shim's init.pid, in the bundle beside log.json: the pid
			// without a newline, as runc writes it.
			if pid != 0 {
				if err := os.WriteFile(filepath.Join(dir, "init.pid"), []byte(strconv.Itoa(pid)), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(wrapper, tc.args...)
			cmd.Env = []string{"PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin"}
			out, err := cmd.CombinedOutput()
			got, _ := os.ReadFile(calls)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(string(out), tc.wantErr) || len(got) != 0 {
					t.Errorf("wrapper: %v %q, runc got %q; want %q", err, out, got, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("wrapper: %v %s", err, out)
			}
			if tc.wantReal {
				if strings.TrimSpace(string(got)) != strings.Join(tc.args, " ") {
					t.Errorf("runc got %q, want %q", got, strings.Join(tc.args, " "))
				}
				return
			}
			if len(got) != 0 {
				t.Errorf("runc was called: %q", got)
			}
			if _, err := os.Stat(fifo); !os.IsNotExist(err) {
				t.Errorf("the exec fifo is still there: %v", err)
			}
			// The init took its start: it wrote its byte and went on.
			if err := initProc.Wait(); err != nil {
				t.Errorf("init: %v", err)
			}
		})
	}
}
