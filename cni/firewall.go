package cni

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Chains of the agent in the filter table. Every packet a job sends enters
// them (INPUT and FORWARD jump there for crn+ interfaces) and is dropped
// unless accepted: the runtime API port on an address of the very bridge it
// came in on (its own gateway: addrtype --limit-iface-in, one rule for all
// jobs, so a job costs no iptables run), and, for a network with a route
// out, what its egress mode lets out to anything but another job (rules of
// its own, egress.go). Jobs have no IPv6 (ipv6.go); ip6tables drops all of
// it to and from their bridges all the same, in case an interface gets it
// back (a host-wide net.ipv6.conf.all.disable_ipv6=0 reaches the bridges
// too).
const (
	chainInput   = "CRONIUM-INPUT"
	chainForward = "CRONIUM-FORWARD"
	commentTag   = "cronium:"
)

type firewall struct {
	ipt *iptables.IPTables
	// restorePath is iptables-restore, which applies a job's rules in one
	// run.
	restorePath string
	ip6t        *iptables.IPTables // nil when the kernel has no IPv6
	port        int
}

func newFirewall(port int) (*firewall, error) {
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(10))
	if err != nil {
		return nil, fmt.Errorf("iptables: %w (install the iptables package)", err)
	}
	restorePath, err := exec.LookPath("iptables-restore")
	if err != nil {
		return nil, fmt.Errorf("iptables-restore: %w (install the iptables package)", err)
	}
	fw := &firewall{ipt: ipt, port: port, restorePath: restorePath}
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

// rules are the network's own rules in the agent's FORWARD chain, in
// order: only a network with a route out has any. They are kept in its
// record (resolved names may resolve differently by teardown); a record of
// an agent from before the egress modes holds none, and had its one rule.
func (fw *firewall) rules(n *Network) [][]string {
	if n.Rules != nil || !n.Egress || n.Mode != "" {
		return n.Rules
	}
	return [][]string{{"-i", n.Bridge, "!", "-o", BridgePrefix + "+", "-j", "ACCEPT", "-m", "comment", "--comment", commentTag + n.ID}}
}

// allow inserts the network's rules at the top of the chain, in their
// order, in one iptables-restore run: each iptables run costs milliseconds,
// and a batch is applied whole or not at all.
func (fw *firewall) allow(n *Network) error {
	rules := fw.rules(n)
	if len(rules) == 0 {
		return nil
	}
	lines := make([]string, len(rules))
	for i, r := range rules {
		lines[i] = fmt.Sprintf("-I %s %d %s", chainForward, i+1, strings.Join(r, " "))
	}
	if err := fw.restore(lines); err != nil {
		return fmt.Errorf("allow %s: %w", n.ID, err)
	}
	return nil
}

// remove deletes the network's rules. They come from its record, so no
// listing is needed, and go in one batch; when the batch fails (a rule is
// missing: a setup that died before inserting them, or someone removed
// one), the rules are deleted by tag instead.
func (fw *firewall) remove(n *Network) error {
	if !n.Gateway.IsValid() {
		return fw.removeTagged(func(id string) bool { return id == n.ID })
	}
	rules := fw.rules(n)
	if len(rules) == 0 {
		return nil
	}
	lines := make([]string, len(rules))
	for i, r := range rules {
		lines[i] = fmt.Sprintf("-D %s %s", chainForward, strings.Join(r, " "))
	}
	if err := fw.restore(lines); err == nil {
		return nil
	}
	return fw.removeTagged(func(id string) bool { return id == n.ID })
}

// restore applies rule lines ("-I chain ...", "-D chain ...") to the
// filter table in one iptables-restore run, leaving every other rule as
// it is (--noflush).
func (fw *firewall) restore(lines []string) error {
	var in bytes.Buffer
	in.WriteString("*filter\n")
	for _, l := range lines {
		in.WriteString(l)
		in.WriteByte('\n')
	}
	in.WriteString("COMMIT\n")
	cmd := exec.Command(fw.restorePath, "--noflush", "--wait", "10")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore of %d rules: %w: %s", len(lines), err, bytes.TrimSpace(out))
	}
	return nil
}

// removeTagged deletes the rules whose network id matches, listing the
// chains to find them (the sweep, and networks without a usable record),
// in one batch; should the batch fail, rule by rule.
func (fw *firewall) removeTagged(match func(id string) bool) error {
	var errs []error
	type listed struct{ chain, rule string }
	var found []listed
	for _, chain := range []string{chainInput, chainForward} {
		rules, err := fw.ipt.List("filter", chain)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", chain, err))
			continue
		}
		for _, rule := range rules {
			if id, ok := taggedID(rule); ok && match(id) {
				found = append(found, listed{chain, rule})
			}
		}
	}
	if len(found) == 0 {
		return errors.Join(errs...)
	}
	lines := make([]string, len(found))
	for i, f := range found {
		lines[i] = "-D " + strings.TrimPrefix(f.rule, "-A ")
	}
	if err := fw.restore(lines); err == nil {
		return errors.Join(errs...)
	}
	// Another process may have deleted some meanwhile: one by one, each
	// only if it is still there.
	for _, f := range found {
		spec := unquote(strings.Fields(strings.TrimPrefix(f.rule, "-A "+f.chain+" ")))
		if err := fw.ipt.DeleteIfExists("filter", f.chain, spec...); err != nil {
			id, _ := taggedID(f.rule)
			errs = append(errs, fmt.Errorf("delete rule of %s in %s: %w", id, f.chain, err))
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
