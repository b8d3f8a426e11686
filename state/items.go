package state

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/state/journal"
)

// Kinds of the items of a job's outbox stream. The syncer turns each into
// the backend call named beside it, in stream order.
const (
	KindExecution       = "execution"        // executions/{id}/create
	KindExecutionUpdate = "execution-update" // executions/{id}/update
	KindStatus          = "status"           // jobs/{id}/status (running)
	KindLogs            = journal.LogKind
	KindOutput          = "output"    // executions/{id}/output
	KindCondition       = "condition" // executions/{id}/condition
	KindVariable        = "variable"  // variables/{user}/{key}
	KindComplete        = "complete"  // jobs/{id}/complete: the completing call
	KindFail            = "fail"      // jobs/{id}/fail: the completing call of a job that never ran
	KindRelease         = "release"   // jobs/{id}/release
)

// ExecutionItem creates the execution a run's other items refer to.
type ExecutionItem struct {
	ExecutionID string `json:"executionId"`
	JobID       string `json:"jobId"`
	Attempt     int    `json:"attempt"`
	// ServerID and ServerName name the server an SSH execution runs on
	// (executions/create sends them, the id as a number).
	ServerID   *int64 `json:"serverId,omitempty"`
	ServerName string `json:"serverName,omitempty"`
}

// ExecutionUpdateItem fills in an execution's row: its start (status
// running, the phase times) or its end (exit code, output, durations). The
// update is journaled in its wire form, so a redelivery after a crash sends
// the very same body: its times are the journaled ones.
type ExecutionUpdateItem struct {
	ExecutionID string              `json:"executionId"`
	Update      api.ExecutionUpdate `json:"update"`
}

// StatusItem reports a status transition (only "running" goes to the backend
// this way; the end is the completing call).
type StatusItem struct {
	Status  string    `json:"status"`
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
}

// LogsItem is a batch of live log lines of one execution. On disk it is a
// column per field with seqs and times as offsets (see logsWire): a line
// costs a few bytes beyond its text, where a JSON object per line doubled
// the journal's writes.
type LogsItem struct {
	ExecutionID string
	Entries     []api.LogEntry
}

// logsWire is a LogsItem as journaled.
type logsWire struct {
	ExecutionID string `json:"executionId"`
	FirstSeq    uint64 `json:"firstSeq"`
	// Seqs is there only when the seqs are not FirstSeq, FirstSeq+1, ...
	Seqs []uint64 `json:"seqs,omitempty"`
	// Streams has a letter per line: o stdout, e stderr, s system.
	Streams string   `json:"streams"`
	Base    int64    `json:"base"`  // unix nanoseconds of the first line
	Times   []int64  `json:"times"` // nanoseconds after Base, per line
	Lines   []string `json:"lines"`
}

var streamLetters = map[string]byte{"stdout": 'o', "stderr": 'e', "system": 's'}

// MarshalJSON writes the column form. It is written by hand: through
// reflection the lines' encoding was an eighth of the agent's CPU under
// heavy output.
func (l LogsItem) MarshalJSON() ([]byte, error) {
	size := 128 + len(l.ExecutionID)
	for _, e := range l.Entries {
		size += len(e.Line) + 24
	}
	b := make([]byte, 0, size)
	var first uint64
	var base int64
	consecutive := true
	streams := make([]byte, len(l.Entries))
	for i, e := range l.Entries {
		if i == 0 {
			first, base = e.Seq, e.Timestamp.UnixNano()
		}
		consecutive = consecutive && e.Seq == first+uint64(i)
		c, ok := streamLetters[e.Stream]
		if !ok {
			return nil, fmt.Errorf("log line %d: unknown stream %q", e.Seq, e.Stream)
		}
		streams[i] = c
	}
	b = append(b, `{"executionId":`...)
	b = appendJSONString(b, l.ExecutionID)
	b = append(b, `,"firstSeq":`...)
	b = strconv.AppendUint(b, first, 10)
	if !consecutive {
		b = append(b, `,"seqs":[`...)
		for i, e := range l.Entries {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, e.Seq, 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"streams":"`...)
	b = append(b, streams...)
	b = append(b, `","base":`...)
	b = strconv.AppendInt(b, base, 10)
	b = append(b, `,"times":[`...)
	for i, e := range l.Entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, e.Timestamp.UnixNano()-base, 10)
	}
	b = append(b, `],"lines":[`...)
	for i, e := range l.Entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, e.Line)
	}
	return append(b, "]}"...), nil
}

