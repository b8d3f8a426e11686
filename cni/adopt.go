package cni

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
)

// ErrNoNetwork is wrapped by Adopt's error when the network to take over is
// gone or incomplete (no record, no namespace or no bridge): a reboot
// cleared it, or someone removed part of it.
var ErrNoNetwork = errors.New("network is gone")

// Adopt takes over the network id that a previous process of this agent set
// up and did not tear down (it was killed while its job ran): it locks the
// network, reads its record and checks that its namespace and bridge still
// exist. The network is then this process's until Teardown, as after Setup.
//
// When the network is gone or incomplete, what is left of it is removed
// while the lock is held (nobody can use it any more, and the sweep would
// only do the same later) and the error wraps ErrNoNetwork. A network that
// another live process owns is an error that does not.
func (m *Manager) Adopt(ctx context.Context, id string) (*Network, error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	lock, err := m.lockNetwork(id)
	if err != nil {
		return nil, err
	}
	n, problem := m.recorded(id)
	n.lock = lock
	if problem == "" {
		problem = present(n)
	}
	if problem == "" {
		// A network set up by an agent from before jobs lost IPv6 still
		// has it on the host's side: remove it there too.
		if err := disableBridgeIPv6(n.Bridge); err != nil {
			m.log.Warn("adopted network keeps IPv6 on the host's side", "network", id, "error", err)
		}
		return n, nil
	}
	if err := m.teardown(context.WithoutCancel(ctx), n); err != nil {
		return nil, errors.Join(fmt.Errorf("adopt network %s: %w: %s", id, ErrNoNetwork, problem), err)
	}
	return nil, fmt.Errorf("adopt network %s: %w: %s", id, ErrNoNetwork, problem)
}

// recorded reads the network's record. Without a usable one it returns the
// names that follow from the id (so that teardown finds what exists) and
// says what is wrong.
func (m *Manager) recorded(id string) (*Network, string) {
	netnsName, bridge := Names(id)
	names := &Network{ID: id, NetNS: netnsName, Bridge: bridge}
	n, err := m.readRecord(id)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return names, "it has no record"
	case err != nil:
		return names, err.Error()
	case n.ID != id || n.NetNS != netnsName || n.Bridge != bridge:
		// The names are derived from the id: a record naming others is not
		// this network's, and its names are not to be trusted for removal.
		return names, fmt.Sprintf("its record names %s, %s and %s", n.ID, n.NetNS, n.Bridge)
	case !n.Subnet.IsValid() || !n.Gateway.IsValid() || !n.Address.IsValid():
		// Keep the subnet, if any, so that teardown releases it.
		names.Subnet = n.Subnet
		return names, "its record has no addresses"
	}
	return n, ""
}

// present says what is missing of a recorded network on the host, or "".
func present(n *Network) string {
	if !isNetNS(n.NetNSPath()) {
		return fmt.Sprintf("namespace %s does not exist", n.NetNS)
	}
	link, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return fmt.Sprintf("bridge %s: %v", n.Bridge, err)
	}
	if link.Type() != "bridge" {
		return fmt.Sprintf("%s is a %s, not a bridge", n.Bridge, link.Type())
	}
	return ""
}
