package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/libcni"
)

const (
	cniVersion = "1.0.0"
	ifName     = "eth0"
)

func cniName(id string) string { return "cronium-" + id }

// bridgeList is the job's network: the bridge plugin with host-local IPAM
// over the job's own /30. The gateway address is put on the bridge by the
// agent (isGateway false), so the plugin never switches on host forwarding;
// masquerading and a default route exist only with egress.
func (m *Manager) bridgeList(n *Network) (*libcni.NetworkConfigList, error) {
	routes := []map[string]string{}
	if n.Egress {
		routes = append(routes, map[string]string{"dst": "0.0.0.0/0"})
	}
	conf := map[string]any{
		"cniVersion": cniVersion,
		"name":       cniName(n.ID),
		"plugins": []map[string]any{{
			"type":        "bridge",
			"bridge":      n.Bridge,
			"isGateway":   false,
			"ipMasq":      n.Egress,
			"hairpinMode": false,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": m.dir("ipam"),
				"ranges":  [][]map[string]string{{{"subnet": n.Subnet.String(), "gateway": n.Gateway.String()}}},
				"routes":  routes,
			},
		}},
	}
	data, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(data)
}

func (n *Network) runtimeConf(netnsPath, ifname string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: n.ID, NetNS: netnsPath, IfName: ifname}
}

func (m *Manager) addNetworks(ctx context.Context, n *Network) error {
	list, err := m.bridgeList(n)
	if err != nil {
		return fmt.Errorf("network config for %s: %w", n.ID, err)
	}
	if _, err := m.cni.AddNetworkList(ctx, list, n.runtimeConf(n.NetNSPath(), ifName)); err != nil {
		return fmt.Errorf("bridge plugin for %s: %w", n.ID, err)
	}
	// lo is up already: createNetNS set it so.
	return nil
}

// delNetworks runs the plugins' DEL, which releases the IP lease. When the
// namespace is already gone the plugins are told so (an empty path), which
// they accept.
func (m *Manager) delNetworks(ctx context.Context, n *Network) error {
	if !n.Subnet.IsValid() {
		return nil // nothing was ever added
	}
	nsPath := n.NetNSPath()
	if !isNetNS(nsPath) {
		// Gone, or only the empty file left by an agent killed between
		// creating and mounting it (or unmounting and removing it).
		nsPath = ""
	}
	// No loopback DEL: lo goes with the namespace (networks made by agents
	// that ran the loopback plugin included: its DEL only set lo down).
	var errs []error
	list, err := m.bridgeList(n)
	if err != nil {
		return err
	}
	if err := m.cni.DelNetworkList(ctx, list, n.runtimeConf(nsPath, ifName)); err != nil {
		errs = append(errs, fmt.Errorf("bridge DEL: %w", err))
	}
	return errors.Join(errs...)
}
