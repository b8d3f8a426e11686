package container

import "testing"

func TestBackendExitCode(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want int
	}{
		{Result{Status: StatusCompleted}, 0},
		{Result{Status: StatusFailed, ExitCode: 42}, 42},
		{Result{Status: StatusFailed, ExitCode: 137, OOMKilled: true}, 137},
		{Result{Status: StatusTimeout, ExitCode: 143}, -1},
		{Result{Status: StatusCancelled, ExitCode: 137}, -2},
	} {
		if got := tc.r.BackendExitCode(); got != tc.want {
			t.Errorf("%+v: BackendExitCode = %d, want %d", tc.r, got, tc.want)
		}
	}
}
