// Package syncer delivers the jobs journal's outbox streams to the backend:
// each job's items in order, each at least once, acknowledged in the journal
// only once the backend took them. What the backend sees happens once: log
// lines are keyed by seq there, and a completing call, once acknowledged,
// is never sent again.
package syncer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/state"
	"github.com/cronium/cronium-agent/state/journal"
)

// Backend is what the syncer calls.
type Backend interface {
	CreateExecution(ctx context.Context, executionID string, body api.CreateExecution) error
	UpdateExecution(ctx context.Context, executionID string, u api.ExecutionUpdate) error
	SetStatus(ctx context.Context, jobID, status, message string) error
	SendLogs(ctx context.Context, jobID, executionID string, entries []api.LogEntry) error
	SetExecutionOutput(ctx context.Context, executionID string, value json.RawMessage) error
	SetExecutionCondition(ctx context.Context, executionID string, value bool) error
	SetVariable(ctx context.Context, userID, key, value string) error
	Complete(ctx context.Context, jobID string, c api.Completion) error
	Fail(ctx context.Context, jobID, message string, exitCode int) error
	Release(ctx context.Context, jobID, message string) error
}

// Batches of log lines sent in one call, as the contract's live batches.
const (
	maxBatchLines = 500
	maxBatchBytes = 256 << 10
	// A page of a stream read at once: items can be megabytes each under
	// heavy output, and the agent's memory must not grow with a backlog.
	pageItems = 512
	pageBytes = 8 << 20
)

// Option configures a Syncer.
type Option func(*Syncer)

// WithConcurrency sets how many streams are delivered at once (default 4).
func WithConcurrency(n int) Option { return func(s *Syncer) { s.conc = max(1, n) } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Syncer) { s.log = l } }

// WithRetry sets the wait after the backend could not be reached, doubled
// up to max while it stays so (defaults 500 ms and 5 s).
func WithRetry(first, max time.Duration) Option {
	return func(s *Syncer) { s.retryFirst, s.retryMax = first, max }
}

// WithFault sets a function called at named points (fault-injection tests):
// "execution-created" after an execution's create was acknowledged,
// "completed" after a completing call was.
func WithFault(fn func(point string)) Option {
	return func(s *Syncer) {
		if fn != nil {
			s.fault = fn
		}
	}
}

// WithSuperseded sets a function called with a job's id when the backend
// refused a report on it as superseded (api.ErrSuperseded: the job was
// taken from this agent when it was declared lost); the syncer then drops
// what is left of the job's stream. The agent stops the run there.
func WithSuperseded(fn func(jobID string)) Option {
	return func(s *Syncer) { s.superseded = fn }
}

// Syncer delivers streams. Create it with New, start Run, and call Notify
// whenever a stream got items.
type Syncer struct {
	j                    *journal.Journal
	be                   Backend
	log                  *slog.Logger
	conc                 int
	retryFirst, retryMax time.Duration
	fault                func(string)
	superseded           func(jobID string)

	logsOff atomic.Bool // the backend has no live-log endpoint

	mu      sync.Mutex
	dirty   map[string]time.Time // stream → since when it has items to deliver
	busy    map[string]bool
	gone    map[string]bool // streams of superseded jobs, told once
	wake    chan struct{}
	idle    *sync.Cond
	retryAt time.Time // while unreachable: no delivery before
	backoff time.Duration

	loaded      chan struct{} // closed once Run has picked up the backlog
	loadOnce    sync.Once
	reachable   atomic.Bool
	lastContact atomic.Int64
	lastErr     atomic.Pointer[string]
	errors      atomic.Int64 // failed deliveries since New
}

// New returns a syncer of j's streams to be.
func New(j *journal.Journal, be Backend, opts ...Option) *Syncer {
	s := &Syncer{
		j: j, be: be, log: slog.Default(), conc: 4,
		retryFirst: 500 * time.Millisecond, retryMax: 5 * time.Second,
		fault: func(string) {},
		dirty: map[string]time.Time{}, busy: map[string]bool{}, gone: map[string]bool{}, wake: make(chan struct{}, 1),
		loaded: make(chan struct{}),
	}
	s.idle = sync.NewCond(&s.mu)
	s.reachable.Store(true)
	for _, o := range opts {
		o(s)
	}
	return s
}

// Notify tells the syncer a stream has new items.
func (s *Syncer) Notify(stream string) {
	s.mu.Lock()
	if _, ok := s.dirty[stream]; !ok {
		s.dirty[stream] = time.Now()
	}
	s.mu.Unlock()
	s.kick()
}

func (s *Syncer) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Reachable reports whether the backend answered the last delivery.
func (s *Syncer) Reachable() bool { return s.reachable.Load() }

