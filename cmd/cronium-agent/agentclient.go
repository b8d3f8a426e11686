package main

import (
	"fmt"
	"os"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/state/identity"
)

// agentClient makes the state directory and the backend client `run` takes
// jobs through, with the orchestrator id it claims them as: the
// configured one, else the one kept in the state directory, bound to this
// machine. It returns what the id is bound to, for status.
func agentClient(env *cliEnv, cfg config.Config) (*backend.Client, string, string, error) {
	if err := os.MkdirAll(cfg.State.Dir, 0o711); err != nil {
		return nil, "", "", fmt.Errorf("create state directory: %w", err)
	}
	if err := identity.Free(cfg.State.Dir); err != nil {
		return nil, "", "", &exitError{Code: exitAgent, Err: err}
	}
	orchID, binding := cfg.Backend.OrchestratorID, "set by backend.orchestratorId"
	if orchID == "" {
		id, err := identity.Load(cfg.State.Dir, identity.WithMachineIDFile(cfg.Identity.MachineIDFile))
		if err != nil {
			return nil, "", "", err
		}
		orchID, binding = id.ID, "bound to this machine ("+id.Source+")"
		if id.Warning != "" {
			binding = "not bound to a machine"
			env.log.Warn(id.Warning, "orchestrator", id.ID)
		}
		if c := id.Copied; c != nil {
			env.log.Warn("the state directory was made on another machine (copied with a host image?): moved aside, untouched; this machine starts with a new agent id and an empty journal",
				"copiedId", c.ID, "newId", id.ID, "movedTo", c.Dir)
		}
	}
	instance, previous, err := identity.NextInstance(cfg.State.Dir)
	if err != nil {
		return nil, "", "", err
	}
	host, _ := os.Hostname()
	copts := []backend.ClientOption{backend.WithUserAgentVersion(version), backend.WithLongPoll(time.Duration(cfg.Jobs.LongPoll)),
		backend.WithInstance(instance, previous, host)}
	if cfg.Backend.EnvEncryptionKey != "" {
		key, err := api.ParseEnvKey(cfg.Backend.EnvEncryptionKey)
		if err != nil {
			return nil, "", "", &exitError{Code: exitUsage, Err: err}
		}
		copts = append(copts, backend.WithEnvKey(key))
	}
	client, err := backend.NewClient(cfg.Backend.URL, cfg.Backend.Token, orchID, copts...)
	if err != nil {
		return nil, "", "", &exitError{Code: exitUsage, Err: err}
	}
	return client, orchID, binding, nil
}
