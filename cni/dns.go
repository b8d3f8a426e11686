package cni

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// MaxDNS is how many nameservers a resolv.conf may usefully name: the C
// library's resolver reads the first three only.
const MaxDNS = 3

// HostNameservers reads the nameservers of a resolv.conf (the host's is
// /etc/resolv.conf): those a job can use, and those it cannot reach —
// loopback (a local stub resolver such as systemd-resolved's 127.0.0.53 or
// dnsmasq on 127.0.0.1), unspecified, or IPv6 (jobs have none). At most
// MaxDNS usable ones are returned.
func HostNameservers(path string) (usable, unreachable []netip.Addr, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read the host's resolvers: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue // the C library skips what it cannot read too
		}
		a = a.Unmap()
		if a.IsLoopback() || a.IsUnspecified() || !a.Is4() {
			unreachable = append(unreachable, a)
			continue
		}
		if len(usable) < MaxDNS {
			usable = append(usable, a)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return usable, unreachable, nil
}

// ResolvConf is the resolv.conf of a job with egress: its DNS servers, no
// search domains (a job has no business with the host's), and short
// timeouts so that a server that does not answer fails fast.
func ResolvConf(servers []netip.Addr) []byte {
	var b strings.Builder
	b.WriteString("# cronium-agent: network.dns, or the host's resolvers\n")
	if len(servers) == 0 {
		b.WriteString("# none: the host has only local resolvers, which jobs cannot reach; set network.dns\n")
	}
	for i, s := range servers {
		if i == MaxDNS {
			break
		}
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	b.WriteString("options timeout:2 attempts:2\n")
	return []byte(b.String())
}