// Contact returns when the backend last took a delivery and the last error
// that kept one from it ("" once it answers again).
func (s *Syncer) Contact() (time.Time, string) {
	var last time.Time
	if n := s.lastContact.Load(); n != 0 {
		last = time.Unix(0, n)
	}
	msg := ""
	if p := s.lastErr.Load(); p != nil {
		msg = *p
	}
	return last, msg
}

// Errors counts the deliveries that failed since New (each is retried).
func (s *Syncer) Errors() int64 { return s.errors.Load() }

// Backlog returns the number of streams with items still to deliver.
func (s *Syncer) Backlog() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dirty)
}

// Run delivers until ctx ends. It first picks up every stream the journal
// holds undelivered items of (a backlog from before a restart), the one
// waiting longest first.
func (s *Syncer) Run(ctx context.Context) error {
	infos, err := s.j.Streams(ctx)
	if err != nil {
		return fmt.Errorf("syncer: list streams: %w", err)
	}
	s.mu.Lock()
	for _, in := range infos {
		if in.Pending > 0 {
			s.dirty[in.Stream] = in.OldestPending
		}
	}
	s.mu.Unlock()
	s.loadOnce.Do(func() { close(s.loaded) })
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		for _, stream := range s.next() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.deliverStream(ctx, stream)
			}()
		}
		timer.Reset(s.untilRetry())
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// next marks busy and returns the streams to start now: the longest
// waiting first, up to the free workers; while the backend is unreachable,
// one probe at a time once the retry time has come.
func (s *Syncer) next() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	free := s.conc - len(s.busy)
	if !s.retryAt.IsZero() {
		if time.Now().Before(s.retryAt) || len(s.busy) > 0 {
			return nil
		}
		free = 1
	}
	if free <= 0 || len(s.dirty) == 0 {
		return nil
	}
	cands := make([]string, 0, len(s.dirty))
	for st := range s.dirty {
		if !s.busy[st] {
			cands = append(cands, st)
		}
	}
	sort.Slice(cands, func(a, b int) bool {
		ta, tb := s.dirty[cands[a]], s.dirty[cands[b]]
		if !ta.Equal(tb) {
			return ta.Before(tb)
		}
		return cands[a] < cands[b]
	})
	if len(cands) > free {
		cands = cands[:free]
	}
	for _, st := range cands {
		s.busy[st] = true
	}
	return cands
}

func (s *Syncer) untilRetry() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retryAt.IsZero() {
		return time.Second // a safety net: Notify wakes it sooner
	}
	return max(time.Until(s.retryAt), time.Millisecond)
}

// Flush waits until every stream with items is delivered or ctx ends.
func (s *Syncer) Flush(ctx context.Context) error {
	select {
	case <-s.loaded:
	case <-ctx.Done():
		return fmt.Errorf("syncer: not started: %w", ctx.Err())
	}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.idle.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	go func() {
		defer close(done)
		s.mu.Lock()
		defer s.mu.Unlock()
		for (len(s.dirty) > 0 || len(s.busy) > 0) && ctx.Err() == nil {
			s.idle.Wait()
		}
	}()
	<-done
	if ctx.Err() != nil {
		return fmt.Errorf("syncer: %d streams not delivered: %w", s.Backlog(), ctx.Err())
	}
	return nil
}

