package cli

import (
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

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/command"
)

// Bounds of what `servers add` reads: a key file, a password on stdin.
const (
	maxKeyFile  = 1 << 20
	maxPassword = 64 << 10
)

type serversCommand struct {
	name, args, summary string
	run                 func(ctx context.Context, s session, args []string) error
}

var serversCommands = []serversCommand{
	{"add", "--name N --host H [--port P] --user U (--key FILE | --password-stdin)",
		"register a server; prints its id", runServersAdd},
	{"list", "[--json]", "list the servers: id, name, user@host:port, auth (never the key or password)", runServersList},
	{"rm", "ID", "remove a server (jobs already queued keep the details they were built with)", runServersRm},
}

func serversUsage(w io.Writer, prog string) {
	fmt.Fprintf(w, "usage: %s servers <command> [flags]\n\ncommands:\n", prog)
	for _, c := range serversCommands {
		fmt.Fprintf(w, "  %-4s %s\n       %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nA server's id is what `%s submit --server ID[,ID...]` takes: one id makes an ssh job\n"+
		"with the server's details in execution.target.serverDetails; several make a multi-server\n"+
		"job (metadata.servers, multiServer, serverCount). Each command takes --backend URL and\n"+
		"--token T (default $%s, $%s).\n", prog, EnvURL, EnvToken)
}

// runServers runs `servers add|list|rm`.
func runServers(ctx context.Context, s session, args []string) error {
	if len(args) == 0 {
		serversUsage(s.Stderr, s.prog)
		return &command.ExitError{Code: command.ExitUsage}
	}
	switch args[0] {
	case "-h", "--help", "help":
		return s.printHelp("servers", nil)
	}
	for _, c := range serversCommands {
		if c.name == args[0] {
			return c.run(ctx, s, args[1:])
		}
	}
	return command.Usage(fmt.Errorf("unknown command %q: want add, list or rm (see %s servers -h)", args[0], s.prog))
}

func runServersAdd(ctx context.Context, s session, args []string) error {
	fs := flag.NewFlagSet("servers add", flag.ContinueOnError)
	cf := addClientFlags(fs)
	name := fs.String("name", "", "the server's `NAME` (required)")
	host := fs.String("host", "", "`HOST` name or address of the server's sshd (required)")
	port := fs.Int("port", 22, "`PORT` of the server's sshd")
	user := fs.String("user", "", "`USER` to log in as (required)")
	keyFile := fs.String("key", "", "`FILE` holding the user's private key (unencrypted OpenSSH or PEM), sent as it is")
	pwStdin := fs.Bool("password-stdin", false, "read the user's password from standard input (one line; it is never taken from the command line or the environment)")
	if _, err := s.args(fs, args); err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ flag, val string }{{"--name", *name}, {"--host", *host}, {"--user", *user}} {
		if strings.TrimSpace(f.val) == "" {
			missing = append(missing, f.flag)
		}
	}
	if len(missing) > 0 {
		return command.Usage(fmt.Errorf("missing %s (see %s servers add -h)", strings.Join(missing, ", "), s.prog))
	}
	if *port < 1 || *port > 65535 {
		return command.Usage(fmt.Errorf("--port must be between 1 and 65535, got %d", *port))
	}
	if (*keyFile == "") == !*pwStdin {
		return command.Usage(errors.New("give exactly one of --key FILE or --password-stdin"))
	}
	sv := api.Server{Name: *name, Host: *host, Port: *port, Username: *user}
	if *keyFile != "" {
		key, err := readKeyFile(*keyFile)
		if err != nil {
			return command.Usage(err)
		}
		sv.PrivateKey = key
	} else {
		pw, err := readPassword(s.stdin)
		if err != nil {
			return command.Usage(err)
		}
		sv.Password = pw
	}
	c, err := cf.client(s)
	if err != nil {
		return err
	}
	v, err := c.AddServer(ctx, sv)
	if err != nil {
		return clientError(c, err)
	}
	fmt.Fprintln(s.Stdout, v.ID)
	return nil
}

// readKeyFile reads a private key file and checks that it parses; the key
// is kept byte for byte (trailing newline included), as the deployed
// backend hands it out.
func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("--key: %w", err)
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("--key %s: larger than %d bytes: not a private key", path, maxKeyFile)
	}
	if err := devserver.CheckPrivateKey(string(b)); err != nil {
		return "", fmt.Errorf("--key %s: %v", path, err)
	}
	return string(b), nil
}

// readPassword reads one line from r: the password, without its line end.
func readPassword(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxPassword+1))
	if err != nil {
		return "", fmt.Errorf("--password-stdin: read standard input: %w", err)
	}
	if len(b) > maxPassword {
		return "", fmt.Errorf("--password-stdin: standard input holds more than %d bytes", maxPassword)
	}
	pw := strings.TrimSuffix(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	switch {
	case pw == "":
		return "", errors.New("--password-stdin: standard input held no password (pipe it in, e.g. from a file)")
	case strings.ContainsAny(pw, "\r\n"):
		return "", errors.New("--password-stdin: standard input holds more than one line; give the password alone")
	}
	return pw, nil
}

func runServersList(ctx context.Context, s session, args []string) error {
	fs := flag.NewFlagSet("servers list", flag.ContinueOnError)
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON (hasKey / hasPassword, never the secrets)")
	if _, err := s.args(fs, args); err != nil {
		return err
	}
	c, err := cf.client(s)
	if err != nil {
		return err
	}
	list, err := c.Servers(ctx)
	if err != nil {
		return clientError(c, err)
	}
	if *asJSON {
		return command.PrintJSON(s.Stdout, list)
	}
	tw := tabwriter.NewWriter(s.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tADDRESS\tAUTH")
	for _, v := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s@%s\t%s\n", v.ID, v.Name, v.Username, net.JoinHostPort(v.Host, strconv.Itoa(v.Port)), v.Auth())
	}
	return tw.Flush()
}

func runServersRm(ctx context.Context, s session, args []string) error {
	fs := flag.NewFlagSet("servers rm", flag.ContinueOnError)
	cf := addClientFlags(fs)
	pos, err := s.args(fs, args, "ID")
	if err != nil {
		return err
	}
	c, err := cf.client(s)
	if err != nil {
		return err
	}
	if err := c.RemoveServer(ctx, pos[0]); err != nil {
		return clientError(c, err)
	}
	fmt.Fprintf(s.Stdout, "server %s removed\n", pos[0])
	return nil
}

// serverIDs splits --server's comma-separated list.
func serverIDs(list string) ([]string, error) {
	var ids []string
	for id := range strings.SplitSeq(list, ",") {
		id = strings.TrimSpace(id)
		if id == "" {
			return nil, fmt.Errorf("--server %q: want ID[,ID...] without empty ids", list)
		}
		ids = append(ids, id)
	}
	return ids, nil
}
