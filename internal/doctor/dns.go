package doctor

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/cronium/cronium-agent/cni"
)

// dns: a script with a route out gets network.dns, or the host's
// nameservers that are not loopback, in its resolv.conf. A host whose
// resolv.conf names only a local stub resolver (systemd-resolved's
// 127.0.0.53, a dnsmasq on 127.0.0.1) leaves such jobs without DNS: they
// have a loopback of their own, not the host's.
func (d *doctor) dns(context.Context) Result {
	if !d.cfg.Network.Egress.ScriptRoute() {
		return pass("not needed (network.egress is none: scripts have no route out)")
	}
	if len(d.cfg.Network.DNS) > 0 {
		return pass("jobs with egress use network.dns: %s", strings.Join(d.cfg.Network.DNS, ", "))
	}
	path := filepath.Join(d.etc, "resolv.conf")
	fix := fmt.Sprintf("set network.dns in %s to resolvers a job can reach (those the local resolver forwards to: `resolvectl dns`, or your network's)", d.configPath)
	usable, unreachable, err := cni.HostNameservers(path)
	switch {
	case err != nil:
		return warn(fix, "jobs with egress get no DNS server: %v", err)
	case len(usable) == 0 && len(unreachable) > 0:
		return warn(fix, "jobs with egress get no DNS server: %s names only %s, which jobs cannot reach (a local stub resolver)", path, addrList(unreachable))
	case len(usable) == 0:
		return warn(fix, "jobs with egress get no DNS server: %s names no nameserver", path)
	}
	return pass("jobs with egress use the host's resolvers: %s", addrList(usable))
}

func addrList(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
