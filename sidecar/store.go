package sidecar

import (
	"context"
	"encoding/json"
	"time"
)

// Execution describes one run, as the runtime API serves it.
type Execution struct {
	// ExecutionID, JobID and UserID are required.
	ExecutionID, JobID, UserID, EventID string
	EventName, EventType, Trigger       string
	// StartTime zero means the time Start (or IssueToken) is called.
	StartTime time.Time
	// Timeout is the job's timeout (required, > 0); the token expires at
	// StartTime + Timeout + TokenGrace.
	Timeout time.Duration
	// Input is the step's input, served by GET input; nil means JSON null.
	Input json.RawMessage
	// Metadata is the job's metadata, served in GET context.
	Metadata map[string]any
}

// Store is where the runtime API's data lives. Its errors are logged (never
// shown to the job), so they must not carry variable values.
type Store interface {
	// GetVariable returns a user's variable; values are strings, as on the
	// backend wire.
	GetVariable(ctx context.Context, userID, key string) (value string, found bool, err error)
	SetVariable(ctx context.Context, userID, key, value string) error
	SetOutput(ctx context.Context, executionID string, value json.RawMessage) error
	SetCondition(ctx context.Context, executionID string, value bool) error
}
