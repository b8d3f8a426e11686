package cni

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Jobs get no IPv6. The firewall is IPv4 only, so an IPv6 link between a
// job and the host would reach every host service bound to [::] over
// link-local addresses. IPv6 is therefore switched off at both ends of the
// job's link: in the job's namespace before its eth0 exists (createNetNS),
// and on the host's bridge and veth once the plugin made them (which also
// removes their link-local addresses). ip6tables drops whatever IPv6 would
// still come from a job's bridge (firewall.go).

// ipv6Conf holds the per-interface IPv6 settings of the calling thread's
// network namespace. It is missing when the kernel runs without IPv6
// (ipv6.disable=1), and then there is nothing to switch off.
const ipv6Conf = "/proc/sys/net/ipv6/conf"

// hostHasIPv6 reports whether the kernel has IPv6 at all.
func hostHasIPv6() bool {
	_, err := os.Stat(ipv6Conf)
	return err == nil
}

// disableIPv6 sets net.ipv6.conf.<iface>.disable_ipv6 in the network
// namespace of the calling thread; iface "default" is every interface made
// later.
func disableIPv6(iface string) error {
	err := os.WriteFile(filepath.Join(ipv6Conf, iface, "disable_ipv6"), []byte("1"), 0o644)
	if errors.Is(err, os.ErrNotExist) && !hostHasIPv6() {
		return nil
	}
	if err != nil {
		return fmt.Errorf("switch off IPv6 on %s: %w", iface, err)
	}
	return nil
}

// disableBridgeIPv6 switches IPv6 off on a job's bridge and on its ports
// (the host's end of the job's veth).
func disableBridgeIPv6(bridge string) error {
	ifaces := []string{bridge}
	ports, err := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	if err != nil {
		return fmt.Errorf("ports of bridge %s: %w", bridge, err)
	}
	for _, p := range ports {
		ifaces = append(ifaces, p.Name())
	}
	var errs []error
	for _, iface := range ifaces {
		errs = append(errs, disableIPv6(iface))
	}
	return errors.Join(errs...)
}
