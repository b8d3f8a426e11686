package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseEntry(t *testing.T) {
	for _, tc := range []struct {
		in     string
		host   string
		prefix string
		port   uint16
		err    string
	}{
		{in: "10.0.0.0/8", prefix: "10.0.0.0/8"},
		{in: "10.1.2.3/16", prefix: "10.1.0.0/16"},
		{in: "10.0.0.0/8:443", prefix: "10.0.0.0/8", port: 443},
		{in: "192.0.2.7", prefix: "192.0.2.7/32"},
		{in: "192.0.2.7:8080", prefix: "192.0.2.7/32", port: 8080},
		{in: "::1", prefix: "::1/128"},
		{in: "[::1]:8080", prefix: "::1/128", port: 8080},
		{in: "fd00::/8", prefix: "fd00::/8"},
		{in: "[fd00::/8]:53", prefix: "fd00::/8", port: 53},
		{in: "::ffff:127.0.0.1", prefix: "127.0.0.1/32"},
		{in: "API.Example.com.", host: "api.example.com"},
		{in: "api.example.com:443", host: "api.example.com", port: 443},
		{in: " localhost ", host: "localhost"},
		{in: "", err: `entry "": empty`},
		{in: "10.0.0.0/33", err: `entry "10.0.0.0/33": invalid CIDR`},
		{in: "10.0.0.300", err: `entry "10.0.0.300": "10.0.0.300" is not a valid IP address`},
		{in: "example.com:0", err: `entry "example.com:0": port "0"`},
		{in: "example.com:http", err: `port "http"`},
		{in: "10.0.0.0/8:99999", err: `port "99999"`},
		{in: "exa mple.com", err: `is not an address, a CIDR or a host name`},
		{in: "-bad.example", err: `is not an address, a CIDR or a host name`},
		{in: "[::1", err: "missing ]"},
		{in: "[example.com]:80", err: "is not an IPv6 address"},
		{in: "fe80::1%eth0", err: "zoned"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			e, err := ParseEntry(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var prefix string
			if e.Prefix.IsValid() {
				prefix = e.Prefix.String()
			}
			if e.Host != tc.host || prefix != tc.prefix || e.Port != tc.port || e.Raw != tc.in {
				t.Errorf("got %+v", e)
			}
		})
	}
}