// appendJSONString appends s as a JSON string: printable ASCII as is,
// anything else as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// UnmarshalJSON reads the column form.
func (l *LogsItem) UnmarshalJSON(b []byte) error {
	var w logsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	n := len(w.Lines)
	if len(w.Streams) != n || len(w.Times) != n || (w.Seqs != nil && len(w.Seqs) != n) {
		return fmt.Errorf("log batch of %d lines with %d streams, %d times, %d seqs", n, len(w.Streams), len(w.Times), len(w.Seqs))
	}
	l.ExecutionID = w.ExecutionID
	l.Entries = make([]api.LogEntry, n)
	for i := range n {
		e := &l.Entries[i]
		e.Seq = w.FirstSeq + uint64(i)
		if w.Seqs != nil {
			e.Seq = w.Seqs[i]
		}
		switch w.Streams[i] {
		case 'o':
			e.Stream = "stdout"
		case 'e':
			e.Stream = "stderr"
		case 's':
			e.Stream = "system"
		default:
			return fmt.Errorf("log line %d: unknown stream letter %q", e.Seq, w.Streams[i])
		}
		e.Line = w.Lines[i]
		e.Timestamp = time.Unix(0, w.Base+w.Times[i]).UTC()
	}
	return nil
}

// OutputItem is a value the script set with cronium.output().
type OutputItem struct {
	ExecutionID string          `json:"executionId"`
	Output      json.RawMessage `json:"output"`
	At          time.Time       `json:"at"`
}

// ConditionItem is a condition the script set with cronium.setCondition().
type ConditionItem struct {
	ExecutionID string    `json:"executionId"`
	Condition   bool      `json:"condition"`
	At          time.Time `json:"at"`
}

// VariableItem is a user variable the script wrote.
type VariableItem struct {
	UserID string `json:"userId"`
	Key    string `json:"key"`
	Value  string `json:"value"`
}

// FailItem ends a job that never ran.
type FailItem struct {
	Error    string `json:"error"`
	ExitCode int    `json:"exitCode"`
}

// ReleaseItem gives a claimed job back to the queue.
type ReleaseItem struct {
	Message string `json:"message"`
}

// Item encodes v as a journal item of kind. A value that encodes itself
// (json.Marshaler) is called directly: json.Marshal would validate and
// compact its output once more, which for log batches was a third of their
// cost. A log batch counts its bytes of output as the item's size.
func Item(kind string, v any) (journal.Item, error) {
	var raw []byte
	var err error
	if m, ok := v.(json.Marshaler); ok {
		raw, err = m.MarshalJSON()
	} else {
		raw, err = json.Marshal(v)
	}
	if err != nil {
		return journal.Item{}, fmt.Errorf("encode %s item: %w", kind, err)
	}
	size := 0
	if l, ok := v.(LogsItem); ok {
		size = LogsSize(l.Entries)
	}
	return journal.Item{Kind: kind, Payload: raw, Size: size}, nil
}

// LogsSize is the size of a batch of log lines as a drop marker reports it:
// the bytes of output (the budget itself counts stored bytes).
func LogsSize(entries []api.LogEntry) int {
	n := 0
	for _, e := range entries {
		n += len(e.Line)
	}
	return n
}

// DropNotice is the system line standing for log lines the journal's budget
// dropped (marker m), given the seqs of the held lines around the gap (0
// when not known). It takes the gap's last seq, so that it sorts where the
// lines were; without the next line's seq there is no seq to give it.
func DropNotice(m journal.DropMarker, prev, next uint64, at time.Time) (api.LogEntry, bool) {
	if next < 2 {
		return api.LogEntry{}, false
	}
	what := fmt.Sprintf("%d log batches", m.Items)
	if prev > 0 && next > prev {
		what = fmt.Sprintf("%d log lines", next-prev-1)
	}
	line := fmt.Sprintf("[... %s (%d bytes) dropped: the backend was unreachable and the agent's journal reached its disk budget ...]", what, m.Bytes)
	return api.LogEntry{Seq: next - 1, Stream: "system", Line: line, Timestamp: at.UTC()}, true
}

// LogReader turns a job's stream items, read in order, into its log lines:
// a log item's lines, and for each gap the journal's budget cut (drop
// markers) one system line from DropNotice. Both the syncer (what the
// backend gets) and the inspector (`cronium-agent logs`) read through it, so
// that a gap reads the same in both.
//
// A gap's notice takes its seq from the held line after it, so a marker
// yields nothing until that line is known: Read looks for it in the items
// it is given after the marker (the rest of a page), and otherwise keeps the
// marker until a later log item, which then yields the notice before its
// own lines. Markers before the same line (the budget's runs are cut by
// items of other kinds, and acknowledging part of a marker splits it) make
// one notice with their counts summed: there is only one seq to give them.
//
// The zero value is ready to read a stream from its first item. A
// LogReader is a small value: copy it to read ahead without advancing.
type LogReader struct {
	prev      uint64             // seq of the last held line read (0: none yet)
	pending   journal.DropMarker // markers waiting for the line after their gap, summed
	pendingAt time.Time          // when the first of them was appended
	waiting   bool               // pending holds a marker
	marker    uint64             // item seq of the last marker read: one read again is already counted
	noticed   uint64             // seq of the last notice yielded: markers it covers yield no other
}

