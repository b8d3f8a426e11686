package cni

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Egress is what a job's network lets out: network.egress for scripts.
type Egress string

// The egress modes. none gives a job no route out. all and allowlist give it
// a default route and masquerading; its forwarding rules (one batch per job,
// tagged with its id) then decide what leaves: all lets everything out but
// the denied ranges, allowlist only the DNS servers and the allowed
// destinations resolved when the network is set up.
const (
	EgressNone      Egress = "none"
	EgressAllowlist Egress = "allowlist"
	EgressAll       Egress = "all"
)

// routesOut says whether a network of this mode has a default route.
func (e Egress) routesOut() bool { return e == EgressAll || e == EgressAllowlist }

func (e Egress) valid() bool {
	switch e {
	case "", EgressNone, EgressAllowlist, EgressAll:
		return true
	}
	return false
}

// Destination is an address range, on one port (TCP and UDP) or, with
// Port 0, on every port and protocol.
type Destination struct {
	Prefix netip.Prefix
	Port   uint16
	// Entry is the configuration entry it comes from, for logs.
	Entry string
}

// Outbound is the outbound policy as a job's forwarding rules need it
// (package runner/container builds it from runner/netpolicy). Only IPv4
// ranges are used: jobs have no IPv6.
type Outbound struct {
	// Deny is dropped before anything else but DNS is accepted
	// (network.deny's address entries).
	Deny []Destination
	// Allow are network.allow's address entries. With egress all they
	// exempt what they name from the built-in drops (an explicit allow
	// of 169.254.169.254 reaches the metadata service).
	Allow []Destination
	// Resolve gives, with egress allowlist, what a job may reach:
	// network.allow with its names looked up now. It is called once per
	// network setup; on an error the destinations it returned are used and
	// the error is logged (one name that does not resolve costs that name,
	// not the job).
	Resolve func(ctx context.Context) ([]Destination, error)
}

// builtinDrops are the built-in denies that forwarding could reach. The
// others need no rule: the host's own addresses are delivered to INPUT,
// where the agent's chain drops all but the runtime API; other jobs'
// bridges are never accepted (! -o crn+); loopback, unspecified and the
// limited broadcast are never forwarded by the kernel.
func builtinDrops() []Destination {
	return []Destination{
		{Prefix: netip.MustParsePrefix("169.254.0.0/16"), Entry: "link-local (the cloud metadata service)"},
		{Prefix: netip.MustParsePrefix("224.0.0.0/4"), Entry: "multicast"},
	}
}

// resolveTimeout bounds the lookups of one network's allowlist.
const resolveTimeout = 5 * time.Second

// resolution is an allowlist being resolved while the network is made.
type resolution struct {
	done  chan struct{}
	dests []Destination
	err   error
}

// startResolve resolves the allowlist in the background: lookups take as
// long as the rest of the setup, which they need not wait for.
func (m *Manager) startResolve(ctx context.Context) *resolution {
	r := &resolution{done: make(chan struct{})}
	if m.cfg.Egress != EgressAllowlist || m.cfg.Outbound.Resolve == nil {
		close(r.done)
		return r
	}
	go func() {
		defer close(r.done)
		rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		defer cancel()
		r.dests, r.err = m.cfg.Outbound.Resolve(rctx)
	}()
	return r
}

func (r *resolution) wait() ([]Destination, error) {
	<-r.done
	return r.dests, r.err
}

// forwardRules are an egress network's rules in the agent's FORWARD chain,
// first to last. All match on the job's bridge as the input interface, so
// they never see the answers coming back (accepted by the chain's
// RELATED,ESTABLISHED rule), and every accept excludes other jobs' bridges.
func forwardRules(n *Network, out Outbound, allowed []Destination) [][]string {
	b := ruleBuilder{bridge: n.Bridge, tag: commentTag + n.ID}
	// DNS first: network.dns is the operator's explicit choice, and may
	// well be link-local (169.254.169.253 on some clouds).
	for _, s := range n.DNS {
		if s.Is4() {
			b.add(Destination{Prefix: netip.PrefixFrom(s, 32), Port: 53}, "ACCEPT")
		}
	}
	for _, d := range out.Deny {
		b.add(d, "DROP")
	}
	switch n.Mode {
	case EgressAll:
		for _, d := range out.Allow {
			if overlapsBuiltin(d.Prefix) {
				b.add(d, "ACCEPT")
			}
		}
		for _, d := range builtinDrops() {
			b.add(d, "DROP")
		}
		b.add(Destination{Prefix: netip.MustParsePrefix("0.0.0.0/0")}, "ACCEPT")
	case EgressAllowlist:
		for _, d := range allowed {
			b.add(d, "ACCEPT")
		}
		// Everything else falls through to the chain's DROP.
	}
	return b.rules
}

func overlapsBuiltin(p netip.Prefix) bool {
	for _, d := range builtinDrops() {
		if p.Overlaps(d.Prefix) {
			return true
		}
	}
	return false
}

type ruleBuilder struct {
	bridge, tag string
	rules       [][]string
}

// add appends the rules for d: one without a port, one per protocol with
// one. IPv6 ranges are skipped (jobs have none).
func (b *ruleBuilder) add(d Destination, target string) {
	if !d.Prefix.IsValid() || !d.Prefix.Addr().Is4() {
		return
	}
	head := []string{"-i", b.bridge}
	if target == "ACCEPT" {
		head = append(head, "!", "-o", BridgePrefix+"+")
	}
	if d.Prefix.Bits() > 0 {
		head = append(head, "-d", d.Prefix.Masked().String())
	}
	tail := []string{"-m", "comment", "--comment", b.tag, "-j", target}
	if d.Port == 0 {
		b.rules = append(b.rules, concat(head, tail))
		return
	}
	port := strconv.Itoa(int(d.Port))
	for _, proto := range []string{"tcp", "udp"} {
		b.rules = append(b.rules, concat(head, []string{"-p", proto, "--dport", port}, tail))
	}
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// String is a destination for logs.
func (d Destination) String() string {
	if d.Port == 0 {
		return d.Prefix.String()
	}
	return fmt.Sprintf("%s:%d", d.Prefix, d.Port)
}
