package sshconn

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/cronium/cronium-agent/runner/sshconn/sshtest"
)

func newSigner(t testing.TB, kind string) ssh.Signer {
	t.Helper()
	var priv any
	switch kind {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	default:
		t.Fatalf("unknown key kind %s", kind)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dial logs in to addr checking its key with hk.
func dial(addr string, hk *HostKeys, algorithms []string) error {
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "u", HostKeyCallback: hk.Callback(), HostKeyAlgorithms: algorithms, Timeout: 5 * time.Second})
	if err == nil {
		c.Close()
	}
	return err
}

func openHK(t testing.TB, path string, policy Policy, opts ...HostKeysOption) *HostKeys {
	t.Helper()
	// Never the machine's own /etc/ssh/ssh_known_hosts.
	opts = append([]HostKeysOption{WithSystemKnownHosts("")}, opts...)
	hk, err := OpenHostKeys(path, policy, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return hk
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeKnown(t testing.TB, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHostKeysPolicies(t *testing.T) {
	known, other := newSigner(t, "ed25519").PublicKey(), newSigner(t, "ed25519").PublicKey()
	for _, tc := range []struct {
		name    string
		policy  Policy
		file    []string // the agent's file before; nil: none
		key     ssh.PublicKey
		wantErr string // "" accepts; "unknown" or "changed" want those errors
		logged  bool   // one Info line about a recorded key
		written bool   // the file has the key afterwards
	}{
		{name: "tofu records an unknown host", policy: PolicyTOFU, key: known, logged: true, written: true},
		{name: "strict refuses an unknown host", policy: PolicyStrict, key: known, wantErr: "unknown"},
		{name: "tofu accepts a known host", policy: PolicyTOFU, file: []string{knownhosts.Line([]string{"srv.example:22"}, known)}, key: known, written: true},
		{name: "strict accepts a known host", policy: PolicyStrict, file: []string{knownhosts.Line([]string{"srv.example"}, known)}, key: known, written: true},
		{name: "tofu refuses a changed key", policy: PolicyTOFU, file: []string{knownhosts.Line([]string{"srv.example"}, known)}, key: other, wantErr: "changed"},
		{name: "strict refuses a changed key", policy: PolicyStrict, file: []string{knownhosts.Line([]string{"srv.example"}, known)}, key: other, wantErr: "changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "known_hosts")
			if tc.file != nil {
				writeKnown(t, path, tc.file...)
			}
			var logs bytes.Buffer
			hk := openHK(t, path, tc.policy, WithHostKeysLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			err := hk.Callback()("srv.example:22", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 22}, tc.key)
			var unknown *UnknownHostError
			var changed *ChangedHostKeyError
			switch tc.wantErr {
			case "":
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			case "unknown":
				if !errors.As(err, &unknown) || unknown.Fingerprint != ssh.FingerprintSHA256(tc.key) || unknown.KeyType != "ssh-ed25519" {
					t.Fatalf("err = %#v, want *UnknownHostError", err)
				}
				for _, want := range []string{"`cronium-agent ssh trust srv.example:22`", "ssh.hostKeyPolicy", ssh.FingerprintSHA256(tc.key)} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%q does not say %q", err, want)
					}
				}
			case "changed":
				if !errors.As(err, &changed) || changed.Got != ssh.FingerprintSHA256(other) || !slices.Equal(changed.Want, []string{ssh.FingerprintSHA256(known)}) {
					t.Fatalf("err = %#v, want *ChangedHostKeyError", err)
				}
				for _, want := range []string{ssh.FingerprintSHA256(known), ssh.FingerprintSHA256(other), "--replace"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%q does not say %q", err, want)
					}
				}
			}
			if n := strings.Count(logs.String(), "level=INFO"); tc.logged != (n == 1) || n > 1 {
				t.Errorf("%d info lines: %q", n, logs.String())
			}
			if tc.logged && !strings.Contains(logs.String(), ssh.FingerprintSHA256(tc.key)) {
				t.Errorf("the log does not name the fingerprint: %q", logs.String())
			}
			data, _ := os.ReadFile(path)
			if has := strings.Contains(string(data), knownhosts.Line([]string{"srv.example"}, tc.key)); has != tc.written {
				t.Errorf("file has the key: %t, want %t:\n%s", has, tc.written, data)
			}
			if tc.wantErr != "" {
				return
			}
			// Accepted again, without a second line or log line.
			before := string(data)
			if err := hk.Callback()("srv.example:22", nil, tc.key); err != nil {
				t.Fatal(err)
			}
			if after, _ := os.ReadFile(path); string(after) != before || strings.Count(logs.String(), "level=INFO") > 1 {
				t.Errorf("second check wrote %q, logged %q", after, logs.String())
			}
		})
	}
}

