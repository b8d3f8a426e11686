package testenv

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"
)

// The account the test sshd lets log in. sshd needs a real passwd entry
// (it switches to the user's uid, home and shell), so StartSSHD creates it
// once per host and leaves it in place: removing it when a test ends would
// pull it from under other test processes using it at the same time.
const (
	// SSHDUser is the login user of every test sshd.
	SSHDUser = "cronium-sshtest"
	// SSHDHome is SSHDUser's home directory (mode 0700, owned by it).
	SSHDHome = "/var/lib/cronium-sshtest"
	// SSHDPassword is SSHDUser's password. It is a test-only constant, not
	// a secret: the account is only reachable through the test sshds, which
	// listen on 127.0.0.1 and admit no one else (AllowUsers).
	SSHDPassword = "cronium-sshtest-password-not-a-secret"
)

// sshdPath is Debian's OpenSSH server (package openssh-server). It must be
// run by absolute path: it re-executes itself for every connection.
const sshdPath = "/usr/sbin/sshd"

// SSHD is a real OpenSSH server of one test's own, listening on loopback,
// for the tests of the SSH executor. Its fields are what a client needs;
// Kill, Start and RotateHostKey simulate what happens to a real server.
// Call its methods from the test's goroutine (they fail the test with
// tb.Fatal).
type SSHD struct {
	// Addr is "127.0.0.1:Port", where the server listens (and nowhere else).
	Addr string
	// Host is always 127.0.0.1; Port is the port it keeps across restarts.
	Host string
	Port int
	// User and Password log in (SSHDUser and SSHDPassword); password login
	// is refused when started WithoutPassword.
	User     string
	Password string
	// HostKey is the host key the server presents now (an ed25519 key of
	// this server's own); RotateHostKey replaces it.
	HostKey ssh.PublicKey
	// ClientKeys holds private keys in OpenSSH PEM form ("OPENSSH PRIVATE
	// KEY", unencrypted) by type, "ed25519", "rsa" and "ecdsa" (see
	// SSHDKeyTypes); each is authorized for User. The keys are made once per
	// test process and shared by its servers; the map is this server's copy.
	ClientKeys map[string][]byte
	// Dir is the server's private directory: sshd_config, host key, pid
	// file, authorized_keys/ and sshd.log. It is removed when the test ends.
	Dir string

	tb   testing.TB
	opts sshdOptions

	config, hostKeyFile, logFile string

	daemonProc // the listener
}

// SSHDOption changes the configuration of a server of StartSSHD.
type SSHDOption func(*sshdOptions)

type sshdOptions struct {
	noForwarding bool
	noPassword   bool
}

// WithoutForwarding sets AllowTcpForwarding no: the server refuses remote
// (tcpip-forward) and local (direct-tcpip) port forwarding, as many
// hardened servers do.
func WithoutForwarding() SSHDOption { return func(o *sshdOptions) { o.noForwarding = true } }

// WithoutPassword sets PasswordAuthentication no: only the ClientKeys log in.
func WithoutPassword() SSHDOption { return func(o *sshdOptions) { o.noPassword = true } }

// SSHDKeyTypes lists the types of SSHD.ClientKeys, for tests that try each.
func SSHDKeyTypes() []string { return []string{"ed25519", "rsa", "ecdsa"} }

// SSHDRequired reports whether a missing sshd prerequisite fails the test:
// in CI (CI=true) and when CRONIUM_REQUIRE_CONTAINERD=1, as for containerd.
func SSHDRequired() bool { return Required() || os.Getenv("CI") == "true" }

// sshdUnavailable fails (SSHDRequired) or skips the test with the reason.
func sshdUnavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if SSHDRequired() {
		tb.Fatalf("a real sshd is required here (CI=true or CRONIUM_REQUIRE_CONTAINERD=1) but: "+format, args...)
	}
	tb.Skipf("needs a real sshd (root, openssh-server: make deps): "+format, args...)
}

