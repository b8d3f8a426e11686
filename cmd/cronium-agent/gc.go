package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/journal"
)

func runGC(ctx context.Context, env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	all := fs.Bool("all", false, "also remove the runs a stopped agent's journal would take over at its next start, and the runs other agents' state directories left that no process holds")
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
	var keep []string
	if !*all {
		if keep, err = adoptableRuns(ctx, cfg); err != nil {
			return err
		}
	}
	nets := make([]string, len(keep))
	for i, id := range keep {
		fmt.Fprintf(env.stdout, "kept run %s: the agent's journal takes it over at its next start (--all removes it)\n", id)
		nets[i] = container.NetworkOf(id)
	}
	gcOpts := []container.GCOption{container.KeepRuns(keep...)}
	if *all {
		gcOpts = append(gcOpts, container.OthersToo())
	}
	rep, err := ex.GC(ctx, gcOpts...)
	nrep, nerr := sweepNetworks(ctx, env, cfg, *all, nets...)
	err = errors.Join(err, nerr)
	for _, group := range []struct {
		what string
		list []string
	}{{"network", nrep.Networks}, {"network namespace", nrep.NetNS}, {"bridge", nrep.Bridges}, {"veth", nrep.Veths}} {
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
	if rep.Empty() && len(nrep.Networks)+len(nrep.NetNS)+len(nrep.Bridges)+len(nrep.Veths) == 0 && len(keep) == 0 && err == nil {
		fmt.Fprintln(env.stdout, "nothing to remove")
	}
	return err
}

// sweepNetworks removes this agent's job networks no running job owns, but
// keep; with others, those of other agents on the host too.
func sweepNetworks(ctx context.Context, env *cliEnv, cfg config.Config, others bool, keep ...string) (cni.SweepReport, error) {
	opts := []cni.Option{cni.WithLogger(env.log), cni.WithOwner(cfg.State.Dir)}
	if others {
		opts = append(opts, cni.WithOthersSwept())
	}
	m, err := cni.New(networkConfig(cfg), opts...)
	if err != nil {
		return cni.SweepReport{}, err
	}
	return m.Sweep(ctx, keep...)
}

// adoptableRuns lists the runs a stopped agent's journal would adopt. A
// running agent holds the journal, and its runs are locked anyway: then
// there is nothing to add.
func adoptableRuns(ctx context.Context, cfg config.Config) ([]string, error) {
	path := filepath.Join(cfg.State.Dir, "journal.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	j, err := journal.Open(path, journal.WithOpenTimeout(500*time.Millisecond))
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer j.Close()
	return state.UnfinishedRuns(ctx, j)
}
