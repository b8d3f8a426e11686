package flock

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	holder, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	probe := func() bool {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return Held(f)
	}
	if probe() {
		t.Error("free file reported held")
	}
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if !probe() {
		t.Error("locked file reported free")
	}
	syscall.Flock(int(holder.Fd()), syscall.LOCK_UN)
	if probe() {
		t.Error("released file reported held (the probe kept the lock?)")
	}
}
