package command

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// HelpPage is the manual page `PROGRAM COMMAND --help` prints, as both
// binaries lay it out: NAME, SYNOPSIS, DESCRIPTION, its Sections, OPTIONS,
// then ENVIRONMENT and FILES when it has them, EXIT STATUS, EXAMPLES and
// SEE ALSO. It holds no OPTIONS: those are read from the command's flag set
// when the page is written, so that the page lists exactly the flags the
// command parses, with their defaults.
type HelpPage struct {
	Summary     string   // NAME, after "PROGRAM COMMAND - "
	Synopsis    []string // SYNOPSIS lines, after "PROGRAM "
	Description string   // DESCRIPTION, paragraphs blank lines apart
	Sections    []HelpSection
	Env         []HelpItem
	Files       []HelpItem
	Exit        []HelpItem
	Examples    []string
	SeeAlso     []string
}

// HelpSection is a section of items after DESCRIPTION: COMMANDS, CHECKS.
type HelpSection struct {
	Title string
	Width int // of the terms' column
	Items []HelpItem
}

// HelpItem is a term and what it means: an option, an exit code, a
// variable, a file, a command.
type HelpItem struct{ Term, Text string }

// Column widths of the item lists; the widths are cronium-agent doctor's
// page's, which its users have read since before the other pages.
const (
	helpIndent    = 4
	optionWidth   = 16
	exitWidth     = 4
	helpLineWidth = 79
	// envWidth fits no variable's name: each has its line, its text under
	// it, as man(7) lays out such lists.
	envWidth = 3
)

// HelpFlags adds -h and --help to fs. They are the command's flags rather
// than the flag package's ErrHelp, so that a command prints its page and
// not only its flags.
func HelpFlags(fs *flag.FlagSet) *bool {
	help := fs.Bool("help", false, "print this help")
	fs.BoolVar(help, "h", false, "print this help")
	return help
}

// PrintHelp prints page, the page of command name ("exec", "servers add")
// of program prog, on w (stderr, where the usage goes), and returns the
// exit of a successful --help. fs nil is a command without flags of its
// own. A command without a page (page nil; the binaries' tests of their
// pages prevent it) still gets its flags.
func PrintHelp(w io.Writer, prog, name string, page *HelpPage, fs *flag.FlagSet) error {
	if page == nil {
		fmt.Fprintf(w, "usage of %s %s:\n", prog, name)
		if fs != nil {
			fs.SetOutput(w)
			fs.PrintDefaults()
		}
		return &ExitError{Code: 0}
	}
	page.Write(w, prog, name, fs)
	return &ExitError{Code: 0}
}

// Write writes the page of command name of program prog, with the flags of
// fs (nil: none but -h and --help) as its OPTIONS.
func (p HelpPage) Write(w io.Writer, prog, name string, fs *flag.FlagSet) error {
	_, err := io.WriteString(w, p.Render(prog, name, fs))
	return err
}

// Render returns the page Write writes.
func (p HelpPage) Render(prog, name string, fs *flag.FlagSet) string {
	var b strings.Builder
	heading := func(title string) {
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(title + "\n")
	}
	heading("NAME")
	wrap(&b, prog+" "+name+" - "+p.Summary, helpIndent, 2*helpIndent)
	heading("SYNOPSIS")
	for _, s := range p.Synopsis {
		// Continued lines start under the first argument, as in man(1).
		writeSynopsis(&b, prog+" "+s, helpIndent+len(prog+" "+name+" "))
	}
	heading("DESCRIPTION")
	writeParagraphs(&b, p.Description)
	for _, s := range p.Sections {
		heading(s.Title)
		writeItems(&b, s.Items, s.Width)
	}
	heading("OPTIONS")
	writeItems(&b, OptionItems(fs), optionWidth)
	if len(p.Env) > 0 {
		heading("ENVIRONMENT")
		writeItems(&b, p.Env, envWidth)
	}
	if len(p.Files) > 0 {
		heading("FILES")
		writeItems(&b, p.Files, envWidth)
	}
	heading("EXIT STATUS")
	writeItems(&b, p.Exit, exitWidth)
	heading("EXAMPLES")
	for _, e := range p.Examples {
		fmt.Fprintf(&b, "%*s%s\n", helpIndent, "", e)
	}
	heading("SEE ALSO")
	writeList(&b, p.SeeAlso)
	return b.String()
}

