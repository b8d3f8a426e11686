// Package netpolicy is the agent's one outbound policy: what HTTP jobs, tool
// actions and egress-enabled scripts may connect to from the agent's host.
//
// A destination is decided in this order, the first rule that speaks wins:
//
//  1. an explicit deny: a network.deny entry covers the address dialled, or
//     names the requested host (and port);
//  2. an explicit allow: a network.allow address entry (IP or CIDR, with an
//     optional port) covers the address dialled, or a name entry matches the
//     requested host (and port) — but a name never allows step 3's classes;
//  3. the built-in denies: the host's own addresses, loopback
//     (127.0.0.0/8, ::1), link-local (169.254.0.0/16 with the cloud metadata
//     address, fe80::/10), unspecified (0.0.0.0/8, ::), multicast and
//     broadcast, and the job network pool (other jobs' networks);
//  4. the mode: all allows the rest; none and allowlist refuse it.
//
// For HTTP requests none and allowlist are the same (only network.allow
// goes out); they differ for scripts, where none gives a job no route out
// at all and allowlist routes it through per-job rules built from Resolve.
//
// The check runs on the address actually connected to, right before the
// connect (a net.Dialer Control hook): every DNS answer and every redirect
// hop is checked, not just the URL. A name in network.allow matches the
// requested host, yet a name that resolves into a built-in deny class is
// still refused unless an address entry names that address: otherwise a
// DNS answer the job's author controls (DNS rebinding) would open loopback
// or the metadata service to any allowed name.
package netpolicy

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Mode is network.egress: what goes out when no entry speaks.
type Mode string

// The modes of network.egress.
const (
	ModeNone      Mode = "none"
	ModeAllowlist Mode = "allowlist"
	ModeAll       Mode = "all"
)

// ErrRefused is what every refusal Is.
var ErrRefused = errors.New("refused by the outbound policy")

// RefusedError is a destination the policy refused, with the rule that did.
type RefusedError struct {
	// Host is the requested host name (empty when an address was dialled).
	Host string
	// Addr is the address refused.
	Addr netip.AddrPort
	// Reason says which rule refused it, and how to allow it when it can be.
	Reason string
}

func (e *RefusedError) Error() string { return ErrRefused.Error() + ": " + e.Reason }

// Is makes errors.Is(err, ErrRefused) true for every refusal.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// class is a built-in deny class.
type class struct {
	name     string
	prefixes []netip.Prefix
}

// Policy decides outbound destinations. It is immutable once made, so one
// Policy serves every job at once.
type Policy struct {
	mode        Mode
	modeKey     string // the setting that sets mode, for messages
	allow, deny []Entry
	classes     []class
	hostAddrs   map[netip.Addr]struct{}
	pool        netip.Prefix
	// next runs after an allowed check, right before the connect (tests
	// count connects with it).
	next controlFunc
}

// Option configures New.
type Option func(*options)

type options struct {
	hostAddrs    []netip.Addr
	hostAddrsSet bool
	pool         netip.Prefix
	next         controlFunc
	modeKey      string
}

// WithModeKey names the setting the mode comes from in refusals (default
// network.egress).
func WithModeKey(key string) Option { return func(o *options) { o.modeKey = key } }

// WithHostAddrs replaces the enumeration of the host's interfaces (tests,
// or a caller that knows better).
func WithHostAddrs(addrs ...netip.Addr) Option {
	return func(o *options) { o.hostAddrs, o.hostAddrsSet = addrs, true }
}

// WithJobPool is the prefix the job networks are carved from (network.pool):
// always denied, since those are other jobs.
func WithJobPool(p netip.Prefix) Option { return func(o *options) { o.pool = p.Masked() } }

// ParseMode reads network.egress.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeNone, ModeAllowlist, ModeAll:
		return m, nil
	}
	return "", fmt.Errorf("egress mode %q: want none, allowlist or all", s)
}

