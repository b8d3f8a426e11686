package container

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cronium/cronium-agent/internal/atomicfile"
)

// RuncShim is containerd's runc shim, the runtime jobs run under unless
// configured otherwise.
const RuncShim = "io.containerd.runc.v2"

// DefaultShimDir is where the agent writes its shim wrapper: below /run,
// which a reboot clears together with containerd's task bundles that name
// the wrapper. Where /run does not allow programs to run (Debian's
// initramfs mounts it noexec), the wrapper goes below the state directory
// (shimStateDir) instead.
const DefaultShimDir = "/run/cronium-agent/shim"

// shimStateDir is the wrapper's directory below the state directory, where
// DefaultShimDir is noexec.
const shimStateDir = "shim"

// shimWrapperName is the wrapper's file name; containerd takes an absolute
// path as a runtime name and runs that file as the shim.
const shimWrapperName = "containerd-shim-cronium-v2"

// shimWrapper runs containerd's runc shim, except for one call that costs a
// fifth of a trivial job's CPU and does nothing for it. Whenever a shim's
// connection closes, even after a clean task deletion, containerd runs
// `<shim> ... -id ID -bundle B delete` (cleanupAfterDeadShim), which starts
// a second shim process that runs `runc delete --force` on a container the
// shim already deleted. The wrapper answers that call itself when the
// shim's clean deletion is visible (the OCI runtime keeps no state for the
// container and its root file system is unmounted, which the wrapper tells
// from an empty rootfs directory): an empty answer is containerd's
// "nothing to report", and containerd removes the bundle itself. Whenever
// anything is left (a shim that was killed or crashed), the real shim
// cleans up as before. Every other call goes to the real shim unchanged.
//
// The OCI runtime's state (runc's or crun's) is looked for under the
// shim's default root, the only one the agent uses (its runtime options
// name the binary, never a root).
const shimWrapper = `#!/bin/sh
# Written by cronium-agent: containerd's runc shim for job tasks (see
# runner/container/shim.go in the agent's source).
ns= id= bundle= prev= last=
for a in "$@"; do
	case $prev in
	-namespace) ns=$a ;;
	-id) id=$a ;;
	-bundle) bundle=$a ;;
	esac
	prev=$a last=$a
done
# An image's root file system is never empty: an empty (or absent) rootfs
# directory is one the shim unmounted. Globs, not a grep of mountinfo: no
# process to start.
empty() {
	for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
		if [ -e "$f" ] || [ -L "$f" ]; then return 1; fi
	done
}
if [ "$last" = delete ] && [ -n "$ns" ] && [ -n "$id" ] && [ ! -e "/run/containerd/runc/$ns/$id" ] && empty "${bundle:-$PWD}/rootfs"; then
	exit 0
fi
for shim in "$(command -v containerd-shim-runc-v2)" /usr/bin/containerd-shim-runc-v2 /usr/local/bin/containerd-shim-runc-v2; do
	[ -x "$shim" ] && exec "$shim" "$@"
done
echo "containerd-shim-runc-v2 not found" >&2
exit 1
`

// installShimWrapper writes the shim wrapper into the first of dirs on a
// mount that lets containerd run it, unless it is there already, and
// returns its path. Agents sharing the host write the same bytes; a task's
// bundle names the path, so the file is replaced, never removed.
func installShimWrapper(dirs ...string) (string, error) {
	var errs []error
	for _, dir := range dirs {
		path, err := installShimWrapperIn(dir)
		if err == nil {
			return path, nil
		}
		errs = append(errs, err)
	}
	return "", fmt.Errorf("install the shim wrapper: %w", errors.Join(errs...))
}

func installShimWrapperIn(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create shim directory: %w", err)
	}
	// Debian's initramfs mounts /run noexec, and the mount stays after
	// boot: there containerd's start of the shim fails ("permission
	// denied") and so does every job. Found by the VM test.
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "", fmt.Errorf("shim directory %s: %w", dir, err)
	}
	if st.Flags&unix.ST_NOEXEC != 0 {
		return "", fmt.Errorf("shim directory %s is on a noexec mount", dir)
	}
	path := filepath.Join(dir, shimWrapperName)
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, []byte(shimWrapper)) {
		return path, nil
	}
	if err := atomicfile.Write(path, []byte(shimWrapper), 0o755, false); err != nil {
		return "", fmt.Errorf("write shim wrapper: %w", err)
	}
	return path, nil
}
