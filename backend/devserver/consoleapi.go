package devserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The operator API's calls that the web console needs beyond the CLI's:
// user variables (listed without their values), a job run again, and log
// pages of a chosen size.

// VariableView is a stored user variable without its value: the console
// and the API never show a value back (it may be a secret), only that it
// is set and how long it is.
type VariableView struct {
	UserID    string    `json:"userId"`
	Key       string    `json:"key"`
	Size      int       `json:"size"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func (s *Server) handleDevVariables(w http.ResponseWriter, r *http.Request) {
	out := []VariableView{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bVars).ForEachBucket(func(user []byte) error {
			return tx.Bucket(bVars).Bucket(user).ForEach(func(k, v []byte) error {
				var rec varRecord
				if err := json.Unmarshal(v, &rec); err != nil {
					return err
				}
				out = append(out, VariableView{UserID: string(user), Key: string(k), Size: len(rec.Value), UpdatedAt: rec.UpdatedAt})
				return nil
			})
		})
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"variables": out})
}

func (s *Server) handleDevVariableDelete(w http.ResponseWriter, r *http.Request) {
	user, key := r.PathValue("user"), r.PathValue("key")
	found := false
	err := s.update(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bVars).Bucket([]byte(user))
		if ub == nil || ub.Get([]byte(key)) == nil {
			return nil
		}
		found = true
		return ub.Delete([]byte(key))
	})
	if err != nil {
		fail(w, err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, "Variable not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
}

// handleDevRerun queues a copy of a job: its wire job with a new id, new
// times, no attempts, and (when it has them) a new logId and eventId, so
// that nothing of the copy's executions or logs mixes with the original's.
func (s *Server) handleDevRerun(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	var j *jobRecord
	err := s.update(func(tx *bolt.Tx) error {
		orig, err := loadJob(tx, r.PathValue("id"))
		if err != nil {
			return err
		}
		if orig == nil {
			return errJobNotFound
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(orig.Wire, &fields); err != nil {
			return errf(http.StatusConflict, "job %s cannot be run again: its wire job is not an object", orig.ID)
		}
		delete(fields, "id")
		stamp, _ := json.Marshal(timeText(now))
		fields["createdAt"], fields["scheduledFor"] = stamp, stamp
		if _, ok := fields["attempts"]; ok {
			fields["attempts"] = json.RawMessage("0")
		}
		var md map[string]json.RawMessage
		if json.Unmarshal(fields["metadata"], &md) == nil && md != nil {
			if _, ok := md["logId"]; ok {
				md["logId"] = json.RawMessage(strconv.FormatUint(nextCounter(tx, "logId"), 10))
			}
			if b, err := json.Marshal(md); err == nil {
				fields["metadata"] = b
			}
		}
		raw, err := json.Marshal(fields)
		if err != nil {
			return err
		}
		if j, err = rawJob(raw, now); err != nil {
			return err
		}
		j.OriginalType, j.Runtime = orig.OriginalType, orig.Runtime
		seq, err := tx.Bucket(bJobs).NextSequence()
		if err != nil {
			return err
		}
		j.Seq = seq
		j.Status = StatusQueued
		j.SubmittedAt = now
		j.event(now, "submitted", "run again from "+orig.ID)
		return saveJob(tx, nil, j)
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": j.ID, "status": j.Status})
}

// Variables lists the stored user variables, without their values.
func (c *DevClient) Variables(ctx context.Context) ([]VariableView, error) {
	var out struct {
		Variables []VariableView `json:"variables"`
	}
	err := c.do(ctx, http.MethodGet, "/api/dev/variables", nil, &out)
	sort.Slice(out.Variables, func(a, b int) bool {
		va, vb := out.Variables[a], out.Variables[b]
		if va.UserID != vb.UserID {
			return va.UserID < vb.UserID
		}
		return va.Key < vb.Key
	})
	return out.Variables, err
}

// SetVariable stores a user variable, as a script's helper would.
func (c *DevClient) SetVariable(ctx context.Context, user, key, value string) error {
	return c.do(ctx, http.MethodPut, "/api/internal/variables/"+url.PathEscape(user)+"/"+url.PathEscape(key), map[string]string{"value": value}, nil)
}

// DeleteVariable removes a user variable.
func (c *DevClient) DeleteVariable(ctx context.Context, user, key string) error {
	return c.do(ctx, http.MethodDelete, "/api/dev/variables/"+url.PathEscape(user)+"/"+url.PathEscape(key), nil, nil)
}

// Rerun queues a copy of a job and returns the copy's id.
func (c *DevClient) Rerun(ctx context.Context, id string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := c.do(ctx, http.MethodPost, "/api/dev/jobs/"+url.PathEscape(id)+"/rerun", nil, &out)
	return out.ID, err
}

// LogRange returns at most limit log lines of a job with seq > after.
func (c *DevClient) LogRange(ctx context.Context, id string, after uint64, limit int) (LogPage, error) {
	if limit <= 0 {
		return LogPage{}, fmt.Errorf("log range of job %s: limit %d", id, limit)
	}
	var out LogPage
	err := c.do(ctx, http.MethodGet, "/api/dev/jobs/"+url.PathEscape(id)+"/logs?after="+strconv.FormatUint(after, 10)+"&limit="+strconv.Itoa(limit), nil, &out)
	return out, err
}

// InProcessClient returns a DevClient that calls this server's handler
// directly, without a socket (the web console's, in the same process).
func (s *Server) InProcessClient(token string) *DevClient {
	return &DevClient{base: "http://in-process", token: token, HTTPClient: &http.Client{Transport: handlerTransport{s.handler}}}
}

// handlerTransport answers requests with a handler.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
	t.h.ServeHTTP(rec, r)
	return &http.Response{
		StatusCode: rec.code, Status: http.StatusText(rec.code), Header: rec.header,
		Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()), Request: r,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}, nil
}

type bufferedResponse struct {
	header      http.Header
	code        int
	wroteHeader bool
	body        bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wroteHeader {
		b.code, b.wroteHeader = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wroteHeader = true
	return b.body.Write(p)
}
