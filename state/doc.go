// Package state will hold the bbolt journal and the syncer that delivers it
// to the backend (issue 5). Until then a run's files live below
// <state.dir>/runs/<run id> only while the run lasts.
package state
