// Package runtimes says what a script runtime is: the image it runs in and
// how a script is invoked there.
package runtimes

import (
	"fmt"
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

// canonical maps every accepted spelling (lower case) to a runtime; the
// backend sends BASH, PYTHON, NODEJS and sometimes NODE.
func canonical(name string) (Runtime, bool) {
	switch name {
	case "bash", "sh":
		return Runtime{Name: "bash", ScriptName: "script.sh", Interpreter: []string{"bash"}}, true
	case "python", "python3", "py":
		// -u: unbuffered, so output interleaves as the script wrote it.
		return Runtime{Name: "python", ScriptName: "script.py", Interpreter: []string{"python3", "-u"}}, true
	case "node", "nodejs", "javascript", "js":
		return Runtime{Name: "node", ScriptName: "script.js", Interpreter: []string{"node"}}, true
	}
	return Runtime{}, false
}

// Lookup finds a runtime by any accepted name, in any letter case.
func Lookup(name string) (Runtime, error) {
	if rt, ok := canonical(strings.ToLower(strings.TrimSpace(name))); ok {
		return rt, nil
	}
	return Runtime{}, fmt.Errorf("unknown runtime %q (supported: %s)", name, strings.Join(Names(), ", "))
}

// Names lists the canonical runtime names.
func Names() []string { return []string{"bash", "node", "python"} }

// ScriptPath is where the script is found inside the job.
func (r Runtime) ScriptPath() string { return ScriptDir + "/" + r.ScriptName }

// Args is the command line that runs the script.
func (r Runtime) Args() []string {
	return append(append([]string(nil), r.Interpreter...), r.ScriptPath())
}
