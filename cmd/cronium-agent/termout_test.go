package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/cronium/cronium-agent/internal/ptytest"
	"github.com/cronium/cronium-agent/state/admin"
	"github.com/cronium/cronium-agent/state/admin/admintest"
)

// agentCommand runs cronium-agent in-process with this environment.
func agentCommand(environ []string) ptytest.Command {
	return func(stdout, stderr io.Writer, args []string) int {
		return run(&cliEnv{stdout: stdout, stderr: stderr, environ: environ, log: slog.New(slog.DiscardHandler)}, args)
	}
}

func TestTerminalAgentLogs(t *testing.T) {
	src := admintest.New(admin.Status{})
	src.Append("job-1", admin.LogLine{Stream: "stdout", Line: ptytest.HostileLine}, admin.LogLine{Stream: "stderr", Line: ptytest.HostileLine})
	src.Complete("job-1")
	cmd := agentCommand([]string{"CRONIUM_ADMIN_SOCKET=" + serveAdmin(t, src)})
	t.Run("logs", func(t *testing.T) { ptytest.CheckEscaping(t, cmd, 2, "logs", "job-1") })
	t.Run("logs -f", func(t *testing.T) { ptytest.CheckEscaping(t, cmd, 2, "logs", "-f", "job-1") })
}
