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

	"github.com/cronium/cronium-agent/runner/netpolicy"
)

// DefaultPath is where the agent looks for its configuration file.
const DefaultPath = "/etc/cronium/agent.yaml"

// Config is the whole agent configuration. Every field carries a yaml tag; the
// matching environment variable is CRONIUM_ followed by the path of yaml keys in
// upper snake case (containerd.address -> CRONIUM_CONTAINERD_ADDRESS).
type Config struct {
	Containerd Containerd `yaml:"containerd"`
	State      State      `yaml:"state"`
	Identity   Identity   `yaml:"identity"`
	Runtimes   Runtimes   `yaml:"runtimes"`
	Jobs       Jobs       `yaml:"jobs"`
	Resources  Resources  `yaml:"resources"`
	UserNS     UserNS     `yaml:"userns"`
	Registry   Registry   `yaml:"registry"`
	Network    Network    `yaml:"network"`
	HTTP       HTTP       `yaml:"http"`
	Backend    Backend    `yaml:"backend"`
	Journal    Journal    `yaml:"journal"`
	Admin      Admin      `yaml:"admin"`
	SSH        SSH        `yaml:"ssh"`
	Metrics    Metrics    `yaml:"metrics"`
	Logs       Logs       `yaml:"logs"`
	Tools      Tools      `yaml:"tools"`
}

// Tools configures tool actions (TOOL_ACTION jobs, when jobs.toolActions
// is on, and the runtime API's POST /tool-actions/execute).
type Tools struct {
	Credentials map[string]ToolCredential `yaml:"credentials" doc:"Credentials of the tool actions, by name: each entry {tool, url, token, baseUrl, headers, host, port, username, password, tls, auth, from} (tool defaults to the entry's name: webhook, slack, discord, teams or email). An action uses the credential it carries itself, else the entry it names (\"credential\"), else the entry named after its tool, else the only entry for its tool; an entry is used whole. Secrets: never logged; keep this file 0600. Not settable from the environment."`
}

// ToolCredential is one entry of tools.credentials. Its fields are those
// of toolexec.Credential, in the same order (the agent converts one to the
// other). Secrets: URL (a webhook URL is one), Token, Password, Headers.
type ToolCredential struct {
	Tool     string            `yaml:"tool,omitempty"`
	URL      string            `yaml:"url,omitempty"`
	Token    string            `yaml:"token,omitempty"`
	BaseURL  string            `yaml:"baseUrl,omitempty"`
	Headers  map[string]string `yaml:"headers,omitempty"`
	Host     string            `yaml:"host,omitempty"`
	Port     int               `yaml:"port,omitempty"`
	Username string            `yaml:"username,omitempty"`
	Password string            `yaml:"password,omitempty"`
	TLS      string            `yaml:"tls,omitempty"`
	Auth     string            `yaml:"auth,omitempty"`
	From     string            `yaml:"from,omitempty"`
}

// String never shows a secret.
func (c ToolCredential) String() string { return "tool credential (secrets hidden)" }

// GoString never shows a secret.
func (c ToolCredential) GoString() string { return "config.ToolCredential{secrets hidden}" }