// StartSSHD starts an OpenSSH sshd of the test's own on a free port of
// 127.0.0.1 and returns once it answers SSH handshakes with its host key.
// Its configuration allows the SSHDUser to log in with any of ClientKeys or
// (unless WithoutPassword) Password, remote forwards on loopback (unless
// WithoutForwarding) and 32 sessions a connection. When the test ends, the
// server, its connections and every process of their sessions are killed
// (processes that moved to a session of their own with setsid are the
// test's business) and Dir is removed; if the test failed, the end of the
// server's log is logged. Without root or sshd the test is skipped, or
// fails where SSHDRequired; in -short mode it is skipped.
func StartSSHD(tb testing.TB, opts ...SSHDOption) *SSHD {
	tb.Helper()
	// -short (make unit) skips even with CI=true, which CI runners set for
	// their unit test step too; make test sets CRONIUM_REQUIRE_CONTAINERD.
	if testing.Short() && !Required() {
		tb.Skip("integration test: not in -short mode")
	}
	if os.Geteuid() != 0 {
		sshdUnavailable(tb, "tests must run as root")
	}
	if _, err := os.Stat(sshdPath); err != nil {
		sshdUnavailable(tb, "no OpenSSH server: %v", err)
	}
	if err := ensureSSHDAccount(); err != nil {
		sshdUnavailable(tb, "test account %s: %v", SSHDUser, err)
	}
	keys, authorized, err := sshdClientKeys()
	if err != nil {
		tb.Fatalf("client keys: %v", err)
	}
	s := &SSHD{
		Host:       "127.0.0.1",
		User:       SSHDUser,
		Password:   SSHDPassword,
		ClientKeys: make(map[string][]byte, len(keys)),
		tb:         tb,
	}
	for _, o := range opts {
		o(&s.opts)
	}
	for t, k := range keys {
		s.ClientKeys[t] = bytes.Clone(k)
	}
	// Below /tmp rather than t.TempDir, whose parent is mode 0700: sshd
	// reads authorized_keys as the login user, who must reach it.
	if s.Dir, err = os.MkdirTemp("", "cronium-sshd-"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.cleanup)
	s.config = filepath.Join(s.Dir, "sshd_config")
	s.hostKeyFile = filepath.Join(s.Dir, "ssh_host_ed25519_key")
	s.logFile = filepath.Join(s.Dir, "sshd.log")
	if err := os.Chmod(s.Dir, 0o711); err != nil {
		tb.Fatal(err)
	}
	ak := filepath.Join(s.Dir, "authorized_keys")
	if err := os.Mkdir(ak, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ak, SSHDUser), authorized, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := s.newHostKey(); err != nil {
		tb.Fatal(err)
	}
	// Privilege separation: sshd chroots its pre-authentication children
	// into /run/sshd, which Debian's unit creates and /run loses at boot.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		tb.Fatal(err)
	}

	// A free port, as far as one can tell: another process may bind it
	// before sshd does, which then exits, and we try another.
	for attempt := 1; ; attempt++ {
		if s.Port, err = freeLoopbackPort(); err != nil {
			tb.Fatal(err)
		}
		s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
		if err := s.writeConfig(); err != nil {
			tb.Fatal(err)
		}
		if out, err := exec.Command(sshdPath, "-t", "-f", s.config).CombinedOutput(); err != nil {
			tb.Fatalf("sshd -t -f %s: %v\n%s", s.config, err, out)
		}
		err = s.start()
		if err == nil {
			return s
		}
		if !errors.Is(err, errSSHDBind) || attempt == 5 {
			tb.Fatalf("start sshd: %v", err)
		}
	}
}

