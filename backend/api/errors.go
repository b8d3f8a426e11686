package api

import (
	"context"
	"errors"
)

// Errors of a call to the backend that mean the same to every caller,
// whatever carries the call. The client in package backend returns them;
// the syncer and the dispatcher act on them without knowing the client.
var (
	// ErrNotClaimed: jobs/{id}/acknowledge answered 403, the job is not
	// claimed by this agent; it must not run it.
	ErrNotClaimed = errors.New("the job is not claimed by this agent")
	// ErrNoLogEndpoint: jobs/{id}/logs answered 404 or 405, the backend
	// has no live log endpoint (the deployed backend); output reaches it
	// with the completion only.
	ErrNoLogEndpoint = errors.New("the backend has no live log endpoint")
	// ErrInvalidArgument: the call was refused by the client before any
	// request (empty id, status not allowed, invalid JSON...). Final.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrSuperseded: a report was refused with 409 SupersededCode, the job
	// was taken from this agent when the backend declared it lost. Final:
	// nothing more of that run is to be sent.
	ErrSuperseded = errors.New("the backend gave the job to another agent")
)

// IsTransient tells whether the backend did not give a final answer: an
// error in err's chain that says so of itself (a Transient method: the
// client's transport errors, 429 and 5xx answers), or the caller's context
// ending. The caller keeps what it was delivering and tries again later.
// Everything else (other answers, ErrNotClaimed, ErrNoLogEndpoint,
// ErrInvalidArgument, an unreadable body) is final.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrNotClaimed) || errors.Is(err, ErrNoLogEndpoint) || errors.Is(err, ErrSuperseded) {
		return false
	}
	var t interface{ Transient() bool }
	if errors.As(err, &t) {
		return t.Transient()
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
