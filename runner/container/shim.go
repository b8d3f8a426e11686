package container

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"

	"github.com/cronium/cronium-agent/internal/atomicfile"
)

// RuncShim is containerd's runc shim, the runtime jobs run under unless
// configured otherwise.
const RuncShim = "io.containerd.runc.v2"

// DefaultShimDir is where the agent writes its shim wrapper: below /run,
// which a reboot clears together with containerd's task bundles that name
// the wrapper.
const DefaultShimDir = "/run/cronium-agent/shim"

// shimWrapperName is the wrapper's file name; containerd takes an absolute
// path as a runtime name and runs that file as the shim.
const shimWrapperName = "containerd-shim-cronium-v2"

// shimWrapper runs containerd's runc shim, except for one call that costs a
// fifth of a trivial job's CPU and does nothing for it. Whenever a shim's
// connection closes, even after a clean task deletion, containerd runs
// `<shim> ... -id ID -bundle B delete` (cleanupAfterDeadShim), which starts
// a second shim process that runs `runc delete --force` on a container the
// shim already deleted. The wrapper answers that call itself when the
// shim's clean deletion is visible (runc keeps no state for the container
// and its root file system is unmounted): an empty answer is containerd's
// "nothing to report", and containerd removes the bundle itself. Whenever
// anything is left (a shim that was killed or crashed), the real shim
// cleans up as before. Every other call goes to the real shim unchanged.
//
// The runc state is looked for under the shim's default root, the only one
// the agent uses (of runc's options it sets only the binary, runcWrapper).
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
if [ "$last" = delete ] && [ -n "$ns" ] && [ -n "$id" ] && [ ! -e "/run/containerd/runc/$ns/$id" ]; then
	# 1: no such mount; an error (no grep, say) leaves it to the shim.
	grep -qF " ${bundle:-$PWD}/rootfs " /proc/self/mountinfo
	[ $? -eq 1 ] && exit 0
fi
for shim in "$(command -v containerd-shim-runc-v2)" /usr/bin/containerd-shim-runc-v2 /usr/local/bin/containerd-shim-runc-v2; do
	[ -x "$shim" ] && exec "$shim" "$@"
done
echo "containerd-shim-runc-v2 not found" >&2
exit 1
`

// runcWrapperName is the file name of the runc wrapper, which the shim runs
// as its runc (the BinaryName of the task's runc options).
const runcWrapperName = "runc-cronium"

// runcWrapper runs runc, except for `runc start` of a created container.
// That call only opens the container's exec fifo, which releases its init
// from the barrier it waits at, reads the byte the init writes, and removes
// the fifo (runc's status of the container is "running" from then on). A Go
// process start (runc is one) costs 15-20 ms of CPU on a small host, a
// third of runc's share of a job; the wrapper does the same with the shell
// and cat. It takes the call only as the shim makes it (global
// flags, then start ID) and while the init waits at its barrier (the fifo
// is there and the init is alive); anything else goes to runc, which then
// says what is wrong. The open of the fifo is bounded (an init that dies
// just then would leave it waiting for ever).
const runcWrapper = `#!/bin/sh
# Written by cronium-agent: runc for job tasks (see runner/container/shim.go
# in the agent's source).
start_id() {
	root=/run/runc log=
	while [ $# -gt 2 ]; do
		case $1 in
		--root) root=$2; shift 2 ;;
		--log) log=$2; shift 2 ;;
		--log-format) shift 2 ;;
		--systemd-cgroup|--debug) shift ;;
		*) return 1 ;;
		esac
	done
	[ $# -eq 2 ] && [ "$1" = start ] && [ -n "$2" ] && [ -n "$log" ] || return 1
	id=$2 dir=$root/$2
}
# The shim keeps the init's pid in init.pid beside log.json, in the bundle
# (runc's state.json is large, and the shell reads a byte per system call).
# A zombie's /proc/PID/exe does not resolve.
if start_id "$@" && [ -p "$dir/exec.fifo" ] && { read -r pid || [ -n "$pid" ]; } 2>/dev/null <"${log%/*}/init.pid"; then
	case $pid in
	""|*[!0-9]*) ;;
	*)
		if [ -e "/proc/$pid/exe" ]; then
			# The system's own, not whatever a long PATH finds first.
			if [ -n "$(PATH=/usr/bin:/bin timeout 10 cat "$dir/exec.fifo")" ]; then
				PATH=/usr/bin:/bin rm -f "$dir/exec.fifo"
				exit 0
			fi
			echo "container $id did not take its start within 10s" >&2
			exit 1
		fi
		;;
	esac
fi
for runc in "$(command -v runc)" /usr/sbin/runc /usr/bin/runc /usr/local/sbin/runc /usr/local/bin/runc; do
	[ -x "$runc" ] && exec "$runc" "$@"
done
echo "runc not found" >&2
exit 1
`

// wrappers are the files installWrappers writes.
var wrappers = []struct{ name, text string }{
	{shimWrapperName, shimWrapper},
	{runcWrapperName, runcWrapper},
}

// installWrappers writes the shim and runc wrappers into dir unless they
// are there already, and returns the shim's path and runc's. Agents sharing
// the host write the same bytes; a task's bundle names the paths, so the
// files are replaced, never removed.
func installWrappers(dir string) (shim, runc string, _ error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("create shim directory: %w", err)
	}
	for _, w := range wrappers {
		path := filepath.Join(dir, w.name)
		if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, []byte(w.text)) {
			continue
		}
		if err := atomicfile.Write(path, []byte(w.text), 0o755, false); err != nil {
			return "", "", fmt.Errorf("write %s wrapper: %w", w.name, err)
		}
	}
	return filepath.Join(dir, shimWrapperName), filepath.Join(dir, runcWrapperName), nil
}

// withRuncBinary makes the task's shim run path as its runc.
func withRuncBinary(path string) containerd.NewTaskOpts {
	return func(_ context.Context, _ *containerd.Client, ti *containerd.TaskInfo) error {
		if ti.Options == nil {
			ti.Options = &options.Options{}
		}
		opts, ok := ti.Options.(*options.Options)
		if !ok {
			return fmt.Errorf("runtime options of type %T, not runc's", ti.Options)
		}
		opts.BinaryName = path
		return nil
	}
}

// taskOpts are the options of every task the executor creates.
func (e *Executor) taskOpts() []containerd.NewTaskOpts {
	if e.runcPath == "" {
		return nil
	}
	return []containerd.NewTaskOpts{withRuncBinary(e.runcPath)}
}
