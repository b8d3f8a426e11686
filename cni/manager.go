// Package cni gives each job a network of its own through libcni and the
// standard plugins: a named network namespace, a bridge with a small subnet
// from a pool, the job on one address and the agent on the gateway, no route
// out unless egress is allowed (then forwarding rules per job that follow
// the outbound policy), and firewall rules that let the job reach only its
// own runtime API port on the gateway.
package cni

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"
)

// Name prefixes: bridges are crn-<hash>, namespaces cronium-<id>.
const (
	BridgePrefix = "crn-"
	NetNSPrefix  = "cronium-"
	netnsDir     = "/var/run/netns"
)

// Config configures the Manager.
type Config struct {
	// PluginDirs are searched for the CNI plugin binaries.
	PluginDirs []string
	// StateDir holds leases, subnets and locks. It must be on a file system
	// that a reboot clears (below /run), so no lease outlives the host's uptime.
	StateDir string
	// Pool is carved into one /30 per job: network, gateway, job, broadcast.
	Pool netip.Prefix
	// Egress is what jobs may reach outside (empty: none). all and
	// allowlist give them a default route and masquerading, and forwarding
	// rules made from Outbound.
	Egress Egress
	// Outbound is the outbound policy of networks with a route out.
	Outbound Outbound
	// DNS are the servers of jobs with a route out (their resolv.conf;
	// allowlist lets DNS to them out). At most MaxDNS are used.
	DNS []netip.Addr
	// APIPort is the one port a job may reach on its gateway.
	APIPort int
}

// DefaultConfig is the configuration an agent runs with unless told otherwise.
func DefaultConfig() Config {
	return Config{
		PluginDirs: []string{"/usr/lib/cni", "/opt/cni/bin"},
		StateDir:   "/run/cronium-agent/cni",
		Pool:       netip.MustParsePrefix("10.213.0.0/16"),
		APIPort:    8081,
	}
}

