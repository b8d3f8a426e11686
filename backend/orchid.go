package backend

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// orchIDFile is the file in the state directory that keeps the agent's id.
const orchIDFile = "orchestrator-id"

// OrchestratorID returns the agent's id, kept in stateDir/orchestrator-id:
// generated once ("agent-" and 16 random hex digits), written with mode
// 0600 (atomically: another process starting at the same time gets the
// same id), and read back on every later start. A file whose content is
// not a valid id is an error, not a reason for a new id (a new id would
// orphan the jobs the backend believes this agent holds).
func OrchestratorID(stateDir string) (string, error) {
	if stateDir == "" {
		return "", errors.New("orchestrator id: no state directory")
	}
	path := filepath.Join(stateDir, orchIDFile)
	if id, err := readOrchID(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", fmt.Errorf("orchestrator id: %w", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("orchestrator id: %w", err)
	}
	id := "agent-" + hex.EncodeToString(b[:])

	tmp, err := os.CreateTemp(stateDir, ".orchestrator-id-*")
	if err != nil {
		return "", fmt.Errorf("orchestrator id: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("orchestrator id: %w", err)
	}
	if _, err := tmp.WriteString(id + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("orchestrator id: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("orchestrator id: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("orchestrator id: %w", err)
	}
	// link fails if the file exists: whoever linked first wins.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readOrchID(path)
		}
		return "", fmt.Errorf("orchestrator id: %w", err)
	}
	if d, err := os.Open(stateDir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return id, nil
}

func readOrchID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("orchestrator id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if !validID(id) {
		return "", fmt.Errorf("orchestrator id: %s does not hold a valid id (1-128 letters, digits, '.', '_', '-'); fix or remove it", path)
	}
	return id, nil
}

// validID tells whether s can be an orchestrator id (it travels in a
// header and a query string).
func validID(s string) bool {
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
