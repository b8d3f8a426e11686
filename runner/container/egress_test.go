package container_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/netpolicy"
	"github.com/cronium/cronium-agent/runner/output"
)

// The destination of the egress tests: a namespace of the test's own,
// joined to the host by a veth pair. TEST-NET-2 (198.51.100.0/24): this VM
// has TEST-NET-1 on its own uplink (its gateway is 192.0.2.1), so that range
// would not stay inside the test's namespace.
const (
	destHostSide = "198.51.100.1"
	destAddr     = "198.51.100.2"
	destName     = "svc.cronium.test"
	metadataAddr = "169.254.169.254"
)

// destination is the test's namespace with its servers: TCP 8080 and 8081
// answering a line, DNS on UDP 53 knowing destName.
type destination struct {
	ns     string
	hostIf string
}

func newDestination(t *testing.T) *destination {
	t.Helper()
	suffix := strings.ToLower(randomSuffix()[:6])
	d := &destination{ns: "crn-t-" + suffix, hostIf: "crnt-" + suffix}
	t.Cleanup(func() { d.remove(t) })
	ip(t, "netns", "add", d.ns)
	ip(t, "link", "add", d.hostIf, "type", "veth", "peer", "name", "eth0", "netns", d.ns)
	ip(t, "addr", "add", destHostSide+"/30", "dev", d.hostIf)
	ip(t, "link", "set", d.hostIf, "up")
	ip(t, "-n", d.ns, "addr", "add", destAddr+"/30", "dev", "eth0")
	ip(t, "-n", d.ns, "link", "set", "eth0", "up")
	ip(t, "-n", d.ns, "link", "set", "lo", "up")
	ip(t, "-n", d.ns, "route", "add", "default", "via", destHostSide)
	tcp8080, tcp8081, udp53 := d.listen(t)
	for _, l := range []net.Listener{tcp8080, tcp8081} {
		t.Cleanup(func() { l.Close() })
		go serveLine(l)
	}
	t.Cleanup(func() { udp53.Close() })
	go testenv.ServeDNS(udp53, map[string]netip.Addr{destName + ".": netip.MustParseAddr(destAddr)}, nil)
	return d
}

// listen makes the servers' sockets inside the namespace: a socket belongs
// to the namespace of the thread that made it, whatever thread serves it
// later. The thread is left locked, so that the runtime ends it rather
// than run other goroutines in the test's namespace.
func (d *destination) listen(t *testing.T) (a, b net.Listener, dns net.PacketConn) {
	t.Helper()
	type socks struct {
		a, b net.Listener
		dns  net.PacketConn
		err  error
	}
	ch := make(chan socks, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		var s socks
		defer func() { ch <- s }()
		h, err := netns.GetFromName(d.ns)
		if err != nil {
			s.err = err
			return
		}
		defer h.Close()
		if s.err = netns.Set(h); s.err != nil {
			return
		}
		if s.a, s.err = net.Listen("tcp", destAddr+":8080"); s.err != nil {
			return
		}
		if s.b, s.err = net.Listen("tcp", destAddr+":8081"); s.err != nil {
			return
		}
		s.dns, s.err = net.ListenPacket("udp", destAddr+":53")
	}()
	s := <-ch
	if s.err != nil {
		t.Fatalf("servers in %s: %v", d.ns, s.err)
	}
	return s.a, s.b, s.dns
}

// remove deletes the namespace (its servers' sockets go with it) and the
// veth pair, and checks that neither is left.
func (d *destination) remove(t *testing.T) {
	exec.Command("ip", "netns", "del", d.ns).Run()
	exec.Command("ip", "link", "del", d.hostIf).Run()
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), d.ns) {
		t.Errorf("namespace %s left", d.ns)
	}
	if linkExists(d.hostIf) {
		t.Errorf("veth %s left", d.hostIf)
	}
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v %s", args, err, out)
	}
}

