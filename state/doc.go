// Package state holds what the agent must not lose.
//
// Local (local.go) is the agent's local store of runtime data in a bbolt
// file: users' variables, and the last output and condition of each
// execution. It implements sidecar.Store (structurally; state does not
// import sidecar), so that the runtime API works without a backend, and
// variables persist across runs and restarts.
//
// The journal (jobs, runs, status transitions, log entries, variable writes,
// delivery cursors) and the syncer that delivers it to the backend in order
// come with issue 5. Until then a run's files live below
// <state.dir>/runs/<run id> only while the run lasts.
package state
