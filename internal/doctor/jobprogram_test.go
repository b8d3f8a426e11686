package doctor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cronium/cronium-agent/internal/config"
)

func TestJobProgram(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string // "" for none: the agent's own binary is used
		want   want
	}{
		{"there and runs", "#!/bin/sh\necho 'cronium-job: the agent program for inside jobs' >&2\nexit 2\n",
			want{status: Pass, detail: []string{"/cronium-job"}}},
		{"missing", "", want{status: Warn, detail: []string{"no cronium-job beside the agent or in /usr/libexec/cronium", "(slower to start)"}, fix: []string{"make build"}}},
		{"broken", "#!/bin/sh\necho 'cannot execute binary file' >&2\nexit 126\n",
			want{status: Fail, detail: []string{"does not run: exit status 126: cannot execute binary file"}, fix: []string{"install the cronium-agent package again"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, found := "/usr/bin/cronium-agent", false
			if tc.script != "" {
				p, found = filepath.Join(t.TempDir(), "cronium-job"), true
				if err := os.WriteFile(p, []byte(tc.script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			find := func() (string, bool, error) { return p, found, nil }
			tc.want.check(t, runCheck(t, config.Default(), "job-program", withJobProgram(find)))
		})
	}
}
