package container

import (
	"testing"
	"time"
)

// A run holds the pool back from its start until it ends or refillGrace
// has passed, whichever comes first; the end of the last hold wakes the
// pool, and a hold ends once however often it is released.
func TestYoungHold(t *testing.T) {
	e := &Executor{}
	e.pool = &pool{kick: make(chan struct{}, 1)}
	woken := func() bool {
		select {
		case <-e.pool.kick:
			return true
		default:
			return false
		}
	}

	// Ended by the run's end, twice over.
	a, b := e.holdYoung(), e.holdYoung()
	if n := e.young.Load(); n != 2 {
		t.Fatalf("young %d after two starts, want 2", n)
	}
	a.release()
	a.release()
	if n := e.young.Load(); n != 1 || woken() {
		t.Fatalf("young %d (woken %v) after one run's end, want 1 and no wake-up", n, woken())
	}
	b.release()
	if n := e.young.Load(); n != 0 || !woken() {
		t.Fatalf("young %d after both ends, want 0 and the pool woken", n)
	}

	// Ended by the grace, and a release after it changes nothing.
	start := time.Now()
	c := e.holdYoung()
	for e.young.Load() != 0 {
		if time.Since(start) > refillGrace+5*time.Second {
			t.Fatal("the hold outlived its grace")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if held := time.Since(start); held < refillGrace {
		t.Errorf("the hold ended after %v, before its grace of %v", held, refillGrace)
	}
	if !woken() {
		t.Error("the pool was not woken at the end of the grace")
	}
	c.release()
	if n := e.young.Load(); n != 0 {
		t.Errorf("young %d after a late release, want 0", n)
	}
	var none *youngHold
	none.release() // an adopted run has none
}
