package doctor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// neededControllers are the cgroup controllers the OCI spec of every job
// sets limits in (oci: CPU quota, memory with swap, pids).
var neededControllers = []string{"cpu", "memory", "pids"}

func (d *doctor) procFile(parts ...string) string {
	return filepath.Join(append([]string{d.proc}, parts...)...)
}

// userNamespaces: every job runs in a user namespace of its own. The agent
// runs as root, so kernel.unprivileged_userns_clone does not matter; a
// max_user_namespaces of 0 forbids them to root too.
func (d *doctor) userNamespaces(context.Context) Result {
	path := d.procFile("sys", "user", "max_user_namespaces")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fail("boot a kernel built with user namespaces (CONFIG_USER_NS=y, as Debian's is)",
			"the kernel has no user namespaces (no %s)", path)
	}
	if err != nil {
		return fail("run doctor as root", "%v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fail("check the kernel's user.max_user_namespaces setting", "%s holds %q, not a number", path, strings.TrimSpace(string(b)))
	}
	if n <= 0 {
		return fail("sysctl -w user.max_user_namespaces=15000, and keep it in a file of /etc/sysctl.d/",
			"user namespaces are switched off (user.max_user_namespaces = %d): every job needs one", n)
	}
	return pass("user.max_user_namespaces = %d", n)
}

// cgroups: every job gets CPU, memory and pids limits.
func (d *doctor) cgroups(context.Context) Result {
	version, have, err := d.cgroupControllers()
	if err != nil {
		return fail("mount the cgroup file system at /sys/fs/cgroup (systemd does at boot)", "cgroup %s: %v", version, err)
	}
	var missing []string
	for _, c := range neededControllers {
		if !have[c] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return fail("enable them on the kernel command line (cgroup_enable=memory for memory; drop any cgroup_disable=...) and reboot",
			"cgroup %s without the %s controller%s: jobs' limits cannot be set", version, strings.Join(missing, ", "), plural(len(missing)))
	}
	return pass("cgroup %s; %s enabled", version, strings.Join(neededControllers, ", "))
}

// cgroupControllers tells the version apart as runc does (cgroup.controllers
// exists only at the root of a unified, v2, hierarchy) and lists the
// controllers the kernel offers.
func (d *doctor) cgroupControllers() (version string, have map[string]bool, err error) {
	b, err := os.ReadFile(filepath.Join(d.sys, "fs", "cgroup", "cgroup.controllers"))
	switch {
	case err == nil:
		have = map[string]bool{}
		for _, c := range strings.Fields(string(b)) {
			have[c] = true
		}
		return "v2", have, nil
	case errors.Is(err, fs.ErrNotExist):
		have, err = v1Controllers(d.procFile("cgroups"))
		return "v1", have, err
	}
	return "v2", nil, err
}

// v1Controllers reads the enabled controllers of /proc/cgroups:
// "#subsys_name hierarchy num_cgroups enabled".
func v1Controllers(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("no cgroup.controllers, and %w", err)
	}
	have := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		have[f[0]] = f[3] == "1"
	}
	return have, sc.Err()
}

// overlayFS: the overlayfs snapshotter gives every run its root file system
// without copying the image.
func (d *doctor) overlayFS(context.Context) Result {
	if s := d.cfg.Containerd.Snapshotter; s != "overlayfs" {
		return pass("not needed (containerd.snapshotter is %s)", s)
	}
	fsList, err := os.ReadFile(d.procFile("filesystems"))
	if err != nil {
		return fail("run doctor on a Linux host with /proc mounted", "read the kernel's file systems: %v", err)
	}
	for line := range strings.Lines(string(fsList)) {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == "overlay" {
			return pass("overlay is in %s", d.procFile("filesystems"))
		}
	}
	if mod, ok := d.loadableModule("overlay"); ok {
		return warn("modprobe overlay, keep it with `echo overlay > /etc/modules-load.d/overlay.conf`, then restart containerd",
			"overlay is not loaded, but the kernel has it as a module (%s); containerd's overlayfs snapshotter needs it", mod)
	}
	return fail("use a kernel with the overlay file system (CONFIG_OVERLAY_FS), or set containerd.snapshotter to one containerd has (native: slower, more disk)",
		"the kernel has no overlay file system, loaded or loadable")
}

// loadableModule looks for name in the running kernel's module index.
func (d *doctor) loadableModule(name string) (string, bool) {
	rel, err := os.ReadFile(d.procFile("sys", "kernel", "osrelease"))
	if err != nil {
		return "", false
	}
	dir := filepath.Join(d.modules, strings.TrimSpace(string(rel)))
	for _, index := range []string{"modules.dep", "modules.builtin"} {
		b, err := os.ReadFile(filepath.Join(dir, index))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			path, _, _ := strings.Cut(strings.TrimSpace(line), ":")
			base := filepath.Base(path)
			// overlay.ko, overlay.ko.xz, overlay.ko.zst
			if strings.HasPrefix(base, name+".ko") {
				return filepath.Join(dir, path), true
			}
		}
	}
	return "", false
}

// ipForward: with egress, jobs' packets are routed out through the host.
// The agent switches forwarding on itself when it starts (cni.New), so a
// host with it off still works until something (a sysctl reload, a
// firewall manager) switches it off again under running jobs.
func (d *doctor) ipForward(context.Context) Result {
	if !d.cfg.Network.Egress.ScriptRoute() {
		return pass("not needed (network.egress is none: scripts have no route out)")
	}
	path := d.procFile("sys", "net", "ipv4", "ip_forward")
	b, err := os.ReadFile(path)
	if err != nil {
		return fail("run doctor on a Linux host with IPv4, or switch network.egress off", "IPv4 forwarding unknown: %v", err)
	}
	switch v := strings.TrimSpace(string(b)); v {
	case "1":
		return pass("on (network.egress lets jobs out)")
	case "0":
		return warn("keep it on: `echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-cronium.conf && sysctl --system`",
			"off: the agent switches it on when it starts (network.egress), but a sysctl reload would cut running jobs off")
	default:
		return fail("sysctl -w net.ipv4.ip_forward=1", "%s holds %q", path, v)
	}
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
