package sidecar

import (
	"net"
	"sync"
	"time"
)

// limitListener bounds the connections open at once on one session's
// listener. A connection over the bound is accepted and closed at once with
// a reset, rather than left waiting: netutil.LimitListener's way (stop
// calling Accept until a slot frees) would leave the job's surplus
// connections queued in the kernel's backlog, each a socket held for the
// job, and every later call of the job (its helpers' too) would hang behind
// them for as long as the job keeps its slots busy, instead of failing at
// once with an error the helpers retry.
type limitListener struct {
	net.Listener
	slots    chan struct{}
	onRefuse func() // called for each connection refused
}

func newLimitListener(ln net.Listener, n int, onRefuse func()) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), onRefuse: onRefuse}
}

// Accept returns the next connection within the bound; connections over it
// are closed before it returns.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &slotConn{Conn: c, slots: l.slots}, nil
		default:
		}
		refuse(c)
		l.onRefuse()
	}
}

// refuse closes c with a reset: the client learns at once, and no
// TIME_WAIT state is left on the agent's side.
func refuse(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// slotConn gives its slot back when it is closed (once, however many times
// Close is called).
type slotConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.slots })
	return err
}

// logThrottle lets one kind of event of a session be logged at most once
// per interval: the first event at once, the ones after it counted and
// summed up in the next line (written by the next event after the interval,
// or by flush when the session closes).
type logThrottle struct {
	every time.Duration

	mu      sync.Mutex
	next    time.Time // no line before then
	count   int       // events since the last line
	limited int       // of which were answered 429
	reason  string    // of the last event
}

// tally is what one log line reports.
type tally struct {
	count, limited int
	reason         string
}

// add records an event at now; it returns the line to write, if one is due.
func (t *logThrottle) add(now time.Time, reason string, limited bool) (tally, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.count++
	if limited {
		t.limited++
	}
	t.reason = reason
	if now.Before(t.next) {
		return tally{}, false
	}
	t.next = now.Add(t.every)
	return t.take(), true
}

// flush returns the events not logged yet, if any.
func (t *logThrottle) flush() (tally, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.count == 0 {
		return tally{}, false
	}
	return t.take(), true
}

func (t *logThrottle) take() tally {
	out := tally{t.count, t.limited, t.reason}
	t.count, t.limited = 0, 0
	return out
}
