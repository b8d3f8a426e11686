package ociruntime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestChoose(t *testing.T) {
	// Each host is a cgroup root: the files that tell its layout.
	v2 := map[string]string{"cgroup.controllers": "cpuset cpu io memory pids\n"}
	v1 := map[string]string{"cpu/tasks": ""}
	hybridEmpty := map[string]string{"cpu/tasks": "", "unified/cgroup.controllers": "\n"}
	hybridBusy := map[string]string{"cpu/tasks": "", "unified/cgroup.controllers": "hugetlb\n"}
	found := func(string) (string, error) { return "/usr/bin/crun", nil }
	missing := func(name string) (string, error) { return "", &exec.Error{Name: name, Err: exec.ErrNotFound} }
	for _, tc := range []struct {
		name     string
		want     string
		host     map[string]string
		lookPath func(string) (string, error)
		name2    string // the runtime chosen
		path     string
		errHas   string // an error saying this
		whyHas   string
	}{
		{"auto on cgroup v2", Auto, v2, found, Crun, "/usr/bin/crun", "", "suit"},
		{"empty is auto", "", v2, found, Crun, "/usr/bin/crun", "", ""},
		{"auto on cgroup v1", Auto, v1, found, Crun, "/usr/bin/crun", "", ""},
		{"auto on hybrid, v2 offers nothing", Auto, hybridEmpty, found, Crun, "/usr/bin/crun", "", ""},
		{"auto on hybrid, v2 offers hugetlb", Auto, hybridBusy, found, Runc, "", "", "hybrid cgroup host whose v2 hierarchy"},
		{"auto without crun", Auto, v2, missing, Runc, "", "", "executable file not found"},
		{"crun asked for", Crun, v2, found, Crun, "/usr/bin/crun", "", "configured"},
		{"crun asked for, not installed", Crun, v2, missing, "", "", "OCI runtime crun: exec: \"crun\"", ""},
		{"crun asked for on a hybrid host", Crun, hybridBusy, found, "", "", "offers controllers (hugetlb)", ""},
		{"runc asked for", Runc, v2, found, Runc, "", "", "configured"},
		{"unknown", "kata", v2, found, "", "", `OCI runtime "kata": want auto, runc or crun`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, data := range tc.host {
				p := filepath.Join(root, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			c, err := Choose(tc.want, root, tc.lookPath)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Choose: %v, %v; want an error saying %q", c, err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Name != tc.name2 || c.Path != tc.path || !strings.Contains(c.Why, tc.whyHas) {
				t.Errorf("Choose = %+v; want %s at %q, why saying %q", c, tc.name2, tc.path, tc.whyHas)
			}
		})
	}
}

// A cgroup root that cannot be read is not taken for one crun can use.
func TestChooseUnreadableHost(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "unified", "cgroup.controllers"), 0o755); err != nil {
		t.Fatal(err) // a directory where a file is expected: reading it fails
	}
	c, err := Choose(Auto, root, func(string) (string, error) { return "/usr/bin/crun", nil })
	if err != nil || c.Name != Runc || !strings.Contains(c.Why, "read cgroup v2 controllers") {
		t.Errorf("Choose = %+v, %v; want runc, saying why", c, err)
	}
}
