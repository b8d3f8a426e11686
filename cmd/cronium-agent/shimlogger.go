package main

import (
	"context"
	"fmt"

	"github.com/cronium/cronium-agent/runner/output"
)

// runShimLogger is started by containerd's shim with the job's stdout and
// stderr on fds 3 and 4; it must not depend on the agent in any way.
func runShimLogger(ctx context.Context, _ *cliEnv, args []string) error {
	if len(args) != 1 {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("want exactly one output file path, got %d arguments", len(args))}
	}
	// The shim signals termination itself; the logger must drain, not stop.
	return output.RunShimLogger(context.WithoutCancel(ctx), args[0])
}
