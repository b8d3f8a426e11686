// Package config loads the agent's configuration: a YAML file whose every key
// can also be set through an environment variable.
package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultPath is where the agent looks for its configuration file.
const DefaultPath = "/etc/cronium/agent.yaml"

// Config is the whole agent configuration. Every field carries a yaml tag; the
// matching environment variable is CRONIUM_ followed by the path of yaml keys in
// upper snake case (containerd.address -> CRONIUM_CONTAINERD_ADDRESS).
type Config struct {
	Containerd Containerd `yaml:"containerd"`
	State      State      `yaml:"state"`
	Runtimes   Runtimes   `yaml:"runtimes"`
	Jobs       Jobs       `yaml:"jobs"`
	Resources  Resources  `yaml:"resources"`
	UserNS     UserNS     `yaml:"userns"`
	Registry   Registry   `yaml:"registry"`
	Network    Network    `yaml:"network"`
	Backend    Backend    `yaml:"backend"`
	Journal    Journal    `yaml:"journal"`
	Admin      Admin      `yaml:"admin"`
	SSH        SSH        `yaml:"ssh"`
	Metrics    Metrics    `yaml:"metrics"`
}

// Metrics configures the Prometheus metrics and health listener.
type Metrics struct {
	Listen string `yaml:"listen" doc:"Address of the metrics and health listener (/metrics, /healthz, /readyz); empty turns it off. Loopback by default: the figures name jobs and servers."`
}

// SSH configures the connections to the servers jobs run on over SSH.
type SSH struct {
	KnownHosts         string   `yaml:"knownHosts" doc:"The agent's known_hosts file (OpenSSH format; mode 0600). Empty means known_hosts in state.dir."`
	HostKeyPolicy      string   `yaml:"hostKeyPolicy" doc:"What a connection to a server whose host key is unknown does: tofu records the key on first use (logged) and goes on; strict refuses until cronium-agent ssh trust records it. A changed key is refused either way."`
	SystemKnownHosts   string   `yaml:"systemKnownHosts" doc:"A known_hosts file consulted too, never written; empty consults none."`
	DialTimeout        Duration `yaml:"dialTimeout" doc:"Bound on connecting to a server, SSH handshake and login included."`
	KeepaliveInterval  Duration `yaml:"keepaliveInterval" doc:"Period of the keepalives on each connection; one unanswered within it closes the connection. 0 sends none."`
	IdleTimeout        Duration `yaml:"idleTimeout" doc:"Pooled connections no job used for this long are closed."`
	MaxConnsPerServer  int      `yaml:"maxConnsPerServer" doc:"Connections kept open to one server (per user and credentials)."`
	MaxSessionsPerConn int      `yaml:"maxSessionsPerConn" doc:"SSH sessions open on one connection at once. One is the connection's worker's and a job holds up to three more (two follow its output), so a connection is shared by (this - 1) / 3 jobs; sshd's MaxSessions defaults to 10."`
	Worker             bool     `yaml:"worker" doc:"Run jobs through a worker on each server: the agent's own binary, uploaded once per server, version and account to ~/.cache/cronium-agent/, serving each connection's jobs from one session. Without it, or on a server it cannot run on (another architecture), each job costs the server about a dozen short processes more."`
	MaxParallelServers int      `yaml:"maxParallelServers" doc:"Servers a multi-server job runs on at once."`
	BreakerFailures    int      `yaml:"breakerFailures" doc:"Failed connection attempts in a row that open a server's circuit breaker: its jobs then fail at once, without trying, for breakerCooldown."`
	BreakerCooldown    Duration `yaml:"breakerCooldown" doc:"How long an open circuit breaker fails a server's jobs before a connection is tried again."`
}

// SSH host key policies (ssh.hostKeyPolicy).
const (
	HostKeyPolicyTOFU   = "tofu"
	HostKeyPolicyStrict = "strict"
)

// KnownHostsPath is the agent's known_hosts file: ssh.knownHosts, or
// known_hosts in state.dir.
func (c Config) KnownHostsPath() string {
	if c.SSH.KnownHosts != "" {
		return c.SSH.KnownHosts
	}
	return filepath.Join(c.State.Dir, "known_hosts")
}

// Journal configures the on-disk journal every fact about a run goes
// through before the backend hears of it.
type Journal struct {
	Budget          ByteSize `yaml:"budget" doc:"Bounds the journal's data on disk: delivered data goes first, then the middle of the largest undelivered logs, replaced by a line saying how much was dropped."`
	SyncConcurrency int      `yaml:"syncConcurrency" doc:"How many jobs' backlogs are delivered to the backend at once."`
	Retain          Duration `yaml:"retain" doc:"How long delivered runs stay inspectable (cronium-agent jobs, logs) before they are pruned."`
}