// serveLine answers every connection with a line naming its port.
func serveLine(l net.Listener) {
	_, port, _ := net.SplitHostPort(l.Addr().String())
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		fmt.Fprintf(c, "hello %s\n", port)
		c.Close()
	}
}

// destResolver asks the test's DNS server, as the agent asks the host's.
func destResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", net.JoinHostPort(destAddr, "53"))
	}}
}

// withOutbound gives the harness's jobs egress mode with the policy of
// allow and deny (names resolved with the test's DNS server), and the
// test's DNS server.
func withOutbound(t *testing.T, mode cni.Egress, allow, deny []string) harnessOpt {
	return func(c *harnessConfig) {
		c.network = func(nc *cni.Config) {
			p, err := netpolicy.New(netpolicy.Mode(mode), allow, deny, netpolicy.WithJobPool(nc.Pool))
			if err != nil {
				t.Fatal(err)
			}
			nc.Egress = mode
			nc.Outbound = container.OutboundOf(p, destResolver())
			nc.DNS = []netip.Addr{netip.MustParseAddr(destAddr)}
		}
	}
}

// egressProbe tries, from the job, what the cases look at; each attempt is
// bounded by 2 s and prints one line.
const egressProbe = `
echo "resolv: $(grep -c '^nameserver ` + destAddr + `$' /etc/resolv.conf)"
if out=$(getent hosts ` + destName + `); then echo "getent: $out" | tr -s ' \t' ' '; else echo "getent: failed"; fi
tcp() {
	if line=$(timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2 && head -n1 <&3" 2>/dev/null) && [ -n "$line" ]; then
		echo "tcp $1:$2: $line"
	else
		echo "tcp $1:$2: failed"
	fi
}
tcp ` + destAddr + ` 8080
tcp ` + destAddr + ` 8081
tcp ` + destHostSide + ` "$HOST_PORT"
`

// TestScriptEgress runs jobs under each egress mode against the test's
// own destination namespace.
func TestScriptEgress(t *testing.T) {
	newDestination(t)
	hostPort := hostListener(t)
	for _, tc := range []struct {
		name        string
		mode        cni.Egress
		allow, deny []string
		want        []string
	}{
		{"all", cni.EgressAll, nil, []string{destAddr + ":8081"}, []string{
			"resolv: 1", "getent: " + destAddr + " " + destName, "tcp " + destAddr + ":8080: hello 8080",
			"tcp " + destAddr + ":8081: failed",                 // network.deny
			"tcp " + destHostSide + ":" + hostPort + ": failed", // the host itself: INPUT
		}},
		{"none", cni.EgressNone, nil, nil, []string{
			"resolv: 0", "getent: failed", "tcp " + destAddr + ":8080: failed", "tcp " + destAddr + ":8081: failed",
			"tcp " + destHostSide + ":" + hostPort + ": failed",
		}},
		{"allowlist by address", cni.EgressAllowlist, []string{destAddr + ":8080"}, nil, []string{
			"resolv: 1", "getent: " + destAddr + " " + destName, "tcp " + destAddr + ":8080: hello 8080",
			"tcp " + destAddr + ":8081: failed", "tcp " + destHostSide + ":" + hostPort + ": failed",
		}},
		{"allowlist by name", cni.EgressAllowlist, []string{destName + ":8080", "unknown.cronium.test"}, nil, []string{
			"resolv: 1", "getent: " + destAddr + " " + destName, "tcp " + destAddr + ":8080: hello 8080",
			"tcp " + destAddr + ":8081: failed", "tcp " + destHostSide + ":" + hostPort + ": failed",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h *harness
			checkNoRulesLeft(t, &h)
			h = newHarnessWith(t, []harnessOpt{withOutbound(t, tc.mode, tc.allow, tc.deny)})
			r := h.run(context.Background(), t, "bash", egressProbe, withEnv("HOST_PORT", hostPort))
			if r.err != nil || r.ExitCode != 0 {
				t.Fatalf("err %v exit %d stderr %q", r.err, r.ExitCode, r.stderr.String())
			}
			got := strings.TrimSpace(r.stdout.String())
			t.Logf("job output:\n%s", got)
			lines := strings.Split(got, "\n")
			for _, w := range tc.want {
				if !contains(lines, w) {
					t.Errorf("the job did not print %q", w)
				}
			}
		})
	}
}

