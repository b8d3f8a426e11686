package runner

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/backend"
)

// VariableBackend is what the runtime API needs of the backend.
type VariableBackend interface {
	GetVariable(ctx context.Context, userID, key string) (string, bool, error)
	SetVariable(ctx context.Context, userID, key, value string) error
	SetExecutionOutput(ctx context.Context, executionID string, value json.RawMessage) error
	SetExecutionCondition(ctx context.Context, executionID string, value bool) error
}

// BackendStore serves the runtime API from the backend: variables through
// its variables endpoints (with the last known values kept, for reads while
// it is unreachable), output and condition forwarded to the execution
// (they also reach it in the completing call, which is what counts).
type BackendStore struct {
	be  VariableBackend
	log *slog.Logger

	mu    sync.Mutex
	cache map[[2]string]cachedVar
}

type cachedVar struct {
	value string
	found bool
}

// NewBackendStore returns a store over be.
func NewBackendStore(be VariableBackend, log *slog.Logger) *BackendStore {
	if log == nil {
		log = slog.Default()
	}
	return &BackendStore{be: be, log: log, cache: map[[2]string]cachedVar{}}
}

// GetVariable reads from the backend; while it is unreachable the last
// value this agent saw is served (or none).
func (s *BackendStore) GetVariable(ctx context.Context, userID, key string) (string, bool, error) {
	v, found, err := s.be.GetVariable(ctx, userID, key)
	k := [2]string{userID, key}
	if err == nil {
		s.mu.Lock()
		s.cache[k] = cachedVar{v, found}
		s.mu.Unlock()
		return v, found, nil
	}
	if !backend.IsTransient(err) {
		return "", false, err
	}
	s.mu.Lock()
	c, ok := s.cache[k]
	s.mu.Unlock()
	s.log.Warn("backend unreachable; serving the last known variable value", "user", userID, "cached", ok)
	return c.value, ok && c.found, nil
}

// SetVariable writes through to the backend.
func (s *BackendStore) SetVariable(ctx context.Context, userID, key, value string) error {
	if err := s.be.SetVariable(ctx, userID, key, value); err != nil {
		return err
	}
	s.mu.Lock()
	s.cache[[2]string{userID, key}] = cachedVar{value, true}
	s.mu.Unlock()
	return nil
}

// SetOutput forwards the output to the execution; a failure is logged, not
// returned: the completing call carries the output anyway.
func (s *BackendStore) SetOutput(ctx context.Context, executionID string, value json.RawMessage) error {
	s.forward(ctx, executionID, "output", func(ctx context.Context) error { return s.be.SetExecutionOutput(ctx, executionID, value) })
	return nil
}

// SetCondition forwards the condition, as SetOutput does.
func (s *BackendStore) SetCondition(ctx context.Context, executionID string, value bool) error {
	s.forward(ctx, executionID, "condition", func(ctx context.Context) error { return s.be.SetExecutionCondition(ctx, executionID, value) })
	return nil
}

func (s *BackendStore) forward(ctx context.Context, executionID, what string, call func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := call(ctx); err != nil {
		s.log.Warn("forwarding to the backend failed; the completion carries it", "execution", executionID, "what", what, "error", err)
	}
}