// Admin configures the local inspection socket (root only).
type Admin struct {
	Socket string `yaml:"socket" doc:"The admin socket (mode 0600, root only) that status, jobs and logs read."`
}

// Backend says how to reach the Cronium backend's internal API.
type Backend struct {
	URL              string `yaml:"url" doc:"The backend's base URL; only scheme, host and port are used."`
	Token            string `yaml:"token" doc:"The service token (the backend's INTERNAL_API_KEY). A secret: prefer the environment variable."`
	OrchestratorID   string `yaml:"orchestratorId" doc:"Overrides the agent id generated once and kept in state.dir."`
	EnvEncryptionKey string `yaml:"envEncryptionKey" doc:"64 hex characters: decrypts the environment values the deployed backend sends encrypted. A secret."`
}

// Network configures the per-job networks and the runtime API.
type Network struct {
	Pool       string   `yaml:"pool" doc:"IPv4 prefix carved into one /30 per running job."`
	Egress     bool     `yaml:"egress" doc:"Lets jobs reach the outside (default route and masquerading); the host's own services and other jobs stay closed to them either way."`
	PluginDirs []string `yaml:"pluginDirs" doc:"Where the CNI plugins (bridge, host-local, loopback) are looked for."`
	RunDir     string   `yaml:"runDir" doc:"Leases, subnets and locks of the job networks; must be a directory a reboot clears."`
	APIPort    int      `yaml:"apiPort" doc:"Port of each job's runtime API on its gateway address."`
}

// Containerd says how to reach containerd and how jobs are created there.
type Containerd struct {
	Address     string `yaml:"address" doc:"containerd's socket."`
	Namespace   string `yaml:"namespace" doc:"containerd namespace of the agent's images, containers and snapshots."`
	Snapshotter string `yaml:"snapshotter" doc:"Snapshotter of the jobs' root filesystems."`
	Runtime     string `yaml:"runtime" doc:"containerd runtime (shim) that runs job tasks."`
}

// State is where the agent keeps its files.
type State struct {
	Dir string `yaml:"dir" doc:"Where the agent keeps its journal, keys, run directories and id."`
}

// Runtime configures one script runtime.
type Runtime struct {
	Image string `yaml:"image" doc:"Image that runs this runtime's scripts; images import tags runtime images :latest."`
}

// Runtimes holds the image of each supported runtime.
type Runtimes struct {
	Bash   Runtime `yaml:"bash"`
	Python Runtime `yaml:"python"`
	Node   Runtime `yaml:"node"`
	// ArchiveDir is where packaged runtime images wait to be imported.
	ArchiveDir string `yaml:"archiveDir" doc:"Directory of runtime image archives (OCI, *.tar) that the agent imports at start when a runtime's image is missing from containerd: the cronium-runtimes package puts them there, so an offline host needs no registry. Empty imports nothing."`
}

// Jobs holds limits that apply to every job.
type Jobs struct {
	DefaultTimeout    Duration `yaml:"defaultTimeout" doc:"Timeout of a job that names none."`
	MaxTimeout        Duration `yaml:"maxTimeout" doc:"Longest timeout a job may ask for; longer ones are lowered to it."`
	KillGrace         Duration `yaml:"killGrace" doc:"Time between SIGTERM and SIGKILL when a job times out or is cancelled."`
	MaxConcurrent     int      `yaml:"maxConcurrent" doc:"How many jobs run at once; the agent never claims more than its free slots."`
	PollInterval      Duration `yaml:"pollInterval" doc:"Wait between claims, also while the queue is empty: an idle agent claims a new job within it, at the cost of one GET of the queue per interval for the backend."`
	PollMaxInterval   Duration `yaml:"pollMaxInterval" doc:"While the backend fails (unreachable, 5xx, refusing the token) the wait between claims doubles up to this."`
	LongPoll          Duration `yaml:"longPoll" doc:"On a backend that offers long-poll claims (cronium-backend does; the deployed Cronium backend does not), how long one claim may wait for a job: a job submitted meanwhile is claimed at once instead of at the next poll. 0 polls at pollInterval everywhere."`
	DrainTimeout      Duration `yaml:"drainTimeout" doc:"How long SIGTERM lets running jobs finish before they are cancelled."`
	HeartbeatInterval Duration `yaml:"heartbeatInterval" doc:"Period of the heartbeat (running jobs and capacity; its answer may cancel jobs)."`
	MetricsInterval   Duration `yaml:"metricsInterval" doc:"Period of the metrics report."`
	OutputCap         ByteSize `yaml:"outputCap" doc:"Bound on stdout and on stderr each in the completing call; head and tail are kept around a marker."`
	OutputBudget      ByteSize `yaml:"outputBudget" doc:"Disk one run's captured output may take. Past it the middle of the output is dropped at the source, with a line saying how much: the head stays, and the last eighth of the budget (at most 16MiB). Live lines and the journal see the same."`
}

