// Command cronium-job is what the agent runs inside and beside jobs, apart
// from the agent itself: a job's PID 1 (as cronium-init), the helper
// program the bash helpers call (as cronium), the output logger the
// containerd shim starts for each job (cronium-job shim-logger FILE), and
// the worker of SSH jobs on their servers (cronium ssh-worker).
//
// The agent binary can do all of this too, and does when this one is
// missing; but every job starts its init and its logger, and a Go program
// pays the init of every package it links at each start. The agent links
// containerd's client, gRPC, CNI, Prometheus and SSH: its start costs
// about 2.5 times this one's in CPU (measured 42 against 17 ms on a 2-core
// VM), twice per job. This binary links only what those four roles need.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/runner/sshexec/sshworker"
	"github.com/cronium/cronium-agent/runtimes/helpercli"
	"github.com/cronium/cronium-agent/runtimes/jobinit"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case jobinit.Name:
		// Mounted as /cronium/bin/cronium-init: PID 1 of every job.
		os.Exit(jobinit.Main(os.Args[1:], os.Stderr))
	case "cronium":
		if len(os.Args) > 1 && os.Args[1] == sshworker.Command {
			// On an SSH job's server: the worker that runs its jobs.
			os.Exit(sshworker.Main(os.Stdin, os.Stdout, os.Stderr, os.Environ()))
		}
		// Mounted as /cronium/bin/cronium: the bash helpers' program.
		os.Exit(helpercli.Main(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	}
	if len(os.Args) == 3 && os.Args[1] == "shim-logger" {
		// Started by containerd's shim with the job's stdout and stderr on
		// fds 3 and 4. The shim signals termination itself: the logger
		// must drain, not stop.
		if err := output.RunShimLogger(context.Background(), os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "cronium-job shim-logger:", err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintln(os.Stderr, `cronium-job: the agent's program for inside jobs, not a command to run by hand:
  as cronium-init     a job's PID 1
  as cronium          the helper program of the bash helpers (cronium help), or the SSH worker
  shim-logger FILE    the output logger containerd's shim starts for a job`)
	os.Exit(2)
}
