package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultConnectTimeout bounds a connection when the caller names no bound.
const DefaultConnectTimeout = 10 * time.Second

// controlFunc is net.Dialer.ControlContext's type.
type controlFunc func(ctx context.Context, network, address string, c syscall.RawConn) error

// WithConnectHook runs fn after the policy allowed an address, right before
// the connect. Tests count (or block) connects with it: a refused address
// never reaches fn, which proves that no connect was attempted.
func WithConnectHook(fn func(network, address string) error) Option {
	return func(o *options) {
		o.next = func(_ context.Context, network, address string, _ syscall.RawConn) error { return fn(network, address) }
	}
}

// hostKey carries the requested host name from Dial to the Control hook,
// which sees only the address.
type hostKey struct{}

// Dialer returns a dialer whose every connect is checked first, on the
// address being connected to (after DNS, for each address tried). Dial
// through Policy.Dial (or DialContext) so that name entries see the
// requested host: dialled directly, only the address entries and classes
// speak.
func (p *Policy) Dialer(connectTimeout time.Duration) *net.Dialer {
	if connectTimeout <= 0 {
		connectTimeout = DefaultConnectTimeout
	}
	return &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second, ControlContext: p.control}
}

// control is the Control hook: it runs after the socket exists and before
// connect(2), so a refusal means nothing was sent.
func (p *Policy) control(ctx context.Context, network, address string, c syscall.RawConn) error {
	if !strings.HasPrefix(network, "tcp") {
		return &RefusedError{Reason: fmt.Sprintf("%s to %s: only TCP goes out", network, address)}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("outbound policy: dialled address %q: %w", address, err)
	}
	host, _ := ctx.Value(hostKey{}).(string)
	if err := p.Check(host, ap); err != nil {
		return err
	}
	if p.next != nil {
		return p.next(ctx, network, address, c)
	}
	return nil
}

// DialContext dials addr (host:port) under the policy with the default
// connect timeout; its signature is http.Transport.DialContext's.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return p.Dial(ctx, p.Dialer(0), network, addr)
}

// Dial dials addr (host:port) with d, which must come from p.Dialer (its
// resolver and timeouts may be changed): a name in network.deny is refused
// before any DNS query, and every address d connects to is checked with the
// requested host name.
func (p *Policy) Dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	if d == nil || d.ControlContext == nil {
		return nil, errors.New("outbound policy: a dialer without the policy's check")
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("outbound policy: %w", err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("outbound policy: port %q: %w", portStr, err)
	}
	if _, err := netip.ParseAddr(host); err != nil {
		name := strings.TrimSuffix(strings.ToLower(host), ".")
		for _, e := range p.deny {
			if e.matchName(name, uint16(port)) {
				return nil, &RefusedError{Host: name, Reason: fmt.Sprintf("%s matches network.deny entry %q", net.JoinHostPort(name, portStr), e.Raw)}
			}
		}
		ctx = context.WithValue(ctx, hostKey{}, name)
	}
	return d.DialContext(ctx, network, addr)
}
