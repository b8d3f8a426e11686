package main

import "github.com/cronium/cronium-agent/internal/termsafe"

// rawUsage is the help of the --raw flag of the commands printing a job's
// output.
const rawUsage = "write the job's output byte for byte, even to a terminal (where control characters are otherwise escaped)"

// jobOutputEnv is env for printing what a job wrote: its stdout and stderr
// escape control characters when they are terminals (a job's escape
// sequences would act on the operator's terminal), unless raw. Files and
// pipes get the bytes exactly either way.
func jobOutputEnv(env *cliEnv, raw bool) *cliEnv {
	e := *env
	e.stdout, e.stderr = termsafe.Guard(env.stdout, raw), termsafe.Guard(env.stderr, raw)
	return &e
}
