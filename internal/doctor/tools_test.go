package doctor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cronium/cronium-agent/internal/config"
)

// tool is a program put on a test's PATH.
type tool struct {
	script string
	mode   os.FileMode
}

func TestTools(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check string
		bins  map[string]tool // file name in the second PATH directory: program
		want  want
	}{
		{"runc found", "runc", map[string]tool{"runc": {"#!/bin/sh\necho 'runc version 1.1.5+ds1'\necho 'commit: x'\n", 0o755}},
			want{status: Pass, detail: []string{"/runc: runc version 1.1.5+ds1"}}},
		{"runc missing", "runc", nil, want{status: Fail, detail: []string{"runc is not on PATH"}, fix: []string{"apt-get install runc"}}},
		{"runc not executable", "runc", map[string]tool{"runc": {"#!/bin/sh\necho runc\n", 0o644}},
			want{status: Fail, detail: []string{"not on PATH"}}},
		{"runc broken", "runc", map[string]tool{"runc": {"#!/bin/sh\necho 'cannot execute binary file' >&2\nexit 126\n", 0o755}},
			want{status: Fail, detail: []string{"runc --version: exit status 126: cannot execute binary file"}, fix: []string{"--reinstall"}}},
		{"iptables found", "iptables", map[string]tool{"iptables": {"#!/bin/sh\necho 'iptables v1.8.9 (nf_tables)'\n", 0o755}},
			want{status: Pass, detail: []string{"iptables v1.8.9 (nf_tables)"}}},
		{"iptables missing", "iptables", map[string]tool{"runc": {"#!/bin/sh\n", 0o755}},
			want{status: Fail, detail: []string{"iptables is not on PATH"}, fix: []string{"apt-get install iptables"}}},
		{"silent", "iptables", map[string]tool{"iptables": {"#!/bin/sh\n", 0o755}},
			want{status: Pass, detail: []string{"(no version printed)"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			empty, bin := t.TempDir(), t.TempDir()
			for name, tl := range tc.bins {
				if err := os.WriteFile(filepath.Join(bin, name), []byte(tl.script), tl.mode); err != nil {
					t.Fatal(err)
				}
			}
			path := empty + string(os.PathListSeparator) + string(os.PathListSeparator) + bin
			tc.want.check(t, runCheck(t, config.Default(), tc.check, WithPath(path)))
		})
	}
}

func TestCNIPlugins(t *testing.T) {
	for _, tc := range []struct {
		name string
		dirs [2]map[string]os.FileMode // the plugins of the two directories
		want want
	}{
		{"all in one", [2]map[string]os.FileMode{{"bridge": 0o755, "host-local": 0o755, "loopback": 0o755, "dhcp": 0o755}},
			want{status: Pass, detail: []string{"bridge, host-local in "}}},
		{"spread over both", [2]map[string]os.FileMode{{"bridge": 0o755}, {"bridge": 0o755, "host-local": 0o755, "loopback": 0o755}},
			want{status: Pass, detail: []string{"bridge in ", "; host-local in "}}},
		{"empty", [2]map[string]os.FileMode{},
			want{status: Fail, detail: []string{"CNI plugins bridge, host-local not found in "}, fix: []string{"containernetworking-plugins", "CRONIUM_NETWORK_PLUGIN_DIRS"}}},
		{"one missing", [2]map[string]os.FileMode{{"bridge": 0o755, "loopback": 0o755}},
			want{status: Fail, detail: []string{"CNI plugin host-local not found"}}},
		{"not executable", [2]map[string]os.FileMode{{"bridge": 0o644, "host-local": 0o755, "loopback": 0o755}},
			want{status: Fail, detail: []string{"not executable", "/bridge"}, fix: []string{"chmod 0755"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Network.PluginDirs = []string{t.TempDir(), t.TempDir()}
			for i, plugins := range tc.dirs {
				for name, mode := range plugins {
					if err := os.WriteFile(filepath.Join(cfg.Network.PluginDirs[i], name), []byte("#!/bin/sh\n"), mode); err != nil {
						t.Fatal(err)
					}
				}
			}
			tc.want.check(t, runCheck(t, cfg, "cni"))
		})
	}
}

func TestOCIRuntime(t *testing.T) {
	crun := map[string]tool{"crun": {"#!/bin/sh\necho 'crun version 1.8.1'\n", 0o755}}
	v2 := map[string]string{"cgroup.controllers": "cpu memory pids\n"}
	hybrid := map[string]string{"cpu/tasks": "", "unified/cgroup.controllers": "hugetlb\n"}
	for _, tc := range []struct {
		name    string
		want    string // containerd.ociRuntime
		runtime string // containerd.runtime, when not the runc shim
		bins    map[string]tool
		cgroups map[string]string // below <sys>/fs/cgroup
		res     want
	}{
		{"auto takes crun", "auto", "", crun, v2, want{status: Pass, detail: []string{"crun (crun found and this host's cgroups suit it): ", "/crun: crun version 1.8.1"}}},
		{"auto without crun takes runc", "auto", "", nil, v2, want{status: Pass, detail: []string{"runc (crun is not on PATH"}}},
		{"auto on a hybrid host takes runc", "auto", "", crun, hybrid, want{status: Pass, detail: []string{"runc (crun refuses a hybrid cgroup host", "(hugetlb)"}}},
		{"crun asked for, not there", "crun", "", nil, v2, want{status: Fail, detail: []string{"OCI runtime crun: crun is not on PATH"}, fix: []string{"set containerd.ociRuntime to auto or runc in /etc/cronium/agent.yaml"}}},
		{"crun asked for on a hybrid host", "crun", "", crun, hybrid, want{status: Fail, detail: []string{"offers controllers (hugetlb)"}}},
		{"crun that does not run", "auto", "", map[string]tool{"crun": {"#!/bin/sh\nexit 1\n", 0o755}}, v2, want{status: Fail, detail: []string{"crun --version: exit status 1"}, fix: []string{"apt-get install crun --reinstall"}}},
		{"runc asked for", "runc", "", crun, v2, want{status: Pass, detail: []string{"runc (configured)"}}},
		{"another shim", "auto", "io.containerd.runsc.v1", nil, v2, want{status: Pass, detail: []string{"io.containerd.runsc.v1 runs the jobs", "does not apply"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, sys := t.TempDir(), t.TempDir()
			for name, tl := range tc.bins {
				if err := os.WriteFile(filepath.Join(bin, name), []byte(tl.script), tl.mode); err != nil {
					t.Fatal(err)
				}
			}
			for name, data := range tc.cgroups {
				p := filepath.Join(sys, "fs", "cgroup", name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg := config.Default()
			cfg.Containerd.OCIRuntime = tc.want
			if tc.runtime != "" {
				cfg.Containerd.Runtime = tc.runtime
			}
			tc.res.check(t, runCheck(t, cfg, "oci-runtime", WithPath(bin), WithSysDir(sys)))
		})
	}
}