// Limits is one set of per-job resource values.
type Limits struct {
	CPU       float64  `yaml:"cpu" doc:"CPUs (fractions allowed)."`
	Memory    ByteSize `yaml:"memory" doc:"Memory, swap included."`
	Pids      int64    `yaml:"pids" doc:"Processes and threads."`
	Tmp       ByteSize `yaml:"tmp" doc:"Size of the job's /tmp (tmpfs)."`
	Workspace ByteSize `yaml:"workspace" doc:"Size of the job's /workspace (tmpfs, its working directory)."`
}

// Resources holds the values a job gets when it asks for none, and the
// largest it may ask for.
type Resources struct {
	Defaults Limits `yaml:"defaults"`
	Max      Limits `yaml:"max"`
}

// UserNS is the subordinate id range every job's user namespace maps to.
type UserNS struct {
	HostUID uint32 `yaml:"hostUID" doc:"First host uid of the range every job's user namespace maps to."`
	HostGID uint32 `yaml:"hostGID" doc:"First host gid of that range."`
	Size    uint32 `yaml:"size" doc:"Number of ids mapped (container 0..size-1); jobs run as 1000:1000 inside."`
}

// Registry configures image pulls.
type Registry struct {
	PlainHTTP []string `yaml:"plainHTTP" doc:"Registry hosts reached over plain HTTP; loopback registries always are."`
}

// Default returns the configuration used when no file or variable says otherwise.
func Default() Config {
	return Config{
		Containerd: Containerd{
			Address:     "/run/containerd/containerd.sock",
			Namespace:   "cronium",
			Snapshotter: "overlayfs",
			Runtime:     "io.containerd.runc.v2",
		},
		State: State{Dir: "/var/lib/cronium-agent"},
		Runtimes: Runtimes{
			Bash:       Runtime{Image: "cronium.local/runtimes/bash:latest"},
			Python:     Runtime{Image: "cronium.local/runtimes/python:latest"},
			Node:       Runtime{Image: "cronium.local/runtimes/node:latest"},
			ArchiveDir: "/usr/share/cronium/runtimes",
		},
		Jobs: Jobs{
			DefaultTimeout:    Duration(time.Hour),
			MaxTimeout:        Duration(24 * time.Hour),
			KillGrace:         Duration(10 * time.Second),
			MaxConcurrent:     5,
			PollInterval:      Duration(time.Second),
			PollMaxInterval:   Duration(10 * time.Second),
			LongPoll:          Duration(20 * time.Second),
			DrainTimeout:      Duration(5 * time.Minute),
			HeartbeatInterval: Duration(10 * time.Second),
			MetricsInterval:   Duration(time.Minute),
			OutputCap:         1 * MiB,
			OutputBudget:      1 * GiB,
		},
		Resources: Resources{
			Defaults: Limits{CPU: 0.5, Memory: 512 * MiB, Pids: 100, Tmp: 64 * MiB, Workspace: 256 * MiB},
			Max:      Limits{CPU: 2, Memory: 4 * GiB, Pids: 1024, Tmp: 1 * GiB, Workspace: 4 * GiB},
		},
		UserNS: UserNS{HostUID: 100000, HostGID: 100000, Size: 65536},
		Network: Network{
			Pool:       "10.213.0.0/16",
			PluginDirs: []string{"/usr/lib/cni", "/opt/cni/bin"},
			RunDir:     "/run/cronium-agent/cni",
			APIPort:    8081,
		},
		Journal: Journal{Budget: 1 * GiB, SyncConcurrency: 4, Retain: Duration(24 * time.Hour)},
		Admin:   Admin{Socket: "/run/cronium-agent/admin.sock"},
		SSH: SSH{
			HostKeyPolicy:      HostKeyPolicyTOFU,
			SystemKnownHosts:   "/etc/ssh/ssh_known_hosts",
			DialTimeout:        Duration(10 * time.Second),
			KeepaliveInterval:  Duration(15 * time.Second),
			IdleTimeout:        Duration(5 * time.Minute),
			MaxConnsPerServer:  4,
			MaxSessionsPerConn: 8,
			Worker:             true,
			MaxParallelServers: 8,
			BreakerFailures:    3,
			BreakerCooldown:    Duration(30 * time.Second),
		},
		Metrics: Metrics{Listen: "127.0.0.1:9465"},
	}
}

