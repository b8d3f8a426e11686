package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/images"
	"github.com/cronium/cronium-agent/sidecar"
)

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", config.DefaultPath, "read the configuration from `FILE`")
}

func loadConfig(env *cliEnv, path string) (config.Config, error) {
	cfg, err := config.Load(path, env.environ)
	if err != nil {
		return cfg, &exitError{Code: exitUsage, Err: err}
	}
	return cfg, nil
}

// connect dials containerd and checks that it answers, so that a missing
// daemon is reported once, clearly, before any work starts.
func connect(ctx context.Context, cfg config.Config) (*containerd.Client, error) {
	addr := cfg.Containerd.Address
	hint := fmt.Sprintf("start containerd (systemctl start containerd, or `make containerd` in the source tree) or point containerd.address / %s at its socket",
		config.EnvName("containerd", "address"))
	if _, err := os.Stat(addr); err != nil {
		return nil, &exitError{Code: exitAgent, Err: fmt.Errorf("containerd is not reachable at %s (no such socket): %s", addr, hint)}
	}
	client, err := containerd.New(addr, containerd.WithDefaultNamespace(cfg.Containerd.Namespace), containerd.WithTimeout(3*time.Second))
	if err != nil {
		return nil, &exitError{Code: exitAgent, Err: fmt.Errorf("containerd is not reachable at %s: %v: %s", addr, err, hint)}
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if ok, err := client.IsServing(pctx); !ok {
		client.Close()
		return nil, &exitError{Code: exitAgent, Err: fmt.Errorf("containerd at %s does not answer: %v: %s", addr, err, hint)}
	}
	return client, nil
}

// openExecutor connects to containerd and builds the executor the
// configuration describes; with runs it also sets up what runs need (their
// networks, runtime API backed by store, and helpers) and the options in
// more. The returned func releases the connection.
func openExecutor(ctx context.Context, env *cliEnv, cfg config.Config, runs bool, store sidecar.Store, more ...container.Option) (*container.Executor, func(), error) {
	client, err := connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	var extra []container.Option
	if runs {
		if extra, err = runOptions(env, cfg, store); err != nil {
			client.Close()
			return nil, nil, err
		}
	}
	ex, err := newExecutor(env, client, cfg, append(extra, more...)...)
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return ex, func() { client.Close() }, nil
}

func newExecutor(env *cliEnv, client *containerd.Client, cfg config.Config, extra ...container.Option) (*container.Executor, error) {
	store := images.New(client, cfg.Containerd.Snapshotter, images.WithPlainHTTP(cfg.Registry.PlainHTTP...))
	opts := []container.Option{
		container.WithRuntime(cfg.Containerd.Runtime),
		container.WithOCIRuntime(cfg.Containerd.OCIRuntime),
		container.WithSnapshotter(cfg.Containerd.Snapshotter),
		container.WithIDMap(oci.IDMap{HostUID: cfg.UserNS.HostUID, HostGID: cfg.UserNS.HostGID, Size: cfg.UserNS.Size}),
		container.WithKillGrace(time.Duration(cfg.Jobs.KillGrace)),
		container.WithImageStore(store),
		container.WithLogger(env.log),
	}
	return container.New(client, cfg.State.Dir, append(opts, extra...)...)
}

// parseFlags parses a subcommand's flags: -h and --help print its manual
// page (helpPages, by the flag set's name) and exit 0, a bad flag is one
// line of error (the page is there with -h).
func parseFlags(env *cliEnv, fs *flag.FlagSet, args []string) error {
	help := helpFlags(fs)
	if err := command.ParseFlags(env.stderr, "cronium-agent", fs, args); err != nil {
		return err
	}
	if *help {
		return printHelp(env, fs.Name(), fs)
	}
	return nil
}

// parseArgs parses flags that may come before, between and after the
// positional arguments (`logs JOB -f`), and checks that the positionals are
// exactly those named; -h and --help print the manual page, as with
// parseFlags, whatever the positionals.
func parseArgs(env *cliEnv, fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	help := helpFlags(fs)
	pos, err := command.ParseInterspersed(env.stderr, "cronium-agent", fs, args)
	if err != nil {
		return nil, err
	}
	if *help {
		return nil, printHelp(env, fs.Name(), fs)
	}
	return pos, command.WantArgs("cronium-agent", fs, pos, names...)
}
