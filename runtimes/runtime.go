// Package runtimes says what a script runtime is: the image it runs in and
// how a script is invoked there.
package runtimes

import (
	"fmt"
	"sort"
	"strings"
)

// Runtime is one way of running a script.
type Runtime struct {
	// Name is the canonical name used on the command line and in config.
	Name string
	// ScriptName is the file name the script gets inside the job; the
	// extension makes interpreters and tracebacks behave.
	ScriptName string
	// Interpreter runs the script file given as its last argument.
	Interpreter []string
}

// ScriptDir is where scripts are mounted inside a job.
const ScriptDir = "/cronium"

// Known runtimes, by canonical name.
var known = map[string]Runtime{
	"bash":   {Name: "bash", ScriptName: "script.sh", Interpreter: []string{"bash"}},
	"python": {Name: "python", ScriptName: "script.py", Interpreter: []string{"python3", "-u"}},
	"node":   {Name: "node", ScriptName: "script.js", Interpreter: []string{"node"}},
}

// aliases maps every accepted spelling (lower case) to a canonical name; the
// backend sends BASH, PYTHON, NODEJS and sometimes NODE.
var aliases = map[string]string{
	"bash": "bash", "sh": "bash",
	"python": "python", "python3": "python", "py": "python",
	"node": "node", "nodejs": "node", "javascript": "node", "js": "node",
}

// Lookup finds a runtime by any accepted name, in any letter case.
func Lookup(name string) (Runtime, error) {
	if canon, ok := aliases[strings.ToLower(strings.TrimSpace(name))]; ok {
		return known[canon], nil
	}
	return Runtime{}, fmt.Errorf("unknown runtime %q (supported: %s)", name, strings.Join(Names(), ", "))
}

// Names lists the canonical runtime names.
func Names() []string {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ScriptPath is where the script is found inside the job.
func (r Runtime) ScriptPath() string { return ScriptDir + "/" + r.ScriptName }

// Args is the command line that runs the script.
func (r Runtime) Args() []string {
	return append(append([]string(nil), r.Interpreter...), r.ScriptPath())
}
