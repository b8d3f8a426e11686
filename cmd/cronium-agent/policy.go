package main

import (
	"time"

	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner"
)

// policyFromConfig translates what the configuration says about every job
// into the runner's policy: the runner does not read the file's schema.
func policyFromConfig(c config.Config) runner.Policy {
	lim := func(l config.Limits) oci.Resources {
		return oci.Resources{CPU: l.CPU, MemoryBytes: int64(l.Memory), Pids: l.Pids, TmpBytes: int64(l.Tmp), WorkspaceBytes: int64(l.Workspace)}
	}
	return runner.Policy{
		Images: map[string]string{
			"bash": c.Runtimes.Bash.Image, "python": c.Runtimes.Python.Image, "node": c.Runtimes.Node.Image,
		},
		Defaults:       lim(c.Resources.Defaults),
		Max:            lim(c.Resources.Max),
		DefaultTimeout: time.Duration(c.Jobs.DefaultTimeout),
		MaxTimeout:     time.Duration(c.Jobs.MaxTimeout),
	}
}
