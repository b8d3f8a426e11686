package sshconn_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner/sshconn"
)

func testPool(t *testing.T, opts ...sshconn.Option) *sshconn.Pool {
	t.Helper()
	hk, err := sshconn.OpenHostKeys(filepath.Join(t.TempDir(), "known_hosts"), sshconn.PolicyTOFU, sshconn.WithSystemKnownHosts(""))
	if err != nil {
		t.Fatal(err)
	}
	p := sshconn.New(hk, append([]sshconn.Option{sshconn.WithDialRetries(1, 10*time.Millisecond)}, opts...)...)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func endpointOf(s *testenv.SSHD) sshconn.Endpoint {
	return sshconn.Endpoint{Name: "test", Host: s.Host, Port: s.Port, User: s.User, PrivateKey: s.ClientKeys["ed25519"]}
}

// run runs a command on a leased connection.
func run(t *testing.T, l *sshconn.Lease, cmd string) string {
	t.Helper()
	sess, err := l.Client().NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Output(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out)
}

func TestPoolReuseAndBound(t *testing.T) {
	s := testenv.StartSSHD(t)
	// One connection, shared by one run (three sessions) at a time.
	p := testPool(t, sshconn.WithLimits(1, sshconn.SessionsPerRun))
	ep := endpointOf(s)
	first, err := p.Get(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, first, "id -un"); strings.TrimSpace(got) != s.User {
		t.Fatalf("id -un = %q", got)
	}
	// The server has no room: a second Get waits for the first Release.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx, ep); err == nil || !strings.Contains(err.Error(), "waiting for a free connection") {
		t.Fatalf("Get beyond the bound: %v", err)
	}
	got := make(chan *sshconn.Lease, 1)
	go func() {
		l, err := p.Get(context.Background(), ep)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	time.Sleep(50 * time.Millisecond)
	first.Release()
	second := <-got
	defer second.Release()
	run(t, second, "true")
	if d := p.Dials(); d != 1 {
		t.Errorf("%d dials for two leases in turn, want 1", d)
	}
}

func TestPoolDropsDeadAndIdleConnections(t *testing.T) {
	s := testenv.StartSSHD(t)
	p := testPool(t, sshconn.WithIdleTimeout(300*time.Millisecond), sshconn.WithKeepalive(200*time.Millisecond))
	ep := endpointOf(s)
	l, err := p.Get(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	// Idle past the timeout: closed; the next Get dials again.
	time.Sleep(time.Second)
	if l, err = p.Get(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	l.Release()
	if d := p.Dials(); d != 2 {
		t.Errorf("%d dials after an idle close, want 2", d)
	}
	// The server dies: the keepalive finds the connection dead, and once
	// the server is back the next Get dials a new one.
	s.Kill()
	select {
	case <-l.Dead():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection to a killed server is not seen dead")
	}
	s.Start()
	l, err = p.Get(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	run(t, l, "true")
}

func TestPoolFailures(t *testing.T) {
	s := testenv.StartSSHD(t)
	t.Run("wrong password: said, not retried", func(t *testing.T) {
		p := testPool(t, sshconn.WithDialRetries(3, 10*time.Millisecond))
		ep := endpointOf(s)
		ep.PrivateKey, ep.Password = nil, "not-the-password"
		_, err := p.Get(context.Background(), ep)
		if err == nil || !strings.Contains(err.Error(), "authentication failed") || strings.Contains(err.Error(), "not-the-password") {
			t.Fatalf("Get with a wrong password: %v", err)
		}
		if d := p.Dials(); d != 1 {
			t.Errorf("%d dials, want 1: a refused login is not retried", d)
		}
	})
	t.Run("dead server: the breaker fails fast", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		p := testPool(t, sshconn.WithBreaker(2, time.Minute), sshconn.WithDialRetries(1, time.Millisecond))
		ep := sshconn.Endpoint{Host: "127.0.0.1", Port: port, User: "x", Password: "y"}
		for i := 0; i < 2; i++ {
			if _, err := p.Get(context.Background(), ep); err == nil || errors.Is(err, sshconn.ErrBreakerOpen) {
				t.Fatalf("dial %d: %v", i, err)
			}
		}
		_, err = p.Get(context.Background(), ep)
		if !errors.Is(err, sshconn.ErrBreakerOpen) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("Get with the breaker open: %v", err)
		}
		if d := p.Dials(); d != 2 {
			t.Errorf("%d dials, want 2: an open breaker does not dial", d)
		}
	})
}

// Keys come as OpenSSH or PEM (PKCS#1 here), of every type.
func TestPoolKeyFormats(t *testing.T) {
	s := testenv.StartSSHD(t)
	p := testPool(t)
	raw, err := ssh.ParseRawPrivateKey(s.ClientKeys["rsa"])
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(raw.(*rsa.PrivateKey))})
	keys := map[string][]byte{"rsa pem": pkcs1}
	for kt, k := range s.ClientKeys {
		keys[kt+" openssh"] = k
	}
	for name, key := range keys {
		ep := endpointOf(s)
		ep.PrivateKey = key
		l, err := p.Get(context.Background(), ep)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		run(t, l, "true")
		l.Release()
	}
}
