// Package jobprog finds cronium-job, the program the agent runs inside and
// beside jobs (cmd/cronium-job): their init, the bash helpers' program,
// the output logger and the SSH worker.
package jobprog

import (
	"fmt"
	"os"
	"path/filepath"
)

// Name is the program's file name.
const Name = "cronium-job"

// LibexecDir is where the packages install it: it is no command for
// people.
const LibexecDir = "/usr/libexec/cronium"

// Find returns cronium-job beside the agent's executable (a build tree's
// bin/) or in LibexecDir; found is false when neither has it, and path is
// then the agent's own executable, which can play every role too, at
// about 2.5 times the start cost (cmd/cronium-job says why).
func Find() (path string, found bool, err error) {
	exe, err := os.Executable()
	if err != nil {
		return "", false, fmt.Errorf("find the agent executable: %w", err)
	}
	for _, dir := range []string{filepath.Dir(exe), LibexecDir} {
		p := filepath.Join(dir, Name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, true, nil
		}
	}
	return exe, false, nil
}
