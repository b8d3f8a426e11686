package doctor

import (
	"context"
	"errors"
	"os/exec"
	"strings"

	"github.com/cronium/cronium-agent/internal/jobprog"
)

// jobProgram: cronium-job is every job's init, helper program and output
// logger. Without it the agent uses its own binary, which works but costs
// more CPU per job; one that is there but cannot run would break every job.
func (d *doctor) jobProgram(ctx context.Context) Result {
	path, found, err := d.findJobProgram()
	if err != nil {
		return fail("", "%v", err)
	}
	if !found {
		return warn("install the cronium-agent package again, or `make build` (bin/cronium-job beside bin/cronium-agent)",
			"no %s beside the agent or in %s: jobs run the agent binary %s as their init, helper program and output logger instead (slower to start)",
			jobprog.Name, jobprog.LibexecDir, path)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	// Without a role it prints what it is for and exits 2: that it runs
	// at all (its architecture, a whole file) is what is checked.
	out, err := exec.CommandContext(ctx, path).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 2 && strings.HasPrefix(string(out), jobprog.Name+":")) {
		return fail("install the cronium-agent package again (or `make build`)", "%s does not run: %v: %s", path, err, firstLine(string(out)))
	}
	return pass("%s", path)
}

// withJobProgram replaces the search for cronium-job (tests).
func withJobProgram(find func() (string, bool, error)) Option {
	return func(d *doctor) { d.findJobProgram = find }
}
