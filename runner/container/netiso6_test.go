package container_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/output"
)

// hostService6 listens on [::], every IPv6 (and IPv4) address of the host,
// as an operator's service bound to the wildcard would.
func hostService6(t *testing.T) int {
	t.Helper()
	port, err := testenv.Greeter(t, "[::]:0", "host6")
	if err != nil {
		t.Skipf("no IPv6 on this host, so none to reach it by: %v", err)
	}
	return port
}

// probe6Script waits for the test to name the host's link-local addresses
// on the job's link (written to /tmp/targets from outside), connects to
// each over eth0, and prints what it got and the IPv6 state of its eth0.
const probe6Script = `import json, os, socket, time
def read(p):
    try:
        with open(p) as f:
            return f.read().strip()
    except OSError as e:
        return "unreadable: " + (e.strerror or str(e))
def eth0_addrs():
    # address, index, prefix length, scope, flags, name
    return [l.split() for l in read("/proc/net/if_inet6").splitlines() if l.split()[-1:] == ["eth0"]]
def tcp6(addr, port):
    try:
        with socket.create_connection((addr + "%eth0", port), timeout=2) as c:
            c.settimeout(2)
            return "open:" + c.recv(16).decode()
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "closed:" + (e.strerror or str(e))
# A link-local address is unusable while duplicate detection runs (flag 0x40).
deadline = time.time() + 5
while any(int(a[4], 16) & 0x40 for a in eth0_addrs()) and time.time() < deadline:
    time.sleep(0.1)
# The test cannot create files in the job's /tmp (its uid is not mapped
# in the job's user namespace), but it can write to one the job made.
fd = os.open("/tmp/targets", os.O_CREAT | os.O_WRONLY, 0o666)
os.fchmod(fd, 0o666)
os.close(fd)
print("ready", flush=True)
deadline = time.time() + 30
while not read("/tmp/targets").endswith(".") and time.time() < deadline:
    time.sleep(0.05)
port = int(os.environ["HOST6_PORT"])
print(json.dumps({
    "eth0 IPv6": [a[0] for a in eth0_addrs()],
    "eth0 disable_ipv6": read("/proc/sys/net/ipv6/conf/eth0/disable_ipv6"),
    "probes": {t: tcp6(t, port) for t in read("/tmp/targets").split()[:-1]},
}))
`

// TestNoIPv6ToTheHost runs a job that knows the link-local addresses the
// host has, or would have, on the job's link, while a host service listens
// on [::]: IPv6 must get the job nowhere, with or without egress.
func TestNoIPv6ToTheHost(t *testing.T) {
	port := hostService6(t)
	for _, tc := range []struct {
		name   string
		egress bool
	}{{"default", false}, {"egress", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var hopts []harnessOpt
			if tc.egress {
				hopts = append(hopts, withEgress())
			}
			h := newHarnessWith(t, hopts)
			got := probe6(t, h, port)
			if addrs, _ := got["eth0 IPv6"].([]any); len(addrs) != 0 {
				t.Errorf("the job's eth0 has IPv6 addresses: %v", addrs)
			}
			if got["eth0 disable_ipv6"] != "1" {
				t.Errorf("IPv6 on the job's eth0: disable_ipv6 is %v", got["eth0 disable_ipv6"])
			}
			probes, _ := got["probes"].(map[string]any)
			if len(probes) == 0 {
				t.Fatalf("no address probed: %v", got)
			}
			for addr, res := range probes {
				if !blocked(res) {
					t.Errorf("host service reachable over IPv6 at [%s%%eth0]:%d: %v", addr, port, res)
				}
			}
		})
	}
}

