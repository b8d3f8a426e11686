package command

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

// helpTestFlags is a flag set of every kind a page lists: with and without
// a default worth printing, a quoted placeholder, one letter, and a name too
// wide for the OPTIONS column.
func helpTestFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	HelpFlags(fs)
	fs.String("config", "/etc/x.yaml", "read the configuration from `FILE`")
	fs.Int("limit", 20, "list at most N jobs")
	fs.Int("pids", 0, "the most processes")
	fs.Bool("json", false, "print JSON")
	fs.Bool("f", false, "follow")
	fs.Duration("timeout", 0, "stop the job after this long")
	fs.Duration("wait", 5*time.Second, "wait this long")
	fs.String("name", "", "the job's name")
	fs.Var(EnvFlag{}, "env", "set `KEY=VALUE` in the job's environment; repeatable")
	return fs
}

func TestHelpPageRender(t *testing.T) {
	for _, tc := range []struct {
		name string
		page HelpPage
		fs   *flag.FlagSet
		want string
	}{{
		name: "minimal",
		page: HelpPage{Summary: "s", Synopsis: []string{"x"}, Description: "d", Exit: []HelpItem{{"0", "ok"}}},
		want: `NAME
    prog sub - s

SYNOPSIS
    prog x

DESCRIPTION
    d

OPTIONS
    -h, --help       print this help

EXIT STATUS
    0    ok

EXAMPLES

SEE ALSO

`,
	}, {
		// Lines fill to 79 columns: NAME's continue indented further,
		// SYNOPSIS's under the first argument without breaking a bracketed
		// group, SEE ALSO's without breaking an item; a paragraph with an
		// indented line keeps its lines; a term wider than its column has
		// a line of its own; a newline in a text starts a line; EXAMPLES
		// are never broken.
		name: "full",
		page: HelpPage{
			Summary:     "do a thing to the jobs, with a summary long enough to wrap onto a second line of its own",
			Synopsis:    []string{"sub [--config FILE] [--limit N] [--json] [--env KEY=VALUE]... [--timeout DURATION] [--wait DURATION] JOB", "sub --help"},
			Description: "\nsub does a thing. This paragraph is long enough that it has to be filled to the width of the page, seventy-nine columns, and no more.\n\nA list keeps its lines:\n\n  one   the first\n  two   the second\n",
			Sections:    []HelpSection{{Title: "COMMANDS", Width: 5, Items: []HelpItem{{"add", "add a job"}, {"remove", "remove a job: a term wider than its column has a line of its own"}}}},
			Env:         []HelpItem{{"PROG_TOKEN", "the token"}},
			Files:       []HelpItem{{"/etc/x.yaml", "the configuration file"}},
			Exit:        []HelpItem{{"0", "success"}, {"2", "bad arguments\nor a second line"}},
			Examples:    []string{"prog sub --json job_1 | jq '.a_very_long_filter_expression_that_goes_past_the_page_width.and_more'"},
			SeeAlso:     []string{"prog other --help", "prog another --help", "docs/operations.md (A section, Another section)", "docs/configuration.md"},
		},
		fs: helpTestFlags(),
		want: `NAME
    prog sub - do a thing to the jobs, with a summary long enough to wrap onto
        a second line of its own

SYNOPSIS
    prog sub [--config FILE] [--limit N] [--json] [--env KEY=VALUE]...
             [--timeout DURATION] [--wait DURATION] JOB
    prog sub --help

DESCRIPTION
    sub does a thing. This paragraph is long enough that it has to be filled to
    the width of the page, seventy-nine columns, and no more.

    A list keeps its lines:

      one   the first
      two   the second

COMMANDS
    add   add a job
    remove
          remove a job: a term wider than its column has a line of its own

OPTIONS
    --config FILE    read the configuration from FILE (default /etc/x.yaml)
    --env KEY=VALUE  set KEY=VALUE in the job's environment; repeatable
    -f               follow
    --json           print JSON
    --limit N        list at most N jobs (default 20)
    --name VALUE     the job's name
    --pids N         the most processes
    --timeout DURATION
                     stop the job after this long
    --wait DURATION  wait this long (default 5s)
    -h, --help       print this help

ENVIRONMENT
    PROG_TOKEN
        the token

FILES
    /etc/x.yaml
        the configuration file

EXIT STATUS
    0    success
    2    bad arguments
         or a second line

EXAMPLES
    prog sub --json job_1 | jq '.a_very_long_filter_expression_that_goes_past_the_page_width.and_more'

SEE ALSO
    prog other --help, prog another --help,
    docs/operations.md (A section, Another section), docs/configuration.md
`,
	}, {
		// Sections come in the page's order, between DESCRIPTION and
		// OPTIONS, each with its column's width; one without items keeps
		// its heading.
		name: "sections",
		page: HelpPage{
			Summary:     "check",
			Synopsis:    []string{"sub"},
			Description: "checks.",
			Sections: []HelpSection{
				{Title: "CHECKS", Width: 12, Items: []HelpItem{{"containerd", "containerd answers"}, {"cgroups", "cgroup v2 is mounted"}}},
				{Title: "COMMANDS", Width: 7},
			},
			Exit:     []HelpItem{{"0", "no check failed"}},
			Examples: []string{"prog sub"},
			SeeAlso:  []string{"docs/operations.md"},
		},
		want: `NAME
    prog sub - check

SYNOPSIS
    prog sub

DESCRIPTION
    checks.

CHECKS
    containerd   containerd answers
    cgroups      cgroup v2 is mounted

COMMANDS

OPTIONS
    -h, --help       print this help

EXIT STATUS
    0    no check failed

EXAMPLES
    prog sub

SEE ALSO
    docs/operations.md
`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.page.Render("prog", "sub", tc.fs)
			if got != tc.want {
				t.Errorf("Render:\n%s\nwant:\n%s", got, tc.want)
			}
			var b strings.Builder
			if err := tc.page.Write(&b, "prog", "sub", tc.fs); err != nil || b.String() != got {
				t.Errorf("Write: %v, %q; want Render's", err, b.String())
			}
			section := ""
			for line := range strings.SplitSeq(got, "\n") {
				if line != "" && line[0] != ' ' {
					section = line
				}
				if section != "EXAMPLES" && len(line) > helpLineWidth {
					t.Errorf("line wider than %d columns in %s: %q", helpLineWidth, section, line)
				}
			}
		})
	}
}

