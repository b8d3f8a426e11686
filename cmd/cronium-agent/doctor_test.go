package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/backend/devserver/devtest"
	"github.com/cronium/cronium-agent/internal/testenv"
)

const doctorToken = "doctor-token"

// doctorOutput is `doctor --json`.
type doctorOutput struct {
	OK     bool `json:"ok"`
	Checks []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
		Detail string `json:"detail"`
		Fix    string `json:"fix"`
	} `json:"checks"`
}

// runDoctorCLI runs `cronium-agent doctor args...` with a configuration of the
// given CRONIUM_* variables alone: no file, and none of the caller's own.
func runDoctorCLI(t *testing.T, vars []string, args ...string) cliResult {
	t.Helper()
	cfgFile := filepath.Join(t.TempDir(), "none.yaml") // missing: all defaults
	cmd := exec.Command(agentBin, append([]string{"doctor", "--config", cfgFile}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRONIUM_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, vars...)
	return runCLI(t, cmd)
}

// doctorJSON runs `doctor --json` and decodes it; the exit code must be 1
// exactly when a check failed.
func doctorJSON(t *testing.T, vars ...string) doctorOutput {
	t.Helper()
	r := runDoctorCLI(t, vars, "--json")
	var out doctorOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("--json: %v\nstdout %s\nstderr %s", err, r.stdout, r.stderr)
	}
	wantCode := 0
	if !out.OK {
		wantCode = 1
	}
	if r.code != wantCode || r.stderr != "" {
		t.Errorf("exit code %d with ok=%v (want %d), stderr %q", r.code, out.OK, wantCode, r.stderr)
	}
	failed := false
	for _, c := range out.Checks {
		failed = failed || c.Status == "FAIL"
	}
	if failed == out.OK {
		t.Errorf("ok=%v, but a check failed: %v", out.OK, failed)
	}
	return out
}

// expect checks one check's status and the words its detail and fix hold.
func (o doctorOutput) expect(t *testing.T, name, status string, detail, fix []string) {
	t.Helper()
	for _, c := range o.Checks {
		if c.Name != name {
			continue
		}
		if c.Status != status {
			t.Errorf("%s: %s %q (fix %q), want %s", name, c.Status, c.Detail, c.Fix, status)
		}
		for _, s := range detail {
			if !strings.Contains(c.Detail, s) {
				t.Errorf("%s: detail %q does not say %q", name, c.Detail, s)
			}
		}
		for _, s := range fix {
			if !strings.Contains(c.Fix, s) {
				t.Errorf("%s: fix %q does not say %q", name, c.Fix, s)
			}
		}
		return
	}
	t.Errorf("no check %s in %+v", name, o.Checks)
}

func quietBackend(t *testing.T) *devtest.Backend {
	return devtest.Start(t, "", doctorToken, devserver.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
}

func TestDoctorHelp(t *testing.T) {
	for _, flag := range []string{"--help", "-h"} {
		r := runDoctorCLI(t, nil, flag)
		if r.code != 0 || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q", flag, r.code, r.stdout)
		}
		for _, s := range []string{"NAME\n    cronium-agent doctor - ", "SYNOPSIS\n    cronium-agent doctor [--json] [--config FILE]", "DESCRIPTION", "CHECKS", "OPTIONS", "--json", "--config FILE",
			"EXIT STATUS\n    0 ", "1    at least one check failed", "EXAMPLES",
			"userns", "cgroups", "overlayfs", "containerd", "runc", "cni", "iptables", "ip-forward", "subids", "state-dir", "disk", "images", "backend", "clock"} {
			if !strings.Contains(r.stderr, s) {
				t.Errorf("%s: help does not say %q:\n%s", flag, s, r.stderr)
			}
		}
	}
	if r := runDoctorCLI(t, nil, "now"); r.code != 2 || !strings.Contains(r.stderr, `unexpected argument "now"`) {
		t.Errorf("doctor now: exit %d, %q", r.code, r.stderr)
	}
	cmd := exec.Command(agentBin, "--help")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "  doctor       check this host for what jobs need") {
		t.Errorf("cronium-agent --help does not list doctor:\n%s", out)
	}
}

