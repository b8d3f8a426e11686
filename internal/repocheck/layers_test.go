package repocheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayers keeps the package graph as docs/architecture.md draws it:
// what each package must never depend on, directly or not (tests aside).
func TestLayers(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go tool is needed to list dependencies: %v", err)
	}
	const mod = "github.com/cronium/cronium-agent/"
	for _, tc := range []struct {
		pkgs   string
		forbid []string
		why    string
	}{
		{"./state/...", []string{mod + "backend", mod + "runner", mod + "backend/devserver"},
			"the journal and its delivery know the wire types (backend/api), never the HTTP client"},
		{"./backend/api", []string{"net/http"}, "wire types and decoding carry no transport"},
		{"./runner/...", []string{mod + "internal/config", mod + "backend/devserver"},
			"the runner takes options; the configuration file's schema is translated in cmd"},
	} {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", tc.pkgs)
		cmd.Dir = filepath.Join("..", "..") // the module's root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tc.pkgs, err, out)
		}
		deps := map[string]bool{}
		for _, p := range strings.Fields(string(out)) {
			deps[p] = true
		}
		for _, f := range tc.forbid {
			if deps[f] {
				t.Errorf("%s depends on %s: %s", tc.pkgs, f, tc.why)
			}
		}
	}
}

// TestEveryPackageDocumented: the package table of docs/architecture.md
// has a row for every package, so a newcomer finds what each one owns.
func TestEveryPackageDocumented(t *testing.T) {
	root := filepath.Join("..", "..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}", "./...")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(p, "github.com/cronium/cronium-agent/")
		if !strings.Contains(string(doc), "\n| `"+rel+"` | ") {
			t.Errorf("docs/architecture.md has no row for package %s in its package table", rel)
		}
	}
}