// Lines are OpenSSH's: port 22 bare, others [host]:port, names in lower
// case; ssh-keygen finds them.
func TestHostKeysNormalisation(t *testing.T) {
	key := newSigner(t, "ed25519").PublicKey()
	blob := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
	for _, tc := range []struct {
		trust, line string
		sameAs      []string // addresses the entry covers
		notFor      []string // addresses it does not
	}{
		{"srv.example:22", "srv.example " + blob, []string{"srv.example", "SRV.example:22"}, []string{"srv.example:2222"}},
		{"srv.example", "srv.example " + blob, []string{"srv.example:22"}, []string{"other.example:22"}},
		{"Srv.Example:2222", "[srv.example]:2222 " + blob, []string{"srv.example:2222"}, []string{"srv.example:22", "srv.example:22222"}},
		{"10.0.0.5:2200", "[10.0.0.5]:2200 " + blob, []string{"10.0.0.5:2200"}, []string{"10.0.0.5:22"}},
		{"[2001:db8::1]:2200", "[2001:db8::1]:2200 " + blob, []string{"[2001:db8::1]:2200"}, []string{"[2001:db8::1]:22"}},
		{"2001:db8::1", "2001:db8::1 " + blob, []string{"[2001:db8::1]:22"}, nil},
	} {
		t.Run(tc.trust, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "known_hosts")
			hk := openHK(t, path, PolicyStrict)
			if err := hk.Trust(tc.trust, key); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, path); got != tc.line+"\n" {
				t.Errorf("line %q, want %q", got, tc.line)
			}
			for _, a := range tc.sameAs {
				if err := hk.Callback()(a, nil, key); err != nil {
					t.Errorf("%s: %v", a, err)
				}
			}
			for _, a := range tc.notFor {
				var unknown *UnknownHostError
				if err := hk.Callback()(a, nil, key); !errors.As(err, &unknown) {
					t.Errorf("%s: %v, want unknown", a, err)
				}
			}
			if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
				host := knownhosts.Normalize(strings.ToLower(tc.trust))
				out, err := exec.Command(keygen, "-F", host, "-f", path).CombinedOutput()
				if err != nil || !strings.Contains(string(out), blob) {
					t.Errorf("ssh-keygen -F %s: %v %s", host, err, out)
				}
			}
		})
	}
	hk := openHK(t, filepath.Join(t.TempDir(), "known_hosts"), PolicyStrict)
	for _, bad := range []string{"", ":22", "srv.example:0", "srv.example:http", "a b:22"} {
		if err := hk.Trust(bad, key); err == nil {
			t.Errorf("Trust(%q) accepted", bad)
		}
	}
}

// The system file is consulted, listed as such, and never written.
func TestHostKeysSystemFile(t *testing.T) {
	dir := t.TempDir()
	sysKey, newKey := newSigner(t, "ed25519").PublicKey(), newSigner(t, "ecdsa").PublicKey()
	system := filepath.Join(dir, "ssh_known_hosts")
	writeKnown(t, system, "# the host's", knownhosts.Line([]string{"sys.example"}, sysKey))
	if err := os.Chmod(system, 0o444); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, system)
	path := filepath.Join(dir, "agent", "known_hosts")
	hk, err := OpenHostKeys(path, PolicyTOFU, WithSystemKnownHosts(system))
	if err != nil {
		t.Fatal(err)
	}
	cb := hk.Callback()
	if err := cb("sys.example:22", nil, sysKey); err != nil {
		t.Fatalf("key of the system file: %v", err)
	}
	var changed *ChangedHostKeyError
	if err := cb("sys.example:22", nil, newKey); !errors.As(err, &changed) {
		t.Fatalf("other key than the system file's: %v", err)
	}
	if err := cb("new.example:22", nil, newKey); err != nil {
		t.Fatal(err)
	}
	if err := hk.Replace("sys.example:22", newKey); err == nil || !strings.Contains(err.Error(), system) {
		t.Errorf("Replace of a key of the system file: %v", err)
	}
	if got := readFile(t, system); got != before {
		t.Errorf("system file written: %q", got)
	}
	if got := readFile(t, path); got != knownhosts.Line([]string{"new.example"}, newKey)+"\n" {
		t.Errorf("agent's file: %q", got)
	}
	known, err := hk.Known()
	if err != nil {
		t.Fatal(err)
	}
	want := []KnownHost{
		{Hosts: []string{"new.example"}, KeyType: "ecdsa-sha2-nistp256", Fingerprint: ssh.FingerprintSHA256(newKey)},
		{Hosts: []string{"sys.example"}, KeyType: "ssh-ed25519", Fingerprint: ssh.FingerprintSHA256(sysKey), System: true},
	}
	if fmt.Sprint(known) != fmt.Sprint(want) {
		t.Errorf("Known() = %+v, want %+v", known, want)
	}
	// A missing system file is no error.
	if _, err := OpenHostKeys(path, PolicyTOFU, WithSystemKnownHosts(filepath.Join(dir, "absent"))); err != nil {
		t.Error(err)
	}
}

func TestHostKeysFileModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "ssh", "known_hosts")
	hk := openHK(t, path, PolicyTOFU)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("opening created the file: %v", err)
	}
	if err := hk.Callback()("srv.example:22", nil, newSigner(t, "ed25519").PublicKey()); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %s, want %s", p, fi.Mode(), want)
		}
	}
	if err := hk.Replace("srv.example", newSigner(t, "ed25519").PublicKey()); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o600 {
		t.Errorf("after Replace: %v %v", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("left in the directory: %v", entries)
	}
}

// Goroutines of one process, and two HostKeys on one file (two processes'
// worth), append whole lines, and record one host once.
func TestHostKeysConcurrentTrust(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	hks := []*HostKeys{openHK(t, path, PolicyTOFU), openHK(t, path, PolicyTOFU)}
	shared := newSigner(t, "ed25519").PublicKey()
	const hosts = 40
	keys := make([]ssh.PublicKey, hosts)
	for i := range keys {
		keys[i] = newSigner(t, "ed25519").PublicKey()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*hosts)
	for i := range hosts {
		wg.Go(func() { errs <- hks[i%2].Trust(fmt.Sprintf("h%d.example:%d", i, 2000+i), keys[i]) })
		wg.Go(func() { errs <- hks[i%2].Callback()("shared.example:22", nil, shared) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	data := readFile(t, path)
	lines := strings.Split(strings.TrimSuffix(data, "\n"), "\n")
	if len(lines) != hosts+1 {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), hosts+1, data)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		_, names, key, _, rest, err := ssh.ParseKnownHosts([]byte(l))
		if err != nil || len(rest) != 0 || len(names) != 1 {
			t.Fatalf("bad line %q: %v", l, err)
		}
		seen[names[0]+" "+ssh.FingerprintSHA256(key)] = true
	}
	for i := range hosts {
		if !seen[fmt.Sprintf("[h%d.example]:%d %s", i, 2000+i, ssh.FingerprintSHA256(keys[i]))] {
			t.Errorf("host %d missing", i)
		}
	}
	for _, hk := range hks {
		if err := hk.Callback()("h7.example:2007", nil, keys[7]); err != nil {
			t.Error(err)
		}
	}
}

// A second HostKeys on the file (the agent, while cronium-agent ssh trust
// runs) sees what the first records or replaces, without reopening.
func TestHostKeysReread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	agent, cli := openHK(t, path, PolicyStrict), openHK(t, path, PolicyStrict)
	first, second := newSigner(t, "ed25519").PublicKey(), newSigner(t, "ed25519").PublicKey()
	var unknown *UnknownHostError
	var changed *ChangedHostKeyError
	if err := agent.Callback()("srv.example:2222", nil, first); !errors.As(err, &unknown) {
		t.Fatalf("before: %v", err)
	}
	if got := agent.Algorithms("srv.example:2222"); got != nil {
		t.Errorf("Algorithms of an unknown host: %v", got)
	}
	if err := cli.Trust("srv.example:2222", first); err != nil {
		t.Fatal(err)
	}
	if err := agent.Callback()("srv.example:2222", nil, first); err != nil {
		t.Fatalf("after trust: %v", err)
	}
	if err := cli.Trust("srv.example:2222", second); !errors.As(err, &changed) {
		t.Fatalf("Trust of another key: %v", err)
	}
	if err := cli.Replace("srv.example:2222", second); err != nil {
		t.Fatal(err)
	}
	if err := agent.Callback()("srv.example:2222", nil, first); !errors.As(err, &changed) {
		t.Errorf("old key after replace: %v", err)
	}
	if err := agent.Callback()("srv.example:2222", nil, second); err != nil {
		t.Errorf("new key after replace: %v", err)
	}
}

