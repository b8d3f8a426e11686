package cni

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// createNetNS makes a named network namespace under /var/run/netns, as
// `ip netns add` does, without moving the calling goroutine into it. IPv6
// is off for every interface made in it later (the job's eth0): a job gets
// no link-local address, so it cannot reach the host's services on [::].
// Its loopback, made with the namespace, keeps ::1.
func createNetNS(name string) error {
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
