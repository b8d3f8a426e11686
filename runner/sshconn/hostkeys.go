package sshconn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Policy says what a connection to a server whose host key is unknown does.
type Policy string

const (
	// PolicyTOFU records an unknown server's key on first use and accepts it.
	PolicyTOFU Policy = "tofu"
	// PolicyStrict refuses a server until its key is recorded
	// (cronium-agent ssh trust).
	PolicyStrict Policy = "strict"
)

// DefaultSystemKnownHosts is the host-wide known_hosts file of OpenSSH,
// consulted (never written) unless WithSystemKnownHosts says otherwise.
const DefaultSystemKnownHosts = "/etc/ssh/ssh_known_hosts"

// HostKeys checks servers' host keys against the agent's known_hosts file
// and the system's, in OpenSSH's format so that ssh and ssh-keygen -F read
// the same file. A changed key always fails, whatever the policy. It is
// safe for concurrent use, and sees what another process (cronium-agent ssh
// trust) records without a restart.
type HostKeys struct {
	path   string
	system string
	policy Policy
	log    *slog.Logger

	// mu guards db and serializes this process's writes to path; the flock
	// taken for each write keeps out other processes.
	mu sync.Mutex
	db *hostDB
}

// HostKeysOption configures HostKeys.
type HostKeysOption func(*HostKeys)

// WithSystemKnownHosts sets the read-only known_hosts file consulted besides
// the agent's own (default DefaultSystemKnownHosts; "" consults none).
func WithSystemKnownHosts(path string) HostKeysOption {
	return func(h *HostKeys) { h.system = path }
}

// WithHostKeysLogger sets the logger, which hears of the keys recorded on
// first use.
func WithHostKeysLogger(l *slog.Logger) HostKeysOption {
	return func(h *HostKeys) { h.log = l }
}

