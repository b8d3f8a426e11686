package devserver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cronium/cronium-agent/backend/api"
)

// Buckets of the bbolt file:
//
//	jobs/<jobID>                    = jobRecord (JSON)
//	queue/<prio desc|created|seq>   = jobID       (index: status queued)
//	active/<orchID>\x00<jobID>      = ""          (index: claimed or running)
//	cancels/<orchID>\x00<jobID>     = ""          (index: cancel requested, not yet delivered)
//	logs/<jobID>/<seq, 8 bytes BE>  = LogLine (JSON)
//	executions/<executionID>        = execRecord (JSON)
//	variables/<userID>/<key>        = varRecord (JSON)
//	servers/<serverID>              = serverRecord (JSON)
//	orchestrators/<orchID>          = OrchestratorView (JSON)
//	meta/<counter>                  = uint64 (8 bytes BE)
var (
	bJobs    = []byte("jobs")
	bQueue   = []byte("queue")
	bActive  = []byte("active")
	bCancels = []byte("cancels")
	bLogs    = []byte("logs")
	bExecs   = []byte("executions")
	bVars    = []byte("variables")
	bServers = []byte("servers")
	bOrchs   = []byte("orchestrators")
	bMeta    = []byte("meta")
)

func initBuckets(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bJobs, bQueue, bActive, bCancels, bLogs, bExecs, bVars, bServers, bOrchs, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// Job statuses.
const (
	StatusQueued    = "queued"
	StatusClaimed   = "claimed"
	StatusRunning   = "running"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusTimeout   = "timeout"
	StatusCancelled = "cancelled"
)

// Terminal reports whether a job status is final.
func Terminal(status string) bool {
	switch status {
	case StatusCompleted, StatusFailed, StatusTimeout, StatusCancelled:
		return true
	}
	return false
}

// CompletionCall is one completing call (complete or fail) as received.
type CompletionCall struct {
	Endpoint   string          `json:"endpoint"` // "complete" or "fail"
	ReceivedAt time.Time       `json:"receivedAt"`
	Body       json.RawMessage `json:"body"`
}

// HistoryEvent is one thing that happened to a job.
type HistoryEvent struct {
	At     time.Time `json:"at"`
	Event  string    `json:"event"`
	Detail string    `json:"detail,omitempty"`
}

// jobRecord is everything the dev backend knows about a job.
type jobRecord struct {
	ID  string `json:"id"`
	Seq uint64 `json:"seq"` // submission order
	// Wire is the job exactly as jobs/queue hands it out.
	Wire         json.RawMessage `json:"wire"`
	WireType     string          `json:"wireType,omitempty"`
	OriginalType string          `json:"originalType,omitempty"`
	Runtime      string          `json:"runtime,omitempty"`
	Priority     int             `json:"priority"`
	CreatedAt    time.Time       `json:"createdAt"`
	ScheduledFor time.Time       `json:"scheduledFor"` // zero: at once
	SubmittedAt  time.Time       `json:"submittedAt"`
	UpdatedAt    time.Time       `json:"updatedAt"`

	Status         string     `json:"status"`
	OrchestratorID string     `json:"orchestratorId,omitempty"`
	ClaimedAt      *time.Time `json:"claimedAt,omitempty"`
	AcknowledgedAt *time.Time `json:"acknowledgedAt,omitempty"`
	StartedAt      *time.Time `json:"startedAt,omitempty"`
	CompletedAt    *time.Time `json:"completedAt,omitempty"`
	StatusMessage  string     `json:"statusMessage,omitempty"`

	CancelRequested   bool       `json:"cancelRequested,omitempty"`
	CancelRequestedAt *time.Time `json:"cancelRequestedAt,omitempty"`
	CancelDelivered   bool       `json:"cancelDelivered,omitempty"`

	ExitCode     *int            `json:"exitCode,omitempty"`
	Output       *api.Output     `json:"output,omitempty"`
	ScriptOutput json.RawMessage `json:"scriptOutput,omitempty"`
	Condition    *bool           `json:"condition,omitempty"`
	Metrics      json.RawMessage `json:"metrics,omitempty"`
	Error        string          `json:"error,omitempty"`

	Completions []CompletionCall `json:"completions,omitempty"`
	Executions  []string         `json:"executions,omitempty"`
	LogLines    int              `json:"logLines"`
	LastLogSeq  uint64           `json:"lastLogSeq"`
	Claims      int              `json:"claims"`
	Releases    int              `json:"releases"`
	// LostFrom records each time the job was taken from an agent declared
	// lost; LostAttempts counts the running attempts lost so.
	LostFrom     []LostAttempt `json:"lostFrom,omitempty"`
	LostAttempts int           `json:"lostAttempts,omitempty"`
	// LogSeqBase is added to the seq of every line received: the agent
	// that takes a job over from a lost one numbers its lines from 1
	// again, and they follow the lost attempt's instead of being taken
	// for copies of them.
	LogSeqBase uint64         `json:"logSeqBase,omitempty"`
	History    []HistoryEvent `json:"history,omitempty"`
}

func (j *jobRecord) event(at time.Time, event, detail string) {
	j.History = append(j.History, HistoryEvent{At: at, Event: event, Detail: detail})
	j.UpdatedAt = at
}

// held reports whether an orchestrator holds the job (claimed or running).
func (j *jobRecord) held() bool {
	return j.OrchestratorID != "" && (j.Status == StatusClaimed || j.Status == StatusRunning)
}

var errJobNotFound = &apiError{code: http.StatusNotFound, msg: "Job not found"}

type indexEntry struct {
	bucket, key, val []byte
}

// indexEntries are the index keys a job record has in its current state.
func indexEntries(j *jobRecord) []indexEntry {
	var out []indexEntry
	if j.Status == StatusQueued {
		out = append(out, indexEntry{bQueue, queueKey(j), []byte(j.ID)})
	}
	if j.held() {
		k := orchKey(j.OrchestratorID, j.ID)
		out = append(out, indexEntry{bActive, k, nil})
		if j.CancelRequested && !j.CancelDelivered {
			out = append(out, indexEntry{bCancels, k, nil})
		}
	}
	return out
}

// queueKey sorts by priority descending, then createdAt, then submission.
func queueKey(j *jobRecord) []byte {
	k := make([]byte, 24)
	binary.BigEndian.PutUint64(k[0:], ^(uint64(int64(j.Priority)) ^ 1<<63))
	binary.BigEndian.PutUint64(k[8:], uint64(j.CreatedAt.UnixNano())^1<<63)
	binary.BigEndian.PutUint64(k[16:], j.Seq)
	return k
}

func orchKey(orch, job string) []byte {
	return append(append([]byte(orch), 0), job...)
}

func orchPrefix(orch string) []byte { return append([]byte(orch), 0) }

func seqKey(seq uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, seq)
	return k
}

