//go:build faultinject

package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// faultHook kills the agent with SIGKILL at a named point of a job's life,
// as a crash there would: CRONIUM_FAULT_KILL_AT=<point> or <point>#<n> (at
// its n-th occurrence). Built into test binaries only (-tags faultinject).
func faultHook(env *cliEnv) func(string) {
	spec := os.Getenv("CRONIUM_FAULT_KILL_AT")
	if spec == "" {
		return nil
	}
	point, nth, _ := strings.Cut(spec, "#")
	n, err := strconv.Atoi(nth)
	if err != nil || n < 1 {
		n = 1
	}
	var mu sync.Mutex
	seen := 0
	return func(p string) {
		if p != point {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if seen++; seen == n {
			env.log.Warn("fault injection: killing the agent", "point", p, "occurrence", n)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns: the signal is on its way
		}
	}
}