// OpenHostKeys reads the known hosts of path, the agent's own file, which is
// created (mode 0600, its directory 0700) when a key is first recorded; a
// missing file is an empty one.
func OpenHostKeys(path string, policy Policy, opts ...HostKeysOption) (*HostKeys, error) {
	if path == "" {
		return nil, errors.New("ssh known hosts: no file given")
	}
	if policy != PolicyTOFU && policy != PolicyStrict {
		return nil, fmt.Errorf("ssh host key policy %q: want %s or %s", policy, PolicyTOFU, PolicyStrict)
	}
	h := &HostKeys{path: path, system: DefaultSystemKnownHosts, policy: policy, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(h)
	}
	if h.system == h.path {
		h.system = "" // listed once, as the agent's
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// Read now so that an unreadable or corrupt file stops the agent at
	// its start rather than failing its first job.
	if _, err := h.current(); err != nil {
		return nil, err
	}
	return h, nil
}

// Path is the agent's known_hosts file.
func (h *HostKeys) Path() string { return h.path }

// Callback checks a server's host key, for ssh.ClientConfig.HostKeyCallback.
// Its hostname argument is the address dialled, host:port. A known key is
// accepted; a host known with other keys fails with *ChangedHostKeyError; an
// unknown host is recorded and accepted under PolicyTOFU, refused with
// *UnknownHostError under PolicyStrict.
//
// A server with several host keys must be asked for a known one's type
// (Algorithms), or its other key looks like a changed one.
func (h *HostKeys) Callback() ssh.HostKeyCallback {
	return func(hostname string, _ net.Addr, key ssh.PublicKey) error {
		hostport, err := normalizeAddr(hostname)
		if err != nil {
			return err
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		db, err := h.current()
		if err != nil {
			return err
		}
		plain, err := db.verify(hostport, key)
		var unknown *UnknownHostError
		if h.policy != PolicyTOFU || !errors.As(err, &unknown) {
			return err
		}
		added, err := h.record(hostport, plain, false)
		if err != nil {
			return err
		}
		if added {
			h.log.Info("ssh: recorded the host key of a new server (trust on first use)",
				"host", hostport, "type", plain.Type(), "fingerprint", ssh.FingerprintSHA256(plain), "file", h.path)
		}
		return nil
	}
}

// Trust records key as hostport's in the agent's file, unless it is known
// already. A host known with other keys is refused with *ChangedHostKeyError:
// Replace drops those. A certificate's own key is recorded.
func (h *HostKeys) Trust(hostport string, key ssh.PublicKey) error {
	return h.write(hostport, key, false)
}

// Replace drops the entries of hostport from the agent's file and records
// key instead, for a server whose key changed on purpose. A line that names
// the host through a wildcard or negated pattern is refused (other hosts
// may need it), and so is a different key for it in the system file, which
// the agent never writes.
func (h *HostKeys) Replace(hostport string, key ssh.PublicKey) error {
	return h.write(hostport, key, true)
}

func (h *HostKeys) write(hostport string, key ssh.PublicKey, replace bool) error {
	hp, err := normalizeAddr(hostport)
	if err != nil {
		return err
	}
	if cert, ok := key.(*ssh.Certificate); ok {
		key = cert.Key
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err = h.record(hp, key, replace)
	return err
}

// Algorithms returns the host key algorithms that match the keys known for
// hostport, for ssh.ClientConfig.HostKeyAlgorithms, or nil if the host is
// unknown. Without them the server picks its preferred key, which may be
// another than the one recorded: a false "changed key".
func (h *HostKeys) Algorithms(hostport string) []string {
	hp, err := normalizeAddr(hostport)
	if err != nil {
		return nil
	}
	h.mu.Lock()
	db, err := h.current()
	h.mu.Unlock()
	if err != nil {
		return nil // the callback reports it
	}
	plain, authorities, err := db.lookup(hp)
	if err != nil || len(plain) == 0 {
		return nil
	}
	usable := append(ssh.SupportedAlgorithms().HostKeys, ssh.InsecureAlgorithms().HostKeys...)
	var out []string
	add := func(algo string) {
		if slices.Contains(usable, algo) && !slices.Contains(out, algo) {
			out = append(out, algo)
		}
	}
	if len(authorities) > 0 {
		// A certificate signed by the host's authority is as good as a
		// known key; ask for one first.
		for _, algo := range usable {
			if strings.Contains(algo, "-cert-") {
				add(algo)
			}
		}
	}
	for _, m := range plain {
		for _, algo := range algorithmsForKey(m.key.Type()) {
			add(algo)
		}
	}
	return out
}

// algorithmsForKey lists the signature algorithms a key of this type signs
// with: an RSA key has three.
func algorithmsForKey(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// KnownHost is one entry of a known_hosts file.
type KnownHost struct {
	Hosts       []string `json:"hosts"` // patterns as written: name, [name]:port, |1|hashed, *.wildcard
	KeyType     string   `json:"keyType"`
	Fingerprint string   `json:"fingerprint"` // SHA256:...
	// Marker is "cert-authority" or "revoked" for lines that carry one.
	Marker string `json:"marker,omitempty"`
	// System is set for the entries of the system file.
	System bool `json:"system,omitempty"`
}

// Known lists the entries of the agent's file, then those of the system
// file. Lines that cannot be parsed are left out, as the check skips them.
func (h *HostKeys) Known() ([]KnownHost, error) {
	h.mu.Lock()
	db, err := h.current()
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []KnownHost
	for _, f := range db.files {
		for _, e := range f.entries {
			out = append(out, KnownHost{Hosts: e.hosts, KeyType: e.key.Type(), Fingerprint: ssh.FingerprintSHA256(e.key), Marker: e.marker, System: f.system})
		}
	}
	return out, nil
}

// UnknownHostError refuses a server no file knows, under PolicyStrict.
type UnknownHostError struct {
	Host        string // host:port as dialled
	KeyType     string
	Fingerprint string // of the key the server offered, SHA256:...
}

func (e *UnknownHostError) Error() string {
	return fmt.Sprintf("ssh: the host key of %s is unknown (%s %s) and ssh.hostKeyPolicy is strict: check the fingerprint, then record it with `cronium-agent ssh trust %s`",
		e.Host, e.KeyType, e.Fingerprint, e.Host)
}

// ChangedHostKeyError refuses a server whose key is not the one recorded,
// whatever the policy: it may be someone in the middle.
type ChangedHostKeyError struct {
	Host string   // host:port as dialled
	Want []string // fingerprints of the known keys
	Got  string   // fingerprint of the key the server offered
}

func (e *ChangedHostKeyError) Error() string {
	return fmt.Sprintf("ssh: the host key of %s has changed: the server offered %s, known is %s. Someone may be intercepting the connection; if the key was changed on purpose, check the new fingerprint, then replace it with `cronium-agent ssh trust %s --replace`",
		e.Host, e.Got, strings.Join(e.Want, ", "), e.Host)
}

// RevokedHostKeyError refuses a key that a known_hosts file marks @revoked.
type RevokedHostKeyError struct {
	Host        string
	Fingerprint string
}

func (e *RevokedHostKeyError) Error() string {
	return fmt.Sprintf("ssh: the host key of %s (%s) is marked @revoked in the known hosts", e.Host, e.Fingerprint)
}

// FetchHostKey connects to addr (host:port) and returns the host key the
// server offers, without logging in: the handshake is abandoned once the
// key is seen. algorithms, if given, are the host key algorithms asked for
// (Algorithms of a known host). A certificate's own key is returned, since
// known_hosts records plain keys. timeout bounds the whole exchange.
func FetchHostKey(ctx context.Context, addr string, timeout time.Duration, algorithms ...string) (ssh.PublicKey, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fetch the host key of %s: %w", addr, err)
	}
	defer nc.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	captured := errors.New("host key captured")
	var got ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User:              "cronium-agent",
		HostKeyAlgorithms: algorithms,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			got = key
			return captured // ends the handshake before any authentication
		},
	}
	_, _, _, err = ssh.NewClientConn(nc, addr, cfg)
	if got == nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		return nil, fmt.Errorf("fetch the host key of %s: %w", addr, err)
	}
	if cert, ok := got.(*ssh.Certificate); ok {
		return cert.Key, nil
	}
	return got, nil
}

