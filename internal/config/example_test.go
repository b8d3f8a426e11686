package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// golden compares a generated file with its copy in the repository, or
// writes the copy when UPDATE_GOLDEN=1.
func golden(t *testing.T, path string, generate func() ([]byte, error)) {
	t.Helper()
	want, err := generate()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date: run UPDATE_GOLDEN=1 go test ./internal/config/", path)
	}
}

// The configuration reference is generated from the schema.
func TestReferenceIsCurrent(t *testing.T) {
	golden(t, filepath.Join("..", "..", "docs", "configuration.md"), Reference)
}

// The shipped example must be the defaults, and must load back to them.
func TestPackagedExampleIsCurrent(t *testing.T) {
	path := filepath.Join("..", "..", "packaging", "agent.yaml")
	golden(t, path, Example)
	loaded, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := Default(); loaded.Containerd != d.Containerd || loaded.Resources != d.Resources || loaded.Jobs != d.Jobs || loaded.UserNS != d.UserNS || loaded.Runtimes != d.Runtimes || loaded.SSH != d.SSH {
		t.Errorf("example loads to %+v, want the defaults", loaded)
	}
}
