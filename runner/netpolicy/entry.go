package netpolicy

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Entry is one item of network.allow or network.deny: an address range
// (a CIDR or a single IP) or a host name, either with an optional port.
type Entry struct {
	// Raw is the entry as written, quoted in refusals.
	Raw string
	// Host is the lower-case host name of a name entry; empty for an
	// address entry.
	Host string
	// Prefix is the range of an address entry (a single IP is a /32 or
	// /128); invalid for a name entry.
	Prefix netip.Prefix
	// Port restricts the entry to one port; 0 means every port.
	Port uint16
}

// IsName says whether the entry names a host rather than addresses.
func (e Entry) IsName() bool { return e.Host != "" }

// matchAddr says whether the address entry covers ap.
func (e Entry) matchAddr(ap netip.AddrPort) bool {
	return !e.IsName() && e.Prefix.Contains(ap.Addr()) && (e.Port == 0 || e.Port == ap.Port())
}

// matchName says whether the name entry covers host (normalized) on port.
func (e Entry) matchName(host string, port uint16) bool {
	return e.IsName() && host == e.Host && (e.Port == 0 || e.Port == port)
}

// ParseEntry reads one entry:
//
//	10.0.0.0/8   10.0.0.0/8:443   [fd00::/8]:443   fd00::/8
//	192.0.2.7    192.0.2.7:443    ::1              [::1]:8080
//	api.example.com              api.example.com:443
//
// The error quotes the entry and says what is wrong with it.
func ParseEntry(s string) (Entry, error) {
	raw := s
	s = strings.TrimSpace(s)
	bad := func(format string, args ...any) (Entry, error) {
		return Entry{}, fmt.Errorf("entry %q: %s", raw, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return bad("empty")
	}
	e := Entry{Raw: raw}
	addrPart, portPart, hasPort := s, "", false
	switch {
	case strings.HasPrefix(s, "["):
		// [v6], [v6]:port, [v6/bits]:port
		end := strings.Index(s, "]")
		if end < 0 {
			return bad("missing ]")
		}
		addrPart = s[1:end]
		rest := s[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return bad("want [address]:port")
			}
			portPart, hasPort = rest[1:], true
		}
	case strings.Contains(s, "/"):
		// A port after a prefix follows its length: 10.0.0.0/8:443. The
		// colons of an IPv6 prefix all come before the slash.
		slash := strings.Index(s, "/")
		if bits, port, ok := strings.Cut(s[slash+1:], ":"); ok {
			addrPart, portPart, hasPort = s[:slash+1]+bits, port, true
		}
	case strings.Count(s, ":") == 1:
		// host:port or v4:port; bare IPv6 addresses have several colons.
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return bad("%v", err)
		}
		addrPart, portPart, hasPort = h, p, true
	}
	if hasPort {
		n, err := strconv.ParseUint(portPart, 10, 16)
		if err != nil || n == 0 {
			return bad("port %q: want 1 to 65535", portPart)
		}
		e.Port = uint16(n)
	}
	if strings.Contains(addrPart, "%") {
		return bad("zoned addresses are not supported")
	}
	if strings.Contains(addrPart, "/") {
		p, err := netip.ParsePrefix(addrPart)
		if err != nil {
			return bad("invalid CIDR: %v", err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		e.Prefix = p.Masked()
		return e, nil
	}
	if a, err := netip.ParseAddr(addrPart); err == nil {
		a = a.Unmap()
		e.Prefix = netip.PrefixFrom(a, a.BitLen())
		return e, nil
	}
	if strings.HasPrefix(s, "[") {
		return bad("%q is not an IPv6 address", addrPart)
	}
	host, err := normalizeHost(addrPart)
	if err != nil {
		return bad("%v", err)
	}
	e.Host = host
	return e, nil
}

// normalizeHost checks a DNS name and returns it lower case, without a
// trailing dot, so that entries and requests compare as written.
func normalizeHost(h string) (string, error) {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" || len(h) > 253 {
		return "", fmt.Errorf("not an address, a CIDR or a host name")
	}
	labels := strings.Split(h, ".")
	// A name never ends in a number: "10.0.0.300" is a mistyped address.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", fmt.Errorf("%q is not a valid IP address", h)
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%q is not an address, a CIDR or a host name", h)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("%q is not an address, a CIDR or a host name", h)
			}
		}
	}
	return h, nil
}
