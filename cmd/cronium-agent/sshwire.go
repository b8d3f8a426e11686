package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/runner/sshconn"
	"github.com/cronium/cronium-agent/runner/sshexec"
	"github.com/cronium/cronium-agent/sidecar"
)

// openSSH makes the SSH executor: the host keys it trusts, its connection
// pool, and the runtime API of its runs (served from store, with the same
// persisted secret as the containers' so that tokens survive a restart).
func openSSH(env *cliEnv, cfg config.Config, store sidecar.Store, creds sshexec.Credentials) (*sshexec.Executor, func(), error) {
	c := cfg.SSH
	hk, err := sshconn.OpenHostKeys(cfg.KnownHostsPath(), sshconn.Policy(c.HostKeyPolicy),
		sshconn.WithSystemKnownHosts(c.SystemKnownHosts), sshconn.WithHostKeysLogger(env.log))
	if err != nil {
		return nil, nil, fmt.Errorf("ssh host keys: %w", err)
	}
	pool := sshconn.New(hk,
		sshconn.WithDialTimeout(time.Duration(c.DialTimeout)),
		sshconn.WithKeepalive(time.Duration(c.KeepaliveInterval)),
		sshconn.WithIdleTimeout(time.Duration(c.IdleTimeout)),
		sshconn.WithLimits(c.MaxConnsPerServer, c.MaxSessionsPerConn),
		sshconn.WithBreaker(c.BreakerFailures, time.Duration(c.BreakerCooldown)),
		sshconn.WithLogger(env.log))
	secret, err := sidecar.LoadOrCreateSecret(filepath.Join(cfg.State.Dir, "runtime-api.key"))
	if err != nil {
		_ = pool.Close()
		return nil, nil, err
	}
	opts := []sshexec.Option{
		sshexec.WithRuntimeAPI(sidecar.New(secret, store, append([]sidecar.Option{sidecar.WithLogger(env.log)}, toolAPI(env, cfg)...)...)),
		sshexec.WithStopGrace(time.Duration(cfg.Jobs.KillGrace)),
		sshexec.WithParallel(c.MaxParallelServers),
		sshexec.WithWorker(c.Worker),
		sshexec.WithLogger(env.log),
	}
	if creds != nil {
		opts = append(opts, sshexec.WithCredentials(creds))
	}
	// Uploaded to each server once per version: cronium-job is a third of
	// the agent binary's size.
	if prog, err := jobProgram(); err == nil {
		opts = append(opts, sshexec.WithHelperProgram(prog))
	}
	x := sshexec.New(pool, policyFromConfig(cfg), opts...)
	return x, func() { _ = pool.Close() }, nil
}
