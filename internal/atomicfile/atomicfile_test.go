package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "id")
	if err := Write(path, []byte("one\n"), 0o600, true); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("two\n"), 0o600, true); !errors.Is(err, fs.ErrExist) {
		t.Errorf("exclusive over an existing file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one\n" {
		t.Errorf("content %q after a refused exclusive write", b)
	}
	if err := Write(path, []byte("three\n"), 0o640, false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if b, _ := os.ReadFile(path); string(b) != "three\n" || err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("replaced: %q %v %v", b, fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".id-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