// Read reads items[0] and returns the lines it stands for, in the
// execution of the held lines they belong to: nothing for an item of
// another kind or a marker whose line after the gap is not yet known. The
// rest of items is only looked at to number a marker at once. An item that
// does not decode is an error and leaves r as it was.
func (r *LogReader) Read(items []journal.StoredItem) (LogsItem, error) {
	if len(items) == 0 {
		return LogsItem{}, nil
	}
	switch it := items[0]; it.Kind {
	case journal.MarkerKind:
		m, err := decodeMarker(it)
		if err != nil {
			return LogsItem{}, err
		}
		if it.Seq <= r.marker {
			return LogsItem{}, nil // read again: it waits or was noticed already
		}
		r.marker = it.Seq
		r.wait(m, it.AppendedAt)
		if next, sum, ok := nextLines(items[1:]); ok {
			ahead := *r
			ahead.wait(sum, time.Time{})
			if e, ok := ahead.notice(next); ok {
				*r = ahead
				r.waiting = false
				return LogsItem{ExecutionID: next.ExecutionID, Entries: []api.LogEntry{e}}, nil
			}
			r.waiting = false // numbered by a notice yielded before
		}
		return LogsItem{}, nil
	case KindLogs:
		var p LogsItem
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return LogsItem{}, fmt.Errorf("log item %d: %w", it.Seq, err)
		}
		if len(p.Entries) == 0 {
			return LogsItem{}, nil
		}
		out := LogsItem{ExecutionID: p.ExecutionID, Entries: make([]api.LogEntry, 0, len(p.Entries)+1)}
		if r.waiting {
			if e, ok := r.notice(p); ok {
				out.Entries = append(out.Entries, e)
			}
			r.waiting = false
		}
		out.Entries = append(out.Entries, p.Entries...)
		r.prev = p.Entries[len(p.Entries)-1].Seq
		return out, nil
	}
	return LogsItem{}, nil
}

// Pending returns the drop markers read that no line numbered yet, summed.
func (r *LogReader) Pending() (journal.DropMarker, bool) { return r.pending, r.waiting }

// wait adds m to the markers waiting for a line.
func (r *LogReader) wait(m journal.DropMarker, at time.Time) {
	if !r.waiting {
		r.pending, r.pendingAt, r.waiting = journal.DropMarker{FirstSeq: m.FirstSeq}, at, true
	}
	r.pending.LastSeq = max(r.pending.LastSeq, m.LastSeq)
	r.pending.Items += m.Items
	r.pending.Bytes += m.Bytes
}

// notice is the line of the markers waiting, numbered by next (a log item with
// lines); false when it has no seq to take or one a notice already took.
func (r *LogReader) notice(next LogsItem) (api.LogEntry, bool) {
	e, ok := DropNotice(r.pending, r.prev, next.Entries[0].Seq, r.pendingAt)
	if !ok || e.Seq <= r.noticed {
		return api.LogEntry{}, false
	}
	r.noticed = e.Seq
	return e, true
}

// nextLines finds the first log item with lines in items, and sums the
// markers before it; false if there is none, or a log item before it does
// not decode (it is not known whether that one has lines).
func nextLines(items []journal.StoredItem) (LogsItem, journal.DropMarker, bool) {
	var sum journal.DropMarker
	for _, it := range items {
		switch it.Kind {
		case journal.MarkerKind:
			if m, err := decodeMarker(it); err == nil {
				sum.LastSeq = max(sum.LastSeq, m.LastSeq)
				sum.Items += m.Items
				sum.Bytes += m.Bytes
			}
		case KindLogs:
			var p LogsItem
			if json.Unmarshal(it.Payload, &p) != nil {
				return LogsItem{}, sum, false
			}
			if len(p.Entries) > 0 {
				return p, sum, true
			}
		}
	}
	return LogsItem{}, sum, false
}

func decodeMarker(it journal.StoredItem) (journal.DropMarker, error) {
	var m journal.DropMarker
	if err := json.Unmarshal(it.Payload, &m); err != nil {
		return m, fmt.Errorf("drop marker %d: %w", it.Seq, err)
	}
	return m, nil
}