// New returns the policy of mode with the allow and deny entries (see
// ParseEntry). Without WithHostAddrs it enumerates the host's interface
// addresses now: addresses added later are still refused when they are in
// another built-in class, but not as the host's own.
func New(mode Mode, allow, deny []string, opts ...Option) (*Policy, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	m, err := ParseMode(string(mode))
	if err != nil {
		return nil, err
	}
	p := &Policy{mode: m, modeKey: cmp.Or(o.modeKey, "network.egress"), pool: o.pool, next: o.next, hostAddrs: map[netip.Addr]struct{}{}}
	var errs []error
	for _, l := range []struct {
		key     string
		raw     []string
		entries *[]Entry
	}{{"network.allow", allow, &p.allow}, {"network.deny", deny, &p.deny}} {
		for _, s := range l.raw {
			e, err := ParseEntry(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %w", l.key, err))
				continue
			}
			*l.entries = append(*l.entries, e)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	addrs := o.hostAddrs
	if !o.hostAddrsSet {
		if addrs, err = interfaceAddrs(); err != nil {
			return nil, fmt.Errorf("outbound policy: the host's own addresses: %w", err)
		}
	}
	for _, a := range addrs {
		p.hostAddrs[a.Unmap().WithZone("")] = struct{}{}
	}
	p.classes = builtinClasses()
	return p, nil
}

// interfaceAddrs lists the addresses of the host's interfaces.
func interfaceAddrs() ([]netip.Addr, error) {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifa := range ifas {
		if n, ok := ifa.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	return out, nil
}

func builtinClasses() []class {
	pp := func(ss ...string) []netip.Prefix {
		out := make([]netip.Prefix, len(ss))
		for i, s := range ss {
			out[i] = netip.MustParsePrefix(s)
		}
		return out
	}
	// 0.0.0.0/8 as a destination reaches the host itself on Linux.
	return []class{
		{"unspecified", pp("0.0.0.0/8", "::/128")},
		{"loopback", pp("127.0.0.0/8", "::1/128")},
		{"link-local", pp("169.254.0.0/16", "fe80::/10")},
		{"multicast or broadcast", pp("224.0.0.0/4", "255.255.255.255/32", "ff00::/8")},
	}
}

// Mode is the policy's network.egress.
func (p *Policy) Mode() Mode { return p.mode }

// Check decides a connection to addr, made for the requested host (a name,
// or empty / an IP literal when an address was asked for). nil allows it;
// a refusal is a *RefusedError naming the rule.
func (p *Policy) Check(host string, addr netip.AddrPort) error {
	addr = netip.AddrPortFrom(addr.Addr().Unmap().WithZone(""), addr.Port())
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	// Only what may be an IP literal is parsed: a failed parse allocates.
	if host != "" && (strings.Contains(host, ":") || host[len(host)-1] >= '0' && host[len(host)-1] <= '9') {
		if _, err := netip.ParseAddr(host); err == nil {
			host = "" // an IP literal: the address speaks for itself
		}
	}
	// The words of a refusal are made only when one is: an allowed
	// connection costs no allocation.
	refuse := func(format string, args ...any) error {
		return &RefusedError{Host: host, Addr: addr, Reason: fmt.Sprintf(format, args...)}
	}
	dest := func() string {
		if host != "" {
			return fmt.Sprintf("%s (%s)", addr, host)
		}
		return addr.String()
	}
	hint := func() string {
		return fmt.Sprintf("network.allow: %q", netip.PrefixFrom(addr.Addr(), addr.Addr().BitLen()).String())
	}
	// 1. Explicit deny, by address or by the requested name.
	for _, e := range p.deny {
		if e.matchAddr(addr) || e.matchName(host, addr.Port()) {
			return refuse("%s matches network.deny entry %q", dest(), e.Raw)
		}
	}
	// 2. Explicit allow by address overrides the built-in denies.
	for _, e := range p.allow {
		if e.matchAddr(addr) {
			return nil
		}
	}
	builtin := p.builtinClass(addr.Addr())
	byName := ""
	for _, e := range p.allow {
		if e.matchName(host, addr.Port()) {
			byName = e.Raw
			break
		}
	}
	switch {
	case byName != "" && builtin != "":
		// DNS rebinding: an allowed name must not open a denied class.
		return refuse("%s resolved to %s, which is %s: network.allow entry %q names the host, not this address (allow the address with %s)", host, addr, builtin, byName, hint())
	case byName != "":
		return nil
	case builtin != "":
		// 3. Built-in deny.
		return refuse("%s is %s (allow it with %s)", dest(), builtin, hint())
	case p.mode == ModeAll:
		// 4. Mode.
		return nil
	}
	return refuse("%s is not in network.allow (%s is %s)", dest(), p.modeKey, p.mode)
}

// builtinClass names the built-in deny class of a, or "" when none has it.
func (p *Policy) builtinClass(a netip.Addr) string {
	for _, c := range p.classes {
		for _, pr := range c.prefixes {
			if pr.Contains(a) {
				if c.name == "link-local" && a == netip.AddrFrom4([4]byte{169, 254, 169, 254}) {
					return "link-local (the cloud metadata service)"
				}
				return c.name
			}
		}
	}
	if _, ok := p.hostAddrs[a]; ok {
		return "an address of this host"
	}
	if p.pool.IsValid() && p.pool.Contains(a) {
		return fmt.Sprintf("in the job network pool %s (other jobs' networks)", p.pool)
	}
	return ""
}
