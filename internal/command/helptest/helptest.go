// Package helptest reads the manual pages internal/command renders, for the
// binaries' tests of their pages: what every page must have, whatever its
// program.
package helptest

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Page is a printed page, cut into its sections.
type Page struct {
	Order    []string          // the headings, in the page's order
	Sections map[string]string // the lines under each heading
}

// Parse cuts a page at its headings: the lines that start at column 0.
func Parse(text string) Page {
	p := Page{Sections: map[string]string{}}
	title := ""
	for line := range strings.SplitSeq(text, "\n") {
		if line != "" && line[0] != ' ' {
			title = line
			p.Order = append(p.Order, title)
			continue
		}
		p.Sections[title] += line + "\n"
	}
	return p
}

var (
	optionRE   = regexp.MustCompile(`(?m)^    --?([a-z][a-z-]*)(?:, --([a-z][a-z-]*))?`)
	synopsisRE = regexp.MustCompile(`(?:^|[\s\[(|])--?([a-z][a-z-]*)`)
)

// Options are the flags OPTIONS lists, sorted.
func (p Page) Options() []string {
	var names []string
	for _, m := range optionRE.FindAllStringSubmatch(p.Sections["OPTIONS"], -1) {
		names = append(names, m[1])
		if m[2] != "" {
			names = append(names, m[2])
		}
	}
	sort.Strings(names)
	return names
}

// Check checks what every page of both binaries has: the sections, in
// order, the NAME of the command, OPTIONS listing exactly flags (and -h,
// --help), a SYNOPSIS naming only those (but for a group, a command of
// commands, whose synopsis shows its commands' flags), and lines that fit
// 79 columns (but for EXAMPLES, which are command lines to copy).
func Check(t testing.TB, text, name string, flags []string, group bool) Page {
	t.Helper()
	p := Parse(text)
	want := []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLES", "SEE ALSO"}
	var got []string
	for _, s := range p.Order {
		if slices.Contains(want, s) {
			got = append(got, s)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("sections %q, want %q in that order:\n%s", p.Order, want, text)
	}
	if !strings.HasPrefix(p.Sections["NAME"], "    "+name+" - ") {
		t.Errorf("NAME %q does not start with %q", p.Sections["NAME"], name+" - ")
	}
	for _, s := range want {
		if strings.TrimSpace(p.Sections[s]) == "" {
			t.Errorf("section %s is empty", s)
		}
	}
	wantFlags := append(slices.Clone(flags), "h", "help")
	sort.Strings(wantFlags)
	if opts := p.Options(); !slices.Equal(opts, wantFlags) {
		t.Errorf("OPTIONS lists %q, want the flag set's %q:\n%s", opts, wantFlags, p.Sections["OPTIONS"])
	}
	if !group {
		for _, m := range synopsisRE.FindAllStringSubmatch(p.Sections["SYNOPSIS"], -1) {
			if !slices.Contains(wantFlags, m[1]) {
				t.Errorf("SYNOPSIS names -%s, which the command does not parse:\n%s", m[1], p.Sections["SYNOPSIS"])
			}
		}
	}
	section := ""
	for line := range strings.SplitSeq(text, "\n") {
		if line != "" && line[0] != ' ' {
			section = line
		}
		if section != "EXAMPLES" && len(line) > 79 {
			t.Errorf("line wider than 79 columns in %s: %q", section, line)
		}
	}
	return p
}
