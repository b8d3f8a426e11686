// Command cronium-imagepack packs a root filesystem directory into a
// single-layer OCI image archive (see runtimes/imagebuild).
//
//	cronium-imagepack --rootfs DIR --ref NAME:TAG --out FILE \
//	    [--env K=V]... [--user U] [--workdir DIR] [--cmd ARG]... [--entrypoint ARG]... \
//	    [--label K=V]... [--os OS] [--arch ARCH] [--variant V] [--created RFC3339]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cronium/cronium-agent/runtimes/imagebuild"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cronium-imagepack:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("cronium-imagepack", flag.ContinueOnError)
	var (
		rootfs, ref, out string
		cfg              imagebuild.ImageConfig
		env, cmd, entry  listFlag
		labels           listFlag
		created          string
	)
	fs.StringVar(&rootfs, "rootfs", "", "root filesystem directory to pack (required)")
	fs.StringVar(&ref, "ref", "", "full image reference with a tag, e.g. cronium.local/runtimes/bash:1a2b3c (required)")
	fs.StringVar(&out, "out", "", "archive file to write (required)")
	fs.Var(&env, "env", "environment variable K=V (repeatable)")
	fs.StringVar(&cfg.User, "user", "", "user (uid:gid) the image runs as")
	fs.StringVar(&cfg.WorkingDir, "workdir", "", "working directory")
	fs.Var(&cmd, "cmd", "default command, one argument per flag (repeatable)")
	fs.Var(&entry, "entrypoint", "entrypoint, one argument per flag (repeatable)")
	fs.Var(&labels, "label", "image label K=V (repeatable)")
	fs.StringVar(&cfg.OS, "os", "linux", "operating system of the root filesystem")
	fs.StringVar(&cfg.Architecture, "arch", "", "architecture of the root filesystem (default: this program's)")
	fs.StringVar(&cfg.Variant, "variant", "", "architecture variant (e.g. v7)")
	fs.StringVar(&created, "created", "", "creation time (RFC 3339, or @UNIX seconds); default $SOURCE_DATE_EPOCH, else none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if rootfs == "" || ref == "" || out == "" || fs.NArg() != 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	cfg.Env, cfg.Cmd, cfg.Entrypoint = env, cmd, entry
	if len(labels) > 0 {
		cfg.Labels = make(map[string]string, len(labels))
		for _, l := range labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				return fmt.Errorf("--label %q: want K=V", l)
			}
			cfg.Labels[k] = v
		}
	}
	if created == "" {
		if sde := os.Getenv("SOURCE_DATE_EPOCH"); sde != "" {
			created = "@" + sde
		}
	}
	if created != "" {
		t, err := parseTime(created)
		if err != nil {
			return fmt.Errorf("--created: %w", err)
		}
		cfg.Created = t
	}

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := imagebuild.WriteArchive(ctx, rootfs, ref, cfg, f); err != nil {
		f.Close()
		os.Remove(out)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(out)
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return f.Close()
}

func parseTime(s string) (time.Time, error) {
	if secs, ok := strings.CutPrefix(s, "@"); ok {
		n, err := strconv.ParseInt(secs, 10, 64)
		if err != nil {
			return time.Time{}, err
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Parse(time.RFC3339, s)
}
