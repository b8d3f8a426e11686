package cni

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Chains of the agent in the filter table. Every packet a job sends enters
// them (INPUT and FORWARD jump there for crn+ interfaces) and is dropped
// unless accepted: the runtime API port on an address of the very bridge it
// came in on (its own gateway: addrtype --limit-iface-in, one rule for all
// jobs, so a job costs no iptables run), and, for a network with egress,
// forwarding to anything but another job (a rule of its own). Jobs have no
// IPv6 (ipv6.go); ip6tables drops all of it to and from their bridges all
// the same, in case an interface gets it back (a host-wide
// net.ipv6.conf.all.disable_ipv6=0 reaches the bridges too).
const (
	chainInput   = "CRONIUM-INPUT"
	chainForward = "CRONIUM-FORWARD"
	commentTag   = "cronium:"
)

type firewall struct {
	ipt  *iptables.IPTables
	ip6t *iptables.IPTables // nil when the kernel has no IPv6
	port int
}

func newFirewall(port int) (*firewall, error) {
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("iptables: %w (install the iptables package)", err)
	}
	fw := &firewall{ipt: ipt, port: port}
	if hostHasIPv6() {
		if fw.ip6t, err = iptables.New(iptables.IPFamily(iptables.ProtocolIPv6), iptables.Timeout(10)); err != nil {
			return nil, fmt.Errorf("ip6tables: %w (install the iptables package)", err)
		}
	}
	if err := fw.ensureChains(); err != nil {
		return nil, err
	}
	if err := fw.ensureNoIPv6(); err != nil {
		return nil, err
	}
	return fw, nil
}

// noIPv6Rules drop every IPv6 packet from or to a job's bridge. They are
// the same for all jobs, so no job adds or removes any.
var noIPv6Rules = []struct {
	chain string
	rule  []string
}{
	{"INPUT", []string{"-i", BridgePrefix + "+", "-j", "DROP"}},
	{"FORWARD", []string{"-i", BridgePrefix + "+", "-j", "DROP"}},
	{"FORWARD", []string{"-o", BridgePrefix + "+", "-j", "DROP"}},
}

func (fw *firewall) ensureNoIPv6() error {
	if fw.ip6t == nil {
		return nil
	}
	for _, r := range noIPv6Rules {
		if err := fw.ip6t.InsertUnique("filter", r.chain, 1, r.rule...); err != nil {
			return fmt.Errorf("ip6tables rule dropping IPv6 of jobs in %s: %w", r.chain, err)
		}
	}
	return nil
}

func (fw *firewall) ensureChain(chain string, tail [][]string) error {
	if err := fw.ipt.NewChain("filter", chain); err != nil {
		// Another agent process may have made it meanwhile.
		if ok, cerr := fw.ipt.ChainExists("filter", chain); cerr != nil || !ok {
			return fmt.Errorf("create chain %s: %w", chain, err)
		}
	}
	for _, rule := range tail {
		if err := fw.ipt.AppendUnique("filter", chain, rule...); err != nil {
			return fmt.Errorf("rule in %s: %w", chain, err)
		}
	}
	return nil
}

func (fw *firewall) ensureChains() error {
	if err := fw.ensureChain(chainInput, [][]string{{"-j", "DROP"}}); err != nil {
		return err
	}
	// First in the chain, ahead of the DROP, whatever an older agent left.
	if err := fw.ipt.InsertUnique("filter", chainInput, 1, fw.apiRule()...); err != nil {
		return fmt.Errorf("runtime API rule in %s: %w", chainInput, err)
	}
	if err := fw.ensureChain(chainForward, [][]string{
		{"-o", BridgePrefix + "+", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{"-j", "DROP"},
	}); err != nil {
		return err
	}
	for _, j := range []struct {
		chain string
		rule  []string
	}{
		{"INPUT", []string{"-i", BridgePrefix + "+", "-j", chainInput}},
		{"FORWARD", []string{"-i", BridgePrefix + "+", "-j", chainForward}},
		{"FORWARD", []string{"-o", BridgePrefix + "+", "-j", chainForward}},
	} {
		if err := fw.ipt.InsertUnique("filter", j.chain, 1, j.rule...); err != nil {
			return fmt.Errorf("jump from %s to the agent's chain: %w", j.chain, err)
		}
	}
	return nil
}

// apiRule accepts TCP to the runtime API port on a local address of the
// interface the packet arrived on, which for a job is its own gateway only.
func (fw *firewall) apiRule() []string {
	return []string{"-p", "tcp", "--dport", strconv.Itoa(fw.port), "-m", "addrtype", "--dst-type", "LOCAL", "--limit-iface-in", "-j", "ACCEPT"}
}

// rules are the network's own rules: only an egress network has any.
func (fw *firewall) rules(n *Network) map[string][][]string {
	tag := []string{"-m", "comment", "--comment", commentTag + n.ID}
	r := map[string][][]string{}
	if n.Egress {
		r[chainForward] = [][]string{append([]string{"-i", n.Bridge, "!", "-o", BridgePrefix + "+", "-j", "ACCEPT"}, tag...)}
	}
	return r
}

func (fw *firewall) allow(n *Network) error {
	for chain, rules := range fw.rules(n) {
		for _, rule := range rules {
			if err := fw.ipt.Insert("filter", chain, 1, rule...); err != nil {
				return fmt.Errorf("allow %s in %s: %w", n.ID, chain, err)
			}
		}
	}
	return nil
}

// remove deletes the network's rules. They follow from its record, so no
// listing is needed (each iptables call costs milliseconds); a network whose
// record is incomplete falls back to deleting by tag.
func (fw *firewall) remove(n *Network) error {
	if !n.Gateway.IsValid() {
		return fw.removeTagged(func(id string) bool { return id == n.ID })
	}
	var errs []error
	for chain, rules := range fw.rules(n) {
		for _, rule := range rules {
			// Delete rather than DeleteIfExists: one iptables run, not two.
			if err := fw.ipt.Delete("filter", chain, rule...); err != nil && !isNotExist(err) {
				errs = append(errs, fmt.Errorf("delete rule of %s in %s: %w", n.ID, chain, err))
			}
		}
	}
	return errors.Join(errs...)
}

func isNotExist(err error) bool {
	var ie *iptables.Error
	return errors.As(err, &ie) && ie.IsNotExist()
}

// removeTagged deletes the rules whose network id matches.
func (fw *firewall) removeTagged(match func(id string) bool) error {
	var errs []error
	for _, chain := range []string{chainInput, chainForward} {
		rules, err := fw.ipt.List("filter", chain)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", chain, err))
			continue
		}
		for _, rule := range rules {
			id, ok := taggedID(rule)
			if !ok || !match(id) {
				continue
			}
			spec := strings.Fields(strings.TrimPrefix(rule, "-A "+chain+" "))
			spec = unquote(spec)
			if err := fw.ipt.DeleteIfExists("filter", chain, spec...); err != nil {
				errs = append(errs, fmt.Errorf("delete rule of %s in %s: %w", id, chain, err))
			}
		}
	}
	return errors.Join(errs...)
}

// taggedID finds the network id in a listed rule's comment.
func taggedID(rule string) (string, bool) {
	i := strings.Index(rule, commentTag)
	if i < 0 {
		return "", false
	}
	rest := strings.Trim(rule[i+len(commentTag):], `"`)
	id, _, _ := strings.Cut(rest, " ")
	return strings.Trim(id, `"`), true
}

func unquote(spec []string) []string {
	for i, s := range spec {
		spec[i] = strings.Trim(s, `"`)
	}
	return spec
}
