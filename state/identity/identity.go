// Package identity keeps the agent's orchestrator id, bound to the machine
// it was made on.
//
// The id is made at the first start and kept in <state>/orchestrator-id
// with a hash of the machine's identity (/etc/machine-id, else the DMI
// product UUID). A host installed from an image made after a first start
// carries the file: on it, the id would be another host's, and that host's
// jobs would be released or run twice. A start that finds the file made on
// another machine moves the copied state aside, kept for inspection, and
// starts afresh: a new id, an empty journal, no run directories.
package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/internal/atomicfile"
	"github.com/cronium/cronium-agent/internal/flock"
)

// File is the id file's name in the state directory.
const File = "orchestrator-id"

// DefaultMachineIDFile is where the machine's id is read by default.
const DefaultMachineIDFile = "/etc/machine-id"

// dmiUUID is the fallback where no machine-id file is.
const dmiUUID = "/sys/class/dmi/id/product_uuid"

// copiedPrefix names the directories a copied state is moved into.
const copiedPrefix = "copied-state-"

// kept are the state directory's entries that stay in place when a copy is
// moved aside: pinned SSH host keys (the fleet's, whichever host pinned
// them), and the helpers, which every start writes anyway.
var kept = map[string]bool{"known_hosts": true, "helpers": true}

// Identity is the agent's id and what it is bound to.
type Identity struct {
	ID string
	// Machine is the hash of the machine's identity the id is bound to
	// ("" when the machine has none).
	Machine string
	// Source says where the machine's identity was read: a file's path,
	// or "" when none was found (Warning says so).
	Source string
	// Copied is set when the state directory was made on another machine
	// and was moved aside: Copied.Dir holds it, Copied.ID was its id.
	Copied *Copied
	// Warning is set when the id cannot be bound (no machine identity).
	Warning string
}

// Copied is a state directory found to be another machine's.
type Copied struct {
	ID      string
	Machine string
	Dir     string
}

type options struct {
	machineIDFile string
	dmiPath       string
	now           func() time.Time
}

// Option configures Load.
type Option func(*options)

// WithMachineIDFile reads the machine's identity from path instead of
// /etc/machine-id (tests, containers).
func WithMachineIDFile(path string) Option { return func(o *options) { o.machineIDFile = path } }

// WithDMIPath replaces the DMI product UUID's path (tests).
func WithDMIPath(path string) Option { return func(o *options) { o.dmiPath = path } }

// Load returns the agent's identity kept in stateDir, made on first use.
// When the id file was made on another machine, the state directory's
// contents (but the kept entries) are moved into stateDir/copied-state-*
// first, and a new id is made. It refuses (an error) when another process
// holds the state's journal: that state is in use.
func Load(stateDir string, opts ...Option) (Identity, error) {
	o := options{machineIDFile: DefaultMachineIDFile, dmiPath: dmiUUID, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if stateDir == "" {
		return Identity{}, errors.New("identity: no state directory")
	}
	if err := os.MkdirAll(stateDir, 0o711); err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	var id Identity
	id.Machine, id.Source = machine(o)
	if id.Source == "" {
		id.Warning = fmt.Sprintf("this machine has no identity (neither %s nor the DMI product UUID): the agent id is not bound to it, and a host installed from an image of this one would claim jobs as this agent", o.machineIDFile)
	}
	path := filepath.Join(stateDir, File)
	prev, bound, err := read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A first start.
	case err != nil:
		return Identity{}, err
	case bound == "" || id.Machine == "" || bound == id.Machine:
		id.ID = prev
		if bound == "" && id.Machine != "" {
			// An id file of an older agent: bind it to this machine.
			if err := write(path, prev, id.Machine, true); err != nil {
				return Identity{}, err
			}
		}
		return id, nil
	default:
		dir, err := moveAside(stateDir, prev, o.now())
		if err != nil {
			return Identity{}, err
		}
		id.Copied = &Copied{ID: prev, Machine: bound, Dir: dir}
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	newID := "agent-" + hex.EncodeToString(b[:])
	if err := write(path, newID, id.Machine, false); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process starting at the same time made it first.
			id.ID, _, err = read(path)
			return id, err
		}
		return Identity{}, err
	}
	id.ID = newID
	return id, nil
}

