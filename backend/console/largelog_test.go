package console_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
)

// BenchmarkLargeLog stores a 100 MiB log (1 048 576 lines of 100 bytes)
// and reports the time and size of the job's page (its last 1 000 lines)
// and of the download of the whole log.
func BenchmarkLargeLog(b *testing.B) {
	e := newEnv(b)
	id := e.submit(b)
	const lines, width = 1 << 20, 100
	pad := strings.Repeat("x", width-8)
	start := time.Now()
	batch := make([]api.LogEntry, 0, 10000)
	for i := 1; i <= lines; i++ {
		batch = append(batch, api.LogEntry{Seq: uint64(i), Stream: "stdout", Line: fmt.Sprintf("%07d%s", i, pad)})
		if len(batch) == cap(batch) || i == lines {
			e.logs(b, id, batch...)
			batch = batch[:0]
		}
	}
	b.Logf("stored %d MiB of log in %v", lines*width>>20, time.Since(start).Round(time.Millisecond))
	c, _ := e.login(b)
	get := func(p string) (time.Duration, int64) {
		at := time.Now()
		resp, err := c.Get(e.ts.URL + p)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
		return time.Since(at), n
	}
	b.ResetTimer()
	var page, dl time.Duration
	var pageBytes, dlBytes int64
	for range b.N {
		d, n := get("/jobs/" + id)
		page, pageBytes = page+d, n
		d, n = get("/jobs/" + id + "/log.txt")
		dl, dlBytes = dl+d, n
	}
	b.ReportMetric(float64(page.Microseconds())/1000/float64(b.N), "page-ms")
	b.ReportMetric(float64(pageBytes), "page-bytes")
	b.ReportMetric(float64(dl.Microseconds())/1000/float64(b.N), "download-ms")
	b.ReportMetric(float64(dlBytes>>20), "download-MiB")
}
