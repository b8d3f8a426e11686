package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/runner/sshconn"
	"github.com/cronium/cronium-agent/runner/sshconn/sshtest"
)

func newHostKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func authorizedLine(hosts string, key ssh.PublicKey) string {
	return hosts + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// The commands, run as the built binary: its stdin is not a terminal.
func TestSSHCommands(t *testing.T) {
	dir := t.TempDir()
	system := filepath.Join(dir, "ssh_known_hosts")
	sysKey := newHostKey(t).PublicKey()
	if err := os.WriteFile(system, []byte(authorizedLine("sys.example", sysKey)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CRONIUM_SSH_SYSTEM_KNOWN_HOSTS", system)
	state := filepath.Join(dir, "state")
	knownHosts := filepath.Join(state, "known_hosts")

	key, newKey := newHostKey(t), newHostKey(t)
	addr := sshtest.HostKeyServer(t, key)
	_, port, _ := net.SplitHostPort(addr)
	entry := "[127.0.0.1]:" + port
	fp, newFP := ssh.FingerprintSHA256(key.PublicKey()), ssh.FingerprintSHA256(newKey.PublicKey())
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}()

	for _, tc := range []struct {
		name   string
		args   []string
		setup  func() // before the command
		code   int
		stdout []string // parts of stdout
		stderr []string // parts of stderr
		file   string   // the agent's file afterwards ("-": absent)
	}{
		{name: "unknown host, not confirmed", args: []string{"trust", addr},
			code: 2, stdout: []string{"host:        " + addr + "\n", "key type:    ssh-ed25519\n", "fingerprint: " + fp + "\n"},
			stderr: []string{"not recorded: compare the fingerprint with the one `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints on the server, then run again with --yes"},
			file:   "-"},
		{name: "unknown host, --yes", args: []string{"trust", addr, "--yes"},
			stdout: []string{"fingerprint: " + fp + "\n", "recorded in " + knownHosts + "\n"},
			file:   authorizedLine(entry, key.PublicKey()) + "\n"},
		{name: "known already", args: []string{"trust", "--yes", addr},
			stdout: []string{addr + " is known with this key already\n"},
			file:   authorizedLine(entry, key.PublicKey()) + "\n"},
		{name: "list", args: []string{"known"},
			stdout: []string{"HOST", "FINGERPRINT", "\n" + entry + "  ssh-ed25519  " + fp + "  agent\n", "\nsys.example ", "  ssh-ed25519  " + ssh.FingerprintSHA256(sysKey) + "  system\n"}},
		{name: "changed key refused", args: []string{"trust", addr, "--yes"},
			setup: func() { writeKnownHosts(t, knownHosts, authorizedLine(entry, newKey.PublicKey())) },
			code:  2, stdout: []string{"fingerprint: " + fp + "\n", "known key:   " + newFP + "\n"},
			stderr: []string{"is known with another key (" + newFP + ") than the one it offers now (" + fp + ")", "pass --replace"},
			file:   authorizedLine(entry, newKey.PublicKey()) + "\n"},
		{name: "changed key replaced", args: []string{"trust", addr, "--yes", "--replace"},
			setup: func() {
				writeKnownHosts(t, knownHosts, "# kept", authorizedLine(entry, newKey.PublicKey()), authorizedLine("other.example", newKey.PublicKey()))
			},
			stdout: []string{"recorded in " + knownHosts},
			file:   "# kept\n" + authorizedLine("other.example", newKey.PublicKey()) + "\n" + authorizedLine(entry, key.PublicKey()) + "\n"},
		{name: "unreachable", args: []string{"trust", closed, "--yes"}, code: 125, stderr: []string{"cronium-agent ssh: fetch the host key of " + closed + ": dial tcp"}},
		{name: "no host", args: []string{"trust"}, code: 2, stderr: []string{"missing HOST[:PORT] (see cronium-agent ssh trust -h)"}},
		{name: "bad port", args: []string{"trust", "srv.example:http"}, code: 2, stderr: []string{`"srv.example:http": want HOST or HOST:PORT`}},
		{name: "bad flag", args: []string{"known", "--bogus"}, code: 2, stderr: []string{"flag provided but not defined: -bogus"}},
		{name: "no command", args: nil, code: 2, stderr: []string{"usage: cronium-agent ssh <command>", "trust HOST[:PORT]"}},
		{name: "unknown command", args: []string{"forget"}, code: 2, stderr: []string{`unknown ssh command "forget" (want trust or known)`}},
		{name: "help", args: []string{"--help"}, stderr: []string{"NAME\n    cronium-agent ssh - ", "COMMANDS\n    trust ", "    known "}},
		{name: "trust -h", args: []string{"trust", "-h"}, stderr: []string{"NAME\n    cronium-agent ssh trust - ", "--replace", "--yes", "--config FILE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			r := agent(t, state, append([]string{"ssh"}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d; stdout %q, stderr %q", r.code, tc.code, r.stdout, r.stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout %q does not contain %q", r.stdout, want)
				}
			}
			for _, want := range tc.stderr {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr %q does not contain %q", r.stderr, want)
				}
			}
			if tc.code != 0 && len(tc.args) > 0 && tc.args[0] == "trust" && tc.name != "trust -h" && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("error is not one line: %q", r.stderr)
			}
			data, err := os.ReadFile(knownHosts)
			switch {
			case tc.file == "-" && err == nil:
				t.Errorf("known_hosts written: %q", data)
			case tc.file != "-" && tc.file != "" && string(data) != tc.file:
				t.Errorf("known_hosts %q, want %q", data, tc.file)
			}
		})
	}
	if fi, err := os.Stat(knownHosts); err != nil || fi.Mode() != 0o600 {
		t.Errorf("known_hosts mode: %v %v", fi, err)
	}
	if got := readSystem(t, system); got != authorizedLine("sys.example", sysKey)+"\n" {
		t.Errorf("system file written: %q", got)
	}

	// --json, and ssh.knownHosts from --config.
	other := filepath.Join(dir, "other_known_hosts")
	writeKnownHosts(t, other, "@revoked * "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(newKey.PublicKey()))))
	r := agent(t, state, "ssh", "known", "--json", "--config", writeFile(t, "ssh:\n  knownHosts: "+other+"\n"))
	var list []sshconn.KnownHost
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("known --json: %d %v %q %q", r.code, err, r.stdout, r.stderr)
	}
	if len(list) != 2 || list[0].Marker != "revoked" || list[0].Fingerprint != newFP || list[0].System || !list[1].System || list[1].Hosts[0] != "sys.example" {
		t.Errorf("known --json: %+v", list)
	}
	t.Setenv("CRONIUM_SSH_SYSTEM_KNOWN_HOSTS", "")
	r = agent(t, state, "ssh", "known", "--config", writeFile(t, "ssh:\n  knownHosts: "+filepath.Join(dir, "none")+"\n"))
	if r.code != 0 || r.stdout != "no known host keys in "+filepath.Join(dir, "none")+"\n" {
		t.Errorf("known, nothing known: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func writeKnownHosts(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readSystem(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// On a terminal, `ssh trust` asks, and records only on yes.
func TestSSHTrustPrompt(t *testing.T) {
	key := newHostKey(t)
	addr := sshtest.HostKeyServer(t, key)
	for _, tc := range []struct {
		answer string
		code   int
	}{
		{"n\n", 2}, {"\n", 2}, {"", 2}, {"y\n", 0}, {"YES\n", 0},
	} {
		t.Run(strings.TrimSpace(tc.answer), func(t *testing.T) {
			state := t.TempDir()
			var stdout, stderr bytes.Buffer
			env := &cliEnv{stdout: &stdout, stderr: &stderr, log: slog.New(slog.DiscardHandler),
				environ: []string{"CRONIUM_STATE_DIR=" + state, "CRONIUM_SSH_SYSTEM_KNOWN_HOSTS="}}
			err := sshCommand(context.Background(), env, sshInput{r: strings.NewReader(tc.answer), terminal: true}, []string{"trust", addr, "--config", filepath.Join(state, "absent.yaml")})
			if code := sshExitCode(err); code != tc.code {
				t.Fatalf("exit code %d, want %d: %v; stdout %q", code, tc.code, err, stdout.String())
			}
			if !strings.Contains(stderr.String(), "Record this key in "+filepath.Join(state, "known_hosts")+"? [y/N] ") {
				t.Errorf("no question: %q", stderr.String())
			}
			data, _ := os.ReadFile(filepath.Join(state, "known_hosts"))
			if recorded := strings.Contains(string(data), knownhosts.Line([]string{addr}, key.PublicKey())); recorded != (tc.code == 0) {
				t.Errorf("recorded %t: %q", recorded, data)
			}
			if tc.code != 0 && (err == nil || err.Error() != "not recorded") {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func sshExitCode(err error) int { return command.Exit(&bytes.Buffer{}, "cronium-agent ssh", err) }

// The top-level usage lists the command.
func TestSSHHelp(t *testing.T) {
	r := agent(t, t.TempDir(), "--help")
	if r.code != 0 || !strings.Contains(r.stderr, "  ssh          trust and list the host keys") {
		t.Errorf("--help: %d %q", r.code, r.stderr)
	}
}
