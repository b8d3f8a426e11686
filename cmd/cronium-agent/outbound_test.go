package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/internal/config"
)

// The outbound policy of HTTP jobs is the configuration's: http.egress
// (all by default: an HTTP job exists to call out), the entries, and the
// job network pool denied.
func TestOutboundPolicy(t *testing.T) {
	def := config.Default()
	allowed := config.Default()
	allowed.Network.Allow = []string{"127.0.0.1/32"}
	none := config.Default()
	none.HTTP.Egress = config.EgressNone
	for _, tc := range []struct {
		name   string
		cfg    config.Config
		addr   string
		refuse string
	}{
		{"default: loopback", def, "127.0.0.1:80", "is loopback"},
		{"default: the outside", def, "203.0.113.5:443", ""},
		{"default: another job", def, "10.213.0.6:80", "in the job network pool 10.213.0.0/16"},
		{"default: the metadata service", def, "169.254.169.254:80", "link-local"},
		{"allowed loopback", allowed, "127.0.0.1:80", ""},
		{"none: the outside", none, "203.0.113.5:443", "not in network.allow (http.egress is none)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := outboundPolicy(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Check("", netip.MustParseAddrPort(tc.addr))
			if tc.refuse == "" && err != nil || tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse)) {
				t.Errorf("Check(%s) = %v, want %q", tc.addr, err, tc.refuse)
			}
		})
	}
}
