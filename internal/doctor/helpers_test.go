package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/internal/config"
)

// writeTree writes files (path relative to root: content) below root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runCheck runs the check called name of Checks(cfg, opts...).
func runCheck(t *testing.T, cfg config.Config, name string, opts ...Option) Result {
	t.Helper()
	for _, c := range Checks(cfg, opts...) {
		if c.Name == name {
			return c.Run(context.Background())
		}
	}
	t.Fatalf("no check called %q", name)
	return Result{}
}

// want is what a test expects of a result: its status, words its detail
// and fix must hold, and words its detail must not.
type want struct {
	status Status
	detail []string
	fix    []string
	absent []string
}

func (w want) check(t *testing.T, r Result) {
	t.Helper()
	t.Logf("%s %s | fix: %s", r.Status, r.Detail, r.Fix)
	if r.Status != w.status {
		t.Errorf("status %s, want %s (detail %q, fix %q)", r.Status, w.status, r.Detail, r.Fix)
	}
	for _, s := range w.detail {
		if !strings.Contains(r.Detail, s) {
			t.Errorf("detail %q does not say %q", r.Detail, s)
		}
	}
	for _, s := range w.absent {
		if strings.Contains(r.Detail, s) {
			t.Errorf("detail %q says %q", r.Detail, s)
		}
	}
	for _, s := range w.fix {
		if !strings.Contains(r.Fix, s) {
			t.Errorf("fix %q does not say %q", r.Fix, s)
		}
	}
	if r.Status != Pass && r.Fix == "" {
		t.Errorf("%s without a fix (detail %q)", r.Status, r.Detail)
	}
}

// searchableDir is a fresh directory that others may search, as is every
// directory above it (t.TempDir's parent is mode 0700, which the state
// directory check refuses, rightly).
func searchableDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "cronium-doctor-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
