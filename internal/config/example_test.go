package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The shipped example must be the defaults, and must load back to them.
func TestPackagedExampleIsCurrent(t *testing.T) {
	want, err := Example()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "packaging", "agent.yaml")
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
	loaded, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := Default(); loaded.Containerd != d.Containerd || loaded.Resources != d.Resources || loaded.Jobs != d.Jobs || loaded.UserNS != d.UserNS || loaded.Runtimes != d.Runtimes {
		t.Errorf("example loads to %+v, want the defaults", loaded)
	}
}
