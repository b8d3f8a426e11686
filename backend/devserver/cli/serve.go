package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/cronium/cronium-agent/backend/console"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/command"
)

// runServe runs the development backend until ctx ends.
func runServe(ctx context.Context, s session, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:5001", "listen on `ADDR`, host:port (loopback only unless --allow-remote)")
	token := fs.String("token", "", "service `TOKEN` the agents must send (default $"+EnvToken+")")
	data := fs.String("data", "", "keep the data in `DIR`, in "+devserver.DBFile+" (made if missing)")
	noLogs := fs.Bool("no-logs-endpoint", false, "answer 404 on jobs/{id}/logs, like the deployed backend")
	allowRemote := fs.Bool("allow-remote", false, "allow a non-loopback listen address (plain HTTP, one shared token)")
	lostAfter := fs.Duration("lost-after", devserver.DefaultLostAfter, "declare an agent lost after `D` without a heartbeat: its claimed jobs go back to the queue, its running jobs fail with \"agent lost\" (exit -1) or are retried elsewhere as their retry policy allows (0: never)")
	if _, err := s.args(fs, args); err != nil {
		return err
	}
	if *token == "" {
		*token = s.Getenv(EnvToken)
	}
	switch {
	case *token == "":
		return command.Usage(fmt.Errorf("no token: give --token T or set %s", EnvToken))
	case *data == "":
		return command.Usage(errors.New("no data directory: give --data DIR"))
	}
	if err := checkLoopback(*listen); err != nil && !*allowRemote {
		return command.Usage(err)
	}
	if *lostAfter < 0 {
		return command.Usage(fmt.Errorf("--lost-after %s: negative (0 turns it off)", *lostAfter))
	}
	opts := []devserver.Option{devserver.WithLogger(s.Log), devserver.WithLostAfter(*lostAfter)}
	if *noLogs {
		opts = append(opts, devserver.WithoutLogEndpoint())
	}
	srv, err := devserver.New(*data, *token, opts...)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	con, err := console.New(srv.InProcessClient(*token), *token, console.WithLogger(s.Log))
	if err != nil {
		return err
	}
	// /api/ is the agents' and the CLI's (bearer token); the rest is the
	// web console (session cookie).
	mux := http.NewServeMux()
	mux.Handle("/api/", srv.Handler())
	mux.Handle("/", con)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	hs.RegisterOnShutdown(srv.EndWaits)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	extra := ""
	if *noLogs {
		extra = ", without the log endpoint"
	}
	fmt.Fprintf(s.Stdout, "cronium dev backend listening on %s (data %s%s)\n", url, *data, extra)
	fmt.Fprintf(s.Stdout, "web console: %s/ (log in with the service token)\n", url)
	s.Log.Info("dev backend listening", "url", url, "data", *data, "logEndpoint", !*noLogs, "lostAfter", *lostAfter)
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	s.Log.Info("dev backend stopped")
	return nil
}

// checkLoopback refuses listen addresses reachable from other hosts.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to listen on %q: not a loopback address (the dev backend speaks plain HTTP with one shared token); give --allow-remote to do it anyway", addr)
}
