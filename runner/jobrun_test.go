package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
)

func TestRefusal(t *testing.T) {
	script := &api.Script{Runtime: "bash", Content: "true"}
	for _, tc := range []struct {
		name string
		job  api.Job
		want string
	}{
		{"script", api.Job{OriginalType: api.TypeScript, Type: "container", Script: script}, ""},
		{"http", api.Job{OriginalType: api.TypeHTTP, Type: "container", HTTP: &api.HTTPRequest{URL: "http://127.0.0.1/"}}, ""},
		{"tool action that arrived anyway", api.Job{OriginalType: api.TypeToolAction, Type: "container"}, "tool actions are not supported by this agent"},
		{"ssh", api.Job{OriginalType: api.TypeScript, Type: "ssh", Script: script}, "SSH jobs are not supported"},
		{"script without script", api.Job{OriginalType: api.TypeScript, Type: "container"}, "without a script"},
		{"http without request", api.Job{OriginalType: api.TypeHTTP, Type: "container"}, "without a request"},
	} {
		got := LocalExecutors(nil, DefaultPolicy()).refusal(&tc.job)
		if (tc.want == "") != (got == "") || (tc.want != "" && !strings.Contains(got, tc.want)) {
			t.Errorf("%s: refusal = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	for _, tc := range []struct {
		policy *api.RetryPolicy
		n      int
		want   time.Duration
	}{
		{nil, 1, time.Second},
		{nil, 3, 4 * time.Second},
		{&api.RetryPolicy{BackoffType: "exponential", Delay: 5 * time.Second}, 1, 5 * time.Second},
		{&api.RetryPolicy{BackoffType: "exponential", Delay: 5 * time.Second}, 3, 20 * time.Second},
		{&api.RetryPolicy{BackoffType: "linear", Delay: 2 * time.Second}, 3, 6 * time.Second},
		{&api.RetryPolicy{BackoffType: "fixed", Delay: 2 * time.Second}, 9, 2 * time.Second},
		{&api.RetryPolicy{BackoffType: "exponential", Delay: time.Hour}, 30, time.Hour},
	} {
		if got := retryDelay(tc.policy, tc.n); got != tc.want {
			t.Errorf("retryDelay(%+v, %d) = %s, want %s", tc.policy, tc.n, got, tc.want)
		}
	}
}
