package httpexec

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadCapped(t *testing.T) {
	const max = 1000
	for _, tc := range []struct {
		name string
		size int
		hint int64
	}{
		{"empty", 0, 0}, {"empty, no length", 0, -1},
		{"below the cap", 999, 999}, {"below the cap, no length", 999, -1},
		{"at the cap", 1000, 1000}, {"at the cap, no length", 1000, -1},
		{"one past the cap", 1001, -1}, {"far past the cap", 1 << 20, 1 << 20},
		{"lying length", 5000, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("0123456789"), tc.size/10+1)[:tc.size]
			// One byte per read: the growth and the cap seen at every step.
			body, size, err := readCapped(iotest.OneByteReader(bytes.NewReader(data)), max, tc.hint)
			want := data[:min(tc.size, max)]
			if err != nil || size != int64(tc.size) || !bytes.Equal(body, want) || cap(body) > max {
				t.Errorf("kept %d (cap %d) of %d, %v; want %d of %d", len(body), cap(body), size, err, len(want), tc.size)
			}
		})
	}
	if _, size, err := readCapped(iotest.TimeoutReader(strings.NewReader(strings.Repeat("x", 3000))), max, -1); err == nil || size == 0 {
		t.Errorf("a failing read: %d, %v", size, err)
	}
}

// A 1 GiB response streamed by a loopback server: the job keeps the cap,
// counts the whole, and the agent's memory does not grow with the response.
func TestDoCapsAHugeResponse(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 1 GiB")
	}
	const total = 1 << 30
	const maxBody = 4 << 20
	chunk := bytes.Repeat([]byte("cronium\n"), 32<<10/8)
	srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("length") != "" {
			w.Header().Set("Content-Length", strconv.Itoa(total))
		}
		for sent := 0; sent < total; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	r := New(WithPolicy(testPolicy(t, nil, []string{"127.0.0.1/32"}, nil)), WithMaxBody(maxBody))
	for _, tc := range []struct{ name, query string }{{"chunked", ""}, {"with a content length", "?length=1"}} {
		t.Run(tc.name, func(t *testing.T) {
			// Memory the previous run left is handed back first, so that
			// the peak RSS restarts from what is in use.
			debug.FreeOSMemory()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			resetPeakRSS(t)
			rss0 := peakRSS(t)
			var peakHeap atomic.Uint64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				var m runtime.MemStats
				for {
					runtime.ReadMemStats(&m)
					if m.HeapInuse > peakHeap.Load() {
						peakHeap.Store(m.HeapInuse)
					}
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			})
			start := time.Now()
			res, err := r.Do(context.Background(), Request{URL: srv.URL + "/" + tc.query}, 2*time.Minute)
			elapsed := time.Since(start)
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Body) != maxBody || res.Size != total || !res.Truncated || !bytes.HasPrefix(res.Body, chunk) {
				t.Errorf("kept %d of %d bytes, truncated %t", len(res.Body), res.Size, res.Truncated)
			}
			heapGrowth := int64(peakHeap.Load()) - int64(base.HeapInuse)
			rssGrowth := peakRSS(t) - rss0
			t.Logf("1 GiB in %s (%.0f MiB/s); peak heap in use %+.1f MiB, peak RSS (VmHWM) %+.1f MiB over %.1f MiB, for a %d MiB cap",
				elapsed.Round(time.Millisecond), float64(total)/(1<<20)/elapsed.Seconds(), float64(heapGrowth)/(1<<20), float64(rssGrowth)/(1<<10), float64(rss0)/(1<<10), maxBody>>20)
			// The cap plus the transports' buffers, both ends being in this
			// process; nowhere near the response's size.
			if heapGrowth > 3*maxBody {
				t.Errorf("heap in use grew by %d bytes for a %d byte cap", heapGrowth, maxBody)
			}
		})
	}
}

// peakRSS is the process's VmHWM in KiB.
func peakRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	t.Skip("no VmHWM")
	return 0
}

// resetPeakRSS starts VmHWM again from the current RSS (Linux 4.0+).
func resetPeakRSS(t *testing.T) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("VmHWM not reset: %v", err)
	}
}

// The cost of the policy per request, against a loopback server: with the
// policy's dialer and without (a plain one), on kept-alive connections (the
// check runs once per connection) and on a new connection per request.
func BenchmarkDo(b *testing.B) {
	srv, _ := countingServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	policy := testPolicy(b, nil, []string{"127.0.0.1/32", "api.example.com"}, []string{"10.1.0.0/16", "evil.example"})
	for _, tc := range []struct {
		name      string
		policy    bool
		keepAlive bool
	}{
		{"keepalive/plain", false, true}, {"keepalive/policy", true, true},
		{"newconn/plain", false, false}, {"newconn/policy", true, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := New(WithPolicy(policy))
			if !tc.policy {
				d := &net.Dialer{Timeout: DefaultConnectTimeout, KeepAlive: 30 * time.Second}
				r.client = newClient(d.DialContext, DefaultConnectTimeout)
			}
			r.client.Transport.(*http.Transport).DisableKeepAlives = !tc.keepAlive
			defer r.client.CloseIdleConnections()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				res, err := r.Do(ctx, Request{URL: srv.URL + "/"}, 5*time.Second)
				if err != nil || string(res.Body) != "ok" {
					b.Fatal(res, err)
				}
			}
		})
	}
}
