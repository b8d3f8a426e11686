package container_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/runner/container"
)

// The caller is told of every phase in order, with the times the result
// reports; refusing the network or the start stops the run before the
// script runs, refusing the exit still reports the finished run.
func TestOnPhase(t *testing.T) {
	h := newHarness(t)
	errRefused := errors.New("journal refused")
	cases := []struct {
		refuse container.Phase // 0: none
		// ran says whether the script ran, and so the result is filled.
		ran bool
	}{
		{refuse: 0, ran: true},
		{refuse: container.PhaseNetwork},
		{refuse: container.PhaseStarting},
		{refuse: container.PhaseExited, ran: true},
	}
	for _, c := range cases {
		name := "accept all"
		if c.refuse != 0 {
			name = "refuse " + c.refuse.String()
		}
		t.Run(name, func(t *testing.T) {
			req := h.request(t, "bash", "echo ran")
			type call struct {
				p  container.Phase
				at time.Time
			}
			var mu sync.Mutex
			var calls []call
			req.OnPhase = func(p container.Phase, at time.Time) error {
				mu.Lock()
				defer mu.Unlock()
				calls = append(calls, call{p, at})
				if p == c.refuse {
					return errRefused
				}
				return nil
			}
			r := h.runRequest(context.Background(), t, req, nil)
			if c.refuse != 0 && !errors.Is(r.err, errRefused) {
				t.Errorf("run: %v, want the phase's error", r.err)
			}
			if c.refuse == 0 && r.err != nil {
				t.Fatal(r.err)
			}
			if !c.ran {
				if !r.StartedAt.IsZero() || r.stdout.Len() != 0 {
					t.Errorf("a refused run started at %s and wrote %q", r.StartedAt, r.stdout.String())
				}
				if last := calls[len(calls)-1]; last.p != c.refuse {
					t.Errorf("the run went on after %s was refused: %v", c.refuse, calls)
				}
				return
			}
			if r.ExitCode != 0 || r.stdout.String() != "ran\n" {
				t.Errorf("exit %d, stdout %q", r.ExitCode, r.stdout.String())
			}
			want := []call{{container.PhaseNetwork, time.Time{}}, {container.PhaseStarting, r.StartedAt}, {container.PhaseExited, r.FinishedAt}}
			if len(calls) != len(want) {
				t.Fatalf("phases %v, want %v", calls, want)
			}
			for i, w := range want {
				if calls[i].p != w.p || (!w.at.IsZero() && !calls[i].at.Equal(w.at)) {
					t.Errorf("phase %d: %s at %s, want %s at %s", i, calls[i].p, calls[i].at, w.p, w.at)
				}
			}
		})
	}
}
