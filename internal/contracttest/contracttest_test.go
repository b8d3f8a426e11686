package contracttest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// EnvContractFixtures names the folder of the contract's own fixtures. It is
// set by whoever updates the contract, to check that these copies are whole
// and current; the repository's tests never read outside it otherwise.
const EnvContractFixtures = "CRONIUM_CONTRACT_FIXTURES"

func TestFixturesMatchContract(t *testing.T) {
	dir := os.Getenv(EnvContractFixtures)
	if dir == "" {
		t.Skip(EnvContractFixtures + " is not set: nothing to compare the copies with")
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("%s=%s holds no fixtures (err %v)", EnvContractFixtures, dir, err)
	}
	var theirs []string
	for _, p := range paths {
		name := filepath.Base(p)
		theirs = append(theirs, name)
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := files.ReadFile("testdata/" + name)
		if err != nil {
			t.Errorf("%s is missing here: copy it into internal/contracttest/testdata", name)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/%s differs from the contract's: copy it again", name)
		}
	}
	for _, n := range Names() {
		if !slices.Contains(theirs, n) {
			t.Errorf("testdata/%s is not in the contract's fixtures any more", n)
		}
	}
}

// Every fixture is JSON, so a broken copy fails here rather than deep in a
// decoder test.
func TestFixturesAreJSON(t *testing.T) {
	names := Names()
	if len(names) < 6 {
		t.Fatalf("only %d fixtures embedded: %v", len(names), names)
	}
	for _, n := range names {
		if !json.Valid(Fixture(t, n)) {
			t.Errorf("%s is not valid JSON", n)
		}
	}
}