// normalizeAddr returns host:port with the port (22 when none is given)
// and the host in lower case, as OpenSSH compares names.
func normalizeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: a name or an IPv6 address, perhaps in brackets.
		host, port = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), "22"
	}
	if host == "" || strings.ContainsAny(host, " \t,[]") {
		return "", fmt.Errorf("ssh: invalid host address %q", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("ssh: invalid port in %q", addr)
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// record writes key for hostport (normalized; h.mu held) under the file's
// flock, after checking again what the file says now: another process may
// have recorded it meanwhile. added is false when the key was known.
func (h *HostKeys) record(hostport string, key ssh.PublicKey, replace bool) (added bool, _ error) {
	f, err := h.openLocked()
	if err != nil {
		return false, err
	}
	defer f.Close() // releases the flock
	db, err := h.current()
	if err != nil {
		return false, err
	}
	if replace {
		return true, h.rewrite(f, db, hostport, key)
	}
	var unknown *UnknownHostError
	if _, err := db.verify(hostport, key); !errors.As(err, &unknown) {
		return false, err // known (nil), changed or revoked
	}
	return true, appendLine(f, knownhosts.Line([]string{hostport}, key))
}

// openLocked opens the agent's file for appending, creating it and its
// directory, and takes its flock.
func (h *HostKeys) openLocked() (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return nil, fmt.Errorf("create the known hosts directory: %w", err)
	}
	for {
		f, err := os.OpenFile(h.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open known hosts: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock known hosts %s: %w", h.path, err)
		}
		// Replace renames a new file over the path: a lock taken on the old
		// one while it did so guards nothing.
		held, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("known hosts: %w", err)
		}
		if cur, err := os.Stat(h.path); err == nil && os.SameFile(held, cur) {
			return f, nil
		}
		f.Close()
	}
}

// appendLine appends one line in one write: O_APPEND puts it whole at the
// end even if an ssh client, which takes no lock, appends at the same time.
func appendLine(f *os.File, line string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("known hosts: %w", err)
	}
	if fi.Size() > 0 {
		// A file edited by hand may lack its last newline.
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		return fmt.Errorf("write known hosts %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write known hosts %s: %w", f.Name(), err)
	}
	return nil
}