// A host that lacks one thing at a time: doctor fails that check with its
// fix, and exits 1.
func TestDoctorBrokenHost(t *testing.T) {
	be := quietBackend(t)
	closed, err := os.MkdirTemp("", "cronium-doctor-0700-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(closed) })
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		vars     []string
		check    string
		detail   []string
		fix      []string
		alsoWarn string // a check that cannot be done without the broken one
	}{
		{"containerd unreachable", []string{"CRONIUM_CONTAINERD_ADDRESS=/nonexistent/containerd.sock"}, "containerd",
			[]string{"not reachable at /nonexistent/containerd.sock (no such socket)"}, []string{"start containerd", "CRONIUM_CONTAINERD_ADDRESS"}, "images"},
		{"CNI plugin directory empty", []string{"CRONIUM_NETWORK_PLUGIN_DIRS=" + t.TempDir()}, "cni",
			[]string{"CNI plugins bridge, host-local not found"}, []string{"containernetworking-plugins", "network.pluginDirs"}, ""},
		{"state directory 0700", []string{"CRONIUM_STATE_DIR=" + closed}, "state-dir",
			[]string{closed, "mode 0700", "jobs cannot reach their script files"}, []string{"chmod o+x " + closed}, ""},
		{"wrong token", []string{"CRONIUM_BACKEND_URL=" + be.URL, "CRONIUM_BACKEND_TOKEN=not-the-token"}, "backend",
			[]string{"token refused", "401"}, []string{"backend.token"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := append([]string{"CRONIUM_STATE_DIR=" + stateDir(t), "CRONIUM_CONTAINERD_ADDRESS=" + testenv.Address()}, tc.vars...)
			out := doctorJSON(t, vars...)
			if out.OK {
				t.Errorf("ok with %s", tc.name)
			}
			out.expect(t, tc.check, "FAIL", tc.detail, tc.fix)
			if tc.alsoWarn != "" {
				out.expect(t, tc.alsoWarn, "WARN", []string{"not checked"}, nil)
			}
			if tc.check == "backend" {
				// The backend's clock is read from its 401 too.
				out.expect(t, "clock", "PASS", nil, nil)
			}
		})
	}
	t.Run("table", func(t *testing.T) {
		r := runDoctorCLI(t, []string{"CRONIUM_CONTAINERD_ADDRESS=/nonexistent/containerd.sock", "CRONIUM_STATE_DIR=" + stateDir(t)})
		if r.code != 1 {
			t.Errorf("exit %d, want 1; stderr %q", r.code, r.stderr)
		}
		lines := strings.Split(r.stdout, "\n")
		if !strings.HasPrefix(lines[0], "STATUS  CHECK") || !strings.HasSuffix(lines[0], "DETAIL") {
			t.Errorf("header %q", lines[0])
		}
		detailAt := strings.Index(lines[0], "DETAIL")
		for i, l := range lines {
			if strings.HasPrefix(l, "FAIL    containerd ") {
				if strings.Index(l, "containerd not reachable") != detailAt || !strings.HasPrefix(lines[i+1], strings.Repeat(" ", detailAt)+"fix: start containerd") {
					t.Errorf("row and fix not aligned under DETAIL:\n%s\n%s", l, lines[i+1])
				}
				return
			}
		}
		t.Errorf("no FAIL row for containerd:\n%s", r.stdout)
	})
}

// A host the tests' jobs run on: what the agent needs to run a job passes.
func TestDoctorGoodHost(t *testing.T) {
	testenv.Containerd(t)
	be := quietBackend(t)
	out := doctorJSON(t,
		"CRONIUM_CONTAINERD_ADDRESS="+testenv.Address(),
		"CRONIUM_STATE_DIR="+stateDir(t),
		"CRONIUM_BACKEND_URL="+be.URL,
		"CRONIUM_BACKEND_TOKEN="+doctorToken,
	)
	out.expect(t, "containerd", "PASS", []string{"containerd ", testenv.Address()}, nil)
	out.expect(t, "runc", "PASS", []string{"runc version"}, nil)
	out.expect(t, "cni", "PASS", []string{"bridge", "host-local"}, nil)
	out.expect(t, "images", "PASS", []string{"bash, python, node"}, nil)
	out.expect(t, "state-dir", "PASS", nil, nil)
	out.expect(t, "backend", "PASS", []string{be.URL, "accepts the token"}, nil)
	out.expect(t, "clock", "PASS", nil, nil)
	if t.Failed() || testing.Verbose() {
		b, _ := json.MarshalIndent(out, "", "  ")
		t.Logf("doctor --json:\n%s", b)
	}
}
