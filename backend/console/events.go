package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
)

// jobEvents streams a job's log as Server-Sent Events: a "line" event per
// log line, its id the line's seq, so that a reconnecting EventSource
// (Last-Event-ID) or a reloaded page (?after=) resumes right after the
// last line it has, with none lost or doubled; a "status" event when the
// job's status changes, and "end" once it is final and every line is sent.
func (c *Console) jobEvents(w http.ResponseWriter, r *http.Request, _ session) {
	id := r.PathValue("id")
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n > after {
			after = n
		}
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	// A first read answers an unknown job with its status, not a stream.
	page, err := c.b.LogRange(r.Context(), id, after, 1000)
	if err != nil {
		plainError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 1000\n\n")
	status := ""
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	lastWrite := time.Now()
	for {
		// The status first: the page's lines came with it, so a page never
		// shows a line of a run under a status from before the run.
		if page.Status != status {
			status = page.Status
			fmt.Fprintf(w, "event: status\ndata: %q\n\n", status)
		}
		for _, l := range viewLines(page.Entries) {
			b, _ := json.Marshal(l)
			fmt.Fprintf(w, "id: %d\nevent: line\ndata: %s\n\n", l.Seq, b)
			after = l.Seq
		}
		if len(page.Entries) > 0 || time.Since(lastWrite) > 15*time.Second {
			if len(page.Entries) == 0 {
				fmt.Fprint(w, ": keep-alive\n\n")
			}
			lastWrite = time.Now()
		}
		if devserver.Terminal(page.Status) && !page.More {
			fmt.Fprintf(w, "event: end\ndata: %q\n\n", page.Status)
			fl.Flush()
			return
		}
		fl.Flush()
		if !page.More {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
		if page, err = c.b.LogRange(r.Context(), id, after, 1000); err != nil {
			if r.Context().Err() == nil {
				c.log.Warn("console: live log stopped", "job", id, "error", err)
			}
			return
		}
	}
}
