package sidecar_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cronium/cronium-agent/sidecar"
)

func TestLoadOrCreateSecretCreates(t *testing.T) {
	old := syscall.Umask(0) // the file must be 0600 whatever the umask
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "missing", "dir")
	path := filepath.Join(dir, "runtime.key")
	secret, err := sidecar.LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != sidecar.SecretSize || bytes.Equal(secret, make([]byte, sidecar.SecretSize)) {
		t.Fatalf("secret %x", secret)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o600 {
		t.Fatalf("mode %v, want -rw-------", fi.Mode())
	}
	onDisk, _ := os.ReadFile(path)
	if !bytes.Equal(onDisk, secret) {
		t.Fatal("returned secret differs from the file")
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v", di.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("leftovers in %s: %v", dir, entries)
	}
	again, err := sidecar.LoadOrCreateSecret(path)
	if err != nil || !bytes.Equal(again, secret) {
		t.Fatalf("reuse: %x, %v", again, err)
	}
}

func TestLoadOrCreateSecretConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "runtime.key")
	secrets := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range secrets {
		wg.Go(func() {
			s, err := sidecar.LoadOrCreateSecret(path)
			if err != nil {
				t.Error(err)
			}
			secrets[i] = s
		})
	}
	wg.Wait()
	for _, s := range secrets[1:] {
		if !bytes.Equal(s, secrets[0]) {
			t.Fatal("concurrent callers got different secrets")
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("leftovers: %v", entries)
	}
}

func TestLoadOrCreateSecretRefuses(t *testing.T) {
	good := bytes.Repeat([]byte{7}, sidecar.SecretSize)
	tests := []struct {
		name    string
		setup   func(t *testing.T, path string)
		wantErr string // "" means accepted
	}{
		{"0600", writeSecret(good, 0o600), ""},
		{"0400 is stricter", writeSecret(good, 0o400), ""},
		{"0644", writeSecret(good, 0o644), "more open than 0600"},
		{"0640", writeSecret(good, 0o640), "more open than 0600"},
		{"0604", writeSecret(good, 0o604), "more open than 0600"},
		{"0700", writeSecret(good, 0o700), "more open than 0600"},
		{"31 bytes", writeSecret(good[:31], 0o600), "has 31 bytes, want 32"},
		{"33 bytes", writeSecret(append(good, 1), 0o600), "has 33 bytes, want 32"},
		{"empty", writeSecret(nil, 0o600), "has 0 bytes, want 32"},
		{"symlink", func(t *testing.T, path string) {
			target := path + ".real"
			writeSecret(good, 0o600)(t, target)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, "symbolic link"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"owned by someone else", func(t *testing.T, path string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to chown")
			}
			writeSecret(good, 0o600)(t, path)
			if err := os.Chown(path, 12345, 12345); err != nil {
				t.Fatal(err)
			}
		}, "owned by uid 12345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "runtime.key")
			tt.setup(t, path)
			secret, err := sidecar.LoadOrCreateSecret(path)
			if tt.wantErr == "" {
				if err != nil || !bytes.Equal(secret, good) {
					t.Fatalf("got %x, %v; want the file's secret", secret, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if secret != nil {
				t.Fatal("a secret returned with an error")
			}
		})
	}
}

func writeSecret(b []byte, mode os.FileMode) func(*testing.T, string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
}
