// Package repocheck checks that the repository stands alone: no tracked file
// refers to a path outside it, so a clone builds, tests and reads the same
// as the working copy it came from.
package repocheck

import (
	"bytes"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// A Finding is one reference to a place outside the repository.
type Finding struct {
	File string // slash-separated, relative to the repository root
	Line int
	Text string // the reference as written
	Why  string
}

func (f Finding) String() string { return fmt.Sprintf("%s:%d: %s (%s)", f.File, f.Line, f.Text, f.Why) }

var (
	// The planning tree that sits beside the repository in the developers'
	// workspace, by its names: the repository must not lean on it.
	planning = regexp.MustCompile(`\.\./shared\b|\bshared/(contract|DESIGN\.md|hooks)\b|/work/(shared|main)\b|"shared"\s*,\s*"(contract|DESIGN\.md)"`)
	// A relative path that starts by climbing with ../ (Markdown links,
	// shell, YAML, go.mod); a/../b stays where it is.
	climb = regexp.MustCompile(`(?:^|[^\w./-])((?:\.\./)+[^\s"'` + "`" + `)\]>,;]*)`)
	// filepath.Join("..", "..", ...) and the like in Go.
	joinClimb = regexp.MustCompile(`(?:"\.\."\s*,\s*)+`)
)

// Scan reports the references in one file's content that leave the
// repository. name is the file's path relative to the root, slash-separated.
func Scan(name string, content []byte) []Finding {
	if bytes.IndexByte(content, 0) >= 0 {
		return nil // binary
	}
	dir := path.Dir(name)
	var out []Finding
	for i, line := range strings.Split(string(content), "\n") {
		add := func(text, why string) {
			out = append(out, Finding{File: name, Line: i + 1, Text: text, Why: why})
		}
		for _, m := range planning.FindAllString(line, -1) {
			add(m, "the developers' planning tree is not part of the repository")
		}
		for _, m := range climb.FindAllStringSubmatch(line, -1) {
			if escapes(dir, m[1]) {
				add(m[1], "climbs above the repository root")
			}
		}
		for _, m := range joinClimb.FindAllString(line, -1) {
			if escapes(dir, strings.Repeat("../", strings.Count(m, `".."`))) {
				add(strings.TrimSpace(m), "climbs above the repository root")
			}
		}
	}
	return out
}

// escapes tells whether rel, taken from dir (both relative to the root),
// leaves the root.
func escapes(dir, rel string) bool {
	p := path.Join(dir, rel)
	return p == ".." || strings.HasPrefix(p, "../")
}
