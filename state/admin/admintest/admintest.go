// Package admintest provides an in-memory admin.Source for the tests of
// the admin socket and of the commands that read it, as httptest does for
// net/http.
package admintest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/state/admin"
)

// Source serves what the test put in it; it is safe for concurrent use, so
// a test may append lines while a client follows them.
type Source struct {
	mu     sync.Mutex
	status admin.Status
	jobs   []admin.JobSummary
	logs   map[string]*jobLog
	armed  time.Time
}

type jobLog struct {
	lines    []admin.LogLine
	complete bool
}

// New returns a Source with the given status and jobs (newest first) and
// no logs.
func New(status admin.Status, jobs ...admin.JobSummary) *Source {
	return &Source{status: status, jobs: jobs, logs: map[string]*jobLog{}}
}

// Append adds lines to a job's log (making the job known), numbering those
// whose Seq is 0 after the last line.
func (s *Source) Append(jobID string, lines ...admin.LogLine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.log(jobID)
	for _, line := range lines {
		if line.Seq == 0 {
			line.Seq = 1
			if n := len(l.lines); n > 0 {
				line.Seq = l.lines[n-1].Seq + 1
			}
		}
		l.lines = append(l.lines, line)
	}
}

// Complete marks a job's log complete: no more lines will come.
func (s *Source) Complete(jobID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log(jobID).complete = true
}

func (s *Source) log(jobID string) *jobLog {
	l, ok := s.logs[jobID]
	if !ok {
		l = &jobLog{}
		s.logs[jobID] = l
	}
	return l
}

// Status implements admin.Source.
func (s *Source) Status(context.Context) (admin.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status, nil
}

// Jobs implements admin.Source.
func (s *Source) Jobs(_ context.Context, limit int) ([]admin.JobSummary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.jobs[:min(limit, len(s.jobs))]), nil
}

// Logs implements admin.Source.
func (s *Source) Logs(_ context.Context, jobID string, after uint64, limit int) ([]admin.LogLine, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logs[jobID]
	if !ok {
		return nil, false, admin.ErrUnknownJob
	}
	var out []admin.LogLine
	for _, line := range l.lines {
		if line.Seq > after && len(out) < limit {
			out = append(out, line)
		}
	}
	return out, l.complete, nil
}

// HandOver implements admin.HandOverSource: it records until (Armed) and
// answers with the status's running jobs.
func (s *Source) HandOver(_ context.Context, until time.Time) (admin.HandOver, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.armed = until
	return admin.HandOver{Until: until, Running: len(s.status.Running)}, nil
}

// Armed is the until of the last HandOver (zero: none).
func (s *Source) Armed() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.armed
}