// machine returns the hash of the machine's identity and where it was
// read, or "", "" when there is none.
func machine(o options) (hash, source string) {
	for _, p := range []string{o.machineIDFile, o.dmiPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		v := strings.ToLower(strings.TrimSpace(string(b)))
		if v == "" || strings.Trim(v, "0-") == "" || v == "uninitialized" {
			continue
		}
		// machine-id(5) asks that the id itself not leave the machine: only
		// a hash specific to this use is kept.
		sum := sha256.Sum256([]byte("cronium-agent orchestrator id\x00" + v))
		return hex.EncodeToString(sum[:16]), p
	}
	return "", ""
}

// read returns the id and the machine hash it is bound to ("" for a file
// of an older agent, which held the id alone).
func read(path string) (id, bound string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", err
		}
		return "", "", fmt.Errorf("identity: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	id = strings.TrimSpace(lines[0])
	if !ValidID(id) {
		return "", "", fmt.Errorf("identity: %s does not hold a valid id (1-128 letters, digits, '.', '_', '-'); fix or remove it", path)
	}
	for _, l := range lines[1:] {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "machine "); ok {
			bound = strings.TrimSpace(v)
		}
	}
	return id, bound, nil
}

// write writes the id file atomically, with mode 0600. Unless replace, it
// fails with fs.ErrExist when the file exists (whoever links first wins).
func write(path, id, machine string, replace bool) error {
	content := id + "\n"
	if machine != "" {
		content += "machine " + machine + "\n"
	}
	err := atomicfile.Write(path, []byte(content), 0o600, !replace)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("identity: %w", err)
	}
	return err
}

// moveAside moves the state directory's contents, but the kept entries and
// earlier copies, into a new copied-state-* directory, and returns it.
func moveAside(stateDir, oldID string, now time.Time) (string, error) {
	if err := notInUse(filepath.Join(stateDir, "journal.db")); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		return "", fmt.Errorf("identity: %w", err)
	}
	dir := filepath.Join(stateDir, copiedPrefix+now.UTC().Format("20060102T150405Z")+"-"+oldID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("identity: keep the copied state: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if kept[name] || strings.HasPrefix(name, copiedPrefix) || strings.HasPrefix(name, ".orchestrator-id-") || strings.HasPrefix(name, ".instance-") {
			continue
		}
		if err := os.Rename(filepath.Join(stateDir, name), filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("identity: move the copied state aside: %w", err)
		}
	}
	return dir, nil
}

// notInUse fails when a process holds the journal's lock: that state is
// some agent's, running now, and not a copy to move.
func notInUse(journal string) error {
	if held(journal) {
		return fmt.Errorf("identity: the state directory was made on another machine, but an agent is using its journal %s now: stop it first", journal)
	}
	return nil
}

// held reports whether a process holds the journal's lock.
func held(journal string) bool {
	f, err := os.Open(journal)
	if err != nil {
		return false
	}
	defer f.Close()
	return flock.Held(f)
}

// ErrInUse is Free's answer for a state directory whose journal another
// process holds.
var ErrInUse = errors.New("in use by another agent")

// Free fails with ErrInUse when another process (an agent running with the
// same state directory) holds stateDir's journal. An agent checks it
// before it touches anything of the state, its instance file included.
func Free(stateDir string) error {
	if p := filepath.Join(stateDir, "journal.db"); held(p) {
		return fmt.Errorf("state directory %s: %w (it holds %s): stop that agent, or give this one a state.dir of its own", stateDir, ErrInUse, p)
	}
	return nil
}

// ValidID tells whether s can be an orchestrator id (it travels in a
// header and a query string).
func ValidID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Peek reads the id kept in stateDir and the machine hash it is bound to,
// without making or moving anything (doctor, status of a stopped agent).
func Peek(stateDir string) (id, machine string, err error) {
	return read(filepath.Join(stateDir, File))
}

// InstanceFile keeps the id of the last agent process that ran with this
// state directory.
const InstanceFile = "instance"

// NextInstance makes a random id for this agent process, records it in
// stateDir, and returns it with the id of the process before it ("" on a
// first start). The backend takes a process that names the last one it
// saw for a restart, and another that does not for a second live process
// under the same orchestrator id.
func NextInstance(stateDir string) (instance, previous string, err error) {
	path := filepath.Join(stateDir, InstanceFile)
	if b, err := os.ReadFile(path); err == nil {
		if p := strings.TrimSpace(string(b)); ValidID(p) {
			previous = p
		}
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("instance id: %w", err)
	}
	instance = hex.EncodeToString(b[:])
	if err := atomicfile.Write(path, []byte(instance+"\n"), 0o600, false); err != nil {
		return "", "", fmt.Errorf("instance id: %w", err)
	}
	return instance, previous, nil
}