func loadJob(tx *bolt.Tx, id string) (*jobRecord, error) {
	return load[jobRecord](tx, bJobs, id)
}

// load reads the JSON record id of bucket; nil when there is none.
func load[T any](tx *bolt.Tx, bucket []byte, id string) (*T, error) {
	v := tx.Bucket(bucket).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var rec T
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// saveJob writes j and moves its index entries from the state before
// (nil for a new job) to its current state.
func saveJob(tx *bolt.Tx, before []indexEntry, j *jobRecord) error {
	for _, e := range before {
		if err := tx.Bucket(e.bucket).Delete(e.key); err != nil {
			return err
		}
	}
	for _, e := range indexEntries(j) {
		b := tx.Bucket(e.bucket)
		if err := b.Put(e.key, e.val); err != nil {
			return err
		}
		if string(e.bucket) == string(bQueue) {
			// Counted, for Server.update to wake the waiting claims.
			if _, err := b.NextSequence(); err != nil {
				return err
			}
		}
	}
	b, err := marshal(j)
	if err != nil {
		return err
	}
	return tx.Bucket(bJobs).Put([]byte(j.ID), b)
}

// updateJobTx applies fn to the job and saves it, keeping the indexes right.
func updateJobTx(tx *bolt.Tx, id string, fn func(j *jobRecord) error) (*jobRecord, error) {
	j, err := loadJob(tx, id)
	if err != nil {
		return nil, err
	}
	if j == nil {
		return nil, errJobNotFound
	}
	before := indexEntries(j)
	if err := fn(j); err != nil {
		return nil, err
	}
	return j, saveJob(tx, before, j)
}

// updateJob is updateJobTx in a transaction of its own (batched: fn may
// run more than once, on the job as stored each time).
func (s *Server) updateJob(id string, fn func(j *jobRecord) error) (*jobRecord, error) {
	var out *jobRecord
	err := s.batch(func(tx *bolt.Tx) error {
		j, err := updateJobTx(tx, id, fn)
		out = j
		return err
	})
	return out, err
}

func (s *Server) viewJob(id string) (*jobRecord, error) {
	var out *jobRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		j, err := loadJob(tx, id)
		if err == nil && j == nil {
			err = errJobNotFound
		}
		out = j
		return err
	})
	return out, err
}

// nextCounter increments a named counter in meta.
func nextCounter(tx *bolt.Tx, name string) uint64 {
	b := tx.Bucket(bMeta)
	var n uint64
	if v := b.Get([]byte(name)); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	b.Put([]byte(name), seqKey(n))
	return n
}

// forPrefix calls fn for every key of bucket starting with prefix.
func forPrefix(b *bolt.Bucket, prefix []byte, fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// marshal is json.Marshal without HTML escaping: raw jobs, outputs and log
// lines are kept (and handed out) as they were received.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
