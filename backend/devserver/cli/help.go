package cli

import (
	"flag"
	"strings"

	"github.com/cronium/cronium-agent/internal/command"
)

// The manual pages of `PROGRAM COMMAND --help` are rendered by
// internal/command, as cronium-agent's are; the pages (helpPages) say
// "{prog}" for the program's name, which printHelp fills in.

// helpFlags adds -h and --help to fs.
func helpFlags(fs *flag.FlagSet) *bool { return command.HelpFlags(fs) }

// printHelp prints the page of command name ("submit", "servers add") on
// stderr, where the usage goes, and returns the exit of a successful
// --help. fs nil is a command without flags of its own.
func (s session) printHelp(name string, fs *flag.FlagSet) error {
	var page *command.HelpPage
	if p, ok := helpPages[name]; ok {
		page = forProgram(p, s.prog)
	}
	return command.PrintHelp(s.Stderr, s.prog, name, page, fs)
}

// forProgram returns p with "{prog}" replaced by prog in all its text.
func forProgram(p command.HelpPage, prog string) *command.HelpPage {
	r := strings.NewReplacer("{prog}", prog)
	sections := make([]command.HelpSection, len(p.Sections))
	for i, s := range p.Sections {
		sections[i] = command.HelpSection{Title: s.Title, Width: s.Width, Items: replaceItems(r, s.Items)}
	}
	return &command.HelpPage{
		Summary:     r.Replace(p.Summary),
		Synopsis:    replaceAll(r, p.Synopsis),
		Description: r.Replace(p.Description),
		Sections:    sections,
		Env:         replaceItems(r, p.Env),
		Files:       replaceItems(r, p.Files),
		Exit:        replaceItems(r, p.Exit),
		Examples:    replaceAll(r, p.Examples),
		SeeAlso:     replaceAll(r, p.SeeAlso),
	}
}

func replaceItems(r *strings.Replacer, items []command.HelpItem) []command.HelpItem {
	out := make([]command.HelpItem, len(items))
	for i, it := range items {
		out[i] = command.HelpItem{Term: r.Replace(it.Term), Text: r.Replace(it.Text)}
	}
	return out
}

func replaceAll(r *strings.Replacer, texts []string) []string {
	out := make([]string, len(texts))
	for i, s := range texts {
		out[i] = r.Replace(s)
	}
	return out
}
