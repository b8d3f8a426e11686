package sidecar

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cronium/cronium-agent/internal/atomicfile"
)

// SecretSize is the size of the token secret, in bytes.
const SecretSize = 32

// LoadOrCreateSecret returns the agent's token secret stored at path,
// creating it (SecretSize random bytes, mode 0600) when the file does not
// exist. The file appears atomically: it is written to a temporary file in
// the same directory and hard-linked into place, which fails rather than
// replaces when another process created it first (then its secret is used).
//
// An existing file is refused, with an error saying how to fix it, when it is
// a symbolic link or not a regular file, when its mode is more open than 0600,
// when it is not owned by the effective user, or when its size is not
// SecretSize.
func LoadOrCreateSecret(path string) ([]byte, error) {
	for range 3 {
		secret, err := readSecret(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return secret, err
		}
		if err := createSecret(path); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// Created, or created concurrently by someone else: read it back.
	}
	return nil, fmt.Errorf("sidecar: secret file %s keeps disappearing", path)
}

func readSecret(path string) ([]byte, error) {
	f, err := openNoFollow(path)
	if err != nil {
		if isSymlinkErr(err) {
			return nil, fmt.Errorf("sidecar: secret file %s is a symbolic link; refusing to use it", path)
		}
		return nil, fmt.Errorf("sidecar: open secret file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sidecar: stat secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("sidecar: secret file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&^0o600 != 0 {
		return nil, fmt.Errorf("sidecar: secret file %s has mode %#o, more open than 0600: "+
			"it may have leaked; remove it to generate a new secret (or chmod 600 it if you are sure it did not)", path, perm)
	}
	if err := checkOwner(fi); err != nil {
		return nil, fmt.Errorf("sidecar: secret file %s: %w", path, err)
	}
	if fi.Size() != SecretSize {
		return nil, fmt.Errorf("sidecar: secret file %s has %d bytes, want %d: remove it to generate a new secret", path, fi.Size(), SecretSize)
	}
	secret := make([]byte, SecretSize)
	if _, err := io.ReadFull(f, secret); err != nil {
		return nil, fmt.Errorf("sidecar: read secret file %s: %w", path, err)
	}
	return secret, nil
}

func createSecret(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sidecar: create secret directory: %w", err)
	}
	secret := make([]byte, SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("sidecar: generate secret: %w", err)
	}
	err := atomicfile.Write(path, secret, 0o600, true)
	clear(secret)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("sidecar: install secret file: %w", err)
	}
	return err
}
