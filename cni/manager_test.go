package cni

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cronium/cronium-agent/internal/testenv"
)

func testManager(t *testing.T, egress bool) *Manager {
	t.Helper()
	if testing.Short() && !testenv.Required() {
		t.Skip("needs root and CNI plugins")
	}
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "network tests must run as root")
	}
	cfg := DefaultConfig()
	if egress {
		cfg.Egress = EgressAll
	}
	m, err := New(cfg)
	if err != nil {
		testenv.Unavailable(t, "cni: %v", err)
	}
	return m
}

func ipn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %v: %v %s", ns, args, err, out)
	}
	return string(out)
}

func TestSetupAndTeardown(t *testing.T) {
	m := testManager(t, false)
	ctx := context.Background()
	n, err := m.Setup(ctx, "job_nettest1")
	if err != nil {
		t.Fatal(err)
	}
	if n.NetNS != "cronium-job_nettest1" || !strings.HasPrefix(n.Bridge, "crn-") || len(n.Bridge) != 15 {
		t.Errorf("names: %+v", n)
	}
	if n.Subnet.Bits() != 30 || !m.cfg.Pool.Contains(n.Subnet.Addr()) || n.Gateway != n.Subnet.Addr().Next() || n.Address != n.Gateway.Next() {
		t.Errorf("addresses: %+v", n)
	}
	if _, err := os.Stat(n.NetNSPath()); err != nil {
		t.Errorf("namespace: %v", err)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		t.Fatalf("bridge: %v", err)
	}
	addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4)
	if len(addrs) != 1 || addrs[0].IP.String() != n.Gateway.String() {
		t.Errorf("bridge addresses %v, want the gateway %s", addrs, n.Gateway)
	}
	if out := ipn(t, n.NetNS, "-4", "addr", "show", "eth0"); !strings.Contains(out, n.Address.String()+"/30") {
		t.Errorf("job address: %s", out)
	}
	if out := ipn(t, n.NetNS, "route"); strings.Contains(out, "default") {
		t.Errorf("job has a route out without egress: %s", out)
	}
	if out := ipn(t, n.NetNS, "link", "show", "lo"); !strings.Contains(out, "UP") {
		t.Errorf("loopback down: %s", out)
	}
	// Without egress the agent makes the link itself (attach): the host's
	// end is a port of the bridge, up, without IPv6, and the job reaches
	// its gateway through it.
	if n.Link != vethName(n.ID) {
		t.Errorf("link %q, want the agent's own %q", n.Link, vethName(n.ID))
	}
	veth, err := netlink.LinkByName(n.Link)
	if err != nil {
		t.Fatalf("host end of the job's link: %v", err)
	}
	if veth.Type() != "veth" || veth.Attrs().MasterIndex != br.Attrs().Index || veth.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host end %s: type %s, master %d (bridge %d), flags %v", n.Link, veth.Type(), veth.Attrs().MasterIndex, br.Attrs().Index, veth.Attrs().Flags)
	}
	if v, _ := os.ReadFile("/proc/sys/net/ipv6/conf/" + n.Link + "/disable_ipv6"); hostHasIPv6() && strings.TrimSpace(string(v)) != "1" {
		t.Errorf("IPv6 on the host end %s: disable_ipv6=%q", n.Link, v)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(n.Gateway.String(), strconv.Itoa(m.cfg.APIPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", n.Gateway, m.cfg.APIPort)
	if out, err := exec.Command("ip", "netns", "exec", n.NetNS, "timeout", "5", "bash", "-c", dial).CombinedOutput(); err != nil {
		t.Errorf("the job cannot reach its gateway's API port: %v %s", err, out)
	}
	rules, _ := m.fw.ipt.List("filter", chainInput)
	if len(rules) < 3 || !strings.Contains(rules[1], "--limit-iface-in") || rules[len(rules)-1] != "-A "+chainInput+" -j DROP" {
		t.Errorf("the agent's input chain: %q", rules)
	}

	if err := m.Teardown(ctx, n); err != nil {
		t.Fatal(err)
	}
	if err := m.Teardown(ctx, n); err != nil {
		t.Errorf("second teardown: %v", err)
	}
	assertGone(t, m, n)
}

func TestEgressGetsADefaultRoute(t *testing.T) {
	m := testManager(t, true)
	ctx := context.Background()
	n, err := m.Setup(ctx, "job_nettest2")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Teardown(ctx, n)
	if out := ipn(t, n.NetNS, "route"); !strings.Contains(out, "default via "+n.Gateway.String()) {
		t.Errorf("egress job routes: %s", out)
	}
	rules, _ := m.fw.ipt.List("filter", chainForward)
	if !strings.Contains(strings.Join(rules, "\n"), "cronium:job_nettest2") {
		t.Errorf("no forward rule: %v", rules)
	}
}

func TestFailedSetupLeavesNothing(t *testing.T) {
	m := testManager(t, false)
	ctx := context.Background()
	// A namespace of that name already exists: setup fails half-way.
	if err := createNetNS("cronium-job_nettest3"); err != nil {
		t.Fatal(err)
	}
	_, err := m.Setup(ctx, "job_nettest3")
	if err == nil {
		t.Fatal("setup over an existing namespace succeeded")
	}
	_, bridge := Names("job_nettest3")
	assertGone(t, m, &Network{ID: "job_nettest3", NetNS: "cronium-job_nettest3", Bridge: bridge})
}

func TestSweepRemovesAbandonedNetworks(t *testing.T) {
	m := testManager(t, false)
	ctx := context.Background()
	live, err := m.Setup(ctx, "job_nettest4")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Teardown(ctx, live)
	dead, err := m.Setup(ctx, "job_nettest5")
	if err != nil {
		t.Fatal(err)
	}
	// Its owner dies without tearing down: the lock goes with the process.
	dead.lock.Close()
	dead.lock = nil
	// And a host end of a link that no record names (its namespace was
	// held open by something when its network was removed).
	attrs := netlink.NewLinkAttrs()
	attrs.Name = vethName("job_nettest6")
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "crvtest-peer", PeerTxQLen: -1}); err != nil {
		t.Fatal(err)
	}
	rep, err := m.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(rep.Veths, attrs.Name) {
		t.Errorf("sweep removed veths %v, want %s", rep.Veths, attrs.Name)
	}
	if _, err := netlink.LinkByName(attrs.Name); err == nil {
		t.Errorf("orphan veth %s left", attrs.Name)
	}
	if _, err := netlink.LinkByName(live.Link); err != nil {
		t.Errorf("sweep removed a live network's veth: %v", err)
	}
	if len(rep.Networks) == 0 || !contains(rep.Networks, "job_nettest5") || contains(rep.Networks, "job_nettest4") {
		t.Errorf("sweep removed %v", rep.Networks)
	}
	assertGone(t, m, dead)
	if _, err := netlink.LinkByName(live.Bridge); err != nil {
		t.Errorf("sweep removed a live network's bridge: %v", err)
	}
}