// rewrite replaces the agent's file (locked as f) with one without the
// lines that name hostport, and key's line for it at the end.
func (h *HostKeys) rewrite(f *os.File, db *hostDB, hostport string, key ssh.PublicKey) error {
	plain, _, err := db.lookup(hostport)
	if err != nil {
		return err
	}
	drop := map[int]bool{}
	for _, m := range plain {
		if m.system {
			if !keyEqual(m.key, key) {
				return fmt.Errorf("%s has another key in %s, which cronium-agent never writes: remove it there first (ssh-keygen -R %s -f %s)",
					hostport, m.path, knownhosts.Normalize(hostport), m.path)
			}
			continue
		}
		for _, p := range db.entryAt[lineRef{m.path, m.line}].hosts {
			if strings.ContainsAny(p, "*?!") {
				return fmt.Errorf("line %d of %s names %s through the pattern %q, which other hosts may need: edit the file by hand", m.line, m.path, hostport, p)
			}
		}
		drop[m.line] = true
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		return fmt.Errorf("read known hosts: %w", err)
	}
	var b bytes.Buffer
	for i, line := range bytes.SplitAfter(data, []byte("\n")) {
		if !drop[i+1] {
			b.Write(line)
		}
	}
	if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	b.WriteString(knownhosts.Line([]string{hostport}, key) + "\n")

	mode := os.FileMode(0o600)
	if fi, err := f.Stat(); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(h.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(h.path)+"-*")
	if err != nil {
		return fmt.Errorf("rewrite known hosts: %w", err)
	}
	err = func() error {
		defer tmp.Close()
		if err := tmp.Chmod(mode); err != nil {
			return err
		}
		if _, err := tmp.Write(b.Bytes()); err != nil {
			return err
		}
		return tmp.Sync()
	}()
	if err == nil {
		err = os.Rename(tmp.Name(), h.path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("rewrite known hosts %s: %w", h.path, err)
	}
	// The rename must reach the disk too, or a crash may bring back the old key.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// hostDB is what the files said when they were last read.
type hostDB struct {
	stamps []fileStamp // of the files, in order
	files  []knownFile
	// check is knownhosts' callback over the files that exist (nil when
	// none does): the host matching (patterns, hashed names, ports) and the
	// certificate checks are its.
	check   ssh.HostKeyCallback
	entryAt map[lineRef]knownEntry
	revoked map[string]bool // wire form of the @revoked keys
}

type knownFile struct {
	path    string
	system  bool
	entries []knownEntry
}

type knownEntry struct {
	line   int
	marker string
	hosts  []string
	key    ssh.PublicKey
}

type lineRef struct {
	path string
	line int
}

// match is a known key whose line names a host.
type match struct {
	key    ssh.PublicKey
	path   string
	line   int
	system bool
}

// fileStamp tells whether a file changed: nil info for a missing file.
type fileStamp struct{ info os.FileInfo }

func (s fileStamp) same(o fileStamp) bool {
	if s.info == nil || o.info == nil {
		return s.info == nil && o.info == nil
	}
	return os.SameFile(s.info, o.info) && s.info.Size() == o.info.Size() && s.info.ModTime().Equal(o.info.ModTime())
}

func sameStamps(a, b []fileStamp) bool {
	return slices.EqualFunc(a, b, fileStamp.same)
}

// files lists the files consulted, the agent's first.
func (h *HostKeys) files() []knownFile {
	files := []knownFile{{path: h.path}}
	if h.system != "" {
		files = append(files, knownFile{path: h.system, system: true})
	}
	return files
}

func (h *HostKeys) stat() ([]fileStamp, error) {
	var stamps []fileStamp
	for _, f := range h.files() {
		fi, err := os.Stat(f.path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("known hosts: %w", err)
		}
		stamps = append(stamps, fileStamp{fi})
	}
	return stamps, nil
}

// current returns the database, read again if a file changed since it was
// last read: a stat per check is the price of seeing `cronium-agent ssh
// trust` without a restart. h.mu is held.
func (h *HostKeys) current() (*hostDB, error) {
	stamps, err := h.stat()
	if err != nil {
		return nil, err
	}
	if h.db != nil && sameStamps(h.db.stamps, stamps) {
		return h.db, nil
	}
	for try := 1; ; try++ {
		db, err := h.load(stamps)
		after, serr := h.stat()
		if serr != nil {
			return nil, serr
		}
		// The files are read twice (here and by knownhosts), so they must
		// not have changed in between. One that keeps changing is taken as
		// read: its stamp is older than the file, so the next check reads
		// it again.
		if sameStamps(stamps, after) || try == 3 {
			if err != nil {
				return nil, err
			}
			h.db = db
			return db, nil
		}
		stamps = after
	}
}

// load reads the files as stamped.
func (h *HostKeys) load(stamps []fileStamp) (*hostDB, error) {
	db := &hostDB{stamps: stamps, entryAt: map[lineRef]knownEntry{}, revoked: map[string]bool{}}
	var existing []string
	for i, f := range h.files() {
		if stamps[i].info == nil {
			db.files = append(db.files, f)
			continue
		}
		data, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("read known hosts: %w", err)
		}
		f.entries = parseEntries(data)
		for _, e := range f.entries {
			db.entryAt[lineRef{f.path, e.line}] = e
			if e.marker == "revoked" {
				db.revoked[string(e.key.Marshal())] = true
			}
		}
		db.files = append(db.files, f)
		existing = append(existing, f.path)
	}
	if len(existing) > 0 {
		check, err := knownhosts.New(existing...)
		if err != nil {
			return nil, fmt.Errorf("known hosts: %w", err)
		}
		db.check = check
	}
	return db, nil
}

// parseEntries parses known_hosts lines, numbered as knownhosts numbers
// them; lines it cannot parse are skipped, as knownhosts skips them.
func parseEntries(data []byte) []knownEntry {
	var out []knownEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		marker, hosts, key, _, _, err := ssh.ParseKnownHosts(sc.Bytes())
		if err != nil {
			continue // blank, comment or invalid
		}
		out = append(out, knownEntry{line: n, marker: marker, hosts: hosts, key: key})
	}
	return out
}

