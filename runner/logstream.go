package runner

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cronium/cronium-agent/backend"
)

// Live log batching, as the contract asks: a batch goes out at 100 ms, 500
// lines or 256 KiB, whichever comes first.
const (
	logFlushEvery = 100 * time.Millisecond
	logMaxLines   = 500
	logMaxBytes   = 256 << 10
)

// logSender delivers a batch of a run's live lines.
type logSender func(ctx context.Context, entries []backend.LogEntry) error

// logStream numbers a run's lines (seq from 1, across every stream, system
// lines included) and sends them in batches. Adding never blocks for long:
// a slow backend delays the batches, not the job.
type logStream struct {
	send     logSender
	disabled *atomic.Bool // shared: a backend without the endpoint is told once
	log      *slog.Logger
	ch       chan backend.LogEntry
	done     chan struct{}
	seq      uint64
}

// newLogStream numbers from after seq: a job's attempts continue one
// sequence, so no backend can take attempt 2's line 1 for a copy of
// attempt 1's.
func newLogStream(send logSender, disabled *atomic.Bool, log *slog.Logger, seq uint64) *logStream {
	s := &logStream{send: send, disabled: disabled, log: log, ch: make(chan backend.LogEntry, 4096), done: make(chan struct{}), seq: seq}
	go s.loop()
	return s
}

// add numbers and queues one line. Only the run's own goroutine calls it.
func (s *logStream) add(stream, line string, at time.Time) {
	s.seq++
	s.ch <- backend.LogEntry{Seq: s.seq, Stream: stream, Line: line, Timestamp: at}
}

// close flushes what is queued, waits for it to be sent, and returns the
// last seq used.
func (s *logStream) close() uint64 {
	close(s.ch)
	<-s.done
	return s.seq
}

func (s *logStream) loop() {
	defer close(s.done)
	tick := time.NewTicker(logFlushEvery)
	defer tick.Stop()
	var batch []backend.LogEntry
	size := 0
	flush := func() {
		if len(batch) > 0 {
			s.deliver(batch)
		}
		batch, size = nil, 0
	}
	for {
		select {
		case e, ok := <-s.ch:
			if !ok {
				flush()
				return
			}
			batch = append(batch, e)
			size += len(e.Line) + 64
			if len(batch) >= logMaxLines || size >= logMaxBytes {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// deliver sends a batch, retrying transient failures a few times; the full
// output still reaches the backend in the completing call if it cannot.
func (s *logStream) deliver(batch []backend.LogEntry) {
	if s.disabled.Load() {
		return
	}
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := s.send(ctx, batch)
		cancel()
		switch {
		case err == nil:
			return
		case errors.Is(err, backend.ErrNoLogEndpoint):
			if s.disabled.CompareAndSwap(false, true) {
				s.log.Info("the backend has no live log endpoint; output reaches it with the completion only")
			}
			return
		case !backend.IsTransient(err) || attempt >= 5:
			s.log.Warn("live log lines not delivered; the completion carries the output", "lines", len(batch), "error", err)
			return
		}
		time.Sleep(delay)
		delay *= 2
	}
}
