package testenv

import (
	"net"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// ServeDNS answers the DNS queries that come to pc until it is closed: A
// queries for a name of records ("name." in any case) with its address,
// other types of it with no records, every other name with NXDOMAIN. It
// calls onQuery (if set) for each query read. Tests run it on loopback, or
// in a network namespace they made.
func ServeDNS(pc net.PacketConn, records map[string]netip.Addr, onQuery func()) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if onQuery != nil {
			onQuery()
		}
		if out, err := dnsAnswer(buf[:n], records); err == nil {
			pc.WriteTo(out, from)
		}
	}
}

func dnsAnswer(query []byte, records map[string]netip.Addr) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	var addr netip.Addr
	known := false
	for name, a := range records {
		if strings.EqualFold(name, q.Name.String()) {
			addr, known = a, true
			break
		}
	}
	h.Response, h.Authoritative, h.RecursionAvailable = true, true, true
	if !known {
		h.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if known && q.Type == dnsmessage.TypeA {
		rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 1}
		if err := b.AResource(rh, dnsmessage.AResource{A: addr.As4()}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
