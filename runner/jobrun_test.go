package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend"
)

func TestUnsupported(t *testing.T) {
	script := &backend.Script{Runtime: "bash", Content: "true"}
	for _, tc := range []struct {
		name string
		job  backend.Job
		want string
	}{
		{"script", backend.Job{OriginalType: backend.TypeScript, Type: "container", Script: script}, ""},
		{"http", backend.Job{OriginalType: backend.TypeHTTP, Type: "container", HTTP: &backend.HTTPRequest{URL: "http://127.0.0.1/"}}, ""},
		{"tool action that arrived anyway", backend.Job{OriginalType: backend.TypeToolAction, Type: "container"}, "tool actions are not supported by this agent"},
		{"ssh", backend.Job{OriginalType: backend.TypeScript, Type: "ssh", Script: script}, "SSH jobs are not supported"},
		{"script without script", backend.Job{OriginalType: backend.TypeScript, Type: "container"}, "without a script"},
		{"http without request", backend.Job{OriginalType: backend.TypeHTTP, Type: "container"}, "without a request"},
	} {
		got := unsupported(&tc.job)
		if (tc.want == "") != (got == "") || (tc.want != "" && !strings.Contains(got, tc.want)) {
			t.Errorf("%s: unsupported = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	for _, tc := range []struct {
		policy *backend.RetryPolicy
		n      int
		want   time.Duration
	}{
		{nil, 1, time.Second},
		{nil, 3, 4 * time.Second},
		{&backend.RetryPolicy{BackoffType: "exponential", Delay: 5 * time.Second}, 1, 5 * time.Second},
		{&backend.RetryPolicy{BackoffType: "exponential", Delay: 5 * time.Second}, 3, 20 * time.Second},
		{&backend.RetryPolicy{BackoffType: "linear", Delay: 2 * time.Second}, 3, 6 * time.Second},
		{&backend.RetryPolicy{BackoffType: "fixed", Delay: 2 * time.Second}, 9, 2 * time.Second},
		{&backend.RetryPolicy{BackoffType: "exponential", Delay: time.Hour}, 30, time.Hour},
	} {
		if got := retryDelay(tc.policy, tc.n); got != tc.want {
			t.Errorf("retryDelay(%+v, %d) = %s, want %s", tc.policy, tc.n, got, tc.want)
		}
	}
}
