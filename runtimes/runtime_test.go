package runtimes

import (
	"slices"
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		in, name string
		args     []string
	}{
		{"BASH", "bash", []string{"bash", "/cronium/script.sh"}},
		{"PYTHON", "python", []string{"python3", "-u", "/cronium/script.py"}},
		{"NODEJS", "node", []string{"node", "/cronium/script.js"}},
		{"Node", "node", []string{"node", "/cronium/script.js"}},
		{" python3 ", "python", []string{"python3", "-u", "/cronium/script.py"}},
	} {
		rt, err := Lookup(tc.in)
		if err != nil || rt.Name != tc.name || !slices.Equal(rt.Args(), tc.args) {
			t.Errorf("Lookup(%q) = %+v %v, args %v", tc.in, rt, err, rt.Args())
		}
	}
	for _, name := range Names() {
		if rt, err := Lookup(name); err != nil || rt.Name != name {
			t.Errorf("Names lists %q, which Lookup gives as %+v %v", name, rt, err)
		}
	}
	if _, err := Lookup("RUBY"); err == nil || !strings.Contains(err.Error(), `unknown runtime "RUBY" (supported: bash, node, python)`) {
		t.Errorf("RUBY: %v", err)
	}
}
