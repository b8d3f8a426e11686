package cli

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/ptytest"
)

// backendCommand runs cronium-backend in-process with this environment.
func backendCommand(environ []string) ptytest.Command {
	return func(stdout, stderr io.Writer, args []string) int {
		env := command.Env{Stdout: stdout, Stderr: stderr, Environ: environ, Log: slog.New(slog.DiscardHandler)}
		return Main(context.Background(), env, testProgram, args)
	}
}

func TestTerminalBackendLogsAndShow(t *testing.T) {
	ts := cliDevBackend(t)
	a := cliFakeAgent{t, ts.URL, "agent-term"}
	done := make(chan string, 1)
	go func() {
		id := a.claimOne()
		a.logs(id, 1, [2]string{"stdout", ptytest.HostileLine}, [2]string{"stderr", ptytest.HostileLine})
		a.complete(id, "completed", 0, ptytest.HostileLine+"\n", ptytest.HostileLine+"\n")
		done <- id
	}()
	cmd := backendCommand([]string{"CRONIUM_BACKEND_URL=" + ts.URL, "CRONIUM_BACKEND_TOKEN=" + cliDevToken})
	// submit --wait follows the job's lines: escaped on a terminal too.
	code, out := ptytest.Run(t, true, cmd, "submit", "-c", "true", "--wait")
	id := <-done
	if code != 0 || strings.Count(out, ptytest.HostileEscape) != 2 || ptytest.ContainsControl(out) {
		t.Errorf("submit --wait on a terminal: exit code %d, %q", code, out)
	}
	t.Run("logs", func(t *testing.T) { ptytest.CheckEscaping(t, cmd, 2, "logs", id) })
	t.Run("logs -f", func(t *testing.T) { ptytest.CheckEscaping(t, cmd, 2, "logs", "-f", id) })
	t.Run("show", func(t *testing.T) { ptytest.CheckEscaping(t, cmd, 2, "show", id) })
}
