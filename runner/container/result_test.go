package container

import (
	"testing"

	"github.com/cronium/cronium-agent/backend/api"
)

func TestBackendExitCode(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want int
	}{
		{Result{Status: api.StatusCompleted}, 0},
		{Result{Status: api.StatusFailed, ExitCode: 42}, 42},
		{Result{Status: api.StatusFailed, ExitCode: 137, OOMKilled: true}, 137},
		{Result{Status: api.StatusTimeout, ExitCode: 143}, -1},
		{Result{Status: api.StatusCancelled, ExitCode: 137}, -2},
	} {
		if got := tc.r.BackendExitCode(); got != tc.want {
			t.Errorf("%+v: BackendExitCode = %d, want %d", tc.r, got, tc.want)
		}
	}
}
