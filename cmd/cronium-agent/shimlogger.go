package main

import (
	"context"
	"fmt"

	"github.com/cronium/cronium-agent/runner/output"
)

// runShimLogger is started by containerd's shim with the job's stdout and
// stderr on fds 3 and 4; it must not depend on the agent in any way.
func runShimLogger(ctx context.Context, env *cliEnv, args []string) error {
	// The shim's argument is an absolute path or BUDGET:PATH, never a
	// flag: -h and --help can only be a person's.
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		return printHelp(env, "shim-logger", nil)
	}
	if len(args) != 1 {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("want exactly one output file path, got %d arguments", len(args))}
	}
	// The shim signals termination itself; the logger must drain, not stop.
	return output.RunShimLogger(context.WithoutCancel(ctx), args[0])
}
