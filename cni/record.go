package cni

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cronium/cronium-agent/internal/flock"
)

// A network's record and lock live in nets/<id>.json and nets/<id>.lock. The
// owning process holds an flock on the lock for the network's lifetime; a
// sweep takes an unlocked record for a leftover.

func (m *Manager) recordPath(id string) string { return m.dir("nets", id+".json") }
func (m *Manager) lockPath(id string) string   { return m.dir("nets", id+".lock") }

func (m *Manager) lockNetwork(id string) (*os.File, error) {
	f, err := os.OpenFile(m.lockPath(id), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock network %s: %w", id, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("network %s is in use by another run: %w", id, err)
	}
	return f, nil
}

func (m *Manager) writeRecord(n *Network) error {
	data, err := json.Marshal(n)
	if err != nil {
		return err
	}
	tmp := m.recordPath(n.ID) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("record network %s: %w", n.ID, err)
	}
	if err := os.Rename(tmp, m.recordPath(n.ID)); err != nil {
		return fmt.Errorf("record network %s: %w", n.ID, err)
	}
	return nil
}

func (m *Manager) readRecord(id string) (*Network, error) {
	data, err := os.ReadFile(m.recordPath(id))
	if err != nil {
		return nil, err
	}
	var n Network
	if err := json.Unmarshal(data, &n); err != nil {
		return nil, fmt.Errorf("read network record %s: %w", id, err)
	}
	return &n, nil
}

// locked reports whether a live process owns the network.
func (m *Manager) locked(id string) bool {
	f, err := os.Open(m.lockPath(id))
	if err != nil {
		return false
	}
	defer f.Close()
	return flock.Held(f)
}

func recordIDs(dir string) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	matches2, _ := filepath.Glob(filepath.Join(dir, "*.lock"))
	seen := map[string]bool{}
	var ids []string
	for _, m := range append(matches, matches2...) {
		base := filepath.Base(m)
		id := base[:len(base)-len(filepath.Ext(base))]
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// lockSwept locks a network a sweep found for its removal. Its lock file
// is not made again when it is gone (its owner removed the network since
// the listing: a sweep in another process would otherwise leave a lock
// file behind), unless its record is still there (hasRecord).
func (m *Manager) lockSwept(id string, hasRecord bool) (*os.File, error) {
	if hasRecord {
		return m.lockNetwork(id)
	}
	f, err := os.OpenFile(m.lockPath(id), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("network %s is in use by another run: %w", id, err)
	}
	return f, nil
}
