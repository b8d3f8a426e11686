package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
)

func runImages(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("want `images import ARCHIVE...` or `images list`")}
	}
	sub := args[0]
	switch sub {
	case "-h", "--help", "help":
		return printHelp(env, "images", nil)
	case "ls":
		sub = "list" // its page and messages are list's
	case "import", "list":
	default:
		return &exitError{Code: exitUsage, Err: fmt.Errorf("unknown images command %q (want import or list)", args[0])}
	}
	fs := flag.NewFlagSet("images "+sub, flag.ContinueOnError)
	cfgPath := configFlag(fs)
	if err := parseFlags(env, fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		return err
	}
	if sub == "import" && fs.NArg() == 0 {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("no archive given")}
	}
	ex, closeClient, err := openExecutor(ctx, env, cfg, false, nil)
	if err != nil {
		return err
	}
	defer closeClient()
	switch sub {
	case "import":
		for _, path := range fs.Args() {
			names, err := ex.Images().ImportFile(ctx, path)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintf(env.stdout, "imported %s\n", n)
			}
		}
		return nil
	default: // list
		list, err := ex.Images().List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tDIGEST\tSIZE\tUNPACKED")
		for _, im := range list {
			fmt.Fprintf(tw, "%s\t%s\t%.1f MiB\t%v\n", im.Name, shortDigest(im.Digest), float64(im.Size)/(1<<20), im.Unpacked)
		}
		return tw.Flush()
	}
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
