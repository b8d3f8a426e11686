// Package contracttest gives tests the backend contract's JSON fixtures:
// queue answers and an orphaned list exactly as the backends send them (the
// plan's and the deployed Cronium app's), kept in testdata/ so that a clone of
// this repository tests against them on its own. docs/backend-contract.md
// says what each one holds.
//
// The fixtures are copies of the contract's; TestFixturesMatchContract
// compares the two sets when CRONIUM_CONTRACT_FIXTURES names the contract's
// folder.
package contracttest

import (
	"embed"
	"io/fs"
	"path"
	"sort"
	"testing"
)

//go:embed testdata/*.json
var files embed.FS

// Fixture returns the named fixture (e.g. "queue-single-bash.json") and
// fails the test when there is none.
func Fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := files.ReadFile(path.Join("testdata", name))
	if err != nil {
		t.Fatalf("contract fixture %s: %v (see internal/contracttest)", name, err)
	}
	return b
}

// Names lists the fixtures, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, "testdata") // embedded: cannot fail
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}