// OptionItems lists fs's flags in the flag package's order (sorted), -h
// and --help last: one-letter flags with one dash, the others with two, and
// the default when it is worth printing. fs nil has only -h and --help.
func OptionItems(fs *flag.FlagSet) []HelpItem {
	var items []HelpItem
	if fs != nil {
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "h" || f.Name == "help" {
				return
			}
			arg, usage := flag.UnquoteUsage(f)
			term := dashed(f.Name)
			if arg != "" {
				term += " " + placeholder(arg)
			}
			if !zeroDefault(f.DefValue) {
				usage += " (default " + f.DefValue + ")"
			}
			items = append(items, HelpItem{term, usage})
		})
	}
	return append(items, HelpItem{"-h, --help", "print this help"})
}

func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// placeholder names a flag's value: the word its usage quotes (`FILE`), or
// else its type's, which flag.UnquoteUsage gives in lower case.
func placeholder(arg string) string {
	switch arg {
	case "int", "uint", "float":
		return "N"
	case "string", "value":
		return "VALUE"
	}
	return strings.ToUpper(arg)
}

// zeroDefault reports a default not worth printing, as the flag package's
// own usage leaves it out: a zero value means "unset", and the usage says
// what applies then.
func zeroDefault(v string) bool {
	return v == "" || v == "0" || v == "false" || v == "0s"
}

// writeItems writes items as a two-column list: the term at the indent,
// the text beside it (under it when the term is wider than width),
// wrapped to the page's width. A newline in a text starts a new line.
func writeItems(b *strings.Builder, items []HelpItem, width int) {
	hang := helpIndent + width + 1
	for _, it := range items {
		first := hang
		if len(it.Term) > width {
			fmt.Fprintf(b, "%*s%s\n", helpIndent, "", it.Term)
		} else {
			fmt.Fprintf(b, "%*s%-*s ", helpIndent, "", width, it.Term)
			first = 0 // the line is started
		}
		for i, line := range strings.Split(it.Text, "\n") {
			if i > 0 {
				first = hang
			}
			wrap(b, line, first, hang)
		}
	}
}

// wrap writes text as lines of at most helpLineWidth columns, the first
// after first spaces (0: the line is already started, at hang), the others
// after hang.
func wrap(b *strings.Builder, text string, first, hang int) {
	fill(b, strings.Fields(text), first, hang)
}

// writeList writes items separated by commas, filling lines to the page's
// width without breaking an item ("cronium-agent gc --help") across two.
func writeList(b *strings.Builder, items []string) {
	units := slices.Clone(items)
	for i := range len(units) - 1 {
		units[i] += ","
	}
	fill(b, units, helpIndent, helpIndent)
}

// writeSynopsis writes a synopsis line filled to the page's width and
// continued under the first argument, as man(1) does, without breaking a
// bracketed group ("[--env KEY=VALUE]...").
func writeSynopsis(b *strings.Builder, line string, hang int) {
	var units []string
	depth := 0
	for _, w := range strings.Fields(line) {
		if depth > 0 {
			units[len(units)-1] += " " + w
		} else {
			units = append(units, w)
		}
		depth += strings.Count(w, "[") + strings.Count(w, "(") - strings.Count(w, "]") - strings.Count(w, ")")
	}
	fill(b, units, helpIndent, hang)
}

// fill writes units, a space apart, as lines of at most helpLineWidth
// columns (a longer unit has a line of its own): the first line after
// first spaces (0: the line is already started, at hang), the others after
// hang.
func fill(b *strings.Builder, units []string, first, hang int) {
	if len(units) == 0 {
		b.WriteByte('\n')
		return
	}
	col := first
	if first == 0 {
		col = hang
	}
	b.WriteString(strings.Repeat(" ", first))
	for i, u := range units {
		if i > 0 {
			if col+1+len(u) > helpLineWidth {
				b.WriteString("\n" + strings.Repeat(" ", hang))
				col = hang
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(u)
		col += len(u)
	}
	b.WriteByte('\n')
}

// writeParagraphs writes text at the page's indent. Paragraphs (blank
// lines apart) are filled to the page's width, but for those with an
// indented line, lists and commands, which keep their lines.
func writeParagraphs(b *strings.Builder, text string) {
	for i, para := range strings.Split(strings.Trim(text, "\n"), "\n\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		if !strings.Contains("\n"+para, "\n ") {
			wrap(b, para, helpIndent, helpIndent)
			continue
		}
		for _, line := range strings.Split(para, "\n") {
			b.WriteString(strings.Repeat(" ", helpIndent) + line + "\n")
		}
	}
}
