package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/httpexec"
	"github.com/cronium/cronium-agent/runner/output"
)

// HTTPExecutor makes the request of HTTP_REQUEST jobs from the agent.
type HTTPExecutor struct {
	http   *httpexec.Runner
	policy Policy
}

// NewHTTPExecutor returns the executor of TargetHTTP; the policy gives
// the timeouts, opts the outbound policy (httpexec.WithPolicy: without
// one every request is refused), the body cap and the connect timeout.
func NewHTTPExecutor(policy Policy, opts ...httpexec.Option) *HTTPExecutor {
	return &HTTPExecutor{http: httpexec.New(opts...), policy: policy}
}

// Run implements Executor.
func (x *HTTPExecutor) Run(ctx context.Context, a *Attempt) Result {
	start := time.Now()
	// Journaled as started first: after a crash the request is not sent
	// again (it may have reached its target already).
	if err := a.Started(start); err != nil {
		return NeverRan(start, err)
	}
	h := a.Job.HTTP
	res, err := x.http.Do(ctx, httpexec.Request{Method: h.Method, URL: h.URL, Headers: h.Headers, Body: h.Body}, x.policy.Timeout(a.Job.Timeout))
	r := Result{Start: start, End: time.Now()}
	switch {
	case ctx.Err() != nil:
		r.Status, r.ExitCode = api.StatusCancelled, ExitCancelled
	case res.TimedOut:
		r.Status, r.ExitCode = api.StatusTimeout, ExitTimeout
		a.Text(output.Stderr, []byte(err.Error()+"\n"))
	case res.Refused:
		// The rule that refused is what the job's owner needs: said in the
		// live log too, not only in the completion's stderr.
		r.Status, r.ExitCode = api.StatusFailed, 1
		a.System(err.Error())
		a.Text(output.Stderr, []byte(err.Error()+"\n"))
	case err != nil:
		r.Status, r.ExitCode = api.StatusFailed, 1
		a.Text(output.Stderr, []byte(err.Error()+"\n"))
	default:
		a.Text(output.Stdout, res.Body)
		r.Status, r.ExitCode = api.StatusCompleted, 0
		if res.StatusCode >= 400 {
			r.Status, r.ExitCode = api.StatusFailed, 1
			a.Stderr(res.Status + "\n")
		}
		if res.Truncated {
			a.System(fmt.Sprintf("the response body was %d bytes: only its first %d are kept (http.maxBody)", res.Size, len(res.Body)))
		}
		// The response is the step's output, for workflows that use it.
		r.Output, _ = json.Marshal(map[string]any{"statusCode": res.StatusCode, "body": string(res.Body), "truncated": res.Truncated, "size": res.Size})
	}
	return r
}

// Adopt implements Executor: a request a previous process sent is not
// sent again, since it may have reached its target.
func (x *HTTPExecutor) Adopt(_ context.Context, a *Attempt) Result {
	if a.StartedAt.IsZero() {
		return Result{NotStarted: true}
	}
	msg := "the agent restarted while the HTTP request was in flight; it is not sent again (it may have reached its target)"
	a.System(msg)
	a.Stderr(msg + "\n")
	return Result{Status: api.StatusFailed, ExitCode: 1, Start: a.StartedAt, End: time.Now()}
}
