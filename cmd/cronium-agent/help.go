package main

import (
	"flag"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/config"
)

// helpPage is the manual page `cronium-agent COMMAND --help` prints, as
// internal/command renders it. Its OPTIONS are read from the command's flag
// set when the page is printed, and the defaults of configuration keys
// (ENVIRONMENT) from config.Default(), so that the page says what the
// command really does.
type helpPage struct {
	summary     string   // NAME, after "cronium-agent COMMAND - "
	synopsis    []string // SYNOPSIS lines, after "cronium-agent "
	description string   // DESCRIPTION, paragraphs blank lines apart
	sections    []helpSection
	env         []helpEnv
	files       []helpItem
	exit        []helpItem
	examples    []string
	seeAlso     []string
}

// helpSection is a section of items after DESCRIPTION: COMMANDS, CHECKS.
type helpSection struct {
	title string
	width int // of the terms' column
	items []helpItem
	// gen, when set, makes the items when the page is printed, from what
	// the command really runs (doctor's checks).
	gen func() []helpItem
}

// helpItem is a term and what it means: an exit code, a file, a command.
type helpItem command.HelpItem

// helpEnv is a variable of ENVIRONMENT: a configuration key (its variable
// and default come from internal/config), or another variable by name.
type helpEnv struct {
	key  string // "state.dir"
	name string // a variable that sets no configuration key
	text string
}

// helpFlags adds -h and --help to fs.
func helpFlags(fs *flag.FlagSet) *bool { return command.HelpFlags(fs) }

// printHelp prints the page of the command fs is named after ("exec",
// "ssh trust") on stderr, where the usage goes, and returns the exit of a
// successful --help. fs nil is a command without flags of its own.
func printHelp(env *cliEnv, name string, fs *flag.FlagSet) error {
	var page *command.HelpPage
	if p, ok := helpPages[name]; ok {
		page = p.page()
	}
	return command.PrintHelp(env.stderr, "cronium-agent", name, page, fs)
}

// page is p as internal/command renders it: the sections' items made, the
// configuration keys' variables described.
func (p helpPage) page() *command.HelpPage {
	sections := make([]command.HelpSection, 0, len(p.sections))
	for _, s := range p.sections {
		items := s.items
		if s.gen != nil {
			items = s.gen()
		}
		sections = append(sections, command.HelpSection{Title: s.title, Width: s.width, Items: helpItems(items)})
	}
	return &command.HelpPage{
		Summary:     p.summary,
		Synopsis:    p.synopsis,
		Description: p.description,
		Sections:    sections,
		Env:         envItems(p.env),
		Files:       helpItems(p.files),
		Exit:        helpItems(p.exit),
		Examples:    p.examples,
		SeeAlso:     p.seeAlso,
	}
}

func helpItems(items []helpItem) []command.HelpItem {
	out := make([]command.HelpItem, len(items))
	for i, it := range items {
		out[i] = command.HelpItem(it)
	}
	return out
}

// envItems gives each variable its text, and a configuration key's
// variable the key, its default and the older name read for it.
func envItems(env []helpEnv) []command.HelpItem {
	aliases := config.Aliases()
	items := make([]command.HelpItem, 0, len(env))
	for _, e := range env {
		if e.key == "" {
			items = append(items, command.HelpItem{Term: e.name, Text: e.text})
			continue
		}
		name := config.EnvName(strings.Split(e.key, ".")...)
		def, ok := configDefault(e.key)
		if !ok {
			// Caught by TestHelpEnvironmentKeys.
			items = append(items, command.HelpItem{Term: name, Text: e.text + " (" + e.key + ": no such configuration key)"})
			continue
		}
		about := fmt.Sprintf("%s (%s; default %s", e.text, e.key, def)
		var old []string
		for alias, to := range aliases {
			if to == name {
				old = append(old, alias)
			}
		}
		sort.Strings(old)
		if len(old) > 0 {
			about += "; also read as " + strings.Join(old, ", ")
		}
		items = append(items, command.HelpItem{Term: name, Text: about + ")"})
	}
	return items
}

// configDefault returns the default of a configuration key ("jobs.killGrace")
// as the configuration reference writes it, following the yaml names of
// config.Config's fields.
func configDefault(key string) (string, bool) {
	v := reflect.ValueOf(config.Default())
	for part := range strings.SplitSeq(key, ".") {
		if v.Kind() != reflect.Struct {
			return "", false
		}
		i := fieldIndex(v.Type(), part)
		if i < 0 {
			return "", false
		}
		v = v.Field(i)
	}
	if v.Kind() == reflect.Struct {
		return "", false // a section, not a key
	}
	var s string
	switch x := v.Interface().(type) {
	case fmt.Stringer:
		s = x.String()
	case []string:
		s = strings.Join(x, ",")
	default:
		s = fmt.Sprint(x)
	}
	if s == "" {
		return "none", true
	}
	return s, true
}

// fieldIndex returns the index of t's field whose yaml name is name, or -1.
func fieldIndex(t reflect.Type, name string) int {
	for i := range t.NumField() {
		if yamlName, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); yamlName == name {
			return i
		}
	}
	return -1
}