// Start starts the server again after Kill, on the same port and with the
// same host key (the current one, after RotateHostKey), and returns once it
// answers. It does nothing while the server runs.
func (s *SSHD) Start() {
	s.tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.start()
		if err == nil {
			return
		}
		// The port is ours no longer if another process took it while the
		// server was down; give a closing socket a moment, then give up.
		if !errors.Is(err, errSSHDBind) || time.Now().After(deadline) {
			s.tb.Fatalf("restart sshd on %s: %v", s.Addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill does what a crash of the server does to its clients: it SIGKILLs
// the listener, every per-connection sshd process and every process in a
// session sshd started for a channel (a command or shell), so every open
// connection drops. A process that a command moved to a session of its own
// (setsid) keeps running, as detached jobs survive on a real server. It
// returns once all of them are gone; Start brings the server back.
//
// A process group kill is not enough: sshd puts each connection, and each
// session of a connection, in a session of its own (setsid), so Kill walks
// the listener's process tree in /proc, stopping what it finds until the
// tree stands still, and then kills it.
func (s *SSHD) Kill() {
	cmd, exited := s.take()
	if cmd == nil {
		return
	}
	listener := cmd.Process.Pid
	self, _ := unix.Getsid(0)
	stopped := map[int]bool{}
	deadline := time.Now().Add(3 * time.Second)
	for {
		procs := readProcStats()
		settled := true
		for pid := range sshdTree(procs, listener, self) {
			if !stopped[pid] {
				_ = syscall.Kill(pid, syscall.SIGSTOP)
				stopped[pid] = true
				settled = false
			} else if p, ok := procs[pid]; ok && !p.stoppedOrDead() {
				settled = false // SIGSTOP not delivered yet: it may still fork
			}
		}
		if settled || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for pid := range stopped {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	<-exited
	// The others are not our children: wait until they are gone or zombies
	// (a zombie has closed its sockets).
	deadline = time.Now().Add(10 * time.Second)
	for pid := range stopped {
		for time.Now().Before(deadline) {
			if p, ok := readProcStat(pid); !ok || p.state == 'Z' {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// RotateHostKey gives the server a new ed25519 host key, as an operator who
// regenerates the host keys does, and restarts it the way sshd restarts on
// SIGHUP: connections that are open stay, new ones see the new key, so a
// client that pinned the old one must report a changed host key. HostKey is
// the new key afterwards. On a killed server the key takes effect at the
// next Start.
func (s *SSHD) RotateHostKey() {
	s.tb.Helper()
	if err := s.newHostKey(); err != nil {
		s.tb.Fatal(err)
	}
	cmd, exited := s.current()
	if cmd == nil {
		return
	}
	from := s.logSize()
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		s.tb.Fatalf("SIGHUP sshd: %v", err)
	}
	// A connection accepted before the restart may already be served with
	// the new key (each connection's sshd reads the key file), so wait for
	// the restarted listener first.
	if err := s.waitLog(exited, from, "Server listening on "); err != nil {
		s.tb.Fatalf("sshd after SIGHUP: %v", err)
	}
	if err := s.waitServing(exited, from); err != nil {
		s.tb.Fatalf("sshd after SIGHUP: %v", err)
	}
}

// ClientConfig is a client configuration for User that logs in with the
// ClientKeys of keyType, or with Password when keyType is "password", and
// accepts only the host key the server has now (ssh.FixedHostKey).
func (s *SSHD) ClientConfig(tb testing.TB, keyType string) *ssh.ClientConfig {
	tb.Helper()
	var auth ssh.AuthMethod
	if keyType == "password" {
		auth = ssh.Password(s.Password)
	} else {
		key, ok := s.ClientKeys[keyType]
		if !ok {
			tb.Fatalf("no client key of type %q (have %v and \"password\")", keyType, SSHDKeyTypes())
		}
		signer, err := ssh.ParsePrivateKey(key)
		if err != nil {
			tb.Fatalf("client key %s: %v", keyType, err)
		}
		auth = ssh.PublicKeys(signer)
	}
	return &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{auth},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey),
		Timeout:         10 * time.Second,
	}
}

// Dial connects to the server with ClientConfig(tb, keyType); the
// connection is closed when the test ends.
func (s *SSHD) Dial(tb testing.TB, keyType string) *ssh.Client {
	tb.Helper()
	c, err := ssh.Dial("tcp", s.Addr, s.ClientConfig(tb, keyType))
	if err != nil {
		tb.Fatalf("ssh %s@%s with %s: %v", s.User, s.Addr, keyType, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Log returns sshd's own log (LogLevel VERBOSE) from its first start on:
// logins, refusals, forwards and disconnects, for messages of failing tests.
func (s *SSHD) Log() string {
	data, err := os.ReadFile(s.logFile)
	if err != nil {
		return fmt.Sprintf("(no sshd log: %v)", err)
	}
	return string(data)
}

func (s *SSHD) cleanup() {
	s.Kill()
	if s.tb.Failed() {
		s.tb.Logf("sshd %s log ends:\n%s", s.Addr, tail(s.logFile, 40))
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		s.tb.Errorf("remove %s: %v", s.Dir, err)
	}
}

// errSSHDBind is a start that failed because the port was taken.
var errSSHDBind = errors.New("sshd could not bind its port")

// start runs sshd on the current configuration and waits until it serves.
func (s *SSHD) start() error {
	if cmd, _ := s.current(); cmd != nil {
		return nil
	}
	from := s.logSize()
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("sshd log: %w", err)
	}
	defer logf.Close()
	// -D: no daemon, so that we are its parent; -e with -E: its log goes to
	// the file, as does what it writes before it opens it.
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", s.config, "-E", s.logFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	// A session of its own: a signal to the test's group or session must
	// not reach it, and Kill's sweep of sshd's sessions must not reach
	// the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	exited, err := s.spawn(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", sshdPath, err)
	}
	if err := s.waitServing(exited, from); err != nil {
		s.Kill()
		return err
	}
	return nil
}

// waitServing waits until the server completes SSH handshakes with the
// current host key, which also tells it from any other server that might
// have the port. from is the log's size when it was started or signalled.
func (s *SSHD) waitServing(exited <-chan struct{}, from int64) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.probe()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log := s.logSince(from)
			if strings.Contains(log, "Address already in use") || strings.Contains(log, "Cannot bind any address") {
				return fmt.Errorf("%w %d: %s", errSSHDBind, s.Port, log)
			}
			return fmt.Errorf("sshd exited while starting; its log:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd on %s did not serve within 20s: %v; its log:\n%s", s.Addr, err, s.logSince(from))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLog waits until the log has a line with text after offset from.
func (s *SSHD) waitLog(exited <-chan struct{}, from int64, text string) error {
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.logSince(from), text) {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited; its log:\n%s", s.logSince(from))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q in sshd's log within 20s; it has:\n%s", text, s.logSince(from))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

var errProbeDone = errors.New("probe: host key seen")

// probe does the start of an SSH handshake (banner, key exchange) and
// checks the host key the server proves it has; it does not log in.
func (s *SSHD) probe() error {
	conn, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var got ssh.PublicKey
	_, _, _, err = ssh.NewClientConn(conn, s.Addr, &ssh.ClientConfig{
		User: s.User,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key
			return errProbeDone
		},
	})
	switch {
	case got == nil:
		return fmt.Errorf("SSH handshake: %w", err)
	case !bytes.Equal(got.Marshal(), s.HostKey.Marshal()):
		return fmt.Errorf("host key is %s, want %s", ssh.FingerprintSHA256(got), ssh.FingerprintSHA256(s.HostKey))
	}
	return nil
}

// writeConfig writes the server's sshd_config; no system file is included.
func (s *SSHD) writeConfig() error {
	yesNo := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# cronium-agent test sshd (internal/testenv.StartSSHD)\n")
	fmt.Fprintf(&b, "Port %d\nListenAddress 127.0.0.1\nAddressFamily inet\n", s.Port)
	fmt.Fprintf(&b, "HostKey %s\nPidFile %s\n", s.hostKeyFile, filepath.Join(s.Dir, "sshd.pid"))
	fmt.Fprintf(&b, "AuthorizedKeysFile %s/authorized_keys/%%u\n", s.Dir)
	// Dir is below /tmp, which StrictModes refuses.
	b.WriteString("StrictModes no\nUsePAM no\n")
	fmt.Fprintf(&b, "AllowUsers %s\nPermitRootLogin no\n", SSHDUser)
	fmt.Fprintf(&b, "PubkeyAuthentication yes\nPasswordAuthentication %s\n", yesNo(!s.opts.noPassword))
	b.WriteString("KbdInteractiveAuthentication no\nHostbasedAuthentication no\nPermitEmptyPasswords no\n")
	// Remote forwards bind loopback only, whatever address a client asks.
	fmt.Fprintf(&b, "AllowTcpForwarding %s\nGatewayPorts no\n", yesNo(!s.opts.noForwarding))
	b.WriteString("AllowAgentForwarding no\nX11Forwarding no\nPermitTunnel no\n")
	b.WriteString("MaxSessions 32\nMaxStartups 100:30:200\nMaxAuthTries 10\nLoginGraceTime 30\n")
	b.WriteString("ClientAliveInterval 0\nUseDNS no\nPrintMotd no\nPrintLastLog no\nBanner none\n")
	b.WriteString("LogLevel VERBOSE\n")
	// OpenSSH 9.8 and later penalize addresses whose connections fail
	// authentication, which tests of refusals would run into.
	if v := sshdVersion(); v >= 908 {
		b.WriteString("PerSourcePenalties no\n")
	}
	return os.WriteFile(s.config, []byte(b.String()), 0o600)
}

// newHostKey makes a new ed25519 host key, writes it where the
// configuration says and makes it HostKey.
func (s *SSHD) newHostKey() error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "cronium test sshd host key")
	if err != nil {
		return err
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return err
	}
	tmp := s.hostKeyFile + ".new"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.hostKeyFile); err != nil {
		return err
	}
	s.HostKey = pub
	return nil
}

func (s *SSHD) logSize() int64 {
	fi, err := os.Stat(s.logFile)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (s *SSHD) logSince(from int64) string {
	data, err := os.ReadFile(s.logFile)
	if err != nil {
		return err.Error()
	}
	if from > int64(len(data)) {
		from = 0
	}
	return strings.TrimSpace(string(data[from:]))
}

// freeLoopbackPort returns a port of 127.0.0.1 that was free a moment ago.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var sshdAccount struct {
	once sync.Once
	err  error
}

// ensureSSHDAccount creates SSHDUser if it does not exist yet and sets its
// password, once per test process. Several test processes may do this at
// once: useradd and chpasswd lock the account files, and useradd's "already
// exists" (exit code 9) is what the losers get.
func ensureSSHDAccount() error {
	sshdAccount.once.Do(func() { sshdAccount.err = createSSHDAccount() })
	return sshdAccount.err
}

func createSSHDAccount() error {
	// A system account: no subordinate uid range, which job containers'
	// uid mappings might otherwise meet, and no password ageing.
	args := []string{"--system", "--home-dir", SSHDHome, "--no-create-home",
		"--shell", "/bin/bash", "--comment", "cronium-agent SSH tests"}
	if _, err := user.LookupGroup(SSHDUser); err == nil {
		args = append(args, "--gid", SSHDUser)
	} else {
		args = append(args, "--user-group")
	}
	out, err := exec.Command("/usr/sbin/useradd", append(args, SSHDUser)...).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 9) {
		return fmt.Errorf("useradd: %v: %s", err, bytes.TrimSpace(out))
	}
	u, err := user.Lookup(SSHDUser)
	if err != nil {
		return fmt.Errorf("after useradd (%s): %w", bytes.TrimSpace(out), err)
	}
	if u.HomeDir != SSHDHome {
		return fmt.Errorf("the account exists with home %s, not %s", u.HomeDir, SSHDHome)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(SSHDHome, 0o700); err != nil {
		return err
	}
	if err := os.Chown(SSHDHome, uid, gid); err != nil {
		return err
	}
	if err := os.Chmod(SSHDHome, 0o700); err != nil {
		return err
	}
	// Every process sets it: until it is set the account is locked ("!"),
	// and sshd refuses even key logins for a locked account. The password
	// goes through stdin, not the command line.
	cmd := exec.Command("/usr/sbin/chpasswd")
	cmd.Stdin = strings.NewReader(SSHDUser + ":" + SSHDPassword + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chpasswd: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

var sshdKeys struct {
	once       sync.Once
	keys       map[string][]byte
	authorized []byte
	err        error
}

// sshdClientKeys makes the client keys, once per test process (an RSA key
// takes a while), and returns them with their authorized_keys lines.
func sshdClientKeys() (map[string][]byte, []byte, error) {
	sshdKeys.once.Do(func() {
		sshdKeys.keys, sshdKeys.authorized, sshdKeys.err = makeClientKeys()
	})
	return sshdKeys.keys, sshdKeys.authorized, sshdKeys.err
}

func makeClientKeys() (map[string][]byte, []byte, error) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	keys := map[string][]byte{}
	var authorized []byte
	for _, k := range []struct {
		typ  string
		priv interface{ Public() crypto.PublicKey }
	}{{"ed25519", ed}, {"rsa", rsaKey}, {"ecdsa", ec}} {
		comment := "cronium-sshtest " + k.typ
		block, err := ssh.MarshalPrivateKey(k.priv, comment)
		if err != nil {
			return nil, nil, fmt.Errorf("%s key: %w", k.typ, err)
		}
		pub, err := ssh.NewPublicKey(k.priv.Public())
		if err != nil {
			return nil, nil, fmt.Errorf("%s key: %w", k.typ, err)
		}
		keys[k.typ] = pem.EncodeToMemory(block)
		line := bytes.TrimSpace(ssh.MarshalAuthorizedKey(pub))
		authorized = append(append(authorized, line...), " "+comment+"\n"...)
	}
	return keys, authorized, nil
}

var sshdVersionOnce struct {
	once sync.Once
	v    int
}

// sshdVersion is the OpenSSH version of sshdPath as major*100+minor
// (902 for 9.2), or 0 when it cannot tell.
func sshdVersion() int {
	sshdVersionOnce.once.Do(func() {
		out, _ := exec.Command(sshdPath, "-V").CombinedOutput()
		m := regexp.MustCompile(`OpenSSH_(\d+)\.(\d+)`).FindSubmatch(out)
		if m == nil {
			return
		}
		major, _ := strconv.Atoi(string(m[1]))
		minor, _ := strconv.Atoi(string(m[2]))
		sshdVersionOnce.v = major*100 + minor
	})
	return sshdVersionOnce.v
}

// procStat is what Kill needs of /proc/PID/stat.
type procStat struct {
	comm  string
	state byte
	ppid  int
	sid   int
}

func (p procStat) stoppedOrDead() bool {
	return p.state == 'T' || p.state == 't' || p.state == 'Z' || p.state == 'X'
}

func readProcStat(pid int) (procStat, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	// pid (comm) state ppid pgrp session ...; comm may hold spaces and ")".
	s := string(data)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return procStat{}, false
	}
	f := strings.Fields(s[closing+1:])
	if len(f) < 4 || f[0] == "" {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	sid, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{comm: s[open+1 : closing], state: f[0][0], ppid: ppid, sid: sid}, true
}

func readProcStats() map[int]procStat {
	procs := map[int]procStat{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProcStat(pid); ok {
			procs[pid] = p
		}
	}
	return procs
}

// sshdTree is what Kill kills of the sshd listener's: the listener, its
// sshd descendants (per connection: the monitor, the unprivileged child;
// "sshd-session" and "sshd-auth" from OpenSSH 9.8 on) and every process in
// a session whose leader an sshd process started (a channel's command or
// shell, and whatever it started without setsid). Never a process of the
// test's own session (self).
func sshdTree(procs map[int]procStat, listener, self int) map[int]bool {
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	tree := map[int]bool{}
	sessions := map[int]bool{}
	queue := []int{listener}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if _, ok := procs[pid]; ok {
			tree[pid] = true
		}
		for _, c := range children[pid] {
			if strings.HasPrefix(procs[c].comm, "sshd") {
				queue = append(queue, c)
			} else {
				sessions[procs[c].sid] = true
			}
		}
	}
	delete(sessions, self)
	for pid, p := range procs {
		if sessions[p.sid] {
			tree[pid] = true
		}
	}
	delete(tree, os.Getpid())
	for pid := range tree {
		if procs[pid].state == 'Z' {
			delete(tree, pid)
		}
	}
	return tree
}
