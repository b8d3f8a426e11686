package cni

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// VethPrefix names the host's end of a job's link made by attach.
const VethPrefix = "crv-"

// vethName is the host's end of the job's link: derived from the id like
// the other names, so that a teardown without a record still finds it.
func vethName(id string) string {
	h := sha256.Sum256([]byte(id))
	return VethPrefix + hex.EncodeToString(h[:])[11:22]
}

// attach links the job's namespace to its bridge: what the bridge plugin
// with host-local IPAM did for a network without a route out (a bridge, a
// veth pair with eth0 in the namespace, the job's address, no route but
// the /30's own), done here with netlink. The plugins cost four processes
// per job (ADD and DEL of each), a tenth of the host's CPU per trivial job
// (perf, issue 14). The job's address needs no IPAM: it is the one free
// address of the job's /30, which the subnet allocator already owns.
//
// Networks with a route out keep the plugins, which also masquerade.
func attach(n *Network) error {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = n.Bridge
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create bridge %s: %w", n.Bridge, err)
	}
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("find bridge %s: %w", n.Bridge, err)
	}
	if br.Type() != "bridge" {
		return fmt.Errorf("%s is a %s, not a bridge", n.Bridge, br.Type())
	}
	ns, err := netns.GetFromPath(n.NetNSPath())
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", n.NetNS, err)
	}
	defer ns.Close()
	attrs = netlink.NewLinkAttrs()
	attrs.Name, attrs.MasterIndex = n.Link, br.Attrs().Index
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: ifName, PeerNamespace: netlink.NsFd(ns), PeerTxQLen: -1}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s for %s: %w", n.Link, n.ID, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in namespace %s: %w", n.NetNS, err)
	}
	defer h.Close()
	eth, err := h.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("find %s in namespace %s: %w", ifName, n.NetNS, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: n.Address.AsSlice(), Mask: net.CIDRMask(n.Subnet.Bits(), 32)}}
	if err := h.AddrAdd(eth, addr); err != nil {
		return fmt.Errorf("address %s on %s in %s: %w", n.Address, ifName, n.NetNS, err)
	}
	if err := h.LinkSetUp(eth); err != nil {
		return fmt.Errorf("bring up %s in %s: %w", ifName, n.NetNS, err)
	}
	// No IPv6 on the host's end, before it is up and could get a
	// link-local address (ipv6.go).
	if err := disableIPv6(n.Link); err != nil {
		return err
	}
	host, err := netlink.LinkByName(n.Link)
	if err != nil {
		return fmt.Errorf("find %s: %w", n.Link, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("bring up %s: %w", n.Link, err)
	}
	return nil
}