func TestHostKeysReplace(t *testing.T) {
	old, repl, kept := newSigner(t, "ed25519").PublicKey(), newSigner(t, "ecdsa").PublicKey(), newSigner(t, "ed25519").PublicKey()
	for _, tc := range []struct {
		name    string
		file    []string
		want    []string // the file afterwards
		wantErr string
	}{
		{
			name: "drops the host's lines, keeps the rest",
			file: []string{"# mine", knownhosts.Line([]string{"srv.example"}, old), knownhosts.Line([]string{"other.example"}, kept),
				knownhosts.Line([]string{"srv.example", "10.0.0.5"}, kept), knownhosts.Line([]string{"srv.example:2222"}, old)},
			want: []string{"# mine", knownhosts.Line([]string{"other.example"}, kept), knownhosts.Line([]string{"srv.example:2222"}, old),
				knownhosts.Line([]string{"srv.example"}, repl)},
		},
		{
			name: "hashed names",
			file: []string{knownhosts.HashHostname("srv.example") + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(old)))},
			want: []string{knownhosts.Line([]string{"srv.example"}, repl)},
		},
		{name: "unknown host", want: []string{knownhosts.Line([]string{"srv.example"}, repl)}},
		{
			name:    "a wildcard is left to the operator",
			file:    []string{"*.example " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(old)))},
			wantErr: `pattern "*.example"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "known_hosts")
			if tc.file != nil {
				writeKnown(t, path, tc.file...)
			}
			hk := openHK(t, path, PolicyStrict)
			err := hk.Replace("srv.example:22", repl)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, want := readFile(t, path), strings.Join(tc.want, "\n")+"\n"; got != want {
				t.Errorf("file:\n%s\nwant:\n%s", got, want)
			}
			var changed *ChangedHostKeyError
			if err := hk.Callback()("srv.example:22", nil, old); !errors.As(err, &changed) {
				t.Errorf("old key: %v", err)
			}
			if err := hk.Callback()("srv.example:22", nil, repl); err != nil {
				t.Errorf("new key: %v", err)
			}
		})
	}
}

// A server with several host keys offers the one known when asked for its
// type; left to choose, it may offer another, which fails as changed.
func TestHostKeysAlgorithms(t *testing.T) {
	ed, ec := newSigner(t, "ed25519"), newSigner(t, "ecdsa")
	addr := sshtest.HostKeyServer(t, ed, ec)
	hk := openHK(t, filepath.Join(t.TempDir(), "known_hosts"), PolicyStrict)
	if err := hk.Trust(addr, ed.PublicKey()); err != nil {
		t.Fatal(err)
	}
	algos := hk.Algorithms(addr)
	if !slices.Equal(algos, []string{ssh.KeyAlgoED25519}) {
		t.Fatalf("Algorithms = %v", algos)
	}
	if err := dial(addr, hk, algos); err != nil {
		t.Fatalf("dial with the known key's algorithm: %v", err)
	}
	// x/crypto prefers ECDSA to Ed25519.
	var changed *ChangedHostKeyError
	if err := dial(addr, hk, nil); !errors.As(err, &changed) {
		t.Errorf("dial letting the server choose: %v, want a changed key", err)
	}
	if got := algorithmsForKey(ssh.KeyAlgoRSA); !slices.Equal(got, []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}) {
		t.Errorf("RSA algorithms: %v", got)
	}
}

// A dial end to end: tofu records the server's key, and a server with a
// new key is refused.
func TestHostKeysDial(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	hk := openHK(t, path, PolicyTOFU)
	key := newSigner(t, "ed25519")
	addr := sshtest.HostKeyServer(t, key)
	if err := dial(addr, hk, hk.Algorithms(addr)); err != nil {
		t.Fatal(err)
	}
	if err := dial(addr, hk, hk.Algorithms(addr)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(readFile(t, path), "\n"); n != 1 {
		t.Errorf("%d lines", n)
	}
	// Another server on the same address.
	host, port, _ := net.SplitHostPort(addr)
	if err := os.WriteFile(path, []byte(knownhosts.Line([]string{net.JoinHostPort(host, port)}, newSigner(t, "ed25519").PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var changed *ChangedHostKeyError
	if err := dial(addr, hk, hk.Algorithms(addr)); !errors.As(err, &changed) || !strings.Contains(err.Error(), ssh.FingerprintSHA256(key.PublicKey())) {
		t.Errorf("dial with a changed key: %v", err)
	}
}

func TestHostKeysCertificates(t *testing.T) {
	ca, hostKey := newSigner(t, "ed25519"), newSigner(t, "ed25519")
	cert := &ssh.Certificate{Key: hostKey.PublicKey(), CertType: ssh.HostCert, ValidPrincipals: []string{"srv.example"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	caBlob := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(ca.PublicKey())))

	path := filepath.Join(t.TempDir(), "known_hosts")
	writeKnown(t, path, "@cert-authority *.example "+caBlob)
	hk := openHK(t, path, PolicyStrict)
	if err := hk.Callback()("srv.example:22", nil, cert); err != nil {
		t.Errorf("certificate of the host's authority: %v", err)
	}
	if err := hk.Callback()("other.example:22", nil, cert); err == nil || !strings.Contains(err.Error(), "principal") {
		t.Errorf("certificate for another name: %v", err)
	}
	var unknown *UnknownHostError
	if err := hk.Callback()("srv.other:22", nil, cert); !errors.As(err, &unknown) || unknown.Fingerprint != ssh.FingerprintSHA256(hostKey.PublicKey()) {
		t.Errorf("certificate of a host with no authority: %v, want its key unknown", err)
	}
	if got := hk.Algorithms("srv.example:22"); got != nil {
		t.Errorf("Algorithms of a host known by its authority only: %v", got)
	}

	// Under tofu, a certificate no authority vouches for is its plain key.
	tofuPath := filepath.Join(t.TempDir(), "known_hosts")
	tofu := openHK(t, tofuPath, PolicyTOFU)
	if err := tofu.Callback()("srv.example:22", nil, cert); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, tofuPath); got != knownhosts.Line([]string{"srv.example"}, hostKey.PublicKey())+"\n" {
		t.Errorf("recorded %q", got)
	}
}

func TestHostKeysRevoked(t *testing.T) {
	bad := newSigner(t, "ed25519").PublicKey()
	path := filepath.Join(t.TempDir(), "known_hosts")
	writeKnown(t, path, "@revoked * "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(bad))))
	hk := openHK(t, path, PolicyTOFU)
	var revoked *RevokedHostKeyError
	if err := hk.Callback()("srv.example:22", nil, bad); !errors.As(err, &revoked) {
		t.Errorf("revoked key: %v", err)
	}
	if err := hk.Trust("srv.example:22", bad); !errors.As(err, &revoked) {
		t.Errorf("Trust of a revoked key: %v", err)
	}
	known, err := hk.Known()
	if err != nil || len(known) != 1 || known[0].Marker != "revoked" {
		t.Errorf("Known() = %+v, %v", known, err)
	}
}

func TestOpenHostKeysErrors(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt")
	writeKnown(t, corrupt, "srv.example ssh-ed25519 bm90IGEga2V5")
	for _, tc := range []struct {
		path   string
		policy Policy
		want   string
	}{
		{filepath.Join(dir, "k"), "trusting", `policy "trusting": want tofu or strict`},
		{"", PolicyTOFU, "no file"},
		{corrupt, PolicyTOFU, "no valid entries"},
	} {
		if _, err := OpenHostKeys(tc.path, tc.policy, WithSystemKnownHosts("")); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenHostKeys(%q, %q) = %v, want %q", tc.path, tc.policy, err, tc.want)
		}
	}
}

func TestFetchHostKey(t *testing.T) {
	ed, ec := newSigner(t, "ed25519"), newSigner(t, "ecdsa")
	addr := sshtest.HostKeyServer(t, ed, ec)
	ctx := context.Background()
	for _, tc := range []struct {
		algorithms []string
		want       ssh.PublicKey
	}{
		{nil, ec.PublicKey()}, // x/crypto's preference
		{[]string{ssh.KeyAlgoED25519}, ed.PublicKey()},
	} {
		got, err := FetchHostKey(ctx, addr, 5*time.Second, tc.algorithms...)
		if err != nil {
			t.Fatalf("%v: %v", tc.algorithms, err)
		}
		if !keyEqual(got, tc.want) {
			t.Errorf("%v: got %s, want %s", tc.algorithms, ssh.FingerprintSHA256(got), ssh.FingerprintSHA256(tc.want))
		}
	}
	if _, err := FetchHostKey(ctx, addr, 5*time.Second, ssh.KeyAlgoRSASHA512); err == nil || !strings.Contains(err.Error(), "no common algorithm") {
		t.Errorf("no key of the type asked for: %v", err)
	}

	// A server that never speaks: the timeout ends the wait.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	_, err = FetchHostKey(ctx, l.Addr().String(), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "fetch the host key of "+l.Addr().String()) || time.Since(start) > 5*time.Second {
		t.Errorf("silent server: %v after %s", err, time.Since(start))
	}
	// Nothing listening.
	addr = l.Addr().String()
	l.Close()
	if _, err := FetchHostKey(ctx, addr, time.Second); err == nil {
		t.Error("closed port: no error")
	}
}