// Agents sharing the network state directory: a sweep leaves another
// agent's unheld network (its journal may adopt it at its next start),
// until that agent's state directory is gone or the sweep is gc --all's.
func TestSweepLeavesOtherAgentsNetworks(t *testing.T) {
	base := testManager(t, false)
	ctx := context.Background()
	ownerA, ownerB := t.TempDir(), t.TempDir()
	manager := func(opts ...Option) *Manager {
		m, err := New(base.cfg, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := manager(WithOwner(ownerA)), manager(WithOwner(ownerB))
	n, err := a.Setup(ctx, "job_nettest6")
	if err != nil {
		t.Fatal(err)
	}
	// A stops without tearing it down: the lock goes with its process.
	n.lock.Close()
	n.lock = nil
	if rep, err := b.Sweep(ctx); err != nil || contains(rep.Networks, "job_nettest6") {
		t.Fatalf("B's sweep removed A's network: %v, %v", rep.Networks, err)
	}
	if _, err := netlink.LinkByName(n.Bridge); err != nil {
		t.Fatalf("A's bridge: %v", err)
	}
	if rep, err := manager(WithOwner(ownerB), WithOthersSwept()).Sweep(ctx); err != nil || !contains(rep.Networks, "job_nettest6") {
		t.Fatalf("gc --all's sweep: %v, %v", rep.Networks, err)
	}
	assertGone(t, a, n)

	// A's state directory gone (uninstalled): its networks are anyone's.
	n, err = a.Setup(ctx, "job_nettest7")
	if err != nil {
		t.Fatal(err)
	}
	n.lock.Close()
	n.lock = nil
	if err := os.Remove(ownerA); err != nil {
		t.Fatal(err)
	}
	if rep, err := b.Sweep(ctx); err != nil || !contains(rep.Networks, "job_nettest7") {
		t.Fatalf("sweep after A's state went: %v, %v", rep.Networks, err)
	}
	assertGone(t, a, n)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func assertGone(t *testing.T, m *Manager, n *Network) {
	t.Helper()
	if _, err := os.Stat(n.NetNSPath()); !os.IsNotExist(err) {
		t.Errorf("namespace %s left: %v", n.NetNS, err)
	}
	if _, err := netlink.LinkByName(n.Bridge); err == nil {
		t.Errorf("bridge %s left", n.Bridge)
	}
	if _, err := netlink.LinkByName(vethName(n.ID)); err == nil {
		t.Errorf("veth %s left", vethName(n.ID))
	}
	for _, p := range []string{m.recordPath(n.ID), m.lockPath(n.ID), m.dir("ipam", cniName(n.ID))} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	subs, _ := os.ReadDir(m.dir("subnets"))
	for _, s := range subs {
		if owner, _ := os.ReadFile(m.dir("subnets", s.Name())); string(owner) == n.ID {
			t.Errorf("subnet %s still held", s.Name())
		}
	}
	for _, chain := range []string{chainInput, chainForward} {
		rules, _ := m.fw.ipt.List("filter", chain)
		if strings.Contains(strings.Join(rules, "\n"), commentTag+n.ID+" ") {
			t.Errorf("rule left in %s", chain)
		}
	}
	links, _ := listLinks()
	for _, l := range links {
		if l.Attrs().MasterIndex != 0 && strings.HasPrefix(l.Attrs().Name, "veth") {
			if master, err := netlink.LinkByIndex(l.Attrs().MasterIndex); err == nil && master.Attrs().Name == n.Bridge {
				t.Errorf("veth %s left on %s", l.Attrs().Name, n.Bridge)
			}
		}
	}
}

// BenchmarkNetwork measures a job network's setup and teardown alone.
func BenchmarkNetwork(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	m, err := New(DefaultConfig())
	if err != nil {
		b.Skip(err)
	}
	ctx := context.Background()
	var setup, teardown time.Duration
	for i := range b.N {
		start := time.Now()
		n, err := m.Setup(ctx, "job_bench"+strconv.Itoa(i))
		if err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := m.Teardown(ctx, n); err != nil {
			b.Fatal(err)
		}
		setup += mid.Sub(start)
		teardown += time.Since(mid)
	}
	b.ReportMetric(float64(setup.Microseconds())/float64(b.N)/1000, "setup-ms")
	b.ReportMetric(float64(teardown.Microseconds())/float64(b.N)/1000, "teardown-ms")
}

// An agent killed between creating a namespace's file and mounting it
// leaves a plain file: teardown must still remove everything.
func TestTeardownWithUnmountedNamespaceFile(t *testing.T) {
	m := testManager(t, false)
	ctx := context.Background()
	n, err := m.Setup(ctx, "job_nettest6")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(n.NetNSPath(), unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if isNetNS(n.NetNSPath()) {
		t.Fatal("still a namespace after unmount")
	}
	if err := m.Teardown(ctx, n); err != nil {
		t.Fatalf("teardown over a plain namespace file: %v", err)
	}
	assertGone(t, m, n)
}