// probe6 runs the probe job; once it runs, the test reads the host side of
// its network and hands the addresses in through the job's /tmp.
func probe6(t *testing.T, h *harness, port int) map[string]any {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req := h.request(t, "python", probe6Script, withEnv("HOST6_PORT", strconv.Itoa(port)))
	runID := runIDOf(&req)
	ready := make(chan struct{}, 1)
	done := make(chan *result, 1)
	var r *result
	defer func() {
		// On a failure the job is stopped and waited for, so that the
		// harness finds it cleaned up.
		cancel()
		if r == nil {
			r = <-done
		}
	}()
	go func() {
		done <- h.runRequest(ctx, t, req, func(e output.Entry) {
			if string(e.Data) == "ready" {
				ready <- struct{}{}
			}
		})
	}()
	select {
	case <-ready:
	case r = <-done:
		t.Fatalf("probe job ended early: %v exit %d: %s", r.err, r.ExitCode, r.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatal("probe job did not start")
	}

	netID := container.NetworkOf(runID())
	netnsName, bridge := cni.Names(netID)
	targets, state := linkLocalTargets(t, bridge)
	t.Logf("host side of %s: %s; probing %v", netnsName, state, targets)
	if err := handTargets(ctx, h, runID(), targets); err != nil {
		t.Fatal(err)
	}

	r = <-done
	if r.err != nil || r.ExitCode != 0 {
		t.Fatalf("probe job: %v exit %d: %s", r.err, r.ExitCode, r.stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("probe output %q: %v", r.stdout.String(), err)
	}
	t.Logf("probe: %v", got)
	return got
}

// linkLocalTargets lists the IPv6 addresses on the job's bridge and its
// host-side veth, and the link-local addresses those interfaces would have
// from their hardware addresses (what a job would guess from the gateway's
// ARP entry), and checks that IPv6 is off on both.
func linkLocalTargets(t *testing.T, bridge string) ([]string, string) {
	t.Helper()
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		t.Fatalf("the job's bridge: %v", err)
	}
	ifaces := []netlink.Link{br}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index {
			ifaces = append(ifaces, l)
		}
	}
	if len(ifaces) < 2 {
		t.Fatalf("no veth on %s", bridge)
	}
	seen := map[string]bool{}
	var targets, state []string
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			targets = append(targets, a)
		}
	}
	for _, l := range ifaces {
		name := l.Attrs().Name
		addrs := settledAddrs(l)
		for _, a := range addrs {
			add(a.IP.String())
		}
		if ll, ok := eui64LinkLocal(l.Attrs().HardwareAddr); ok {
			add(ll.String())
		}
		disabled, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv6/conf", name, "disable_ipv6"))
		if err != nil {
			t.Errorf("IPv6 state of %s: %v", name, err)
		}
		state = append(state, fmt.Sprintf("%s disable_ipv6=%s addresses %v", name, strings.TrimSpace(string(disabled)), addrs))
		if strings.TrimSpace(string(disabled)) != "1" {
			t.Errorf("IPv6 is on on the host's %s", name)
		}
		if len(addrs) != 0 {
			t.Errorf("the host's %s has IPv6 addresses: %v", name, addrs)
		}
	}
	return targets, strings.Join(state, "; ")
}

// settledAddrs lists the IPv6 addresses of l once none is tentative any
// more (a tentative address answers nobody), waiting up to 5 s.
func settledAddrs(l netlink.Link) []netlink.Addr {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		addrs, _ := netlink.AddrList(l, netlink.FAMILY_V6)
		tentative := false
		for _, a := range addrs {
			tentative = tentative || a.Flags&unix.IFA_F_TENTATIVE != 0
		}
		if !tentative || time.Now().After(deadline) {
			return addrs
		}
	}
}

// eui64LinkLocal is the fe80::/64 address the kernel derives from a MAC.
func eui64LinkLocal(mac net.HardwareAddr) (netip.Addr, bool) {
	if len(mac) != 6 {
		return netip.Addr{}, false
	}
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10] = mac[0]^0x02, mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a), true
}

// handTargets writes the addresses, and a final ".", into the file the
// running job made in its /tmp, reached through its process's root.
func handTargets(ctx context.Context, h *harness, runID string, targets []string) error {
	c, err := h.client.LoadContainer(ctx, runID)
	if err != nil {
		return fmt.Errorf("load the probe's container: %w", err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return fmt.Errorf("the probe's task: %w", err)
	}
	path := fmt.Sprintf("/proc/%d/root/tmp/targets", task.Pid())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("open the probe's targets: %w", err)
	}
	_, err = f.WriteString(strings.Join(append(targets, "."), "\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write the probe's targets: %w", err)
	}
	return nil
}
