package output

import (
	"fmt"
	"time"
)

// Default tuning of Capture.
const (
	// DefaultFlushInterval bounds how long captured output may sit in the
	// write buffer, i.e. how far a follower lags behind the container.
	DefaultFlushInterval = 50 * time.Millisecond
	// DefaultBufferSize is the write buffer; one write(2) per full buffer.
	DefaultBufferSize = 256 << 10
	// DefaultReadSize is the least room offered to each read; a Linux pipe
	// holds 64 KiB, so more only helps sources other than pipes.
	DefaultReadSize = 128 << 10
	// interruptGrace is how long Capture waits, once its context is done,
	// for readers that cannot be interrupted before it abandons them.
	interruptGrace = 500 * time.Millisecond
)

// Option tunes Capture.
type Option func(*config)

type config struct {
	maxLine       int
	flushInterval time.Duration
	bufferSize    int
	readSize      int
	now           func() time.Time
	budget        int64
	finish        <-chan struct{}
}

// WithMaxLine sets the longest entry payload; longer lines are split into
// fragments of this size. Meant for tests; the contract fixes MaxLine.
func WithMaxLine(n int) Option { return func(c *config) { c.maxLine = n } }

// WithFlushInterval sets the longest time captured output stays buffered.
func WithFlushInterval(d time.Duration) Option { return func(c *config) { c.flushInterval = d } }

// WithBufferSize sets the write buffer size. It is raised to hold at least
// one record of the maximum line length.
func WithBufferSize(n int) Option { return func(c *config) { c.bufferSize = n } }

// WithReadSize sets the least room offered to each read of a stream.
func WithReadSize(n int) Option { return func(c *config) { c.readSize = n } }

// WithBudget bounds the output file to about n bytes (0: unbounded). Past
// it the middle of the output is dropped: the head stays as written, the
// last TailKeep(n) bytes of entries are held in memory and written at the
// end after a system entry saying how much was dropped, as the journal
// keeps the head and tail of a log over its budget.
func WithBudget(n int64) Option { return func(c *config) { c.budget = n } }

// TailKeep is how much of the end of an output over its budget is kept.
func TailKeep(budget int64) int64 { return min(budget/8, 16<<20) }

// WithFinish ends the capture of pipes (inherited descriptors, or pipes
// from os.Pipe) once finish is closed and they are empty, instead of at
// their end of file. The caller closes it only when no process can write to
// them any more, however long their write ends stay open (a shim keeps its
// copy open until the task is deleted). Other readers still end at end of
// file.
func WithFinish(finish <-chan struct{}) Option { return func(c *config) { c.finish = finish } }

// WithClock replaces time.Now for entry timestamps, for tests.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

func newConfig(opts []Option) (config, error) {
	c := config{
		maxLine:       MaxLine,
		flushInterval: DefaultFlushInterval,
		bufferSize:    DefaultBufferSize,
		readSize:      DefaultReadSize,
		now:           time.Now,
	}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case c.maxLine < 1 || c.maxLine > MaxPayload:
		return c, fmt.Errorf("max line %d out of range 1..%d", c.maxLine, MaxPayload)
	case c.flushInterval <= 0:
		return c, fmt.Errorf("flush interval %v must be positive", c.flushInterval)
	case c.readSize < 1:
		return c, fmt.Errorf("read size %d must be positive", c.readSize)
	case c.now == nil:
		return c, fmt.Errorf("clock must not be nil")
	case c.budget < 0 || (c.budget > 0 && c.budget < 1<<20):
		return c, fmt.Errorf("output budget %d must be 0 (none) or at least 1 MiB", c.budget)
	}
	c.bufferSize = max(c.bufferSize, RecordHeaderSize+c.maxLine)
	return c, nil
}
