package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/internal/termsafe"
	"github.com/cronium/cronium-agent/runner/sshconn"
)

const sshUsage = `usage: cronium-agent ssh <command> [flags]

commands:
  trust HOST[:PORT] [--yes] [--replace]   fetch a server's host key, show its fingerprint, record it in ssh.knownHosts
  known [--json]                          list the known host keys: the agent's file, then the system file's

Each takes --config FILE; see cronium-agent ssh --help and cronium-agent ssh <command> --help.
`

// sshInput is where `ssh trust` asks for its confirmation. cliEnv has no
// stdin: no other command reads one.
type sshInput struct {
	r        io.Reader
	terminal bool // someone may answer: r is a terminal
}

func runSSH(ctx context.Context, env *cliEnv, args []string) error {
	return sshCommand(ctx, env, sshInput{r: os.Stdin, terminal: termsafe.IsTerminal(os.Stdin)}, args)
}

func sshCommand(ctx context.Context, env *cliEnv, in sshInput, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(env.stderr, sshUsage)
		return &exitError{Code: exitUsage}
	}
	switch args[0] {
	case "-h", "--help", "help":
		return printHelp(env, "ssh", nil)
	case "trust":
		return sshTrust(ctx, env, in, args[1:])
	case "known":
		return sshKnown(env, args[1:])
	}
	return &exitError{Code: exitUsage, Err: fmt.Errorf("unknown ssh command %q (want trust or known)", args[0])}
}

func sshTrust(ctx context.Context, env *cliEnv, in sshInput, args []string) error {
	fs := flag.NewFlagSet("ssh trust", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	yes := fs.Bool("yes", false, "record the key without asking; check its fingerprint first")
	replace := fs.Bool("replace", false, "if the host is known with another key, drop that one and record this one (the server's key was changed on purpose)")
	pos, err := parseArgs(env, fs, args, "HOST[:PORT]")
	if err != nil {
		return err
	}
	hostport, err := sshAddr(pos[0])
	if err != nil {
		return &exitError{Code: exitUsage, Err: err}
	}
	cfg, hk, err := openKnownHosts(env, *cfgPath)
	if err != nil {
		return err
	}
	key, err := fetchHostKey(ctx, hostport, time.Duration(cfg.SSH.DialTimeout), hk.Algorithms(hostport))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "host:        %s\nkey type:    %s\nfingerprint: %s\n", hostport, key.Type(), ssh.FingerprintSHA256(key))

	// The HostKeys is strict: its check only says what the files know.
	var unknown *sshconn.UnknownHostError
	var changed *sshconn.ChangedHostKeyError
	switch err := hk.Callback()(hostport, nil, key); {
	case err == nil:
		fmt.Fprintf(env.stdout, "%s is known with this key already\n", hostport)
		return nil
	case errors.As(err, &unknown):
	case errors.As(err, &changed):
		fmt.Fprintf(env.stdout, "known key:   %s\n", strings.Join(changed.Want, ", "))
		if !*replace {
			return &exitError{Code: exitUsage, Err: fmt.Errorf("not recorded: %s is known with another key (%s) than the one it offers now (%s); someone may be intercepting the connection. If the server's key was changed on purpose, check the new fingerprint and pass --replace",
				hostport, strings.Join(changed.Want, ", "), changed.Got)}
		}
	default:
		return err
	}
	if err := confirmTrust(env, in, *yes, key, hk.Path()); err != nil {
		return err
	}
	if cfg.SSH.KnownHosts == "" {
		// The agent makes its state directory 0711, not the 0700 that
		// HostKeys gives a directory it creates.
		if err := os.MkdirAll(cfg.State.Dir, 0o711); err != nil {
			return fmt.Errorf("create state directory: %w", err)
		}
	}
	if changed != nil {
		err = hk.Replace(hostport, key)
	} else {
		err = hk.Trust(hostport, key)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "recorded in %s\n", hk.Path())
	return nil
}

