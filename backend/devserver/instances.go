package devserver

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cronium/cronium-agent/backend/api"
)

// Agent states, as the agents view shows them.
const (
	AgentOnline       = "online"
	AgentDisconnected = "disconnected"
)

// heartbeatGap bounds the heartbeat interval the backend infers from the
// gap between an agent's last two heartbeats.
const (
	defaultHeartbeatGap = 10 * time.Second
	minHeartbeatGap     = time.Second
	maxHeartbeatGap     = time.Minute
)

// gap is the agent's heartbeat interval as last seen.
func (o *OrchestratorView) gap() time.Duration {
	if o.HeartbeatGapMs <= 0 {
		return defaultHeartbeatGap
	}
	return min(max(time.Duration(o.HeartbeatGapMs)*time.Millisecond, minHeartbeatGap), maxHeartbeatGap)
}

// State is online while the agent heartbeats, disconnected after three
// missed heartbeats, lost once the backend declared it so (until it is
// heard from again).
func (o *OrchestratorView) State(now time.Time) string {
	if o.LostAt != nil && !o.lastContact().After(*o.LostAt) {
		return AgentLost
	}
	if o.HeartbeatAt == nil || now.Sub(*o.HeartbeatAt) > 3*o.gap() {
		return AgentDisconnected
	}
	return AgentOnline
}

// noteInstance records which agent process calls as o (the instance
// headers), and refuses with 409 a second live process under the same id:
// one whose instance differs from the last one seen, seen within three
// heartbeats, and which does not name it as the process it follows (a
// restart does). A call without the headers (another client) is not
// checked.
func (s *Server) noteInstance(tx *bolt.Tx, orch string, r *http.Request, now time.Time) error {
	inst := strings.TrimSpace(r.Header.Get(api.InstanceHeader))
	if inst == "" {
		return nil
	}
	prev := strings.TrimSpace(r.Header.Get(api.PreviousInstanceHeader))
	host := strings.TrimSpace(r.Header.Get(api.HostHeader))
	var conflict error
	err := s.updateOrch(tx, orch, func(o *OrchestratorView) {
		live := o.InstanceSeenAt != nil && now.Sub(*o.InstanceSeenAt) <= 3*o.gap()
		if o.Instance != "" && o.Instance != inst && prev != o.Instance && live {
			conflict = &apiError{code: http.StatusConflict, msg: fmt.Sprintf(
				"%s: orchestrator id %s is in use by another live agent process (instance %s on host %q, seen %s ago); this process (instance %s on host %q) must not claim jobs under it: give it its own id",
				api.DuplicateIDCode, orch, o.Instance, o.Host, now.Sub(*o.InstanceSeenAt).Round(time.Millisecond), inst, host)}
			return
		}
		if o.Instance != inst {
			o.Instance, o.InstanceSince = inst, ptr(now)
		}
		o.InstanceSeenAt, o.Host = ptr(now), host
		if v, ok := strings.CutPrefix(r.Header.Get("User-Agent"), "cronium-agent/"); ok {
			o.Version = v
		}
	})
	if err != nil {
		return err
	}
	return conflict
}

// countRefusal counts a duplicate-id refusal on the id's record (the refused
// call's own transaction was rolled back).
func (s *Server) countRefusal(orch string, err error) {
	if ae, ok := err.(*apiError); !ok || ae.code != http.StatusConflict {
		return
	}
	_ = s.update(func(tx *bolt.Tx) error {
		return s.updateOrch(tx, orch, func(o *OrchestratorView) { o.Refusals++ })
	})
}

// checkInstance runs noteInstance for a call that claims, releases or
// lists jobs as orch; it answers the call and reports false when refused.
func (s *Server) checkInstance(w http.ResponseWriter, r *http.Request, orch string) bool {
	inst := strings.TrimSpace(r.Header.Get(api.InstanceHeader))
	if orch == "" || inst == "" {
		return true
	}
	// The common case, the live process claiming again, is read only:
	// a bbolt commit per poll is the dev backend's largest cost with many
	// agents, and the heartbeats keep the process's liveness current.
	now := s.now()
	current := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		o, err := load[OrchestratorView](tx, bOrchs, orch)
		current = err == nil && o != nil && o.Instance == inst && o.InstanceSeenAt != nil && now.Sub(*o.InstanceSeenAt) < o.gap()
		return nil
	})
	if current {
		return true
	}
	err := s.update(func(tx *bolt.Tx) error { return s.noteInstance(tx, orch, r, now) })
	if err != nil {
		s.countRefusal(orch, err)
		fail(w, err)
		return false
	}
	return true
}
