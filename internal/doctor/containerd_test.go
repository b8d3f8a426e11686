package doctor

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/internal/testenv"
)

func TestContainerdUnreachable(t *testing.T) {
	dir := t.TempDir()
	notASocket := filepath.Join(dir, "plain-file.sock")
	if err := os.WriteFile(notASocket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		addr       string
		containerd want
	}{
		{"no socket", filepath.Join(dir, "containerd.sock"),
			want{status: Fail, detail: []string{"not reachable at " + dir + "/containerd.sock (no such socket)"}, fix: []string{"start containerd", "containerd.address", "CRONIUM_CONTAINERD_ADDRESS"}}},
		{"nobody listening", notASocket,
			want{status: Fail, detail: []string{notASocket}, fix: []string{"start containerd"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Containerd.Address = tc.addr
			opt := WithTimeout(time.Second)
			tc.containerd.check(t, runCheck(t, cfg, "containerd", opt))
			// The images cannot be known then: a warning that points at
			// the containerd check, not a second failure.
			want{status: Warn, detail: []string{"not checked", tc.addr}, fix: []string{"containerd check"}}.check(t, runCheck(t, cfg, "images", opt))
		})
	}
}

func TestContainerdReal(t *testing.T) {
	testenv.Containerd(t)
	archives := t.TempDir()
	writeTree(t, archives, map[string]string{"bash-0123abcd.tar": "", "python-4567.tar": "", "bashful-1.tar": ""})
	for _, tc := range []struct {
		name   string
		change func(*config.Config)
		check  string
		want   want
	}{
		{"version", nil, "containerd", want{status: Pass, detail: []string{"containerd ", "at " + testenv.Address()}}},
		{"runtime images", nil, "images", want{status: Pass, detail: []string{"bash, python, node in namespace " + testenv.Namespace}}},
		{"runtime image missing, archive at hand", func(c *config.Config) {
			c.Runtimes.Bash.Image = "cronium.local/runtimes/bash:doctor-missing"
			c.Runtimes.ArchiveDir = archives
		}, "images", want{status: Fail, detail: []string{"not imported", "bash (cronium.local/runtimes/bash:doctor-missing)"}, absent: []string{"python"},
			fix: []string{"cronium-agent images import " + filepath.Join(archives, "bash-0123abcd.tar")}}},
		{"runtime image missing, no archive", func(c *config.Config) {
			c.Runtimes.Node.Image = "cronium.local/runtimes/node:doctor-missing"
			c.Runtimes.ArchiveDir = archives
		}, "images", want{status: Fail, detail: []string{"node (cronium.local/runtimes/node:doctor-missing)"},
			fix: []string{"cronium-agent images import ARCHIVE", "hack/build-images.sh", archives + ", which has none for node"}}},
		{"other image missing", func(c *config.Config) { c.Runtimes.Python.Image = "127.0.0.1:1/doctor/missing:1" }, "images",
			want{status: Warn, detail: []string{"pulled by the first job", "python (127.0.0.1:1/doctor/missing:1)"}}},
		{"bad reference", func(c *config.Config) { c.Runtimes.Python.Image = "no spaces allowed" }, "images",
			want{status: Fail, detail: []string{"runtimes.python.image"}, fix: []string{"correct runtimes.python.image"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Containerd.Address = testenv.Address()
			cfg.Containerd.Namespace = testenv.Namespace
			if tc.change != nil {
				tc.change(&cfg)
			}
			tc.want.check(t, runCheck(t, cfg, tc.check))
		})
	}
}
