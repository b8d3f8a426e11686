package cni

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// createNetNS makes a named network namespace under /var/run/netns, as
// `ip netns add` does, without moving the calling goroutine into it. IPv6
// is off for every interface made in it later (the job's eth0): a job gets
// no link-local address, so it cannot reach the host's services on [::].
// Its loopback, made with the namespace, keeps ::1.
func createNetNS(name string) error {
	if err := shareNetnsDir(); err != nil {
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if h.IsOpen() {
		h.Close()
	}
	if err == nil {
		// /proc/sys/net is the namespace of the thread that opens it: this
		// one, locked in the new namespace.
		err = disableIPv6("default")
	}
	if err == nil {
		// The job's lo, up: what the CNI loopback plugin did, without two
		// plugin processes per job (ADD and DEL; the namespace's removal
		// takes lo with it).
		err = loopbackUp()
	}
	if serr := netns.Set(orig); serr != nil {
		// The thread is stuck in the new namespace: leave it locked so the
		// runtime discards it when this goroutine ends.
		return fmt.Errorf("return to the host network namespace: %w", serr)
	}
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	return nil
}

// shareNetnsDir makes netnsDir a mount of its own with shared
// propagation, as `ip netns add` does on its first use, unless it is one
// already. Done after job namespaces are mounted there (by someone's
// `ip netns add` on the host while jobs run), that bind would hide them:
// no unmount could reach them any more and their files could never be
// removed. So it is done here first, and never over mounts already there.
func shareNetnsDir() error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	// Not a mount point yet.
	dir, derr := filepath.EvalSymlinks(netnsDir)
	if derr != nil {
		return derr
	}
	if busy, merr := mountsUnder(dir); merr != nil || busy {
		// Namespaces mounted before this agent version: left as they
		// are (binding now would hide them).
		return merr
	}
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	return unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
}

// mountsUnder tells whether anything is mounted below dir.
func mountsUnder(dir string) (bool, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for line := range strings.SplitSeq(string(data), "\n") {
		// id parent major:minor root mountpoint ...
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], prefix) {
			return true, nil
		}
	}
	return false, nil
}

// deleteNetNS unmounts and removes a named namespace; a missing one is fine.
func deleteNetNS(name string) error {
	p := filepath.Join(netnsDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", name, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", name, err)
	}
	return nil
}

// isNetNS reports whether path is a mounted network namespace.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC || st.Type == unix.PROC_SUPER_MAGIC
}

// loopbackUp sets lo up in the network namespace of the calling thread.
func loopbackUp() error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in the new namespace: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}