// confirmTrust asks whether the fingerprint is the server's, unless --yes
// says so; without a terminal to ask on, it refuses.
func confirmTrust(env *cliEnv, in sshInput, yes bool, key ssh.PublicKey, path string) error {
	if yes {
		return nil
	}
	check := fmt.Sprintf("compare the fingerprint with the one `ssh-keygen -lf %s` prints on the server", hostKeyFile(key.Type()))
	if !in.terminal {
		return &exitError{Code: exitUsage, Err: fmt.Errorf("not recorded: %s, then run again with --yes", check)}
	}
	fmt.Fprintf(env.stderr, "To be sure it is the server's, %s.\nRecord this key in %s? [y/N] ", check, path)
	answer, _ := bufio.NewReader(in.r).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return &exitError{Code: exitUsage, Err: errors.New("not recorded")}
}

// hostKeyFile is where OpenSSH's server keeps its public key of this type.
func hostKeyFile(keyType string) string {
	name := "*"
	switch {
	case strings.Contains(keyType, "ed25519"):
		name = "ed25519"
	case strings.Contains(keyType, "ecdsa"):
		name = "ecdsa"
	case keyType == ssh.KeyAlgoRSA:
		name = "rsa"
	}
	return "/etc/ssh/ssh_host_" + name + "_key.pub"
}

// fetchHostKey asks the server for a key of a type known for it, if any:
// a server with several keys would otherwise offer its preferred one,
// which is not the one known. A server with none of those types any more
// is asked again for any key.
func fetchHostKey(ctx context.Context, hostport string, timeout time.Duration, known []string) (ssh.PublicKey, error) {
	key, err := sshconn.FetchHostKey(ctx, hostport, timeout, known...)
	var netErr *net.OpError
	if err != nil && known != nil && !errors.As(err, &netErr) && ctx.Err() == nil {
		key, err = sshconn.FetchHostKey(ctx, hostport, timeout)
	}
	if err != nil {
		return nil, &exitError{Code: exitAgent, Err: err}
	}
	return key, nil
}

// sshAddr checks HOST[:PORT] and adds the default port.
func sshAddr(arg string) (string, error) {
	host, port, err := net.SplitHostPort(arg)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(arg, "["), "]"), "22"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return "", fmt.Errorf("%q: want HOST or HOST:PORT", arg)
	}
	return net.JoinHostPort(host, port), nil
}

func sshKnown(env *cliEnv, args []string) error {
	fs := flag.NewFlagSet("ssh known", flag.ContinueOnError)
	cfgPath := configFlag(fs)
	asJSON := fs.Bool("json", false, "print the entries as JSON")
	if _, err := parseArgs(env, fs, args); err != nil {
		return err
	}
	cfg, hk, err := openKnownHosts(env, *cfgPath)
	if err != nil {
		return err
	}
	list, err := hk.Known()
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []sshconn.KnownHost{}
		}
		return command.PrintJSON(env.stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(env.stdout, "no known host keys in %s\n", strings.Join(knownHostsFiles(cfg), " or "))
		return nil
	}
	// The files may have been edited by anyone: nothing in them reaches a
	// terminal unescaped.
	tw := tabwriter.NewWriter(termsafe.Guard(env.stdout, false), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tTYPE\tFINGERPRINT\tSOURCE")
	for _, k := range list {
		keyType, source := k.KeyType, "agent"
		if k.Marker != "" {
			keyType = "@" + k.Marker + " " + keyType
		}
		if k.System {
			source = "system"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", strings.Join(k.Hosts, ","), keyType, k.Fingerprint, source)
	}
	return tw.Flush()
}

// openKnownHosts loads the configuration at cfgPath and opens the files it
// names with a strict policy: the commands record keys only when told to.
func openKnownHosts(env *cliEnv, cfgPath string) (config.Config, *sshconn.HostKeys, error) {
	cfg, err := loadConfig(env, cfgPath)
	if err != nil {
		return config.Config{}, nil, err
	}
	hk, err := sshconn.OpenHostKeys(cfg.KnownHostsPath(), sshconn.PolicyStrict,
		sshconn.WithSystemKnownHosts(cfg.SSH.SystemKnownHosts), sshconn.WithHostKeysLogger(env.log))
	if err != nil {
		return config.Config{}, nil, err
	}
	return cfg, hk, nil
}

func knownHostsFiles(cfg config.Config) []string {
	files := []string{cfg.KnownHostsPath()}
	if cfg.SSH.SystemKnownHosts != "" {
		files = append(files, cfg.SSH.SystemKnownHosts)
	}
	return files
}
