package devserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cronium/cronium-agent/backend/api"
)

// OrchestratorView is what the dev backend last heard from an agent.
type OrchestratorView struct {
	ID            string          `json:"id"`
	Heartbeats    int             `json:"heartbeats"`
	LastHeartbeat json.RawMessage `json:"lastHeartbeat,omitempty"`
	HeartbeatAt   *time.Time      `json:"heartbeatAt,omitempty"`
	LastMetrics   json.RawMessage `json:"lastMetrics,omitempty"`
	MetricsAt     *time.Time      `json:"metricsAt,omitempty"`
	LastHealth    json.RawMessage `json:"lastHealth,omitempty"`
	HealthAt      *time.Time      `json:"healthAt,omitempty"`
	// CancelsDelivered counts the job ids sent to it in cancelJobs.
	CancelsDelivered int `json:"cancelsDelivered"`
	// HeartbeatGapMs is the gap between its last two heartbeats.
	HeartbeatGapMs int64 `json:"heartbeatGapMs,omitempty"`
	// The agent process calling under this id (the instance headers).
	Instance       string     `json:"instance,omitempty"`
	InstanceSince  *time.Time `json:"instanceSince,omitempty"`
	InstanceSeenAt *time.Time `json:"instanceSeenAt,omitempty"`
	Host           string     `json:"host,omitempty"`
	Version        string     `json:"version,omitempty"`
	// Refusals counts the calls refused as a second live process's.
	Refusals int `json:"refusals,omitempty"`
	// LostAt is when the backend declared it lost (nil: not lost, or
	// heard from since); LostJobs counts the jobs it gave back then.
	LostAt   *time.Time `json:"lostAt,omitempty"`
	LostJobs int        `json:"lostJobs,omitempty"`
	// Returns counts the heartbeats of this agent after being lost.
	Returns int `json:"returns,omitempty"`
	// StateNow is State at the time of the answer (the agents view).
	StateNow string `json:"state,omitempty"`
}

func (s *Server) updateOrch(tx *bolt.Tx, id string, fn func(o *OrchestratorView)) error {
	b := tx.Bucket(bOrchs)
	o := OrchestratorView{ID: id}
	if v := b.Get([]byte(id)); v != nil {
		if err := json.Unmarshal(v, &o); err != nil {
			return err
		}
	}
	fn(&o)
	v, err := marshal(o)
	if err != nil {
		return err
	}
	return b.Put([]byte(id), v)
}

// orchestratorOf is the orchestrator id given in the body (or query), else
// the X-Orchestrator-ID header; neither is a 400.
func orchestratorOf(r *http.Request, fromBody string) (string, error) {
	if fromBody != "" {
		return fromBody, nil
	}
	if h := strings.TrimSpace(r.Header.Get("X-Orchestrator-ID")); h != "" {
		return h, nil
	}
	return "", errf(http.StatusBadRequest, "orchestratorId is required")
}

func (s *Server) handleHealthGet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "healthy", "timestamp": timeText(s.now()), "backend": "cronium-agent dev backend"})
}

