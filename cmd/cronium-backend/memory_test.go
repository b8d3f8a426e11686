package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/testenv"
)

// BenchmarkBackend10kJobs stores 10 000 jobs in cronium-backend serve (a
// process, as an operator runs it), then reports its resident memory, and
// the time the console's jobs page (the newest 200) and a job's page take
// to serve, averaged over b.N rounds of the two pages.
func BenchmarkBackend10kJobs(b *testing.B) {
	bin := build(b)
	serve, base := serveBackend(b, bin, "mem-token")
	dev, err := devserver.NewDevClient(base, "mem-token")
	if err != nil {
		b.Fatal(err)
	}
	const jobs = 10000
	var wg sync.WaitGroup
	next := make(chan int)
	var first string
	var mu sync.Mutex
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				id, err := dev.Submit(context.Background(), devserver.SubmitRequest{Runtime: "python", Script: "print(" + strconv.Itoa(i) + ")"})
				if err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				if first == "" {
					first = id
				}
				mu.Unlock()
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	idle := testenv.RSSMiB(serve.Process.Pid)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if resp, err := c.PostForm(base+"/login", url.Values{"token": {"mem-token"}}); err != nil {
		b.Fatal(err)
	} else {
		resp.Body.Close()
	}
	get := func(p string) (time.Duration, int) {
		start := time.Now()
		resp, err := c.Get(base + p)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", p, resp.StatusCode)
		}
		return time.Since(start), int(n)
	}
	b.ResetTimer()
	var list, one time.Duration
	var listBytes int
	for range b.N {
		d, n := get("/jobs")
		list += d
		listBytes = n
		d, _ = get("/jobs/" + first)
		one += d
	}
	b.StopTimer()
	b.ReportMetric(idle, "rss-10k-jobs-MiB")
	b.ReportMetric(testenv.RSSMiB(serve.Process.Pid), "rss-after-pages-MiB")
	b.ReportMetric(float64(list.Microseconds())/1000/float64(b.N), "jobs-page-ms")
	b.ReportMetric(float64(listBytes), "jobs-page-bytes")
	b.ReportMetric(float64(one.Microseconds())/1000/float64(b.N), "job-page-ms")
}