// Load reads the file at path (a missing or empty file means all defaults),
// then applies the environment, then validates the result.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Config{}, fmt.Errorf("read config %s: %w", path, err)
	default:
		if err := decodeYAML(data, &cfg); err != nil {
			return Config{}, fmt.Errorf("parse config %s: %w", path, err)
		}
	}
	if err := applyEnv(&cfg, environ); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func decodeYAML(data []byte, cfg *Config) error {
	var node yaml.Node
	if err := yaml.Unmarshal(data, &node); err != nil {
		return err
	}
	if node.Kind == 0 || len(node.Content) == 0 {
		return nil // empty file
	}
	// Unknown keys are refused so a typo never silently becomes a default.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(cfg)
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Containerd.Address != "", "containerd.address is empty")
	check(c.Containerd.Namespace != "", "containerd.namespace is empty")
	check(c.State.Dir != "", "state.dir is empty")
	check(c.Jobs.DefaultTimeout > 0, "jobs.defaultTimeout must be positive")
	check(c.Jobs.MaxTimeout >= c.Jobs.DefaultTimeout, "jobs.maxTimeout (%s) is below jobs.defaultTimeout (%s)", c.Jobs.MaxTimeout, c.Jobs.DefaultTimeout)
	check(c.Jobs.KillGrace >= 0, "jobs.killGrace is negative")
	for _, l := range []struct {
		name string
		l    Limits
	}{{"resources.defaults", c.Resources.Defaults}, {"resources.max", c.Resources.Max}} {
		check(l.l.CPU > 0, "%s.cpu must be positive", l.name)
		check(l.l.Memory >= 4*MiB, "%s.memory must be at least 4MiB", l.name)
		check(l.l.Pids > 0, "%s.pids must be positive", l.name)
		check(l.l.Tmp > 0, "%s.tmp must be positive", l.name)
		check(l.l.Workspace > 0, "%s.workspace must be positive", l.name)
	}
	check(c.UserNS.HostUID > 0 && c.UserNS.HostGID > 0, "userns.hostUID and userns.hostGID must not map to host root")
	check(c.UserNS.Size > 1000, "userns.size must be above 1000 (jobs run as uid 1000)")
	if p, err := netip.ParsePrefix(c.Network.Pool); err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		errs = append(errs, fmt.Errorf("network.pool %q: want an IPv4 prefix of /30 or larger, like 10.213.0.0/16", c.Network.Pool))
	}
	check(c.Network.APIPort > 0 && c.Network.APIPort < 65536, "network.apiPort %d is out of range", c.Network.APIPort)
	check(len(c.Network.PluginDirs) > 0, "network.pluginDirs is empty")
	check(c.Network.RunDir != "", "network.runDir is empty")
	check(c.Jobs.MaxConcurrent > 0, "jobs.maxConcurrent must be positive")
	check(c.Jobs.PollInterval > 0 && c.Jobs.PollMaxInterval >= c.Jobs.PollInterval, "jobs.pollInterval must be positive and at most jobs.pollMaxInterval")
	check(c.Jobs.LongPoll >= 0 && time.Duration(c.Jobs.LongPoll) <= time.Minute, "jobs.longPoll must be between 0 and 1m")
	check(c.Jobs.OutputCap >= 4*KiB, "jobs.outputCap must be at least 4KiB")
	check(c.Jobs.OutputBudget >= 1*MiB, "jobs.outputBudget must be at least 1MiB")
	check(c.Journal.Budget >= 1*MiB, "journal.budget must be at least 1MiB")
	check(c.Journal.SyncConcurrency > 0, "journal.syncConcurrency must be positive")
	check(c.Journal.Retain >= 0, "journal.retain is negative")
	check(c.Admin.Socket != "", "admin.socket is empty")
	check(c.SSH.HostKeyPolicy == HostKeyPolicyTOFU || c.SSH.HostKeyPolicy == HostKeyPolicyStrict, "ssh.hostKeyPolicy %q: want %s or %s", c.SSH.HostKeyPolicy, HostKeyPolicyTOFU, HostKeyPolicyStrict)
	check(c.SSH.DialTimeout > 0, "ssh.dialTimeout must be positive")
	check(c.SSH.KeepaliveInterval >= 0, "ssh.keepaliveInterval is negative")
	check(c.SSH.IdleTimeout > 0, "ssh.idleTimeout must be positive")
	check(c.SSH.MaxConnsPerServer > 0, "ssh.maxConnsPerServer must be positive")
	check(c.SSH.MaxSessionsPerConn > 0, "ssh.maxSessionsPerConn must be positive")
	check(c.SSH.MaxParallelServers > 0, "ssh.maxParallelServers must be positive")
	check(c.SSH.BreakerFailures > 0, "ssh.breakerFailures must be positive")
	check(c.SSH.BreakerCooldown > 0, "ssh.breakerCooldown must be positive")
	if c.Backend.EnvEncryptionKey != "" {
		if b, err := hex.DecodeString(c.Backend.EnvEncryptionKey); err != nil || len(b) != 32 {
			errs = append(errs, errors.New("backend.envEncryptionKey must be 64 hex characters (a 32-byte AES key)"))
		}
	}
	return errors.Join(errs...)
}
