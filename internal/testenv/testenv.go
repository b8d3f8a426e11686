// Package testenv gives integration tests a real containerd, and fails
// rather than skips when CI requires one (CRONIUM_REQUIRE_CONTAINERD=1).
package testenv

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/runtimes/helpercli"
	"github.com/cronium/cronium-agent/runtimes/jobinit"
)

// Namespace is the containerd namespace tests use: the agent's own, so that
// the leftover checks see whatever a test forgets.
const Namespace = "cronium"

// DefaultAddress is where `make` starts the project's containerd.
const DefaultAddress = "/run/cronium-containerd/containerd.sock"

// Address is the containerd socket tests use.
func Address() string {
	if a := os.Getenv("CRONIUM_TEST_CONTAINERD_ADDRESS"); a != "" {
		return a
	}
	return DefaultAddress
}

// Required reports whether a missing containerd fails the test.
func Required() bool { return os.Getenv("CRONIUM_REQUIRE_CONTAINERD") == "1" }

// Unavailable fails (in CI) or skips the test with the reason.
func Unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if Required() {
		tb.Fatalf("CRONIUM_REQUIRE_CONTAINERD=1 but: "+format, args...)
	}
	tb.Skipf("needs containerd (run `make test`): "+format, args...)
}

// Containerd connects to the test containerd, as root.
func Containerd(tb testing.TB) *containerd.Client {
	tb.Helper()
	if testing.Short() && !Required() {
		tb.Skip("integration test: not in -short mode")
	}
	if os.Geteuid() != 0 {
		Unavailable(tb, "tests must run as root")
	}
	addr := Address()
	if _, err := os.Stat(addr); err != nil {
		Unavailable(tb, "no socket at %s", addr)
	}
	client, err := containerd.New(addr, containerd.WithDefaultNamespace(Namespace), containerd.WithTimeout(3*time.Second))
	if err != nil {
		Unavailable(tb, "connect to %s: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if ok, err := client.IsServing(ctx); !ok {
		client.Close()
		Unavailable(tb, "containerd at %s does not answer: %v", addr, err)
	}
	tb.Cleanup(func() { client.Close() })
	return client
}

// MainWithShimLogger lets a test binary serve as the shim-side output logger
// (the shim starts it as `<test binary> shim-logger <file>`) and as the
// helper program mounted into jobs (run as /cronium/bin/cronium). Call it
// first in TestMain; it returns false when the binary was started as a test.
func MainWithShimLogger() bool {
	switch filepath.Base(os.Args[0]) {
	case "cronium":
		os.Exit(helpercli.Main(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	case jobinit.Name:
		os.Exit(jobinit.Main(os.Args[1:], os.Stderr))
	}
	if len(os.Args) == 3 && os.Args[1] == "shim-logger" {
		if err := output.RunShimLogger(context.Background(), os.Args[2]); err != nil {
			os.Stderr.WriteString("shim-logger: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	return false
}

// StateDir returns a fresh agent state directory that a job's mapped uid can
// traverse (t.TempDir's parent is mode 0700, which the executor refuses).
func StateDir(tb testing.TB) string {
	tb.Helper()
	d, err := os.MkdirTemp("", "cronium-state-")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Buffer is a bytes.Buffer safe for concurrent use: a child process's
// output or a logger's, read by the test while it is written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Reset forgets what was written.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}

// Greeter serves a host service on addr ("0.0.0.0:0", "[::]:0") for the
// test's duration: every connection gets greeting, then is closed, so a
// probe from inside a job can tell it reached it. It returns the port.
func Greeter(tb testing.TB, addr, greeting string) (int, error) {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(greeting))
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
