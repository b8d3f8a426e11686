package repocheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	for _, tc := range []struct {
		file, content string
		want          int
	}{
		// Split so that a plain grep for the planning tree does not flag this table.
		{"README.md", "see [design](../" + "shared/DESIGN.md)", 2},
		{"docs/a.md", "see [config](../packaging/agent.yaml) and [b](b.md)", 0},
		{"docs/a.md", "see [x](../../elsewhere/x.md)", 1},
		{"backend/x_test.go", `filepath.Join("..", "..", "shared", "contract")`, 2},
		{"cmd/cronium-agent/x_test.go", `filepath.Join("..", "..", "packaging", "agent.yaml")`, 0},
		{"cmd/cronium-agent/x_test.go", `filepath.Join("..", "..", "..", "x")`, 1},
		{"hack/x.sh", `cd "$(dirname "$0")/.."`, 0},
		{"hack/x.sh", `cp ../../other/thing .`, 1},
		{"go.mod", "replace example.com/x => ../x", 1},
		{"x.go", "// contract: shared/contract/runtime-api.md", 1},
		{"x.go", "os.ReadFile(\"/work/shared/contract/fixtures/a.json\")", 1},
		{"x.go", "a/../b/../c", 0},
		{"bin.dat", "../" + "shared\x00", 0},
	} {
		got := Scan(tc.file, []byte(tc.content))
		if len(got) != tc.want {
			t.Errorf("Scan(%s, %q) = %v, want %d findings", tc.file, tc.content, got, tc.want)
		}
	}
}

// trackedFiles lists the repository's files as git sees them (tracked, or
// new and not ignored), relative to the root.
func trackedFiles(t *testing.T) (root string, names []string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	list, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files in %s: %v (the check needs the git checkout)", root, err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		if _, err := os.Stat(filepath.Join(root, name)); err == nil {
			names = append(names, name) // not deleted in the working tree
		}
	}
	return root, names
}

// TestRepositoryStandsAlone scans every tracked file (make test runs it in
// CI): a reference outside the repository breaks a clone of it alone.
func TestRepositoryStandsAlone(t *testing.T) {
	root, names := trackedFiles(t)
	var n int
	for _, name := range names {
		// This package's own patterns and examples name what they look for.
		if strings.HasPrefix(name, "internal/repocheck/") {
			continue
		}
		content, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, f := range Scan(name, content) {
			t.Errorf("%s", f)
		}
	}
	if n < 50 {
		t.Fatalf("scanned only %d files under %s", n, root)
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// Every relative link of the Markdown pages names a file or folder of the
// repository, so the README and docs/ read whole in a clone.
func TestMarkdownLinksResolve(t *testing.T) {
	root, names := trackedFiles(t)
	for _, name := range names {
		if !strings.HasSuffix(name, ".md") {
			continue
		}
		content, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(content), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			p := filepath.Join(root, filepath.Dir(name), target)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s links to %s, which is not in the repository", name, m[1])
			}
		}
	}
}
