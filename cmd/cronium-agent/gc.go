package main

import (
	"context"
	"flag"
	"fmt"
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
	ex, closeClient, err := openExecutor(ctx, env, cfg)
	if err != nil {
		return err
	}
	defer closeClient()
	rep, err := ex.GC(ctx)
	for _, group := range []struct {
		what string
		list []string
	}{{"container", rep.Containers}, {"snapshot", rep.Snapshots}, {"run directory", rep.RunDirs}, {"cgroup", rep.Cgroups}} {
		for _, item := range group.list {
			fmt.Fprintf(env.stdout, "removed %s %s\n", group.what, item)
		}
	}
	if rep.Empty() && err == nil {
		fmt.Fprintln(env.stdout, "nothing to remove")
	}
	return err
}
