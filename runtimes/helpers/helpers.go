// Package helpers holds the helper libraries every job gets at /cronium/lib
// (docs/runtime-api.md, "Helper libraries"): cronium.py (on
// PYTHONPATH), cronium.js (on NODE_PATH) and cronium.sh (BASH_ENV). They are
// embedded in the agent binary; the agent writes them once per content into a
// directory named by Version and mounts it read-only into each job. The bash
// functions call the helper program (package runtimes/helpercli).
package helpers

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

//go:embed cronium.py cronium.js cronium.sh
var files embed.FS

// File names of the helpers, as they appear in the helper directory.
const (
	Python = "cronium.py"
	Node   = "cronium.js"
	Bash   = "cronium.sh"
)

// FileMode is the mode of each written helper file.
const FileMode fs.FileMode = 0o644

// Names lists the helper file names, sorted.
func Names() []string { return []string{Bash, Node, Python} }

// FS is the helper files as a read-only file system (for uploads to SSH
// targets, say).
func FS() fs.FS { return files }

// Files returns a fresh copy of every helper's content, by file name.
func Files() map[string][]byte {
	m := make(map[string][]byte, 3)
	for _, name := range Names() {
		b, err := files.ReadFile(name)
		if err != nil {
			panic("helpers: embedded file missing: " + name) // cannot happen: go:embed checked it
		}
		m[name] = b
	}
	return m
}

// Version identifies the helpers' content: the first 16 hex digits of a
// SHA-256 over every file name and content. It changes whenever any helper
// changes, so a directory named by it never needs rewriting.
func Version() string {
	h := sha256.New()
	m := Files()
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%s\x00", n, strconv.Itoa(len(m[n])))
		h.Write(m[n])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// WriteTo writes the helpers into dir (created with mode 0755 if missing),
// each with mode 0644. Each file is replaced atomically (a temporary file in
// dir, synced, then renamed), and a file that already has the right content
// and mode is left alone, so calling WriteTo again is cheap and harmless.
func WriteTo(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("helpers: %w", err)
	}
	for name, content := range Files() {
		if err := writeFile(filepath.Join(dir, name), content); err != nil {
			return fmt.Errorf("helpers: %w", err)
		}
	}
	return nil
}

func writeFile(path string, content []byte) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == FileMode {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
			return nil
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(FileMode); err != nil { // not subject to the umask
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.Sync() // best effort: some file systems refuse to sync a directory
	return nil
}