// Logs configures what the agent's logs of a job never show.
type Logs struct {
	Mask      bool     `yaml:"mask" doc:"Replace the job's secrets by *** in everything the agent journals and delivers of it: live log lines, the completion's output, the agent's own lines and cronium-agent logs. Secrets are the values (4 characters or longer) of environment variables whose name matches maskNames or that arrived encrypted, and the passwords and private keys of the job's servers. What a script sets as its output through the runtime API is not masked."`
	MaskNames []string `yaml:"maskNames" doc:"Environment variable names whose values are secrets: each entry matches a name containing it, in any case."`
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

// Network configures the per-job networks and the runtime API, and the
// outbound policy (Egress, Allow, Deny: runner/netpolicy). Scripts get a
// route out with egress all or allowlist (Egress.ScriptRoute), under per-job
// forwarding rules (package cni), and DNS servers (DNS).
type Network struct {
	Pool       string   `yaml:"pool" doc:"IPv4 prefix carved into one /30 per running job."`
	Egress     Egress   `yaml:"egress" doc:"The outbound policy's mode for scripts (http.egress is HTTP jobs' and tool actions'): none (the default) gives a script no route out; allowlist lets out only what network.allow names; all lets everything out but network.deny and the built-in denies, with a default route and masquerading. Built-in denies, whatever the mode, unless an address entry of network.allow names them: the host's own addresses, loopback, link-local (the cloud metadata address among them), unspecified, multicast and the job network pool. The booleans of earlier versions are read as all (true) and none (false)."`
	Allow      []string `yaml:"allow" doc:"Destinations let out: CIDRs (10.0.0.0/8), IPs, host names, each with an optional port (10.0.0.0/8:443, 192.0.2.7:8080, [::1]:80, api.example.com:443). A name matches the URL's host, yet never lets out an address of the built-in denies it resolves to (DNS rebinding): allow that address itself. Checked on every address connected to, redirects included."`
	Deny       []string `yaml:"deny" doc:"Destinations refused, written as network.allow's; a deny wins over every allow. Precedence: network.deny, then network.allow, then the built-in denies, then network.egress."`
	DNS        []string `yaml:"dns" doc:"DNS servers (IPv4 addresses, at most 3) in the /etc/resolv.conf of scripts with a route out (network.egress all or allowlist; allowlist lets DNS to them out). Empty takes the host's /etc/resolv.conf nameservers that are not loopback; a host with only a local stub resolver (127.0.0.53) needs this set (doctor says so). Names in network.allow are resolved with the host's resolver when each script starts."`
	PluginDirs []string `yaml:"pluginDirs" doc:"Where the CNI plugins (bridge, host-local, loopback) are looked for."`
	RunDir     string   `yaml:"runDir" doc:"Leases, subnets and locks of the job networks; must be a directory a reboot clears."`
	APIPort    int      `yaml:"apiPort" doc:"Port of each job's runtime API on its gateway address."`
}

// HTTP configures the requests of HTTP_REQUEST jobs (their destinations:
// network.egress, network.allow and network.deny).
type HTTP struct {
	Egress         Egress   `yaml:"egress" doc:"The outbound policy's mode for HTTP jobs and tool actions (network.egress is the scripts'): all (the default) lets them reach anything but network.deny and the built-in denies; none and allowlist only what network.allow names. The built-in denies and network.allow/deny are network.egress's."`
	MaxBody        ByteSize `yaml:"maxBody" doc:"Bound on the response body a job keeps (its output); the rest is read and counted, not kept, within the job's timeout, and the job says the body was truncated and its whole size."`
	ConnectTimeout Duration `yaml:"connectTimeout" doc:"Bound on resolving the host and connecting (per redirect hop), and on the TLS handshake; the job's timeout bounds the whole request."`
}

// Containerd says how to reach containerd and how jobs are created there.
type Containerd struct {
	Address     string `yaml:"address" doc:"containerd's socket."`
	Namespace   string `yaml:"namespace" doc:"containerd namespace of the agent's images, containers and snapshots."`
	Snapshotter string `yaml:"snapshotter" doc:"Snapshotter of the jobs' root filesystems."`
	Runtime     string `yaml:"runtime" doc:"containerd runtime (shim) that runs job tasks; io.containerd.runc.v2 runs through the agent's shim wrapper (/run/cronium-agent/shim, or state.dir/shim where /run is noexec), which spares the second shim and runc process containerd starts after each task."`
	OCIRuntime  string `yaml:"ociRuntime" doc:"OCI runtime the runc shim runs for each job: auto (crun when it is installed and can manage this host's cgroups, else runc), runc or crun. crun costs about half of runc's CPU per container. Only for containerd.runtime io.containerd.runc.v2."`
}

// State is where the agent keeps its files.
type State struct {
	Dir string `yaml:"dir" doc:"Where the agent keeps its journal, keys, run directories and id."`
}

// Identity binds the agent's id to its machine.
type Identity struct {
	MachineIDFile string `yaml:"machineIdFile" doc:"The file holding this machine's identity (where absent or empty: the DMI product UUID). The agent id in state.dir is bound to it: a state directory copied to another machine (a host installed from an image made after a first start) is moved aside, and that machine gets an id and a journal of its own. backend.orchestratorId, when set, is used as it is."`
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
	PollInterval      Duration `yaml:"pollInterval" doc:"Wait between claims, also while the queue is empty: an idle agent claims a new job within it, at the cost of one GET of the queue per interval for the backend. Each wait is spread over ±20%, so that agents started together do not poll in step. A backend that offers long-poll claims (the development backend) holds the claim instead (jobs.longPoll)."`
	PollMaxInterval   Duration `yaml:"pollMaxInterval" doc:"While the backend fails (unreachable, 5xx, refusing the token) the wait between claims doubles up to this."`
	LongPoll          Duration `yaml:"longPoll" doc:"On a backend that offers long-poll claims (cronium-backend does; the deployed Cronium backend does not), how long one claim may wait for a job: a job submitted meanwhile is claimed at once instead of at the next poll. 0 polls at pollInterval everywhere."`
	DrainTimeout      Duration `yaml:"drainTimeout" doc:"How long SIGTERM lets running jobs finish before they are cancelled."`
	HeartbeatInterval Duration `yaml:"heartbeatInterval" doc:"Period of the heartbeat (running jobs and capacity; its answer may cancel jobs)."`
	MetricsInterval   Duration `yaml:"metricsInterval" doc:"Period of the metrics report."`
	OutputCap         ByteSize `yaml:"outputCap" doc:"Bound on stdout and on stderr each in the completing call; head and tail are kept around a marker."`
	OutputBudget      ByteSize `yaml:"outputBudget" doc:"Disk one run's captured output may take. Past it the middle of the output is dropped at the source, with a line saying how much: the head stays, and the last eighth of the budget (at most 16MiB). Live lines and the journal see the same."`
	WarmSandboxes     int      `yaml:"warmSandboxes" doc:"Warm sandboxes kept ready per runtime image that ran a job recently: a job's network, firewall rules, snapshot and created container are made before it arrives, so it starts in tens of milliseconds. Each sandbox serves one job and is then removed; the first job of a runtime after start or after an idle spell starts cold. 0 disables them."`
	WarmIdleTimeout   Duration `yaml:"warmIdleTimeout" doc:"A runtime with no job for this long keeps no warm sandbox until its next job; a ready sandbox older than this is replaced (its allowlist is resolved again)."`
	WarmMinAvailable  ByteSize `yaml:"warmMinAvailable" doc:"No warm sandbox is made while the host's available memory (MemAvailable) is below this, and the ready ones are removed."`
	ToolActions       bool     `yaml:"toolActions" doc:"Run tool actions (webhook, Slack, Discord, Teams, email): the agent then asks the backend for TOOL_ACTION jobs, and serves POST /tool-actions/execute to scripts (else 501). Off by default: the deployed Cronium backend does not transport a tool action's parameters (such jobs would fail). Credentials: tools.credentials."`
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
			OCIRuntime:  "auto",
		},
		State:    State{Dir: "/var/lib/cronium-agent"},
		Identity: Identity{MachineIDFile: "/etc/machine-id"},
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
			WarmSandboxes:     1,
			WarmIdleTimeout:   Duration(10 * time.Minute),
			WarmMinAvailable:  512 * MiB,
		},
		Resources: Resources{
			Defaults: Limits{CPU: 0.5, Memory: 512 * MiB, Pids: 100, Tmp: 64 * MiB, Workspace: 256 * MiB},
			Max:      Limits{CPU: 2, Memory: 4 * GiB, Pids: 1024, Tmp: 1 * GiB, Workspace: 4 * GiB},
		},
		UserNS: UserNS{HostUID: 100000, HostGID: 100000, Size: 65536},
		Network: Network{
			Pool:       "10.213.0.0/16",
			Egress:     EgressNone,
			PluginDirs: []string{"/usr/lib/cni", "/opt/cni/bin"},
			RunDir:     "/run/cronium-agent/cni",
			APIPort:    8081,
		},
		HTTP:    HTTP{Egress: EgressAll, MaxBody: 4 * MiB, ConnectTimeout: Duration(10 * time.Second)},
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
		Logs:    Logs{Mask: true, MaskNames: []string{"TOKEN", "SECRET", "PASSWORD", "KEY", "CREDENTIAL"}},
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
	check(c.Containerd.OCIRuntime == "auto" || c.Containerd.OCIRuntime == "runc" || c.Containerd.OCIRuntime == "crun", "containerd.ociRuntime %q: want auto, runc or crun", c.Containerd.OCIRuntime)
	check(c.UserNS.HostUID > 0 && c.UserNS.HostGID > 0, "userns.hostUID and userns.hostGID must not map to host root")
	check(c.UserNS.Size > 1000, "userns.size must be above 1000 (jobs run as uid 1000)")
	if p, err := netip.ParsePrefix(c.Network.Pool); err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		errs = append(errs, fmt.Errorf("network.pool %q: want an IPv4 prefix of /30 or larger, like 10.213.0.0/16", c.Network.Pool))
	}
	check(c.Network.APIPort > 0 && c.Network.APIPort < 65536, "network.apiPort %d is out of range", c.Network.APIPort)
	check(len(c.Network.PluginDirs) > 0, "network.pluginDirs is empty")
	check(c.Network.RunDir != "", "network.runDir is empty")
	_, egressErr := ParseEgress(string(c.Network.Egress))
	check(egressErr == nil, "network.egress %q: want none, allowlist or all", c.Network.Egress)
	_, egressErr = ParseEgress(string(c.HTTP.Egress))
	check(egressErr == nil, "http.egress %q: want none, allowlist or all", c.HTTP.Egress)
	for _, l := range []struct {
		key     string
		entries []string
	}{{"network.allow", c.Network.Allow}, {"network.deny", c.Network.Deny}} {
		for _, s := range l.entries {
			if _, err := netpolicy.ParseEntry(s); err != nil {
				errs = append(errs, fmt.Errorf("%s %w", l.key, err))
			}
		}
	}
	check(len(c.Network.DNS) <= 3, "network.dns has %d servers: the resolver of a job reads the first 3 only", len(c.Network.DNS))
	for _, d := range c.Network.DNS {
		a, err := netip.ParseAddr(d)
		check(err == nil && a.Is4() && !a.IsLoopback() && !a.IsUnspecified(), "network.dns %q: want an IPv4 address a job can reach (not loopback: jobs have their own)", d)
	}
	// The kept body is held in memory, once per running HTTP job.
	check(c.HTTP.MaxBody >= 1*KiB && c.HTTP.MaxBody <= 256*MiB, "http.maxBody %s: want between 1KiB and 256MiB", c.HTTP.MaxBody)
	check(c.HTTP.ConnectTimeout > 0, "http.connectTimeout must be positive")
	check(c.Jobs.MaxConcurrent > 0, "jobs.maxConcurrent must be positive")
	check(c.Jobs.PollInterval > 0 && c.Jobs.PollMaxInterval >= c.Jobs.PollInterval, "jobs.pollInterval must be positive and at most jobs.pollMaxInterval")
	check(c.Jobs.LongPoll >= 0 && time.Duration(c.Jobs.LongPoll) <= time.Minute, "jobs.longPoll must be between 0 and 1m")
	check(c.Jobs.OutputCap >= 4*KiB, "jobs.outputCap must be at least 4KiB")
	check(c.Jobs.OutputBudget >= 1*MiB, "jobs.outputBudget must be at least 1MiB")
	check(c.Jobs.WarmSandboxes >= 0 && c.Jobs.WarmSandboxes <= 16, "jobs.warmSandboxes must be between 0 and 16")
	check(c.Jobs.WarmSandboxes == 0 || c.Jobs.WarmIdleTimeout > 0, "jobs.warmIdleTimeout must be positive when jobs.warmSandboxes is above 0")
	for name, tc := range c.Tools.Credentials {
		// Names only: the values are secrets.
		check(name != "", "tools.credentials has an entry without a name")
		check(tc.Port >= 0 && tc.Port < 65536, "tools.credentials.%s.port %d is out of range", name, tc.Port)
		switch tc.TLS {
		case "", "auto", "starttls", "tls", "none":
		default:
			errs = append(errs, fmt.Errorf("tools.credentials.%s.tls %q: want auto, starttls, tls or none", name, tc.TLS))
		}
	}
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
