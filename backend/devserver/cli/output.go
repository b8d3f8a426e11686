package cli

import "github.com/cronium/cronium-agent/internal/termsafe"

// jobOutput is s for printing what a job wrote: its stdout and stderr
// escape control characters when they are terminals (a job's escape
// sequences would act on the operator's terminal), unless raw. Files and
// pipes get the bytes exactly either way.
func (s session) jobOutput(raw bool) session {
	s.Stdout, s.Stderr = termsafe.Guard(s.Stdout, raw), termsafe.Guard(s.Stderr, raw)
	return s
}