// handleHeartbeat records a heartbeat and hands the agent the cancellations
// requested for the jobs it holds, each once.
func (s *Server) handleHeartbeat(w http.ResponseWriter, r *http.Request) {
	var hb api.Heartbeat
	raw, err := decodeBody(r, &hb, true)
	if err != nil {
		fail(w, err)
		return
	}
	orch, err := orchestratorOf(r, hb.OrchestratorID)
	if err != nil {
		fail(w, err)
		return
	}
	now := s.now()
	cancel := []string{}
	var gone []string
	returned := false
	err = s.batch(func(tx *bolt.Tx) error {
		cancel, returned, gone = []string{}, false, []string{}
		// Only an agent that was ever lost can run a job taken from it:
		// the others' heartbeats load no job.
		o, err := load[OrchestratorView](tx, bOrchs, orch)
		if err != nil {
			return err
		}
		if o != nil && o.LostJobs > 0 {
			if gone, err = supersededIn(tx, orch, hb.RunningJobs); err != nil {
				return err
			}
		}
		prefix := orchPrefix(orch)
		err = forPrefix(tx.Bucket(bCancels), prefix, func(k, _ []byte) error {
			cancel = append(cancel, string(k[len(prefix):]))
			return nil
		})
		if err != nil {
			return err
		}
		if err := s.noteInstance(tx, orch, r, now); err != nil {
			return err
		}
		for _, id := range cancel {
			_, err := updateJobTx(tx, id, func(j *jobRecord) error {
				j.CancelDelivered = true
				j.event(now, "cancel delivered", orch)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return s.updateOrch(tx, orch, func(o *OrchestratorView) {
			o.Heartbeats++
			if o.HeartbeatAt != nil {
				o.HeartbeatGapMs = now.Sub(*o.HeartbeatAt).Milliseconds()
			}
			o.LastHeartbeat = compactJSON(raw)
			o.HeartbeatAt = ptr(now)
			o.CancelsDelivered += len(cancel)
			if o.LostAt != nil {
				o.LostAt, returned = nil, true
				o.Returns++
			}
		})
	})
	if err != nil {
		s.countRefusal(orch, err)
		fail(w, err)
		return
	}
	if returned {
		s.log.Warn("dev backend: a lost agent is back; the jobs taken from it stay with others", "orchestrator", orch, "superseded", gone)
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "timestamp": timeText(now), "cancelJobs": cancel, api.SupersededJobsField: gone})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var body struct {
		OrchestratorID string          `json:"orchestratorId"`
		Period         string          `json:"period"`
		Metrics        json.RawMessage `json:"metrics"`
	}
	raw, err := decodeBody(r, &body, true)
	if err != nil {
		fail(w, err)
		return
	}
	var m api.AgentMetrics
	if len(body.Metrics) == 0 || json.Unmarshal(body.Metrics, &m) != nil {
		writeError(w, http.StatusBadRequest, "metrics must be an object of numbers")
		return
	}
	s.storeOrch(w, r, body.OrchestratorID, func(o *OrchestratorView, now time.Time) {
		o.LastMetrics, o.MetricsAt = compactJSON(raw), ptr(now)
	})
}

func (s *Server) handleHealthPost(w http.ResponseWriter, r *http.Request) {
	var body struct {
		OrchestratorID string `json:"orchestratorId"`
		Status         string `json:"status"`
	}
	raw, err := decodeBody(r, &body, true)
	if err != nil {
		fail(w, err)
		return
	}
	switch body.Status {
	case "healthy", "degraded", "unhealthy":
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status must be healthy, degraded or unhealthy, got %q", body.Status))
		return
	}
	s.storeOrch(w, r, body.OrchestratorID, func(o *OrchestratorView, now time.Time) {
		o.LastHealth, o.HealthAt = compactJSON(raw), ptr(now)
	})
}

func (s *Server) storeOrch(w http.ResponseWriter, r *http.Request, fromBody string, fn func(o *OrchestratorView, now time.Time)) {
	orch, err := orchestratorOf(r, fromBody)
	if err != nil {
		fail(w, err)
		return
	}
	now := s.now()
	err = s.update(func(tx *bolt.Tx) error {
		return s.updateOrch(tx, orch, func(o *OrchestratorView) { fn(o, now) })
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// serverRecord is a registered SSH server.
type serverRecord struct {
	api.Server
	CreatedAt time.Time `json:"createdAt"`
}

func loadServer(tx *bolt.Tx, id string) (*serverRecord, error) {
	rec, err := load[serverRecord](tx, bServers, id)
	if err == nil && rec == nil {
		return nil, errf(http.StatusNotFound, "Server not found")
	}
	return rec, err
}

func (s *Server) viewServer(id string) (*serverRecord, error) {
	var out *serverRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = loadServer(tx, id)
		return err
	})
	return out, err
}

func (s *Server) handleServer(w http.ResponseWriter, r *http.Request) {
	sr, err := s.viewServer(r.PathValue("id"))
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": map[string]any{
		"id": sr.ID, "name": sr.Name, "address": sr.Host, "port": sr.Port, "username": sr.Username,
		"online": true, "createdAt": timeText(sr.CreatedAt),
	}})
}

func (s *Server) handleCredentials(w http.ResponseWriter, r *http.Request) {
	if _, err := orchestratorHeader(r); err != nil {
		fail(w, err)
		return
	}
	sr, err := s.viewServer(r.PathValue("id"))
	if err != nil {
		fail(w, err)
		return
	}
	creds := map[string]any{"host": sr.Host, "port": sr.Port, "username": sr.Username}
	if sr.PrivateKey != "" {
		creds["privateKey"] = sr.PrivateKey
	}
	if sr.Password != "" {
		creds["password"] = sr.Password
	}
	writeJSON(w, http.StatusOK, map[string]any{"credentials": creds})
}
