package main

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/runner/httpexec"
	"github.com/cronium/cronium-agent/runner/netpolicy"
)

// outboundPolicy is the outbound policy of HTTP jobs and tool actions the
// configuration describes (http.egress; network.allow, network.deny;
// network.pool is denied as other jobs' networks), with the host's
// addresses enumerated now. Its mode is not the scripts' (network.egress):
// an HTTP job exists to call out, a script by default must not.
func outboundPolicy(cfg config.Config) (*netpolicy.Policy, error) {
	pool, err := netip.ParsePrefix(cfg.Network.Pool)
	if err != nil {
		return nil, fmt.Errorf("network.pool: %w", err)
	}
	return netpolicy.New(netpolicy.Mode(cfg.HTTP.Egress), cfg.Network.Allow, cfg.Network.Deny,
		netpolicy.WithJobPool(pool), netpolicy.WithModeKey("http.egress"))
}

// httpOptions configures the HTTP_REQUEST executor. A policy that cannot be
// made (the host's addresses unreadable: the configuration was validated)
// is logged, and every HTTP job is then refused rather than let out
// unchecked.
func httpOptions(env *cliEnv, cfg config.Config) []httpexec.Option {
	p, err := outboundPolicy(cfg)
	if err != nil {
		env.log.Error("no outbound policy: every HTTP job will be refused", "error", err)
	}
	return []httpexec.Option{
		httpexec.WithPolicy(p),
		httpexec.WithMaxBody(int64(cfg.HTTP.MaxBody)),
		httpexec.WithConnectTimeout(time.Duration(cfg.HTTP.ConnectTimeout)),
	}
}
