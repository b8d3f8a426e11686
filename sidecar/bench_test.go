package sidecar_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/cronium/cronium-agent/sidecar"
)

// BenchmarkGetInput measures one authenticated GET input round trip over a
// kept-alive loopback connection (token verification included).
func BenchmarkGetInput(b *testing.B) {
	e := newEnv(b, sidecar.WithRateLimit(0, 0))
	s := e.start(b, testExec("bench"))
	req, err := http.NewRequest("GET", s.url("/input"), nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token())
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatal(res.Status)
		}
	}
}
