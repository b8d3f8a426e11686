package main

import (
	"fmt"
	"os"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/internal/config"
)

// agentClient makes the state directory and the backend client `run` takes
// jobs through, with the orchestrator id it claims them as: the
// configured one, else the one kept in the state directory.
func agentClient(cfg config.Config) (*backend.Client, string, error) {
	if err := os.MkdirAll(cfg.State.Dir, 0o711); err != nil {
		return nil, "", fmt.Errorf("create state directory: %w", err)
	}
	orchID := cfg.Backend.OrchestratorID
	if orchID == "" {
		var err error
		if orchID, err = backend.OrchestratorID(cfg.State.Dir); err != nil {
			return nil, "", err
		}
	}
	copts := []backend.ClientOption{backend.WithUserAgentVersion(version), backend.WithLongPoll(time.Duration(cfg.Jobs.LongPoll))}
	if cfg.Backend.EnvEncryptionKey != "" {
		key, err := api.ParseEnvKey(cfg.Backend.EnvEncryptionKey)
		if err != nil {
			return nil, "", &exitError{Code: exitUsage, Err: err}
		}
		copts = append(copts, backend.WithEnvKey(key))
	}
	client, err := backend.NewClient(cfg.Backend.URL, cfg.Backend.Token, orchID, copts...)
	if err != nil {
		return nil, "", &exitError{Code: exitUsage, Err: err}
	}
	return client, orchID, nil
}
