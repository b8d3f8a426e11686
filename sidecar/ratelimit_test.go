package sidecar

import (
	"testing"
	"time"
)

func TestSlidingWindow(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name  string
		n     int
		per   time.Duration
		calls []int  // times in ms
		want  []bool // accepted
	}{
		{"under the limit", 3, time.Second, []int{0, 10, 20}, []bool{true, true, true}},
		{"over the limit", 3, time.Second, []int{0, 10, 20, 30}, []bool{true, true, true, false}},
		{"slides one by one", 2, time.Second, []int{0, 500, 999, 1000, 1001, 1499, 1500}, []bool{true, true, false, true, false, false, true}},
		{"refused calls do not count", 1, time.Second, []int{0, 100, 200, 1000, 1999, 2000}, []bool{true, false, false, true, false, true}},
		{"a burst after a quiet period", 2, time.Second, []int{0, 5000, 5000, 5000}, []bool{true, true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newSlidingWindow(tt.n, tt.per)
			for i, ms := range tt.calls {
				ok, wait := w.allow(at(ms))
				if ok != tt.want[i] {
					t.Fatalf("call %d at %dms: allowed %v, want %v", i, ms, ok, tt.want[i])
				}
				if !ok && (wait <= 0 || wait > tt.per) {
					t.Fatalf("call %d: wait %v", i, wait)
				}
			}
		})
	}
}

// No interval of length per ever holds more than n accepted calls.
func TestSlidingWindowInvariant(t *testing.T) {
	const n, per = 10, time.Second
	w := newSlidingWindow(n, per)
	base := time.Unix(0, 0)
	var accepted []time.Time
	for i := range 5000 {
		now := base.Add(time.Duration(i) * 3700 * time.Microsecond)
		if ok, _ := w.allow(now); ok {
			accepted = append(accepted, now)
		}
	}
	for i := n; i < len(accepted); i++ {
		if accepted[i].Sub(accepted[i-n]) < per {
			t.Fatalf("%d calls within %v ending at %v", n+1, accepted[i].Sub(accepted[i-n]), accepted[i])
		}
	}
	if len(accepted) < 100 {
		t.Fatalf("only %d accepted", len(accepted))
	}
}