// deliverStream sends a stream's pending items until none is left or the
// backend cannot be reached.
func (s *Syncer) deliverStream(ctx context.Context, stream string) {
	var err error
	for ctx.Err() == nil {
		var more bool
		more, err = s.deliverPage(ctx, stream)
		if err != nil || !more {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, stream)
	switch {
	case err == nil && ctx.Err() == nil:
		// Delivered. Items appended meanwhile notified it again: keep it
		// then (their Notify found it still dirty and did not re-add it).
		if info, found, ierr := s.j.Stream(context.WithoutCancel(ctx), stream); ierr != nil || !found || info.Pending == 0 {
			delete(s.dirty, stream)
		} else {
			s.kick()
		}
	case err != nil && api.IsTransient(err):
		s.unreachable(err)
	case err != nil:
		s.log.Error("delivering a job's journal failed; retrying later", "stream", stream, "error", err)
		s.unreachable(err)
	}
	s.idle.Broadcast()
}

// unreachable records a failed delivery; s.mu is held.
func (s *Syncer) unreachable(err error) {
	s.errors.Add(1)
	if s.reachable.Swap(false) {
		s.log.Warn("backend unreachable: jobs keep running, their reports wait in the journal", "error", err)
	}
	msg := err.Error()
	s.lastErr.Store(&msg)
	s.backoff = min(max(s.backoff*2, s.retryFirst), s.retryMax)
	s.retryAt = time.Now().Add(s.backoff)
}

func (s *Syncer) contact() {
	s.lastContact.Store(time.Now().UnixNano())
	if !s.reachable.Swap(true) {
		s.log.Info("backend reachable again: delivering the backlog", "streams", s.Backlog())
	}
	s.mu.Lock()
	s.retryAt, s.backoff = time.Time{}, 0
	s.mu.Unlock()
	s.lastErr.Store(nil)
	s.kick()
}

// deliverPage delivers one page of pending items; more says whether there
// may be more.
func (s *Syncer) deliverPage(ctx context.Context, stream string) (more bool, err error) {
	items, err := s.j.PendingPage(ctx, stream, 0, journal.Page{Items: pageItems, Bytes: pageBytes})
	if err != nil {
		return false, fmt.Errorf("read stream %s: %w", stream, err)
	}
	if len(items) == 0 {
		return false, nil
	}
	jobID := JobOfStream(stream)
	var logs state.LogReader // the page's log lines, read in order
	for i := 0; i < len(items); {
		n, err := s.deliver(ctx, jobID, &logs, items, i)
		if errors.Is(err, api.ErrSuperseded) {
			return false, s.dropSuperseded(ctx, stream, jobID, items[i], err)
		}
		if err != nil {
			return false, err
		}
		if err := s.j.Ack(context.WithoutCancel(ctx), stream, items[i+n-1].LastSeq); err != nil {
			return false, fmt.Errorf("acknowledge stream %s: %w", stream, err)
		}
		for _, it := range items[i : i+n] {
			s.delivered(it)
		}
		i += n
	}
	if m, ok := logs.Pending(); ok {
		// The line after the gap is on a later page (the budget always
		// keeps a stream's last log items), so there is no seq to number
		// the notice with and the marker was delivered without it.
		s.log.Warn("journal dropped log lines of a job while the backend was unreachable", "job", jobID, "items", m.Items, "bytes", m.Bytes)
	}
	// A short page may have been cut by its byte bound: read again until
	// the stream has nothing pending.
	return true, nil
}

// dropSuperseded acknowledges everything stream holds: the backend
// refused one of its reports because the job was taken from this agent,
// and it refuses the rest alike. The items stay in the journal.
func (s *Syncer) dropSuperseded(ctx context.Context, stream, jobID string, it journal.StoredItem, refusal error) error {
	info, found, err := s.j.Stream(context.WithoutCancel(ctx), stream)
	if err != nil {
		return fmt.Errorf("read stream %s: %w", stream, err)
	}
	if found && info.LastSeq > 0 {
		if err := s.j.Ack(context.WithoutCancel(ctx), stream, info.LastSeq); err != nil {
			return fmt.Errorf("acknowledge stream %s: %w", stream, err)
		}
	}
	s.contact()
	s.mu.Lock()
	first := !s.gone[stream]
	s.gone[stream] = true
	s.mu.Unlock()
	if !first {
		// The run's last lines, journaled while it stopped.
		s.log.Debug("items of a superseded job dropped", "job", jobID, "items", info.Pending)
		return nil
	}
	s.log.Warn("the backend gave this job to another agent while this one was out of touch (declared lost): what is left of its reports is kept in the journal and not sent",
		"job", jobID, "refused", it.Kind, "items", info.Pending, "error", refusal)
	if s.superseded != nil {
		s.superseded(jobID)
	}
	return nil
}

func (s *Syncer) delivered(it journal.StoredItem) {
	switch it.Kind {
	case state.KindExecution:
		s.fault("execution-created")
	case state.KindComplete, state.KindFail:
		s.fault("completed")
	}
}

// JobOfStream is the job id of a stream named job/<id>/<claim>.
func JobOfStream(stream string) string {
	rest, ok := strings.CutPrefix(stream, "job/")
	if !ok {
		return stream
	}
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		return rest[:i]
	}
	return rest
}

