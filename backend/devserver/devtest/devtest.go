// Package devtest serves the development backend on loopback for tests,
// with an outage switch: Down stops answering, Up answers again on the same
// address with the data kept, as a real backend through an outage does.
package devtest

import (
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/cronium/cronium-agent/backend/devserver"
)

// Backend is a development backend serving on Addr (http://Addr is URL),
// with Client, its operator client. Start registers its shutdown with the
// test.
type Backend struct {
	Server *devserver.Server
	Client *devserver.DevClient
	URL    string
	Addr   string

	mu sync.Mutex
	hs *http.Server
}

// Start serves a new backend with its data in a temporary directory, on
// addr ("": a free loopback port).
func Start(tb testing.TB, addr, token string, opts ...devserver.Option) *Backend {
	tb.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	srv, err := devserver.New(tb.TempDir(), token, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	b := &Backend{Server: srv, Addr: addr}
	b.Up(tb)
	b.URL = "http://" + b.Addr
	if b.Client, err = devserver.NewDevClient(b.URL, token); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		b.Down()
		srv.Close()
	})
	return b
}

// Up serves the backend (again, on the same address after Down).
func (b *Backend) Up(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("tcp", b.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	b.Addr = ln.Addr().String()
	hs := &http.Server{Handler: b.Server.Handler()}
	b.mu.Lock()
	b.hs = hs
	b.mu.Unlock()
	go hs.Serve(ln)
}

// Down makes the backend unreachable; its data stays.
func (b *Backend) Down() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hs != nil {
		b.hs.Close()
		b.hs = nil
	}
}
