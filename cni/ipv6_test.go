package cni

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/cronium/cronium-agent/internal/testenv"
)

// A job network carries no IPv6: the job's eth0, the bridge and the host's
// veth have it switched off and no address, so a job cannot reach a host
// service on [::] over a link-local address; the job's loopback keeps ::1.
func TestNoIPv6OnJobNetworks(t *testing.T) {
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		t.Skip("the host has no IPv6")
	}
	for i, egress := range []bool{false, true} {
		t.Run(fmt.Sprintf("egress=%v", egress), func(t *testing.T) {
			m := testManager(t, egress)
			ctx := context.Background()
			n, err := m.Setup(ctx, "job_nettest6v"+strconv.Itoa(i))
			if err != nil {
				t.Fatal(err)
			}
			port := listen6(t)
			br, err := netlink.LinkByName(n.Bridge)
			if err != nil {
				t.Fatal(err)
			}
			hostSide := []netlink.Link{br}
			links, _ := listLinks()
			for _, l := range links {
				if l.Attrs().MasterIndex == br.Attrs().Index {
					hostSide = append(hostSide, l)
				}
			}
			if len(hostSide) != 2 {
				t.Fatalf("want the bridge and one veth, got %d interfaces", len(hostSide))
			}
			var targets []string
			for _, l := range hostSide {
				name := l.Attrs().Name
				if v := sysctl6(t, "", name); v != "1" {
					t.Errorf("%s: disable_ipv6 is %s", name, v)
				}
				addrs, _ := netlink.AddrList(l, netlink.FAMILY_V6)
				if len(addrs) != 0 {
					t.Errorf("%s has IPv6 addresses %v", name, addrs)
				}
				for _, a := range addrs {
					targets = append(targets, a.IP.String())
				}
			}
			if v := sysctl6(t, n.NetNS, "eth0"); v != "1" {
				t.Errorf("the job's eth0: disable_ipv6 is %s", v)
			}
			if out := ipn(t, n.NetNS, "-6", "-o", "addr", "show", "dev", "eth0"); strings.Contains(out, "inet6") {
				t.Errorf("the job's eth0 has IPv6 addresses: %s", out)
			}
			if out := ipn(t, n.NetNS, "-6", "-o", "addr", "show", "dev", "lo"); !strings.Contains(out, "::1/128") {
				t.Errorf("the job's loopback lost ::1: %s", out)
			}
			for _, a := range targets {
				if out, err := connect6(n.NetNS, a+"%eth0", port); err == nil {
					t.Errorf("the job reached the host's [::]:%d at %s: %s", port, a, out)
				}
			}

			// IPv6 forced back on at both ends of the link: ip6tables
			// still drops what the job sends.
			for _, l := range hostSide {
				if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf", l.Attrs().Name, "disable_ipv6"), []byte("0"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if out, err := exec.Command("ip", "netns", "exec", n.NetNS, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0").CombinedOutput(); err != nil {
				t.Fatalf("switch IPv6 back on in the job: %v %s", err, out)
			}
			gw := settledLinkLocal(t, "", n.Bridge)
			settledLinkLocal(t, n.NetNS, "eth0")
			if out, err := connect6(n.NetNS, gw+"%eth0", port); err == nil {
				t.Errorf("with IPv6 back on, the job reached the host's [::]:%d at %s: %s", port, gw, out)
			}

			if err := m.Teardown(ctx, n); err != nil {
				t.Fatal(err)
			}
			assertGone(t, m, n)
		})
	}
}

// settledLinkLocal waits until iface (in netns when named) has a
// link-local address that is no longer tentative, and returns it.
func settledLinkLocal(t *testing.T, netns, iface string) string {
	t.Helper()
	args := []string{"-6", "-o", "addr", "show", "dev", iface, "scope", "link"}
	if netns != "" {
		args = append([]string{"-n", netns}, args...)
	}
	var out []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var err error
		if out, err = exec.Command("ip", args...).Output(); err != nil {
			t.Fatalf("ip %v: %v", args, err)
		}
		f := strings.Fields(string(out))
		for i := range f {
			if f[i] == "inet6" && i+1 < len(f) && !strings.Contains(string(out), "tentative") {
				addr, _, _ := strings.Cut(f[i+1], "/")
				return addr
			}
		}
	}
	t.Fatalf("no settled link-local address on %s: %s", iface, out)
	return ""
}

// sysctl6 reads net.ipv6.conf.<iface>.disable_ipv6, in netns when named.
func sysctl6(t *testing.T, netns, iface string) string {
	t.Helper()
	path := filepath.Join("/proc/sys/net/ipv6/conf", iface, "disable_ipv6")
	if netns == "" {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	out, err := exec.Command("ip", "netns", "exec", netns, "cat", path).CombinedOutput()
	if err != nil {
		t.Fatalf("read %s in %s: %v %s", path, netns, err, out)
	}
	return strings.TrimSpace(string(out))
}

// listen6 serves on [::] of the host for the test's duration.
func listen6(t *testing.T) int {
	t.Helper()
	port, err := testenv.Greeter(t, "[::]:0", "host6")
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// connect6 connects from inside netns to [addr]:port.
func connect6(netns, addr string, port int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", netns, "python3", "-c",
		fmt.Sprintf(`import socket; c = socket.create_connection((%q, %d), timeout=2); print(c.recv(16).decode())`, addr, port)).CombinedOutput()
	return string(out), err
}

// A network an older agent set up, with IPv6 on its host side, loses it
// when adopted.
func TestAdoptSwitchesIPv6Off(t *testing.T) {
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		t.Skip("the host has no IPv6")
	}
	m := testManager(t, false)
	ctx := context.Background()
	orig, err := m.Setup(ctx, "job_nettest6adopt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = m.Teardown(ctx, orig)
		assertGone(t, m, orig)
	})
	if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf", orig.Bridge, "disable_ipv6"), []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	orig.lock.Close() // as when its process is killed
	orig.lock = nil
	n, err := m.Adopt(ctx, orig.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Teardown(ctx, n)
	if v := sysctl6(t, "", n.Bridge); v != "1" {
		t.Errorf("adopted bridge %s: disable_ipv6 is %s", n.Bridge, v)
	}
}
