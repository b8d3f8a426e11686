package state

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/state/journal"
)

// Kinds of the items of a job's outbox stream. The syncer turns each into
// the backend call named beside it, in stream order.
const (
	KindExecution = "execution" // executions/{id}/create
	KindStatus    = "status"    // jobs/{id}/status (running)
	KindLogs      = journal.LogKind
	KindOutput    = "output"    // executions/{id}/output
	KindCondition = "condition" // executions/{id}/condition
	KindVariable  = "variable"  // variables/{user}/{key}
	KindComplete  = "complete"  // jobs/{id}/complete: the completing call
	KindFail      = "fail"      // jobs/{id}/fail: the completing call of a job that never ran
	KindRelease   = "release"   // jobs/{id}/release
)

// ExecutionItem creates the execution a run's other items refer to.
type ExecutionItem struct {
	ExecutionID string `json:"executionId"`
	JobID       string `json:"jobId"`
	Attempt     int    `json:"attempt"`
}

// StatusItem reports a status transition (only "running" goes to the backend
// this way; the end is the completing call).
type StatusItem struct {
	Status  string    `json:"status"`
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
}

// LogsItem is a batch of live log lines of one execution.
type LogsItem struct {
	ExecutionID string             `json:"executionId"`
	Entries     []backend.LogEntry `json:"entries"`
}

// OutputItem is a value the script set with cronium.output().
type OutputItem struct {
	ExecutionID string          `json:"executionId"`
	Output      json.RawMessage `json:"output"`
	At          time.Time       `json:"at"`
}

// ConditionItem is a condition the script set with cronium.setCondition().
type ConditionItem struct {
	ExecutionID string    `json:"executionId"`
	Condition   bool      `json:"condition"`
	At          time.Time `json:"at"`
}

// VariableItem is a user variable the script wrote.
type VariableItem struct {
	UserID string `json:"userId"`
	Key    string `json:"key"`
	Value  string `json:"value"`
}

// FailItem ends a job that never ran.
type FailItem struct {
	Error    string `json:"error"`
	ExitCode int    `json:"exitCode"`
}

// ReleaseItem gives a claimed job back to the queue.
type ReleaseItem struct {
	Message string `json:"message"`
}

// Item encodes v as a journal item of kind; size is the content's size as
// the budget counts it (log bytes), 0 for the payload's length.
func Item(kind string, v any, size int) (journal.Item, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return journal.Item{}, fmt.Errorf("encode %s item: %w", kind, err)
	}
	return journal.Item{Kind: kind, Payload: raw, Size: size}, nil
}

// LogsSize is the size a batch of log lines counts for in the budget.
func LogsSize(entries []backend.LogEntry) int {
	n := 0
	for _, e := range entries {
		n += len(e.Line) + 48
	}
	return n
}