func TestHelpOptionItems(t *testing.T) {
	got := OptionItems(helpTestFlags())
	want := []HelpItem{
		{"--config FILE", "read the configuration from FILE (default /etc/x.yaml)"},
		{"--env KEY=VALUE", "set KEY=VALUE in the job's environment; repeatable"},
		{"-f", "follow"},
		{"--json", "print JSON"},
		{"--limit N", "list at most N jobs (default 20)"},
		{"--name VALUE", "the job's name"},
		{"--pids N", "the most processes"},
		{"--timeout DURATION", "stop the job after this long"},
		{"--wait DURATION", "wait this long (default 5s)"},
		{"-h, --help", "print this help"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("OptionItems:\n%q\nwant:\n%q", got, want)
	}
	if got := OptionItems(nil); !slices.Equal(got, []HelpItem{{"-h, --help", "print this help"}}) {
		t.Errorf("OptionItems(nil) = %q", got)
	}
}

func TestPrintHelp(t *testing.T) {
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	fs.Bool("json", false, "print JSON")
	page := &HelpPage{Summary: "s", Synopsis: []string{"sub"}, Description: "d"}
	for _, tc := range []struct {
		name string
		page *HelpPage
		want string
	}{
		{"page", page, page.Render("prog", "sub", fs)},
		// A command without a page still gets its flags.
		{"no page", nil, "usage of prog sub:\n  -json\n    \tprint JSON\n"},
	} {
		var b strings.Builder
		err := PrintHelp(&b, "prog", "sub", tc.page, fs)
		if ee := (*ExitError)(nil); !errors.As(err, &ee) || ee.Code != 0 || ee.Err != nil {
			t.Errorf("%s: PrintHelp = %v, want the exit of a successful --help", tc.name, err)
		}
		if b.String() != tc.want {
			t.Errorf("%s: printed %q, want %q", tc.name, b.String(), tc.want)
		}
	}
}
