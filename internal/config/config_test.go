package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEnvName(t *testing.T) {
	for _, tc := range []struct {
		path []string
		want string
	}{
		{[]string{"containerd", "address"}, "CRONIUM_CONTAINERD_ADDRESS"},
		{[]string{"state", "dir"}, "CRONIUM_STATE_DIR"},
		{[]string{"jobs", "defaultTimeout"}, "CRONIUM_JOBS_DEFAULT_TIMEOUT"},
		{[]string{"userns", "hostUID"}, "CRONIUM_USERNS_HOST_UID"},
		{[]string{"registry", "plainHTTP"}, "CRONIUM_REGISTRY_PLAIN_HTTP"},
		{[]string{"ssh", "knownHosts"}, "CRONIUM_SSH_KNOWN_HOSTS"},
		{[]string{"ssh", "maxConnsPerServer"}, "CRONIUM_SSH_MAX_CONNS_PER_SERVER"},
	} {
		if got := EnvName(tc.path...); got != tc.want {
			t.Errorf("EnvName(%v) = %s, want %s", tc.path, got, tc.want)
		}
	}
}

func TestEveryKeyHasAnEnvironmentVariable(t *testing.T) {
	keys := Keys()
	if len(keys) < 20 {
		t.Fatalf("only %d keys found", len(keys))
	}
	seen := map[string]string{}
	for _, k := range keys {
		if prev, dup := seen[k[1]]; dup {
			t.Errorf("%s and %s share variable %s", prev, k[0], k[1])
		}
		seen[k[1]] = k[0]
	}
}

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string // "" = no file at all
		env     []string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{name: "missing file means defaults", check: func(t *testing.T, c Config) {
			if c.Containerd.Address != "/run/containerd/containerd.sock" || c.State.Dir != "/var/lib/cronium-agent" {
				t.Errorf("defaults not applied: %+v", c)
			}
			if c.Resources.Defaults.Memory != 512*MiB || c.Resources.Defaults.CPU != 0.5 || c.Resources.Defaults.Pids != 100 {
				t.Errorf("resource defaults: %+v", c.Resources.Defaults)
			}
		}},
		{name: "empty file means defaults", file: "\n# nothing\n", check: func(t *testing.T, c Config) {
			if c.Jobs.KillGrace != Duration(10*time.Second) {
				t.Errorf("kill grace %s", c.Jobs.KillGrace)
			}
		}},
		{name: "file values", file: "containerd:\n  address: /tmp/c.sock\nresources:\n  defaults:\n    memory: 256MiB\n    cpu: 1\njobs:\n  killGrace: 3s\n", check: func(t *testing.T, c Config) {
			if c.Containerd.Address != "/tmp/c.sock" || c.Resources.Defaults.Memory != 256*MiB || c.Resources.Defaults.CPU != 1 || c.Jobs.KillGrace != Duration(3*time.Second) {
				t.Errorf("file not applied: %+v", c)
			}
		}},
		{name: "environment beats file", file: "state:\n  dir: /a\n", env: []string{"CRONIUM_STATE_DIR=/b", "CRONIUM_RESOURCES_MAX_PIDS=50", "CRONIUM_USERNS_HOST_UID=200000", "CRONIUM_REGISTRY_PLAIN_HTTP=r1:5000, r2"}, check: func(t *testing.T, c Config) {
			if c.State.Dir != "/b" || c.Resources.Max.Pids != 50 || c.UserNS.HostUID != 200000 || len(c.Registry.PlainHTTP) != 2 {
				t.Errorf("env not applied: %+v", c)
			}
		}},
		{name: "warm sandboxes by default", check: func(t *testing.T, c Config) {
			if c.Jobs.WarmSandboxes != 1 || c.Jobs.WarmIdleTimeout != Duration(10*time.Minute) || c.Jobs.WarmMinAvailable != 512*MiB {
				t.Errorf("warm sandboxes %d, idle %s, min available %s", c.Jobs.WarmSandboxes, c.Jobs.WarmIdleTimeout, c.Jobs.WarmMinAvailable)
			}
		}},
		{name: "environment turns warm sandboxes off", file: "jobs:\n  warmSandboxes: 4\n  warmMinAvailable: 1GiB\n", env: []string{"CRONIUM_JOBS_WARM_SANDBOXES=0", "CRONIUM_JOBS_WARM_IDLE_TIMEOUT=0"}, check: func(t *testing.T, c Config) {
			if c.Jobs.WarmSandboxes != 0 || c.Jobs.WarmIdleTimeout != 0 || c.Jobs.WarmMinAvailable != GiB {
				t.Errorf("warm sandboxes %d, idle %s, min available %s", c.Jobs.WarmSandboxes, c.Jobs.WarmIdleTimeout, c.Jobs.WarmMinAvailable)
			}
		}},
		{name: "the old orchestrator's names", env: []string{"CRONIUM_API_ENDPOINT=http://b:5001", "CRONIUM_API_TOKEN=t0k", "CRONIUM_ORCHESTRATOR_ID=orch-1", "CRONIUM_JOBS_MAX_CONCURRENT=3", "CRONIUM_JOBS_POLL_INTERVAL=2", "CRONIUM_ENV_ENCRYPTION_KEY=" + strings.Repeat("ab", 32)}, check: func(t *testing.T, c Config) {
			if c.Backend.URL != "http://b:5001" || c.Backend.Token != "t0k" || c.Backend.OrchestratorID != "orch-1" || c.Jobs.MaxConcurrent != 3 || c.Jobs.PollInterval != Duration(2*time.Second) || len(c.Backend.EnvEncryptionKey) != 64 {
				t.Errorf("aliases not applied: %+v %+v", c.Backend, c.Jobs)
			}
		}},
		{name: "own name beats the alias", env: []string{"CRONIUM_API_ENDPOINT=http://old", "CRONIUM_BACKEND_URL=http://new"}, check: func(t *testing.T, c Config) {
			if c.Backend.URL != "http://new" {
				t.Errorf("url %q", c.Backend.URL)
			}
		}},
		{name: "durations as seconds or Go durations", file: "jobs:\n  pollInterval: 0.5\n  pollMaxInterval: 1m\n", check: func(t *testing.T, c Config) {
			if c.Jobs.PollInterval != Duration(500*time.Millisecond) || c.Jobs.PollMaxInterval != Duration(time.Minute) {
				t.Errorf("%s %s", c.Jobs.PollInterval, c.Jobs.PollMaxInterval)
			}
		}},
		{name: "ssh defaults", check: func(t *testing.T, c Config) {
			want := SSH{HostKeyPolicy: "tofu", SystemKnownHosts: "/etc/ssh/ssh_known_hosts", DialTimeout: Duration(10 * time.Second),
				KeepaliveInterval: Duration(15 * time.Second), IdleTimeout: Duration(5 * time.Minute), MaxConnsPerServer: 4, MaxSessionsPerConn: 8, Worker: true,
				MaxParallelServers: 8, BreakerFailures: 3, BreakerCooldown: Duration(30 * time.Second)}
			if c.SSH != want {
				t.Errorf("ssh %+v, want %+v", c.SSH, want)
			}
			if got := c.KnownHostsPath(); got != "/var/lib/cronium-agent/known_hosts" {
				t.Errorf("KnownHostsPath() = %s", got)
			}
		}},
		{name: "ssh from file and environment", file: "state:\n  dir: /s\nssh:\n  hostKeyPolicy: strict\n  keepaliveInterval: 0\n  systemKnownHosts: \"\"\n",
			env: []string{"CRONIUM_SSH_KNOWN_HOSTS=/etc/cronium/known_hosts", "CRONIUM_SSH_MAX_PARALLEL_SERVERS=2", "CRONIUM_SSH_BREAKER_COOLDOWN=1m"}, check: func(t *testing.T, c Config) {
				if c.SSH.HostKeyPolicy != "strict" || c.SSH.KeepaliveInterval != 0 || c.SSH.SystemKnownHosts != "" || c.SSH.MaxParallelServers != 2 ||
					c.SSH.BreakerCooldown != Duration(time.Minute) || c.KnownHostsPath() != "/etc/cronium/known_hosts" {
					t.Errorf("ssh not applied: %+v", c.SSH)
				}
			}},
		{name: "state dir holds known_hosts", env: []string{"CRONIUM_STATE_DIR=/s"}, check: func(t *testing.T, c Config) {
			if got := c.KnownHostsPath(); got != "/s/known_hosts" {
				t.Errorf("KnownHostsPath() = %s", got)
			}
		}},
		{name: "bad host key policy", env: []string{"CRONIUM_SSH_HOST_KEY_POLICY=ask"}, wantErr: `ssh.hostKeyPolicy "ask": want tofu or strict`},
		{name: "bad ssh dial timeout", file: "ssh:\n  dialTimeout: 0\n", wantErr: "ssh.dialTimeout must be positive"},
		{name: "bad ssh limit", env: []string{"CRONIUM_SSH_MAX_SESSIONS_PER_CONN=0"}, wantErr: "ssh.maxSessionsPerConn must be positive"},
		{name: "bad encryption key", env: []string{"CRONIUM_ENV_ENCRYPTION_KEY=xyz"}, wantErr: "backend.envEncryptionKey must be 64 hex characters"},
		{name: "unknown key refused", file: "containerd:\n  adress: x\n", wantErr: "adress"},
		{name: "bad size", file: "resources:\n  defaults:\n    memory: 12parsecs\n", wantErr: "invalid size"},
		{name: "bad env duration", env: []string{"CRONIUM_JOBS_KILL_GRACE=soon"}, wantErr: "CRONIUM_JOBS_KILL_GRACE"},
		{name: "too many warm sandboxes", env: []string{"CRONIUM_JOBS_WARM_SANDBOXES=17"}, wantErr: "jobs.warmSandboxes must be between 0 and 16"},
		{name: "negative warm sandboxes", file: "jobs:\n  warmSandboxes: -1\n", wantErr: "jobs.warmSandboxes must be between 0 and 16"},
		{name: "warm sandboxes without idle timeout", env: []string{"CRONIUM_JOBS_WARM_IDLE_TIMEOUT=0"}, wantErr: "jobs.warmIdleTimeout must be positive"},
		{name: "invalid combination", env: []string{"CRONIUM_JOBS_MAX_TIMEOUT=1s"}, wantErr: "jobs.maxTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.yaml")
			if tc.file != "" {
				path = write(t, tc.file)
			}
			c, err := Load(path, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"65536", 65536, true}, {"512MiB", 512 * MiB, true}, {"1g", GiB, true}, {"100k", 100 * KiB, true},
		{"1.5GiB", GiB + GiB/2, true}, {"", 0, false}, {"-1", 0, false}, {"12 parsecs", 0, false}, {"1.2.3M", 0, false},
	} {
		got, err := ParseByteSize(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseByteSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}
