package sidecar

import (
	"sync"
	"time"
)

// slidingWindow is a sliding window log: it remembers the times of the last
// n accepted calls and accepts a new one only when the oldest of them is at
// least per old, so no interval of length per ever holds more than n
// accepted calls. Refused calls are not remembered.
type slidingWindow struct {
	mu    sync.Mutex
	n     int
	per   time.Duration
	times []time.Time // ring buffer once full; grows up to n
	head  int         // index of the oldest entry once full
}

func newSlidingWindow(n int, per time.Duration) *slidingWindow {
	return &slidingWindow{n: n, per: per}
}

// allow records a call at now when it is within the limit; otherwise it
// returns how long until a call would be accepted.
func (w *slidingWindow) allow(now time.Time) (bool, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.times) < w.n {
		w.times = append(w.times, now)
		return true, 0
	}
	age := now.Sub(w.times[w.head])
	if age < w.per {
		return false, w.per - age
	}
	w.times[w.head] = now
	w.head = (w.head + 1) % w.n
	return true, 0
}
