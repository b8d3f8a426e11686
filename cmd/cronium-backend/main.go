// Command cronium-backend is the development backend: `serve` runs a
// backend that implements the Cronium backend contract, for trying and
// testing the agent without a Cronium installation, and submit, jobs, show,
// logs and cancel operate it. The commands live in backend/devserver/cli,
// which cronium-agent's `backend` alias runs too.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cronium/cronium-agent/backend/devserver/cli"
	"github.com/cronium/cronium-agent/internal/command"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// SIGINT and SIGTERM stop serving gracefully and end following.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := command.Env{Stdout: os.Stdout, Stderr: os.Stderr, Environ: os.Environ()}
	env.Log = command.NewLogger(os.Stderr, env.Environ)
	code := cli.Main(ctx, env, cli.Program{Name: "cronium-backend", Version: version}, os.Args[1:])
	stop()
	os.Exit(code)
}
