package doctor

import (
	"testing"

	"github.com/cronium/cronium-agent/internal/config"
)

func TestDNS(t *testing.T) {
	egress := func(mode config.Egress, dns ...string) config.Config {
		c := config.Default()
		c.Network.Egress, c.Network.DNS = mode, dns
		return c
	}
	for _, tc := range []struct {
		name       string
		cfg        config.Config
		resolvConf string // absent when empty
		want       want
	}{
		{"no egress", egress(config.EgressNone), "nameserver 127.0.0.53\n", want{status: Pass, detail: []string{"not needed"}}},
		{"host resolvers", egress(config.EgressAll), "search example.com\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver fd00::53\n",
			want{status: Pass, detail: []string{"10.1.2.3"}, absent: []string{"127.0.0.53", "fd00"}}},
		{"only a local stub", egress(config.EgressAllowlist), "nameserver 127.0.0.53\noptions edns0\n",
			want{status: Warn, detail: []string{"no DNS server", "only 127.0.0.53"}, fix: []string{"network.dns"}}},
		{"only a local stub, network.dns set", egress(config.EgressAll, "10.9.9.9"), "nameserver 127.0.0.53\n",
			want{status: Pass, detail: []string{"network.dns: 10.9.9.9"}}},
		{"no resolv.conf", egress(config.EgressAll), "", want{status: Warn, detail: []string{"no DNS server"}, fix: []string{"network.dns"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			etc := t.TempDir()
			if tc.resolvConf != "" {
				writeTree(t, etc, map[string]string{"resolv.conf": tc.resolvConf})
			}
			tc.want.check(t, runCheck(t, tc.cfg, "dns", WithEtcDir(etc)))
		})
	}
}
