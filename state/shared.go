package state

import (
	"context"
	"encoding/json"
)

// Shared is a Local store opened for each call and closed after it, so that
// several short-lived processes (concurrent `cronium-agent exec` runs) can
// use one file: bbolt lets one process hold a file at a time.
type Shared struct {
	path string
}

// NewShared returns a store over the file at path; nothing is opened yet.
func NewShared(path string) *Shared { return &Shared{path: path} }

func (s *Shared) with(fn func(*Local) error) error {
	l, err := OpenLocal(s.path)
	if err != nil {
		return err
	}
	err = fn(l)
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	return err
}

// GetVariable reads a user's variable.
func (s *Shared) GetVariable(ctx context.Context, userID, key string) (value string, found bool, err error) {
	err = s.with(func(l *Local) error {
		value, found, err = l.GetVariable(ctx, userID, key)
		return err
	})
	return value, found, err
}

// SetVariable writes a user's variable.
func (s *Shared) SetVariable(ctx context.Context, userID, key, value string) error {
	return s.with(func(l *Local) error { return l.SetVariable(ctx, userID, key, value) })
}

// SetOutput records an execution's output.
func (s *Shared) SetOutput(ctx context.Context, executionID string, value json.RawMessage) error {
	return s.with(func(l *Local) error { return l.SetOutput(ctx, executionID, value) })
}

// SetCondition records an execution's condition.
func (s *Shared) SetCondition(ctx context.Context, executionID string, value bool) error {
	return s.with(func(l *Local) error { return l.SetCondition(ctx, executionID, value) })
}
