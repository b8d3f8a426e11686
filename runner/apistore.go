package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/sidecar"
	"github.com/cronium/cronium-agent/state"
)

// VariableReader is what the runtime API reads from the backend.
type VariableReader interface {
	GetVariable(ctx context.Context, userID, key string) (string, bool, error)
}

// JournalStore serves the runtime API for jobs from the backend: what a
// script sets (output, condition, variables) is journaled in its job's
// stream, before the API answers, and reaches the backend through the
// syncer in order with the job's other reports; variables are read from the
// backend, except those this agent wrote and has not delivered yet (a
// script reads its own writes), and while it is unreachable the last value
// seen is served.
type JournalStore struct {
	jobs *state.Jobs
	be   VariableReader
	log  *slog.Logger

	mu    sync.Mutex
	known map[[2]string]knownVar
}

type knownVar struct {
	value string
	found bool
	// pendingUntil: a write not yet delivered overrides the backend's
	// value until then.
	pendingUntil time.Time
}

// pendingWindow bounds how long a journaled write overrides what the
// backend says: the syncer delivers it long before, unless the backend is
// down, when the backend is not asked anyway.
const pendingWindow = time.Minute

// NewJournalStore returns the runtime API's store for jobs in jobs.
func NewJournalStore(jobs *state.Jobs, be VariableReader, log *slog.Logger) *JournalStore {
	if log == nil {
		log = slog.Default()
	}
	return &JournalStore{jobs: jobs, be: be, log: log, known: map[[2]string]knownVar{}}
}

var errNoRun = errors.New("no running job has this execution")

func (s *JournalStore) job(ctx context.Context, executionID string) (*state.Job, error) {
	if executionID == "" {
		executionID, _ = sidecar.ExecutionOf(ctx)
	}
	jb := s.jobs.ByExecution(executionID)
	if jb == nil {
		return nil, fmt.Errorf("%w: %s", errNoRun, executionID)
	}
	return jb, nil
}

// GetVariable reads a variable.
func (s *JournalStore) GetVariable(ctx context.Context, userID, key string) (string, bool, error) {
	k := [2]string{userID, key}
	s.mu.Lock()
	kv, ok := s.known[k]
	s.mu.Unlock()
	if ok && time.Now().Before(kv.pendingUntil) {
		return kv.value, kv.found, nil
	}
	v, found, err := s.be.GetVariable(ctx, userID, key)
	if err == nil {
		s.mu.Lock()
		if cur := s.known[k]; !time.Now().Before(cur.pendingUntil) {
			s.known[k] = knownVar{value: v, found: found}
		}
		s.mu.Unlock()
		return v, found, nil
	}
	if !backend.IsTransient(err) {
		return "", false, err
	}
	s.log.Warn("backend unreachable; serving the last known variable value", "user", userID, "cached", ok)
	return kv.value, ok && kv.found, nil
}

// SetVariable journals a variable write in the writing job's stream.
func (s *JournalStore) SetVariable(ctx context.Context, userID, key, value string) error {
	jb, err := s.job(ctx, "")
	if err != nil {
		return err
	}
	it, err := state.Item(state.KindVariable, state.VariableItem{UserID: userID, Key: key, Value: value})
	if err != nil {
		return err
	}
	if err := jb.Update(context.WithoutCancel(ctx), nil, it); err != nil {
		return err
	}
	s.mu.Lock()
	s.known[[2]string{userID, key}] = knownVar{value: value, found: true, pendingUntil: time.Now().Add(pendingWindow)}
	s.mu.Unlock()
	return nil
}

// SetOutput journals the execution's output: in its progress (the
// completion carries it) and as an item for the execution.
func (s *JournalStore) SetOutput(ctx context.Context, executionID string, value json.RawMessage) error {
	jb, err := s.job(ctx, executionID)
	if err != nil {
		return err
	}
	it, err := state.Item(state.KindOutput, state.OutputItem{ExecutionID: executionID, Output: value, At: time.Now().UTC()})
	if err != nil {
		return err
	}
	return jb.Update(context.WithoutCancel(ctx), func(p *state.Progress) {
		if p.ExecutionID == executionID {
			p.Output = append(json.RawMessage(nil), value...)
		}
	}, it)
}

// SetCondition journals the execution's condition, as SetOutput does.
func (s *JournalStore) SetCondition(ctx context.Context, executionID string, value bool) error {
	jb, err := s.job(ctx, executionID)
	if err != nil {
		return err
	}
	it, err := state.Item(state.KindCondition, state.ConditionItem{ExecutionID: executionID, Condition: value, At: time.Now().UTC()})
	if err != nil {
		return err
	}
	return jb.Update(context.WithoutCancel(ctx), func(p *state.Progress) {
		if p.ExecutionID == executionID {
			c := value
			p.Condition = &c
		}
	}, it)
}