// deliver sends items[i] (with the log items right after it, when it is
// one) and returns how many items the call covered. A final refusal (4xx)
// is logged and counts as delivered: sending it again cannot succeed.
func (s *Syncer) deliver(ctx context.Context, jobID string, logs *state.LogReader, items []journal.StoredItem, i int) (int, error) {
	it := items[i]
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var (
		n   = 1
		err error
	)
	switch it.Kind {
	case state.KindLogs, journal.MarkerKind:
		var exec string
		var entries []api.LogEntry
		exec, entries, n, err = s.logBatch(logs, items, i)
		if err == nil {
			err = s.sendLogs(cctx, jobID, exec, entries)
		}
	case state.KindExecution:
		var p state.ExecutionItem
		if err = decode(it, &p); err == nil {
			err = s.be.CreateExecution(cctx, p.ExecutionID, api.CreateExecution{JobID: p.JobID, ServerID: p.ServerID, ServerName: p.ServerName})
		}
	case state.KindExecutionUpdate:
		var p state.ExecutionUpdateItem
		if err = decode(it, &p); err == nil {
			err = s.be.UpdateExecution(cctx, p.ExecutionID, p.Update)
		}
	case state.KindStatus:
		var p state.StatusItem
		if err = decode(it, &p); err == nil {
			err = s.be.SetStatus(cctx, jobID, p.Status, p.Message)
		}
	case state.KindOutput:
		var p state.OutputItem
		if err = decode(it, &p); err == nil {
			err = s.be.SetExecutionOutput(cctx, p.ExecutionID, p.Output)
		}
	case state.KindCondition:
		var p state.ConditionItem
		if err = decode(it, &p); err == nil {
			err = s.be.SetExecutionCondition(cctx, p.ExecutionID, p.Condition)
		}
	case state.KindVariable:
		var p state.VariableItem
		if err = decode(it, &p); err == nil {
			err = s.be.SetVariable(cctx, p.UserID, p.Key, p.Value)
		}
	case state.KindComplete:
		var p api.Completion
		if err = decode(it, &p); err == nil {
			err = s.be.Complete(cctx, jobID, p)
		}
	case state.KindFail:
		var p state.FailItem
		if err = decode(it, &p); err == nil {
			err = s.be.Fail(cctx, jobID, p.Error, p.ExitCode)
		}
	case state.KindRelease:
		var p state.ReleaseItem
		if err = decode(it, &p); err == nil {
			err = s.be.Release(cctx, jobID, p.Message)
		}
	default:
		s.log.Error("journal item of an unknown kind skipped", "job", jobID, "kind", it.Kind, "seq", it.Seq)
		return 1, nil
	}
	var bad badItem
	switch {
	case err == nil:
		s.contact()
		return n, nil
	case errors.As(err, &bad):
		s.log.Error("undecodable journal item skipped", "job", jobID, "kind", it.Kind, "seq", it.Seq, "error", err)
		return n, nil
	case ctx.Err() != nil:
		return 0, ctx.Err()
	case api.IsTransient(err), errors.Is(err, api.ErrSuperseded):
		return 0, err
	}
	s.contact()
	s.log.Warn("the backend refused a report; it is not sent again", "job", jobID, "kind", it.Kind, "error", err)
	return n, nil
}

// sendLogs sends entries in batches of the contract's size (a journal item
// may hold more: the runner journals what it has at once). A crash between
// two batches sends the first again, which the backend keeps once by seq.
func (s *Syncer) sendLogs(ctx context.Context, jobID, exec string, entries []api.LogEntry) error {
	for len(entries) > 0 && !s.logsOff.Load() {
		n, size := 0, 0
		for n < len(entries) && n < maxBatchLines && (n == 0 || size+len(entries[n].Line)+48 <= maxBatchBytes) {
			size += len(entries[n].Line) + 48
			n++
		}
		err := s.be.SendLogs(ctx, jobID, exec, entries[:n])
		if errors.Is(err, api.ErrNoLogEndpoint) {
			if s.logsOff.CompareAndSwap(false, true) {
				s.log.Info("the backend has no live log endpoint; output reaches it with the completion only")
			}
			return nil
		}
		if err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

type badItem struct{ error }

func decode(it journal.StoredItem, v any) error {
	if err := json.Unmarshal(it.Payload, v); err != nil {
		return badItem{fmt.Errorf("%s item %d: %w", it.Kind, it.Seq, err)}
	}
	return nil
}

// logBatch joins the log items from items[i] on (same execution, within the
// batch limits) into one call's entries, read through r (the page's reader,
// advanced past the items taken). A drop marker becomes the system line
// saying what the disk budget dropped, found by reading ahead in the page,
// so that it is sent no later than the marker is acknowledged. An item that
// does not decode ends the batch, or is the batch (one item, skipped).
func (s *Syncer) logBatch(r *state.LogReader, items []journal.StoredItem, i int) (string, []api.LogEntry, int, error) {
	var (
		exec    string
		entries []api.LogEntry
		size    int
		n       int
	)
	for j := i; j < len(items) && (items[j].Kind == state.KindLogs || items[j].Kind == journal.MarkerKind); j++ {
		next := *r // advanced only once the item is taken
		p, err := next.Read(items[j:])
		if err != nil {
			if n == 0 {
				return "", nil, 1, badItem{err}
			}
			break
		}
		if n > 0 && len(p.Entries) > 0 && (p.ExecutionID != exec || len(entries)+len(p.Entries) > maxBatchLines || size+state.LogsSize(p.Entries) > maxBatchBytes) {
			break
		}
		*r = next
		if len(p.Entries) > 0 {
			exec = p.ExecutionID
		}
		entries = append(entries, p.Entries...)
		size += state.LogsSize(p.Entries)
		n++
	}
	return exec, entries, n, nil
}
