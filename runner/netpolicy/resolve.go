package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Resolver looks names up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Destination is an address range a job may reach, on one port or all (0).
type Destination struct {
	Prefix netip.Prefix
	Port   uint16
	// Entry is the network.allow entry it comes from.
	Entry string
}

// Resolve turns the network.allow entries into destinations, looking names
// up with r: what per-job firewall rules for scripts are built from (a
// script's connections do not pass through the agent's dialer). Address
// entries are returned as written. A name's addresses go through Check as
// a connection to that name would, so an address in network.deny or in a
// built-in class not allowed by an address entry is left out (the DNS
// rebinding rule). Deny entries that cut into an allowed CIDR are not
// subtracted: the caller installs DenyPrefixes before these. A name that
// does not resolve is left out and reported in the joined error, beside the
// destinations of the others.
func (p *Policy) Resolve(ctx context.Context, r Resolver) ([]Destination, error) {
	var out []Destination
	var errs []error
	for _, e := range p.allow {
		if !e.IsName() {
			out = append(out, Destination{Prefix: e.Prefix, Port: e.Port, Entry: e.Raw})
			continue
		}
		addrs, err := r.LookupNetIP(ctx, "ip", e.Host)
		if err != nil {
			errs = append(errs, fmt.Errorf("network.allow entry %q: %w", e.Raw, err))
			continue
		}
		for _, a := range addrs {
			a = a.Unmap().WithZone("")
			// Port 0 stands for "any": only the deny classes matter then.
			if p.Check(e.Host, netip.AddrPortFrom(a, e.Port)) != nil {
				continue
			}
			out = append(out, Destination{Prefix: netip.PrefixFrom(a, a.BitLen()), Port: e.Port, Entry: e.Raw})
		}
	}
	return out, errors.Join(errs...)
}

// DenyPrefixes are the address ranges refused before any allow, with their
// port (0: all): the network.deny address entries. Name entries of
// network.deny are not included (they are matched on names, which a
// firewall does not see).
func (p *Policy) DenyPrefixes() []Destination {
	var out []Destination
	for _, e := range p.deny {
		if !e.IsName() {
			out = append(out, Destination{Prefix: e.Prefix, Port: e.Port, Entry: e.Raw})
		}
	}
	return out
}