// Network is one job's network.
type Network struct {
	ID      string       `json:"id"`
	NetNS   string       `json:"netns"`
	Bridge  string       `json:"bridge"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	Address netip.Addr   `json:"address"`
	// Egress says whether it has a route out (a default route and
	// masquerading), Mode which egress mode made it.
	Egress bool   `json:"egress"`
	Mode   Egress `json:"mode,omitempty"`
	// DNS are the servers in the job's resolv.conf.
	DNS []netip.Addr `json:"dns,omitempty"`
	// Rules are its rules in the agent's FORWARD chain, in order, so that
	// teardown deletes exactly them without listing the chain.
	Rules [][]string `json:"rules,omitempty"`
	// Owner is the Manager's Owner when it was set up: the sweeps of
	// other agents sharing the state directory leave it alone.
	Owner string `json:"owner,omitempty"`
	// Link is the host's end of the job's veth when the agent made the
	// link itself (attach); empty when the CNI plugins did (a network
	// with a route out, or one recorded by an older agent), whose DEL
	// the teardown then runs.
	Link      string `json:"link,omitempty"`
	lock      *os.File
	teardownM sync.Once
}

// NetNSPath is the namespace's path, for the OCI spec.
func (n *Network) NetNSPath() string { return filepath.Join(netnsDir, n.NetNS) }

// Manager sets up and tears down job networks. It is safe for concurrent use.
type Manager struct {
	cfg  Config
	cni  *libcni.CNIConfig
	fw   *firewall
	log  *slog.Logger
	subs *subnets
	// owner: see WithOwner; othersToo: see WithOthersSwept.
	owner     string
	othersToo bool
}

// Option configures a Manager.
type Option func(*Manager)

// WithLogger sets the structured logger.
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// WithOwner names the agent the networks set up are for, by its own state
// directory: several agents on a host share StateDir (one address pool),
// and a sweep removes another's network only once that directory is gone
// (its agent uninstalled), as `cronium-agent gc` does with runs.
func WithOwner(stateDir string) Option { return func(m *Manager) { m.owner = stateDir } }

// WithOthersSwept makes Sweep remove the unheld networks of other owners
// too (`cronium-agent gc --all`).
func WithOthersSwept() Option { return func(m *Manager) { m.othersToo = true } }

// New prepares the state directory and the agent's firewall chains.
func New(cfg Config, opts ...Option) (*Manager, error) {
	if !cfg.Pool.IsValid() || !cfg.Pool.Addr().Is4() || cfg.Pool.Bits() > 30 {
		return nil, fmt.Errorf("network pool %s: want an IPv4 prefix of /30 or larger", cfg.Pool)
	}
	if cfg.APIPort <= 0 || cfg.APIPort > 65535 {
		return nil, fmt.Errorf("runtime API port %d is out of range", cfg.APIPort)
	}
	if !cfg.Egress.valid() {
		return nil, fmt.Errorf("egress %q: want none, allowlist or all", cfg.Egress)
	}
	if cfg.Egress == "" {
		cfg.Egress = EgressNone
	}
	m := &Manager{cfg: cfg, log: slog.Default()}
	for _, o := range opts {
		o(m)
	}
	for _, d := range []string{m.dir("nets"), m.dir("subnets"), m.dir("ipam"), m.dir("cache"), netnsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := m.checkPlugins(); err != nil {
		return nil, err
	}
	// An explicit exec: libcni makes its default one lazily, on first use,
	// which races when networks are set up concurrently.
	m.cni = libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, m.dir("cache"), &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: os.Stderr},
		PluginDecoder: version.PluginDecoder{},
	})
	m.subs = &subnets{dir: m.dir("subnets"), pool: cfg.Pool}
	fw, err := newFirewall(cfg.APIPort)
	if err != nil {
		return nil, err
	}
	m.fw = fw
	if cfg.Egress.routesOut() {
		if len(cfg.DNS) == 0 {
			m.log.Warn("jobs with egress get no DNS server: network.dns is empty and the host's /etc/resolv.conf names no resolver a job can reach (a local stub resolver such as 127.0.0.53 is not); set network.dns")
		}
		// Forwarding is host-wide: it is only switched on when the operator
		// allowed egress; the agent's FORWARD chain still drops job-to-job.
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return nil, fmt.Errorf("enable IPv4 forwarding for egress: %w", err)
		}
	}
	return m, nil
}

func (m *Manager) dir(parts ...string) string {
	return filepath.Join(append([]string{m.cfg.StateDir}, parts...)...)
}

func (m *Manager) checkPlugins() error {
	for _, p := range []string{"bridge", "host-local"} {
		found := false
		for _, d := range m.cfg.PluginDirs {
			if _, err := os.Stat(filepath.Join(d, p)); err == nil {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("CNI plugin %q not found in %s (install containernetworking-plugins)", p, strings.Join(m.cfg.PluginDirs, ", "))
		}
	}
	return nil
}

// Names derives every name of a job's network from its id.
func Names(id string) (netns, bridge string) {
	h := sha256.Sum256([]byte(id))
	// Interface names are at most 15 bytes: "crn-" and 11 hex digits.
	return NetNSPrefix + id, BridgePrefix + hex.EncodeToString(h[:])[:11]
}

// ValidID reports whether id can name a network (it becomes part of a
// namespace name and of file names).
func ValidID(id string) error {
	if id == "" || len(id) > 200 {
		return fmt.Errorf("network id %q: want 1 to 200 characters", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("network id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	if id == "." || id == ".." {
		return fmt.Errorf("network id %q is not a name", id)
	}
	return nil
}

// Setup creates the job's network. On failure everything made so far is
// removed before the error returns. The network stays owned by this process
// until Teardown.
func (m *Manager) Setup(ctx context.Context, id string) (_ *Network, err error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	netnsName, bridge := Names(id)
	n := &Network{ID: id, NetNS: netnsName, Bridge: bridge, Egress: m.cfg.Egress.routesOut(), Mode: m.cfg.Egress, Owner: m.owner}
	if n.Egress {
		n.DNS = m.cfg.DNS[:min(len(m.cfg.DNS), MaxDNS)]
	}
	resolving := m.startResolve(ctx)
	lock, err := m.lockNetwork(id)
	if err != nil {
		return nil, err
	}
	n.lock = lock
	defer func() {
		if err != nil {
			if terr := m.teardown(context.WithoutCancel(ctx), n); terr != nil {
				err = errors.Join(err, fmt.Errorf("undo network setup: %w", terr))
			}
		}
	}()
	if n.Subnet, err = m.subs.allocate(id); err != nil {
		return nil, err
	}
	n.Gateway = n.Subnet.Addr().Next()
	n.Address = n.Gateway.Next()
	if !n.Egress {
		n.Link = vethName(id)
	}
	// The record is written before anything exists on the host, so a crash
	// at any later point leaves enough to find and remove it.
	if err := m.writeRecord(n); err != nil {
		return nil, err
	}
	if err := createNetNS(n.NetNS); err != nil {
		return nil, err
	}
	if n.Link != "" {
		err = attach(n)
	} else {
		err = m.addNetworks(ctx, n)
	}
	if err != nil {
		return nil, err
	}
	if err := setGateway(n.Bridge, n.Gateway, n.Subnet); err != nil {
		return nil, err
	}
	if err := disableBridgeIPv6(n.Bridge); err != nil {
		return nil, err
	}
	if err := m.firewall(n, resolving); err != nil {
		return nil, err
	}
	return n, nil
}

// firewall inserts the network's forwarding rules, once its allowlist is
// resolved. They are recorded first, so that a crash after inserting them
// leaves their exact list for the teardown.
func (m *Manager) firewall(n *Network, resolving *resolution) error {
	if !n.Egress {
		return nil
	}
	allowed, err := resolving.wait()
	if err != nil {
		m.log.Warn("network.allow entries left out of the job's allowlist", "network", n.ID, "error", err)
	}
	n.Rules = forwardRules(n, m.cfg.Outbound, allowed)
	if err := m.writeRecord(n); err != nil {
		return err
	}
	return m.fw.allow(n)
}

// Teardown removes the job's network: firewall rules, CNI attachments
// (which releases the lease), the bridge, the namespace and the files. It
// runs every step whatever failed before, and is idempotent.
func (m *Manager) Teardown(ctx context.Context, n *Network) error {
	var err error
	n.teardownM.Do(func() { err = m.teardown(ctx, n) })
	return err
}

// Release lets go of the job's network without removing anything, for
// another process of the agent to Adopt (a hand-over: its job runs on). n
// is not to be used afterwards.
func (m *Manager) Release(n *Network) {
	if n != nil && n.lock != nil {
		n.lock.Close()
		n.lock = nil
	}
}

func (m *Manager) teardown(ctx context.Context, n *Network) error {
	var errs []error
	keep := func(e error) {
		if e != nil {
			errs = append(errs, e)
		}
	}
	// The firewall and the interfaces are independent: remove them side by
	// side (each step costs tens of milliseconds).
	fwErr := make(chan error, 1)
	go func() { fwErr <- m.fw.remove(n) }()
	if n.Link == "" {
		keep(m.delNetworks(ctx, n))
	}
	// The veth goes with the namespace, unless something still holds that
	// open; without a record, Link is unknown but follows from the id.
	keep(deleteLink(vethName(n.ID)))
	keep(deleteLink(n.Bridge))
	keep(deleteNetNS(n.NetNS))
	keep(<-fwErr)
	keep(os.RemoveAll(m.dir("ipam", cniName(n.ID))))
	keep(m.subs.release(n.ID, n.Subnet))
	keep(removeIfExists(m.recordPath(n.ID)))
	if n.lock != nil {
		keep(removeIfExists(n.lock.Name()))
		n.lock.Close()
		n.lock = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tear down network %s: %w", n.ID, err)
	}
	return nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
