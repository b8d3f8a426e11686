package cni

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func dest(s string, port uint16) Destination {
	return Destination{Prefix: netip.MustParsePrefix(s), Port: port, Entry: s}
}

// The rules of each mode, in order: DNS, the denies, then what the mode
// lets out. Other jobs' bridges are never accepted.
func TestForwardRules(t *testing.T) {
	const tag = "-m comment --comment cronium:j1 -j "
	out := Outbound{
		Deny:  []Destination{dest("10.1.0.0/16", 0), dest("203.0.113.9/32", 443), dest("2001:db8::/32", 0)},
		Allow: []Destination{dest("169.254.169.254/32", 0), dest("10.0.0.0/8", 0)},
	}
	dns := []string{
		"-i crn-x ! -o crn-+ -d 169.254.169.253/32 -p tcp --dport 53 " + tag + "ACCEPT",
		"-i crn-x ! -o crn-+ -d 169.254.169.253/32 -p udp --dport 53 " + tag + "ACCEPT",
	}
	deny := []string{
		"-i crn-x -d 10.1.0.0/16 " + tag + "DROP",
		"-i crn-x -d 203.0.113.9/32 -p tcp --dport 443 " + tag + "DROP",
		"-i crn-x -d 203.0.113.9/32 -p udp --dport 443 " + tag + "DROP",
	}
	for _, tc := range []struct {
		name    string
		mode    Egress
		allowed []Destination
		want    []string
	}{
		{"all", EgressAll, nil, concat(dns, deny, []string{
			"-i crn-x ! -o crn-+ -d 169.254.169.254/32 " + tag + "ACCEPT", // an explicit allow beats the built-in drop
			"-i crn-x -d 169.254.0.0/16 " + tag + "DROP",
			"-i crn-x -d 224.0.0.0/4 " + tag + "DROP",
			"-i crn-x ! -o crn-+ " + tag + "ACCEPT",
		})},
		{"allowlist", EgressAllowlist, []Destination{dest("198.51.100.2/32", 8080), dest("10.0.0.0/8", 0), dest("2001:db8::5/128", 443)}, concat(dns, deny, []string{
			"-i crn-x ! -o crn-+ -d 198.51.100.2/32 -p tcp --dport 8080 " + tag + "ACCEPT",
			"-i crn-x ! -o crn-+ -d 198.51.100.2/32 -p udp --dport 8080 " + tag + "ACCEPT",
			"-i crn-x ! -o crn-+ -d 10.0.0.0/8 " + tag + "ACCEPT",
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &Network{ID: "j1", Bridge: "crn-x", Egress: true, Mode: tc.mode, DNS: []netip.Addr{netip.MustParseAddr("169.254.169.253")}}
			var got []string
			for _, r := range forwardRules(n, out, tc.allowed) {
				got = append(got, strings.Join(r, " "))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestHostNameservers(t *testing.T) {
	p := t.TempDir() + "/resolv.conf"
	writeFile(t, p, "# comment\nsearch corp.example\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nnameserver fd00::53\nnameserver 0.0.0.0\nnameserver 10.0.0.3\nnameserver bogus\nnameserver 10.0.0.4\nnameserver 10.0.0.5\n")
	usable, unreachable, err := HostNameservers(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(usable); got != "10.0.0.2 10.0.0.3 10.0.0.4" {
		t.Errorf("usable %s", got)
	}
	if got := addrs(unreachable); got != "127.0.0.53 ::1 fd00::53 0.0.0.0" {
		t.Errorf("unreachable %s", got)
	}
	if got := string(ResolvConf(usable)); got != "# cronium-agent: network.dns, or the host's resolvers\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\noptions timeout:2 attempts:2\n" {
		t.Errorf("resolv.conf %q", got)
	}
	if got := string(ResolvConf(nil)); !strings.Contains(got, "set network.dns") || strings.Contains(got, "nameserver") {
		t.Errorf("resolv.conf without servers %q", got)
	}
}

// An allowlist network: its rules are in the chain in their order and in
// its record, a name that does not resolve is left out, and teardown (one
// batch) and the sweep (by tag) remove them all.
func TestAllowlistRules(t *testing.T) {
	m := testManager(t, false)
	m.cfg.Egress = EgressAllowlist
	m.cfg.DNS = []netip.Addr{netip.MustParseAddr("198.51.100.53")}
	m.cfg.Outbound = Outbound{
		Deny: []Destination{dest("198.51.100.9/32", 0)},
		Resolve: func(context.Context) ([]Destination, error) {
			return []Destination{dest("198.51.100.0/24", 8080)}, errors.New(`network.allow entry "gone.example": no such host`)
		},
	}
	ctx := context.Background()
	tag := commentTag + "job_nettest7"
	for _, how := range []string{"teardown", "sweep"} {
		n, err := m.Setup(ctx, "job_nettest7")
		if err != nil {
			t.Fatal(err)
		}
		if out := ipn(t, n.NetNS, "route"); !strings.Contains(out, "default via "+n.Gateway.String()) {
			t.Errorf("allowlist job routes: %s", out)
		}
		rec, err := m.readRecord(n.ID)
		if err != nil || len(rec.Rules) != 5 || !slices.EqualFunc(rec.Rules, n.Rules, slices.Equal[[]string]) {
			t.Fatalf("record rules %q (%v), want the network's 5", rec.Rules, err)
		}
		listed, _ := m.fw.ipt.List("filter", chainForward)
		var ours []string
		for _, r := range listed {
			if strings.Contains(r, tag) {
				ours = append(ours, r)
			}
		}
		want := []string{"198.51.100.53/32 -i " + n.Bridge + " ! -o crn-+ -p tcp", "198.51.100.53/32 -i " + n.Bridge + " ! -o crn-+ -p udp", "198.51.100.9/32 -i " + n.Bridge + " -m comment", "198.51.100.0/24 -i " + n.Bridge + " ! -o crn-+ -p tcp -m tcp --dport 8080", "198.51.100.0/24 -i " + n.Bridge + " ! -o crn-+ -p udp -m udp --dport 8080"}
		if len(ours) != len(want) {
			t.Fatalf("rules in the chain:\n%s", strings.Join(ours, "\n"))
		}
		for i, w := range want {
			if !strings.Contains(ours[i], w) {
				t.Errorf("rule %d %q does not hold %q", i, ours[i], w)
			}
		}
		if len(listed) < 2 || !strings.HasPrefix(listed[1], "-A "+chainForward+" -d 198.51.100.53/32") {
			t.Errorf("the network's rules are not first: %q", listed)
		}
		switch how {
		case "teardown":
			if err := m.Teardown(ctx, n); err != nil {
				t.Fatal(err)
			}
		case "sweep":
			n.lock.Close()
			n.lock = nil
			if _, err := m.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
		}
		assertGone(t, m, n)
	}
}

// A record of an agent from before the egress modes (egress true, no
// rules) still has its one rule removed.
func TestLegacyEgressRecord(t *testing.T) {
	fw := &firewall{}
	n := &Network{ID: "j1", Bridge: "crn-x", Egress: true}
	if got := fw.rules(n); len(got) != 1 || strings.Join(got[0], " ") != "-i crn-x ! -o crn-+ -j ACCEPT -m comment --comment cronium:j1" {
		t.Errorf("legacy rules %q", got)
	}
	n.Mode = EgressAllowlist
	if got := fw.rules(n); got != nil {
		t.Errorf("rules of a recorded mode without rules: %q", got)
	}
}

func addrs(a []netip.Addr) string {
	s := make([]string, len(a))
	for i, x := range a {
		s[i] = x.String()
	}
	return strings.Join(s, " ")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkEgressSetup measures a network's setup and teardown in each
// egress mode; allowlist with 3 entries (resolved without DNS: the
// firewall's cost alone) and one DNS server.
func BenchmarkEgressSetup(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	for _, mode := range []Egress{EgressNone, EgressAll, EgressAllowlist} {
		b.Run(string(mode), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Egress = mode
			cfg.DNS = []netip.Addr{netip.MustParseAddr("198.51.100.53")}
			cfg.Outbound = Outbound{
				Deny: []Destination{dest("198.51.100.9/32", 0)},
				Resolve: func(context.Context) ([]Destination, error) {
					return []Destination{dest("198.51.100.2/32", 8080), dest("198.51.100.3/32", 443), dest("203.0.113.0/24", 0)}, nil
				},
			}
			m, err := New(cfg)
			if err != nil {
				b.Skip(err)
			}
			ctx := context.Background()
			var setup, teardown time.Duration
			rules := 0
			for i := range b.N {
				start := time.Now()
				n, err := m.Setup(ctx, "job_bench"+string(mode)+strconv.Itoa(i))
				if err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				rules = len(n.Rules)
				if err := m.Teardown(ctx, n); err != nil {
					b.Fatal(err)
				}
				setup += mid.Sub(start)
				teardown += time.Since(mid)
			}
			b.ReportMetric(float64(setup.Microseconds())/float64(b.N)/1000, "setup-ms")
			b.ReportMetric(float64(teardown.Microseconds())/float64(b.N)/1000, "teardown-ms")
			b.ReportMetric(float64(rules), "rules")
		})
	}
}
