package runner

import (
	"context"
	"log/slog"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/state"
)

// Live log batching, as the contract asks of live lines: a batch is
// journaled at 100 ms, 500 lines or 256 KiB, whichever comes first, and the
// syncer sends it on.
const (
	logFlushEvery = 100 * time.Millisecond
	logMaxLines   = 500
	logMaxBytes   = 256 << 10
	// Under heavy output a batch takes what else is queued too, up to
	// these: one journal write (one fsync) for all of it. The syncer still
	// sends the backend batches of the contract's size.
	journalMaxLines = 16384
	journalMaxBytes = 4 << 20
)

// logLine is a numbered line with the counts of output entries it accounts
// for, in all and of stderr (0 for the agent's own lines), and for an
// entry of one of several sources (src ≥ 0: a server of a multi-server
// job), its count in that source's stream (srcStream 0 stdout, 1 stderr).
type logLine struct {
	entry     api.LogEntry
	file, err uint64
	src       int
	srcStream int
	srcN      uint64
}

// logStream numbers a run's lines (seq across every stream and attempt,
// system lines included) and journals them in batches, each batch in the
// same transaction as the job's progress (last seq, output entries
// journaled), so that a run adopted after a crash continues without a gap
// or a duplicate. Adding never blocks for long: the journal is local.
type logStream struct {
	jb   *state.Job
	exec string
	log  *slog.Logger
	// fault is called after each journaled batch ("logs").
	fault func(string)
	ch    chan logLine
	done  chan struct{}
	seq   uint64
}

func newLogStream(jb *state.Job, exec string, log *slog.Logger, fault func(string)) *logStream {
	s := &logStream{jb: jb, exec: exec, log: log, fault: fault, ch: make(chan logLine, 4096), done: make(chan struct{}), seq: jb.Progress().LogSeq}
	go s.loop()
	return s
}

// add numbers and queues one of the agent's own lines or, with file > 0,
// the file-th output entry of the run. Only the run's goroutines call it,
// one at a time.
func (s *logStream) add(stream, line string, at time.Time, file, err uint64) {
	s.addFrom(stream, line, at, file, err, -1, 0, 0)
}

// addFrom is add for the srcN-th entry of stream srcStream of source src
// (src -1: none).
func (s *logStream) addFrom(stream, line string, at time.Time, file, err uint64, src, srcStream int, srcN uint64) {
	s.seq++
	s.ch <- logLine{entry: api.LogEntry{Seq: s.seq, Stream: stream, Line: line, Timestamp: at}, file: file, err: err,
		src: src, srcStream: srcStream, srcN: srcN}
}

// close journals what is queued and returns when it is durable.
func (s *logStream) close() {
	close(s.ch)
	<-s.done
}

func (s *logStream) loop() {
	defer close(s.done)
	tick := time.NewTicker(logFlushEvery)
	defer tick.Stop()
	var (
		batch []api.LogEntry
		size  int
		file  uint64
		errs  uint64
		srcs  [][2]uint64
	)
	flush := func() {
		if len(batch) > 0 {
			s.journal(batch, file, errs, srcs)
			srcs = nil
		}
		// The batch was encoded and written: its array serves the next one.
		batch, size = batch[:0], 0
	}
	add := func(l logLine) {
		batch = append(batch, l.entry)
		size += len(l.entry.Line) + 48
		file, errs = max(file, l.file), max(errs, l.err)
		if l.src >= 0 {
			for len(srcs) <= l.src {
				srcs = append(srcs, [2]uint64{})
			}
			srcs[l.src][l.srcStream] = max(srcs[l.src][l.srcStream], l.srcN)
		}
	}
	for {
		select {
		case l, ok := <-s.ch:
			if !ok {
				flush()
				return
			}
			add(l)
			if len(batch) >= logMaxLines || size >= logMaxBytes {
				closed := false
			more:
				for len(batch) < journalMaxLines && size < journalMaxBytes {
					select {
					case l, ok := <-s.ch:
						if !ok {
							closed = true
							break more
						}
						add(l)
					default:
						break more
					}
				}
				flush()
				if closed {
					return
				}
			}
		case <-tick.C:
			flush()
		}
	}
}

// journal writes a batch; a failing disk is retried a while, then the
// batch is given up (the completion still carries the output).
func (s *logStream) journal(batch []api.LogEntry, file, errs uint64, srcs [][2]uint64) {
	it, err := state.Item(state.KindLogs, state.LogsItem{ExecutionID: s.exec, Entries: batch})
	if err != nil {
		s.log.Error("encode log batch", "error", err)
		return
	}
	last := batch[len(batch)-1].Seq
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err = s.jb.Update(context.Background(), func(p *state.Progress) {
			p.LogSeq = max(p.LogSeq, last)
			if p.StreamCounts || p.Entries == 0 {
				// Stream by stream: a re-read may interleave them otherwise.
				out, errEntries := max(p.Entries-p.ErrEntries, file-errs), max(p.ErrEntries, errs)
				p.Entries, p.ErrEntries, p.StreamCounts = out+errEntries, errEntries, true
			} else {
				p.Entries = max(p.Entries, file)
			}
			for i, c := range srcs {
				for len(p.SourceEntries) <= i {
					p.SourceEntries = append(p.SourceEntries, [2]uint64{})
				}
				p.SourceEntries[i] = [2]uint64{max(p.SourceEntries[i][0], c[0]), max(p.SourceEntries[i][1], c[1])}
			}
		}, it)
		if err == nil {
			s.fault("logs")
			return
		}
		if attempt == 5 {
			s.log.Error("journaling live log lines failed; the completion still carries the output", "lines", len(batch), "error", err)
			return
		}
		time.Sleep(delay)
		delay *= 2
	}
}
