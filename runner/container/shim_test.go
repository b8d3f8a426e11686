package container

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
	wrapper, err := installShimWrapper(filepath.Join(dir, "shim"))
	if err != nil {
		t.Fatal(err)
	}
	// Installing again keeps the file (tasks' bundles name it).
	fi0, _ := os.Stat(wrapper)
	if again, err := installShimWrapper(filepath.Join(dir, "shim")); err != nil || again != wrapper {
		t.Fatalf("second install: %s %v", again, err)
	}
	if fi1, _ := os.Stat(wrapper); !os.SameFile(fi0, fi1) || fi1.Mode().Perm() != 0o755 {
		t.Errorf("second install replaced the wrapper or changed its mode: %v", fi1.Mode())
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
		wantReal bool
	}{
		{"start goes to the shim", append(append([]string{}, base...), "start"), false, false, true},
		{"clean-up after a clean deletion is answered", deleteArgs, false, false, false},
		{"clean-up of a container runc still has", deleteArgs, true, false, true},
		{"clean-up with the root file system still mounted", deleteArgs, false, true, true},
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
				// As an image's root, never empty; a dot file alone
				// counts too.
				if err := os.WriteFile(filepath.Join(rootfs, ".profile"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(wrapper, tc.args...)
			cmd.Dir = bundle
			// Nothing but the shim on PATH: the wrapper's checks need no
			// other program.
			cmd.Env = []string{"PATH=" + bin}
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

// A directory on a noexec mount (Debian's /run, as its initramfs mounts
// it) is passed over for the next one: containerd could not run the
// wrapper there, and every job would fail.
func TestShimWrapperSkipsNoexec(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "the noexec test mounts a tmpfs: it must run as root")
	}
	dir := t.TempDir()
	noexec, fallback := filepath.Join(dir, "noexec"), filepath.Join(dir, "state", "shim")
	if err := os.MkdirAll(noexec, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", noexec, "tmpfs", unix.MS_NOEXEC, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(noexec, unix.MNT_DETACH) })
	got, err := installShimWrapper(filepath.Join(noexec, "shim"), fallback)
	if err != nil || got != filepath.Join(fallback, shimWrapperName) {
		t.Fatalf("installShimWrapper = %q, %v; want it in %s", got, err, fallback)
	}
	if out, err := exec.Command(got, "-id", "x", "version").CombinedOutput(); err != nil && strings.Contains(err.Error(), "permission denied") {
		t.Errorf("the wrapper installed does not run: %v %s", err, out)
	}
	if _, err := installShimWrapper(filepath.Join(noexec, "shim")); err == nil || !strings.Contains(err.Error(), "noexec") {
		t.Errorf("only a noexec directory: %v, want an error saying noexec", err)
	}
}
