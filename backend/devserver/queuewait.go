package devserver

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxQueueWait bounds how long a claim may wait for a job (jobs/queue's
// wait), advertised in the api.QueueWaitHeader of every queue answer.
const maxQueueWait = 60 * time.Second

// broadcast wakes every waiter at once: a waiter takes the channel, then
// checks, then waits on it; kick closes it and makes a new one, so no
// wake-up between the check and the wait is lost.
type broadcast struct {
	mu     sync.Mutex
	ch     chan struct{}
	closed bool
}

func newBroadcast() *broadcast { return &broadcast{ch: make(chan struct{})} }

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) kick() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	close(b.ch)
	b.ch = make(chan struct{})
}

// close wakes every waiter for good: wait returns a closed channel.
func (b *broadcast) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.ch)
	}
}

func (b *broadcast) ended() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// EndWaits answers the claims held for a job now (with what is due, most
// often nothing) and holds none from then on: a server shutting down
// (http.Server.RegisterOnShutdown) does not wait for them.
func (s *Server) EndWaits() { s.queued.close() }

// update is db.Update that wakes the claims waiting for a job once a
// transaction that queued one has committed.
func (s *Server) update(fn func(tx *bolt.Tx) error) error { return s.db.Update(s.waking(fn)) }

// batch is update through bbolt's Batch: calls that come together share
// one transaction and one fsync, which is what bounds the jobs per second
// of a fleet (every call of an agent's job is a write). fn may run more
// than once (a batch with a failing call is run again without it), so it
// must set, not accumulate, whatever it reports outside the transaction.
func (s *Server) batch(fn func(tx *bolt.Tx) error) error { return s.db.Batch(s.waking(fn)) }

// waking wraps fn to wake the waiting claims when it queued a job (saveJob
// counts each job it puts in the queue in the queue bucket's sequence).
func (s *Server) waking(fn func(tx *bolt.Tx) error) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		before := tx.Bucket(bQueue).Sequence()
		if err := fn(tx); err != nil {
			return err
		}
		if tx.Bucket(bQueue).Sequence() != before {
			tx.OnCommit(s.queued.kick)
		}
		return nil
	}
}

// parseWait reads jobs/queue's wait: a Go duration ("20s") or seconds.
func parseWait(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.Atoi(v)
		if nerr != nil {
			return 0, fmt.Errorf("wait %q: want a duration such as 20s", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, fmt.Errorf("wait %q: negative", v)
	}
	return min(d, maxQueueWait), nil
}
