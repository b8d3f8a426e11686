package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/config"
)

func runGC(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		return err
	}
	ex, closeClient, err := openExecutor(ctx, env, cfg, false, nil)
	if err != nil {
		return err
	}
	defer closeClient()
	rep, err := ex.GC(ctx)
	nrep, nerr := sweepNetworks(ctx, env, cfg)
	err = errors.Join(err, nerr)
	for _, group := range []struct {
		what string
		list []string
	}{{"network", nrep.Networks}, {"network namespace", nrep.NetNS}, {"bridge", nrep.Bridges}} {
		for _, item := range group.list {
			fmt.Fprintf(env.stdout, "removed %s %s\n", group.what, item)
		}
	}
	for _, group := range []struct {
		what string
		list []string
	}{{"container", rep.Containers}, {"snapshot", rep.Snapshots}, {"run directory", rep.RunDirs}, {"cgroup", rep.Cgroups}, {"orphan shim of", rep.Shims}} {
		for _, item := range group.list {
			fmt.Fprintf(env.stdout, "removed %s %s\n", group.what, item)
		}
	}
	if rep.Empty() && len(nrep.Networks)+len(nrep.NetNS)+len(nrep.Bridges) == 0 && err == nil {
		fmt.Fprintln(env.stdout, "nothing to remove")
	}
	return err
}

// sweepNetworks removes job networks no running job owns.
func sweepNetworks(ctx context.Context, env *cliEnv, cfg config.Config) (cni.SweepReport, error) {
	m, err := cni.New(networkConfig(cfg), cni.WithLogger(env.log))
	if err != nil {
		return cni.SweepReport{}, err
	}
	return m.Sweep(ctx)
}