// probeKey is a key no file holds: checked against the files, the
// mismatch lists every entry that names the host, which knownhosts has no
// lookup for.
type probeKey struct{}

func (probeKey) Type() string                        { return "cronium-probe" }
func (probeKey) Marshal() []byte                     { return []byte("\x00cronium-agent probe key") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// probeAddr stands for the remote address, which knownhosts parses
// though the host name given takes precedence.
func probeAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero} }

// lookup lists the plain keys and the authorities (@cert-authority) known
// for hostport (normalized).
func (d *hostDB) lookup(hostport string) (plain, authorities []match, _ error) {
	if d.check == nil {
		return nil, nil, nil
	}
	err := d.check(hostport, probeAddr(), probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) {
		return nil, nil, fmt.Errorf("known hosts: look up %s: %w", hostport, err)
	}
	system := map[string]bool{}
	for _, f := range d.files {
		system[f.path] = f.system
	}
	for _, k := range ke.Want {
		m := match{key: k.Key, path: k.Filename, line: k.Line, system: system[k.Filename]}
		if d.entryAt[lineRef{k.Filename, k.Line}].marker == "cert-authority" {
			authorities = append(authorities, m)
		} else {
			plain = append(plain, m)
		}
	}
	return plain, authorities, nil
}

// verify decides on the key a server offered by the files alone: nil when
// known, else *UnknownHostError, *ChangedHostKeyError or
// *RevokedHostKeyError. It returns the key to record if unknown: a
// certificate's own key.
func (d *hostDB) verify(hostport string, key ssh.PublicKey) (ssh.PublicKey, error) {
	plain, authorities, err := d.lookup(hostport)
	if err != nil {
		return nil, err
	}
	if cert, ok := key.(*ssh.Certificate); ok {
		if d.revoked[string(cert.SignatureKey.Marshal())] {
			return nil, &RevokedHostKeyError{Host: hostport, Fingerprint: ssh.FingerprintSHA256(cert.SignatureKey)}
		}
		for _, ca := range authorities {
			if keyEqual(ca.key, cert.SignatureKey) {
				// Signed by an authority of this host: the certificate's
				// own checks (principal, validity, signature) decide.
				if err := d.check(hostport, probeAddr(), cert); err != nil {
					return nil, fmt.Errorf("ssh: the host certificate of %s: %w", hostport, err)
				}
				return cert.Key, nil
			}
		}
		// No authority of this host signed it: its key is judged as a plain
		// host key, as OpenSSH does.
		key = cert.Key
	}
	fp := ssh.FingerprintSHA256(key)
	if d.revoked[string(key.Marshal())] {
		return nil, &RevokedHostKeyError{Host: hostport, Fingerprint: fp}
	}
	if len(plain) == 0 {
		return key, &UnknownHostError{Host: hostport, KeyType: key.Type(), Fingerprint: fp}
	}
	var want []string
	for _, m := range plain {
		if keyEqual(m.key, key) {
			return key, nil
		}
		if f := ssh.FingerprintSHA256(m.key); !slices.Contains(want, f) {
			want = append(want, f)
		}
	}
	return nil, &ChangedHostKeyError{Host: hostport, Want: want, Got: fp}
}

func keyEqual(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }
