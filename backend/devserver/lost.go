package devserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cronium/cronium-agent/backend/api"
)

// DefaultLostAfter is how long an agent may go unheard before the backend
// gives its jobs to others: the deployed backend fails a job after 15
// minutes without news; ours requeues or retries it instead.
const DefaultLostAfter = 15 * time.Minute

// AgentLost: unheard for longer than the lost-after setting; its jobs were
// given back.
const AgentLost = "lost"

// LostAttempt records that a job was taken from an agent declared lost.
type LostAttempt struct {
	Orchestrator string    `json:"orchestrator"`
	Instance     string    `json:"instance,omitempty"`
	At           time.Time `json:"at"`
	// Status is the job's status then: claimed (never started, requeued
	// without counting an attempt) or running (an attempt lost).
	Status string `json:"status"`
	// Attempt is the attempt lost (1-based), for a running job.
	Attempt int `json:"attempt,omitempty"`
}

// WithLostAfter sets how long an agent may go without a heartbeat before it
// is lost (default DefaultLostAfter; 0 never): its claimed jobs go back to
// the queue and its running jobs fail with "agent lost" (exit -1) or, when
// their retry policy allows another attempt, go back to the queue for
// another agent.
func WithLostAfter(d time.Duration) Option { return func(o *options) { o.lostAfter = max(d, 0) } }

// sweepPeriod is how often the backend looks for lost agents: a tenth of
// the setting, so a loss is noticed at most 10% late.
func sweepPeriod(lostAfter time.Duration) time.Duration {
	return min(max(lostAfter/10, 50*time.Millisecond), 30*time.Second)
}

// runSweeper declares agents lost until stop is closed.
func (s *Server) runSweeper(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(sweepPeriod(s.lostAfter))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := s.SweepLost(); err != nil {
			s.log.Error("dev backend: looking for lost agents failed", "error", err)
		}
	}
}

// lastContact is when the agent was last heard from: its last heartbeat
// or its last call carrying the instance headers; zero when never.
func (o *OrchestratorView) lastContact() time.Time {
	var t time.Time
	for _, p := range []*time.Time{o.HeartbeatAt, o.InstanceSeenAt} {
		if p != nil && p.After(t) {
			t = *p
		}
	}
	return t
}

// SweepLost declares lost every agent unheard for longer than the
// lost-after setting and gives its jobs back; it returns how many jobs it
// moved. The server runs it periodically; tests call it with their clock.
func (s *Server) SweepLost() (int, error) {
	if s.lostAfter <= 0 {
		return 0, nil
	}
	now := s.now()
	// A read-only look first: most sweeps find nothing to do.
	var lost []string
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		lost, err = s.lostOrchestrators(tx, now)
		return err
	})
	if err != nil || len(lost) == 0 {
		return 0, err
	}
	moved := 0
	err = s.update(func(tx *bolt.Tx) error {
		moved = 0
		lost, err := s.lostOrchestrators(tx, now)
		if err != nil {
			return err
		}
		for _, orch := range lost {
			n, err := s.declareLost(tx, orch, now)
			if err != nil {
				return err
			}
			moved += n
		}
		return nil
	})
	return moved, err
}

// lostOrchestrators lists the agents to declare lost now: those not yet
// declared whose last contact is older than lostAfter, and those holding a
// job (claimed or running) whose contact, or failing any the claim, is.
func (s *Server) lostOrchestrators(tx *bolt.Tx, now time.Time) ([]string, error) {
	var out []string
	seen := map[string]*OrchestratorView{}
	gone := func(o *OrchestratorView, since time.Time) bool {
		if o != nil {
			if t := o.lastContact(); t.After(since) {
				since = t
			}
		}
		return !since.IsZero() && now.Sub(since) > s.lostAfter
	}
	err := tx.Bucket(bOrchs).ForEach(func(k, v []byte) error {
		var o OrchestratorView
		if err := json.Unmarshal(v, &o); err != nil {
			return err
		}
		seen[o.ID] = &o
		if o.LostAt == nil && gone(&o, time.Time{}) {
			out = append(out, o.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Held jobs of agents the loop above did not name: a client that claims
	// without heartbeats or instance headers has no record.
	err = tx.Bucket(bActive).ForEach(func(k, _ []byte) error {
		orch, id, _ := strings.Cut(string(k), "\x00")
		if slices.Contains(out, orch) {
			return nil
		}
		o := seen[orch] // nil: no record
		j, err := loadJob(tx, id)
		if err != nil || j == nil || j.ClaimedAt == nil {
			return err
		}
		if gone(o, *j.ClaimedAt) {
			out = append(out, orch)
		}
		return nil
	})
	return out, err
}

// declareLost marks orch lost and gives back every job it holds.
func (s *Server) declareLost(tx *bolt.Tx, orch string, now time.Time) (int, error) {
	var held []string
	err := forPrefix(tx.Bucket(bActive), orchPrefix(orch), func(k, _ []byte) error {
		held = append(held, string(k[len(orch)+1:]))
		return nil
	})
	if err != nil {
		return 0, err
	}
	var instance string
	var since time.Duration
	err = s.updateOrch(tx, orch, func(o *OrchestratorView) {
		instance = o.Instance
		if t := o.lastContact(); !t.IsZero() {
			since = now.Sub(t)
		}
		o.LostAt = ptr(now)
		o.LostJobs += len(held)
	})
	if err != nil {
		return 0, err
	}
	why := fmt.Sprintf("agent lost: %s not heard from for more than %s", orch, s.lostAfter)
	if since > 0 {
		why = fmt.Sprintf("agent lost: %s not heard from for %s (lost after %s)", orch, since.Round(time.Second), s.lostAfter)
	}
	s.log.Warn("dev backend: agent lost; its jobs are given back", "orchestrator", orch, "instance", instance, "jobs", len(held), "lostAfter", s.lostAfter)
	for _, id := range held {
		j, err := updateJobTx(tx, id, func(j *jobRecord) error { return s.takeBack(tx, j, instance, why, now) })
		if err != nil {
			return 0, fmt.Errorf("give back job %s of lost agent %s: %w", id, orch, err)
		}
		if Terminal(j.Status) {
			if err := settleExecutions(tx, j, now); err != nil {
				return 0, err
			}
		}
	}
	return len(held), nil
}

// takeBack gives back a job its agent held when the agent was declared
// lost: a claimed job to the queue; a running one's attempt fails, and
// the job goes back to the queue when its retry policy allows another
// attempt, or fails with exit -1 otherwise.
func (s *Server) takeBack(tx *bolt.Tx, j *jobRecord, instance, why string, now time.Time) error {
	la := LostAttempt{Orchestrator: j.OrchestratorID, Instance: instance, At: now, Status: j.Status}
	requeue := func(event, detail string) {
		j.Status = StatusQueued
		j.OrchestratorID = ""
		j.ClaimedAt, j.AcknowledgedAt, j.StartedAt = nil, nil, nil
		j.event(now, event, detail)
	}
	if err := j.markLoss(tx, why, now); err != nil {
		return err
	}
	// An execution may be open though the job is only claimed: its
	// create came, its "running" did not.
	if err := failOpenExecutions(tx, j, why, now); err != nil {
		return err
	}
	cancelled := func(event string) {
		j.Status, j.ExitCode, j.Error = StatusCancelled, ptr(-2), why
		j.CompletedAt = ptr(now)
		j.event(now, event, why+"; a cancel was requested")
	}
	if j.Status == StatusClaimed {
		j.LostFrom = append(j.LostFrom, la)
		if j.CancelRequested {
			cancelled("agent lost, cancelled")
			return nil
		}
		requeue("agent lost, requeued", why+"; the job never started there")
		return nil
	}
	j.LostAttempts++
	la.Attempt = j.LostAttempts + j.wireAttempts()
	j.LostFrom = append(j.LostFrom, la)
	max := j.maxAttempts()
	switch {
	case j.CancelRequested:
		cancelled("agent lost, cancelled")
	case la.Attempt < max:
		if err := j.setWireAttempts(la.Attempt); err != nil {
			return err
		}
		requeue("agent lost, retrying", fmt.Sprintf("attempt %d of %d failed: %s; queued for another agent", la.Attempt, max, why))
	default:
		j.Status, j.ExitCode, j.Error = StatusFailed, ptr(-1), why
		j.StatusMessage = why
		j.CompletedAt = ptr(now)
		j.event(now, "agent lost, failed", fmt.Sprintf("attempt %d of %d failed: %s", la.Attempt, max, why))
	}
	return nil
}

// markLoss writes a system line in the job's log saying what happened,
// after its last line, and numbers the lines of its next run after it.
func (j *jobRecord) markLoss(tx *bolt.Tx, why string, now time.Time) error {
	lb, err := tx.Bucket(bLogs).CreateBucketIfNotExists([]byte(j.ID))
	if err != nil {
		return err
	}
	seq := j.LastLogSeq + 1
	v, err := marshal(LogLine{LogEntry: api.LogEntry{Seq: seq, Stream: "system", Line: "cronium-backend: " + why + "; the job's next run continues below", Timestamp: now}})
	if err != nil {
		return err
	}
	if err := lb.Put(seqKey(seq), v); err != nil {
		return err
	}
	j.LogLines++
	j.LastLogSeq, j.LogSeqBase = seq, seq
	return nil
}

// failOpenExecutions ends the lost attempt's executions as failed.
func failOpenExecutions(tx *bolt.Tx, j *jobRecord, why string, now time.Time) error {
	for _, id := range j.Executions {
		e, err := load[ExecutionView](tx, bExecs, id)
		if err != nil {
			return err
		}
		if e == nil || Terminal(e.Status) {
			continue
		}
		e.Status = StatusFailed
		if e.Fields == nil {
			e.Fields = map[string]json.RawMessage{}
		}
		e.Fields["error"], _ = json.Marshal(why)
		e.UpdatedAt = now
		if err := saveExec(tx, e); err != nil {
			return err
		}
	}
	return nil
}

// wireAttempts is the attempts field of the job as handed out.
func (j *jobRecord) wireAttempts() int {
	var w struct {
		Attempts int `json:"attempts"`
	}
	_ = json.Unmarshal(j.Wire, &w)
	return w.Attempts
}

// setWireAttempts rewrites the attempts field of the job as handed out,
// keeping everything else as it was.
func (j *jobRecord) setWireAttempts(n int) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(j.Wire, &fields); err != nil {
		return fmt.Errorf("job %s: wire form: %w", j.ID, err)
	}
	fields["attempts"] = json.RawMessage(fmt.Sprint(n))
	b, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	j.Wire = b
	return nil
}

// maxAttempts is the job's execution.retryPolicy.maxAttempts, at least 1.
func (j *jobRecord) maxAttempts() int {
	var w struct {
		Execution struct {
			RetryPolicy struct {
				MaxAttempts int `json:"maxAttempts"`
			} `json:"retryPolicy"`
		} `json:"execution"`
	}
	_ = json.Unmarshal(j.Wire, &w)
	return max(w.Execution.RetryPolicy.MaxAttempts, 1)
}

// lostBy reports whether the job was taken from orch as a lost agent.
func (j *jobRecord) lostBy(orch string) bool {
	return orch != "" && slices.ContainsFunc(j.LostFrom, func(l LostAttempt) bool { return l.Orchestrator == orch })
}

// superseded refuses a report on j from caller when j was taken from
// caller as a lost agent and caller does not hold it again: the job ran
// or runs elsewhere, or ended, and the late report must not count.
func superseded(j *jobRecord, caller string) error {
	if !j.lostBy(caller) || (j.held() && j.OrchestratorID == caller) {
		return nil
	}
	var la LostAttempt
	for _, l := range j.LostFrom {
		if l.Orchestrator == caller {
			la = l
		}
	}
	now := "queued for another agent"
	switch {
	case Terminal(j.Status):
		now = "it has ended " + j.Status
	case j.held():
		now = "another agent holds it now"
	}
	return &apiError{code: http.StatusConflict, msg: fmt.Sprintf(
		"%s: job %s was taken from agent %s, declared lost at %s; %s. This report is refused: stop the run and report nothing more of it",
		api.SupersededCode, j.ID, caller, timeText(la.At), now)}
}

// supersededIn lists the jobs of running (a heartbeat's runningJobs) that
// were taken from orch as a lost agent: the agent is to stop them.
func supersededIn(tx *bolt.Tx, orch string, running []string) ([]string, error) {
	out := []string{}
	for _, id := range running {
		j, err := loadJob(tx, id)
		if err != nil {
			return nil, err
		}
		if j != nil && superseded(j, orch) != nil {
			out = append(out, id)
		}
	}
	return out, nil
}

// otherOnline reports whether an agent other than orch is online.
func otherOnline(tx *bolt.Tx, orch string, now time.Time) (bool, error) {
	found := false
	err := tx.Bucket(bOrchs).ForEach(func(_, v []byte) error {
		if found {
			return nil
		}
		var o OrchestratorView
		if err := json.Unmarshal(v, &o); err != nil {
			return err
		}
		found = o.ID != orch && o.State(now) == AgentOnline
		return nil
	})
	return found, err
}
