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
}

// Journal configures the on-disk journal every fact about a run goes
// through before the backend hears of it.
type Journal struct {
	// Budget bounds the journal's data: delivered data goes first, then the
	// middle of the largest undelivered logs (a marker says how much).
	Budget ByteSize `yaml:"budget"`
	// SyncConcurrency is how many jobs' backlogs are delivered at once.
	SyncConcurrency int `yaml:"syncConcurrency"`
	// Retain is how long delivered runs stay inspectable (`cronium-agent
	// jobs`, `logs`) before they are pruned.
	Retain Duration `yaml:"retain"`
}

// Admin configures the local inspection socket (root only).
type Admin struct {
	Socket string `yaml:"socket"`
}

// Backend says how to reach the Cronium backend's internal API.
type Backend struct {
	// URL: only scheme, host and port are used.
	URL string `yaml:"url"`
	// Token is the service token (the backend's INTERNAL_API_KEY). A secret.
	Token string `yaml:"token"`
	// OrchestratorID overrides the id generated once and kept in state.dir.
	OrchestratorID string `yaml:"orchestratorId"`
	// EnvEncryptionKey (64 hex characters) decrypts environment values the
	// deployed backend sends encrypted. A secret.
	EnvEncryptionKey string `yaml:"envEncryptionKey"`
}

// Network configures the per-job networks and the runtime API.
type Network struct {
	// Pool is carved into one /30 per running job.
	Pool string `yaml:"pool"`
	// Egress lets jobs reach the outside (default route and masquerading);
	// the host's own services stay closed to them either way.
	Egress bool `yaml:"egress"`
	// PluginDirs are searched for the CNI plugins.
	PluginDirs []string `yaml:"pluginDirs"`
	// RunDir keeps leases and locks; it must be cleared by a reboot.
	RunDir string `yaml:"runDir"`
	// APIPort is where each job's runtime API listens on its gateway.
	APIPort int `yaml:"apiPort"`
}

// Containerd says how to reach containerd and how jobs are created there.
type Containerd struct {
	Address     string `yaml:"address"`
	Namespace   string `yaml:"namespace"`
	Snapshotter string `yaml:"snapshotter"`
	Runtime     string `yaml:"runtime"`
}

// State is where the agent keeps its files.
type State struct {
	Dir string `yaml:"dir"`
}

// Runtime configures one script runtime.
type Runtime struct {
	Image string `yaml:"image"`
}

// Runtimes holds the image of each supported runtime.
type Runtimes struct {
	Bash   Runtime `yaml:"bash"`
	Python Runtime `yaml:"python"`
	Node   Runtime `yaml:"node"`
}

// Jobs holds limits that apply to every job.
type Jobs struct {
	DefaultTimeout Duration `yaml:"defaultTimeout"`
	MaxTimeout     Duration `yaml:"maxTimeout"`
	KillGrace      Duration `yaml:"killGrace"`
	// MaxConcurrent is how many jobs run at once.
	MaxConcurrent int `yaml:"maxConcurrent"`
	// PollInterval is the wait between claims while jobs come; an empty
	// queue or an unreachable backend stretches it up to PollMaxInterval.
	PollInterval    Duration `yaml:"pollInterval"`
	PollMaxInterval Duration `yaml:"pollMaxInterval"`
	// DrainTimeout is how long SIGTERM lets running jobs finish.
	DrainTimeout      Duration `yaml:"drainTimeout"`
	HeartbeatInterval Duration `yaml:"heartbeatInterval"`
	MetricsInterval   Duration `yaml:"metricsInterval"`
	// OutputCap bounds stdout and stderr each in the completing call.
	OutputCap ByteSize `yaml:"outputCap"`
}

// Limits is one set of per-job resource values.
type Limits struct {
	CPU       float64  `yaml:"cpu"`
	Memory    ByteSize `yaml:"memory"`
	Pids      int64    `yaml:"pids"`
	Tmp       ByteSize `yaml:"tmp"`
	Workspace ByteSize `yaml:"workspace"`
}

// Resources holds the values a job gets when it asks for none, and the
// largest it may ask for.
type Resources struct {
	Defaults Limits `yaml:"defaults"`
	Max      Limits `yaml:"max"`
}

// UserNS is the subordinate id range every job's user namespace maps to.
type UserNS struct {
	HostUID uint32 `yaml:"hostUID"`
	HostGID uint32 `yaml:"hostGID"`
	Size    uint32 `yaml:"size"`
}

// Registry configures image pulls.
type Registry struct {
	// PlainHTTP lists registry hosts reached over plain HTTP; loopback
	// registries always are.
	PlainHTTP []string `yaml:"plainHTTP"`
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
			Bash:   Runtime{Image: "cronium.local/runtimes/bash:latest"},
			Python: Runtime{Image: "cronium.local/runtimes/python:latest"},
			Node:   Runtime{Image: "cronium.local/runtimes/node:latest"},
		},
		Jobs: Jobs{
			DefaultTimeout:    Duration(time.Hour),
			MaxTimeout:        Duration(24 * time.Hour),
			KillGrace:         Duration(10 * time.Second),
			MaxConcurrent:     5,
			PollInterval:      Duration(time.Second),
			PollMaxInterval:   Duration(10 * time.Second),
			DrainTimeout:      Duration(5 * time.Minute),
			HeartbeatInterval: Duration(10 * time.Second),
			MetricsInterval:   Duration(time.Minute),
			OutputCap:         1 * MiB,
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
	check(c.Jobs.OutputCap >= 4*KiB, "jobs.outputCap must be at least 4KiB")
	check(c.Journal.Budget >= 1*MiB, "journal.budget must be at least 1MiB")
	check(c.Journal.SyncConcurrency > 0, "journal.syncConcurrency must be positive")
	check(c.Journal.Retain >= 0, "journal.retain is negative")
	check(c.Admin.Socket != "", "admin.socket is empty")
	if c.Backend.EnvEncryptionKey != "" {
		if b, err := hex.DecodeString(c.Backend.EnvEncryptionKey); err != nil || len(b) != 32 {
			errs = append(errs, errors.New("backend.envEncryptionKey must be 64 hex characters (a 32-byte AES key)"))
		}
	}
	return errors.Join(errs...)
}
