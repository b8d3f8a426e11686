package runner

import (
	"testing"
	"time"
)

func TestPollIntervalIsJittered(t *testing.T) {
	const base = time.Second
	seen := map[time.Duration]bool{}
	lo, hi := base, base
	for range 1000 {
		d := jittered(base)
		if d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("jittered(1s) = %v, outside ±20%%", d)
		}
		seen[d] = true
		lo, hi = min(lo, d), max(hi, d)
	}
	// Spread over most of the range, not a handful of values.
	if len(seen) < 900 || lo > 850*time.Millisecond || hi < 1150*time.Millisecond {
		t.Errorf("%d distinct values between %v and %v", len(seen), lo, hi)
	}
}