func TestNewNamesTheBadEntries(t *testing.T) {
	_, err := New(ModeNone, []string{"10.0.0.0/8", "10.0.0.0/99"}, []string{"nope!"}, WithHostAddrs())
	for _, want := range []string{`network.allow entry "10.0.0.0/99"`, `network.deny entry "nope!"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if _, err := New("open", nil, nil, WithHostAddrs()); err == nil || !strings.Contains(err.Error(), `"open": want none, allowlist or all`) {
		t.Errorf("bad mode: %v", err)
	}
}

// The four steps in their order, every built-in class, the address
// override and the name rules.
func TestCheck(t *testing.T) {
	host := netip.MustParseAddr("192.0.2.10") // stands for the host's own address
	pool := netip.MustParsePrefix("10.213.0.0/16")
	type policy struct {
		mode        Mode
		allow, deny []string
	}
	none, all := policy{mode: ModeNone}, policy{mode: ModeAll}
	for _, tc := range []struct {
		name   string
		p      policy
		host   string
		addr   string
		refuse string // "" allows; else a substring of the refusal
	}{
		// The mode, when nothing else speaks.
		{"none refuses a public address", none, "", "203.0.113.5:443", `203.0.113.5:443 is not in network.allow (network.egress is none)`},
		{"allowlist refuses what is not allowed", policy{mode: ModeAllowlist, allow: []string{"203.0.113.0/24"}}, "", "198.51.100.1:443", "not in network.allow (network.egress is allowlist)"},
		{"allowlist allows an entry", policy{mode: ModeAllowlist, allow: []string{"203.0.113.0/24"}}, "", "203.0.113.5:443", ""},
		{"none allows an entry too", policy{mode: ModeNone, allow: []string{"203.0.113.5"}}, "", "203.0.113.5:443", ""},
		{"all allows a public address", all, "", "203.0.113.5:443", ""},
		{"all, IPv6", all, "", "[2001:db8::1]:443", ""},
		// The built-in classes, whatever the mode.
		{"loopback", all, "", "127.0.0.1:8080", `127.0.0.1:8080 is loopback (allow it with network.allow: "127.0.0.1/32")`},
		{"loopback, the whole /8", all, "", "127.1.2.3:80", "is loopback"},
		{"loopback v6", all, "", "[::1]:80", `is loopback (allow it with network.allow: "::1/128")`},
		{"v4-mapped loopback", all, "", "[::ffff:127.0.0.1]:80", "127.0.0.1:80 is loopback"},
		{"metadata", all, "", "169.254.169.254:80", "169.254.169.254:80 is link-local (the cloud metadata service)"},
		{"link-local", all, "", "169.254.1.1:80", "is link-local"},
		{"link-local v6", all, "", "[fe80::1]:80", "is link-local"},
		{"unspecified", all, "", "0.0.0.0:80", "is unspecified"},
		{"unspecified v6", all, "", "[::]:80", "is unspecified"},
		{"multicast", all, "", "224.0.0.1:80", "multicast"},
		{"broadcast", all, "", "255.255.255.255:80", "broadcast"},
		{"the host's own address", all, "", "192.0.2.10:22", "192.0.2.10:22 is an address of this host"},
		{"another job", all, "", "10.213.4.2:80", "is in the job network pool 10.213.0.0/16 (other jobs' networks)"},
		{"beside the pool", all, "", "10.214.0.1:80", ""},
		// Explicit allow by address overrides the built-in deny.
		{"loopback allowed by CIDR", policy{mode: ModeNone, allow: []string{"127.0.0.1/32"}}, "", "127.0.0.1:8080", ""},
		{"loopback allowed on one port only", policy{mode: ModeAll, allow: []string{"127.0.0.1:8080"}}, "", "127.0.0.1:8081", "is loopback"},
		{"the pool allowed by CIDR", policy{mode: ModeNone, allow: []string{"10.213.4.0/24"}}, "", "10.213.4.2:80", ""},
		// Explicit deny beats everything.
		{"deny beats allow", policy{mode: ModeAll, allow: []string{"10.0.0.0/8"}, deny: []string{"10.1.0.0/16"}}, "", "10.1.2.3:443", `10.1.2.3:443 matches network.deny entry "10.1.0.0/16"`},
		{"deny on one port", policy{mode: ModeAll, deny: []string{"203.0.113.5:25"}}, "", "203.0.113.5:25", `network.deny entry "203.0.113.5:25"`},
		{"deny on one port, another port", policy{mode: ModeAll, deny: []string{"203.0.113.5:25"}}, "", "203.0.113.5:443", ""},
		{"deny beats an explicit loopback allow", policy{mode: ModeNone, allow: []string{"127.0.0.1/32"}, deny: []string{"127.0.0.1:9"}}, "", "127.0.0.1:9", "network.deny entry"},
		{"deny by name", policy{mode: ModeAll, deny: []string{"evil.example"}}, "Evil.Example.", "203.0.113.5:443", `203.0.113.5:443 (evil.example) matches network.deny entry "evil.example"`},
		// Names match the requested host, never an address of a built-in class.
		{"allow by name", policy{mode: ModeNone, allow: []string{"api.example.com"}}, "api.example.com", "203.0.113.5:443", ""},
		{"allow by name and port", policy{mode: ModeNone, allow: []string{"api.example.com:443"}}, "api.example.com", "203.0.113.5:80", "not in network.allow"},
		{"a name does not match another name", policy{mode: ModeNone, allow: []string{"api.example.com"}}, "www.example.com", "203.0.113.5:443", "(www.example.com) is not in network.allow"},
		{"a name does not match the address it resolved to", policy{mode: ModeNone, allow: []string{"api.example.com"}}, "", "203.0.113.5:443", "not in network.allow"},
		{"rebinding to loopback", policy{mode: ModeNone, allow: []string{"api.example.com"}}, "api.example.com", "127.0.0.1:443",
			`api.example.com resolved to 127.0.0.1:443, which is loopback: network.allow entry "api.example.com" names the host, not this address (allow the address with network.allow: "127.0.0.1/32")`},
		{"rebinding to the metadata service", policy{mode: ModeAll, allow: []string{"api.example.com"}}, "api.example.com", "169.254.169.254:80", "which is link-local (the cloud metadata service)"},
		{"rebinding, the address allowed too", policy{mode: ModeNone, allow: []string{"api.example.com", "127.0.0.1/32"}}, "api.example.com", "127.0.0.1:443", ""},
		{"an IP literal host is no name", policy{mode: ModeNone, allow: []string{"api.example.com"}}, "127.0.0.1", "127.0.0.1:80", "127.0.0.1:80 is loopback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.p.mode, tc.p.allow, tc.p.deny, WithHostAddrs(host), WithJobPool(pool))
			if err != nil {
				t.Fatal(err)
			}
			err = p.Check(tc.host, netip.MustParseAddrPort(tc.addr))
			if tc.refuse == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *RefusedError
			if !errors.As(err, &re) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.refuse) {
				t.Fatalf("err = %v, want a refusal with %q", err, tc.refuse)
			}
			if !strings.HasPrefix(err.Error(), "refused by the outbound policy: ") {
				t.Errorf("message %q", err)
			}
		})
	}
}

func TestNewEnumeratesTheHostAddresses(t *testing.T) {
	p, err := New(ModeAll, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifa := range ifas {
		a, _ := netip.AddrFromSlice(ifa.(*net.IPNet).IP)
		if err := p.Check("", netip.AddrPortFrom(a.Unmap(), 80)); err == nil {
			t.Errorf("the host's address %s is allowed", a)
		}
	}
}

type fakeResolver map[string][]string

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ss, ok := r[host]
	if !ok {
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func TestResolve(t *testing.T) {
	p, err := New(ModeAllowlist,
		[]string{"10.0.0.0/8", "api.example.com:443", "rebind.example", "gone.example", "[2001:db8::/32]:80", "127.0.0.1:5432"},
		[]string{"10.1.0.0/16", "198.51.100.9"},
		WithHostAddrs(), WithJobPool(netip.MustParsePrefix("172.31.0.0/16")))
	if err != nil {
		t.Fatal(err)
	}
	r := fakeResolver{
		"api.example.com": {"203.0.113.5", "2001:db8::5", "198.51.100.9"},
		"rebind.example":  {"127.0.0.1", "169.254.169.254", "172.31.0.2", "203.0.113.6"},
	}
	got, err := p.Resolve(context.Background(), r)
	if err == nil || !strings.Contains(err.Error(), `network.allow entry "gone.example": lookup gone.example: no such host`) {
		t.Errorf("err = %v, want the unresolved name", err)
	}
	var s []string
	for _, d := range got {
		s = append(s, fmt.Sprintf("%s:%d<%s", d.Prefix, d.Port, d.Entry))
	}
	want := []string{
		"10.0.0.0/8:0<10.0.0.0/8",
		"203.0.113.5/32:443<api.example.com:443", "2001:db8::5/128:443<api.example.com:443", // 198.51.100.9 is denied
		"203.0.113.6/32:0<rebind.example", // loopback, metadata and the pool left out
		"2001:db8::/32:80<[2001:db8::/32]:80",
		"127.0.0.1/32:5432<127.0.0.1:5432",
	}
	if !slices.Equal(s, want) {
		t.Errorf("Resolve:\n got %q\nwant %q", s, want)
	}
	var deny []string
	for _, d := range p.DenyPrefixes() {
		deny = append(deny, d.Prefix.String())
	}
	if !slices.Equal(deny, []string{"10.1.0.0/16", "198.51.100.9/32"}) {
		t.Errorf("DenyPrefixes = %q", deny)
	}
}

// The dialer checks the address it connects to: an allowed loopback
// server is reached; refused addresses never get to the connect.
func TestDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var connects atomic.Int32
	hook := WithConnectHook(func(_, address string) error {
		connects.Add(1)
		// A safety net: whatever the policy says, tests only reach loopback.
		if ap, err := netip.ParseAddrPort(address); err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("test: connect to %s blocked", address)
		}
		return nil
	})
	srv := ln.Addr().String()
	for _, tc := range []struct {
		name     string
		allow    []string
		deny     []string
		addr     string
		connects int32
		err      string
	}{
		{"allowed loopback", []string{"127.0.0.1/32"}, nil, srv, 1, ""},
		{"loopback by default", nil, nil, srv, 0, "is loopback"},
		{"metadata", nil, nil, "169.254.169.254:80", 0, "link-local (the cloud metadata service)"},
		{"public address in mode none", nil, nil, "203.0.113.5:443", 0, "not in network.allow"},
		{"denied name, before DNS", []string{"127.0.0.1/32"}, []string{"db.internal.example"}, "db.internal.example:5432", 0, `db.internal.example:5432 matches network.deny entry "db.internal.example"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			connects.Store(0)
			p, err := New(ModeNone, tc.allow, tc.deny, WithHostAddrs(), hook)
			if err != nil {
				t.Fatal(err)
			}
			c, err := p.DialContext(context.Background(), "tcp", tc.addr)
			if c != nil {
				c.Close()
			}
			if tc.err == "" && err != nil || tc.err != "" && (!errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("err = %v, want %q", err, tc.err)
			}
			if n := connects.Load(); n != tc.connects {
				t.Errorf("%d connects attempted, want %d", n, tc.connects)
			}
		})
	}
	if _, err := (&Policy{}).Dial(context.Background(), &net.Dialer{}, "tcp", srv); err == nil {
		t.Error("a dialer without the check dialled")
	}
}

func BenchmarkCheck(b *testing.B) {
	p, err := New(ModeNone, []string{"127.0.0.1/32", "api.example.com", "10.0.0.0/8:443"}, []string{"10.1.0.0/16", "evil.example"}, WithHostAddrs(netip.MustParseAddr("192.0.2.10")), WithJobPool(netip.MustParsePrefix("10.213.0.0/16")))
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, host, addr string }{
		{"allowed by address", "", "127.0.0.1:8080"},
		{"allowed by name", "api.example.com", "203.0.113.5:443"},
		{"allowed, last allow entry", "", "10.2.3.4:443"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ap := netip.MustParseAddrPort(tc.addr)
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Check(tc.host, ap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
