// Package state holds what the agent must not lose.
//
// Jobs (jobs.go) is the journal of the jobs this agent claimed, on the
// write-ahead store of package journal. Every fact about a run is written
// there before anything acts on it, and the backend learns it only from
// there, through package syncer:
//
//	records/job/<id>       the claimed job as decoded, sealed (AES-256-GCM)
//	                       with the agent's key: it carries the script and
//	                       environment values. Deleted once the job ends.
//	records/progress/<id>  Progress: state (claimed, running, finished,
//	                       released), attempt, run and execution ids, when
//	                       the script started (its timeout counts from it
//	                       after a restart), the last live-log seq, how many
//	                       output entries of the run are journaled, output,
//	                       condition, and the end.
//	streams/job/<id>/<claim>  the job's outbox: execution, status, logs,
//	                       output, condition, variable, and the completing
//	                       item (complete, fail or release), in order.
//
// Progress is rewritten in the same transaction as every item the job
// appends (journal.Apply), so after a crash the two never disagree: a
// recovered run continues its log at the journaled seq and output entry,
// without a gap or a copy.
//
// Local (local.go) is the store of `cronium-agent exec`, which runs without a
// backend: users' variables, and the last output and condition of each
// execution, in a bbolt file of its own.
package state
