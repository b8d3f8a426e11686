package runner_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/sidecar"
	"github.com/cronium/cronium-agent/state/journal"
)

// Agent.Run is `cronium-agent run` without containerd: it opens the
// journal, recovers, sweeps, serves the admin socket, runs jobs to the
// backend and, on drain, stops with everything delivered and the journal
// closed.
func TestAgentRun(t *testing.T) {
	t.Parallel()
	b, w := startBackend(t), newWorld(t)
	dir := t.TempDir()
	client, err := backend.NewClient(b.URL, testToken, testOrch)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	var prepared []string
	fake := newFakeExecutor(w)
	cfg := runner.AgentConfig{
		StateDir: dir, JournalBudget: 64 << 20, SyncConcurrency: 2, Retain: time.Hour,
		AdminSocket: filepath.Join(dir, "admin.sock"), Version: "test",
		Policy: runner.DefaultPolicy(),
		Dispatch: runner.DispatchConfig{
			OrchestratorID: testOrch, MaxConcurrent: 2,
			PollInterval: 20 * time.Millisecond, PollMaxInterval: 100 * time.Millisecond,
			Heartbeat: 50 * time.Millisecond, Metrics: 100 * time.Millisecond, DrainTimeout: waitLimit,
		},
		RuntimeImages: []string{"cronium.local/runtimes/bash:latest"},
		OpenExecutor: func(context.Context, sidecar.Store) (runner.LocalRuntime, func(), error) {
			return fake, func() { prepared = append(prepared, "released") }, nil
		},
		SweepNetworks: func(context.Context) (cni.SweepReport, error) { return cni.SweepReport{}, nil },
		Log:           slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	drain, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- runner.NewAgent(client, cfg).Run(ctx, drain) }()

	id := b.submit(t, devserver.SubmitRequest{Script: "out hello"})
	if v := b.waitDone(t, id); v.Status != devserver.StatusCompleted || v.Completions != 1 || v.Output == nil || v.Output.Stdout != "hello\n" {
		t.Errorf("job: %s, %d completing calls, output %+v", v.Status, v.Completions, v.Output)
	}
	if _, err := os.Stat(cfg.AdminSocket); err != nil {
		t.Errorf("admin socket while running: %v", err)
	}
	close(drain)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Run did not return within %s of the drain", waitLimit)
	}
	if len(prepared) != 1 {
		t.Errorf("executor released %d times, want once", len(prepared))
	}
	// Closed: the next start opens the same journal at once.
	key, err := sidecar.LoadOrCreateSecret(filepath.Join(dir, "journal.key"))
	if err != nil {
		t.Fatal(err)
	}
	jr, err := journal.Open(filepath.Join(dir, "journal.db"), journal.WithSecretKey(key))
	if err != nil {
		t.Fatalf("reopen the journal after Run: %v", err)
	}
	if err := jr.Close(); err != nil {
		t.Fatal(err)
	}
	b.assertOnce(t)
}
