package container

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestRemoveAbortedRuncState(t *testing.T) {
	root := t.TempDir()
	mk := func(id string, files ...string) string {
		dir := filepath.Join(root, "ns", id)
		if err := os.MkdirAll(dir, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(dir, "exec.fifo"), 0o622); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	aborted, created, other := mk("aborted"), mk("created", "state.json"), mk("other", "unknown")
	crunAborted, crunCreated := mk("crun-aborted", "config.json", "seccomp.bpf"), mk("crun-created", "config.json", "seccomp.bpf", "status")
	for _, id := range []string{"aborted", "created", "other", "missing", "crun-aborted", "crun-created"} {
		removeAbortedRuncState(root, "ns", id)
	}
	for _, dir := range []string{aborted, crunAborted} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("state of an aborted create left in %s: %v", filepath.Base(dir), err)
		}
	}
	for _, kept := range []string{"exec.fifo", "state.json"} {
		if _, err := os.Stat(filepath.Join(created, kept)); err != nil {
			t.Errorf("state of a created container touched: %v", err)
		}
	}
	for _, kept := range []string{"exec.fifo", "config.json", "seccomp.bpf"} {
		if _, err := os.Stat(filepath.Join(crunCreated, kept)); err != nil {
			t.Errorf("state of a container crun created touched: %v", err)
		}
	}
	// Anything else than the fifo: left for someone who knows what it is.
	if _, err := os.Stat(filepath.Join(other, "unknown")); err != nil {
		t.Errorf("unknown file removed: %v", err)
	}
}