// TestScriptEgressMetadataDropped: with egress all, a connect to the
// metadata address fails, and the job's own DROP rule for link-local is
// what stopped it (its packet counter). Should the rule not match, the
// host routes that address into the test's namespace, not out.
func TestScriptEgressMetadataDropped(t *testing.T) {
	newDestination(t)
	t.Cleanup(func() { exec.Command("ip", "route", "del", metadataAddr+"/32").Run() })
	ip(t, "route", "add", metadataAddr+"/32", "via", destAddr)
	var h *harness
	checkNoRulesLeft(t, &h)
	h = newHarnessWith(t, []harnessOpt{withOutbound(t, cni.EgressAll, nil, nil)})
	req := h.request(t, "bash", `if timeout 2 bash -c 'exec 3<>/dev/tcp/`+metadataAddr+`/80'; then echo "metadata: open"; else echo "metadata: failed"; fi
echo attempted
sleep 3`)
	runID := runIDOf(&req)
	var pkts int64 = -1
	var counterErr error
	r := h.runRequest(context.Background(), t, req, func(e output.Entry) {
		if string(e.Data) == "attempted" {
			pkts, counterErr = dropCounter(container.NetworkOf(runID()), "169.254.0.0/16")
		}
	})
	if r.err != nil || r.ExitCode != 0 {
		t.Fatalf("err %v exit %d stderr %q", r.err, r.ExitCode, r.stderr.String())
	}
	if !strings.Contains(r.stdout.String(), "metadata: failed") {
		t.Errorf("the metadata address answered: %q", r.stdout.String())
	}
	if counterErr != nil {
		t.Fatal(counterErr)
	}
	if pkts <= 0 {
		t.Errorf("the job's link-local DROP rule counted %d packets, want the connect's", pkts)
	}
}

// dropCounter reads the packet counter of the network's DROP rule for dst.
func dropCounter(netID, dst string) (int64, error) {
	out, err := exec.Command("iptables", "-w", "-L", "CRONIUM-FORWARD", "-v", "-x", "-n").Output()
	if err != nil {
		return 0, fmt.Errorf("list CRONIUM-FORWARD: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// pkts bytes target prot opt in out source destination ...
		if len(f) > 8 && f[2] == "DROP" && f[8] == dst && strings.Contains(sc.Text(), "/* cronium:"+netID+" */") {
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, errors.New("no DROP rule for " + dst + " tagged " + netID + ":\n" + string(out))
}

// checkNoRulesLeft checks, after the harness's own cleanup (teardowns
// included: register it before making the harness), that no firewall rule
// of its runs is left.
func checkNoRulesLeft(t *testing.T, hp **harness) {
	t.Cleanup(func() {
		h := *hp
		if h == nil {
			return
		}
		out, err := exec.Command("iptables", "-w", "-S", "CRONIUM-FORWARD").Output()
		if err != nil {
			t.Errorf("list CRONIUM-FORWARD: %v", err)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, id := range h.runIDs {
			if strings.Contains(string(out)+"\n", "cronium:"+container.NetworkOf(id)+"\n") || strings.Contains(string(out), "cronium:"+container.NetworkOf(id)+" ") {
				t.Errorf("firewall rule left for %s", id)
			}
		}
	})
}

// hostListener listens on the host's side of the destination's veth, an
// address of the host: no job may reach it (checked when the test ends).
func hostListener(t *testing.T) string {
	l, err := net.Listen("tcp", destHostSide+":0")
	if err != nil {
		t.Fatal(err)
	}
	var reached atomic.Int32
	t.Cleanup(func() {
		l.Close()
		if n := reached.Load(); n > 0 {
			t.Errorf("jobs reached the host at %s %d times", l.Addr(), n)
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
