package runner

import (
	"context"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
)

// readyGrace is how long an agent whose backend does not answer waits
// before it says it is ready all the same: it runs offline by design, and
// a start that waits for the network would hold up the host's boot.
const readyGrace = 30 * time.Second

// readiness tells the service manager once the agent takes jobs: after
// recovery (the dispatcher polls only then) and the backend's first
// answer to the dispatcher, or readyGrace without one.
type readiness struct {
	Backend
	once   sync.Once
	notify func(state ...string) error
}

func newReadiness(be Backend, notify func(state ...string) error) *readiness {
	return &readiness{Backend: be, notify: notify}
}

func (r *readiness) ready(status string) {
	r.once.Do(func() { _ = r.notify("READY=1", "STATUS="+status) })
}

// start arms the grace once recovery is done.
func (r *readiness) start(ctx context.Context) {
	t := time.AfterFunc(readyGrace, func() {
		r.ready("taking jobs; the backend has not answered yet: running offline, reports wait in the journal")
	})
	context.AfterFunc(ctx, func() { t.Stop() })
}

func (r *readiness) answered(err error) {
	if err == nil {
		r.ready("taking jobs")
	}
}

func (r *readiness) Orphaned(ctx context.Context) ([]api.OrphanRow, error) {
	rows, err := r.Backend.Orphaned(ctx)
	r.answered(err)
	return rows, err
}

func (r *readiness) ClaimJobs(ctx context.Context, batchSize int, jobTypes []string) ([]api.QueueItem, error) {
	items, err := r.Backend.ClaimJobs(ctx, batchSize, jobTypes)
	r.answered(err)
	return items, err
}

func (r *readiness) Heartbeat(ctx context.Context, hb api.Heartbeat) (api.HeartbeatAnswer, error) {
	ids, err := r.Backend.Heartbeat(ctx, hb)
	r.answered(err)
	return ids, err
}
