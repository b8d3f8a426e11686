// Package sshtest is test support only: an in-process SSH server on
// loopback with the host keys a test gives it, for the tests of host key
// checking (runner/sshconn) and of `cronium-agent ssh`.
package sshtest

import (
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// HostKeyServer runs an SSH server on 127.0.0.1 with these host keys until
// the test ends and returns its address. It lets anyone in (no client
// authentication) and refuses every channel: a client can fetch its host
// key or complete a login, nothing more. A connection is closed after 10
// seconds at the latest; the test's cleanup waits for all of them.
func HostKeyServer(tb testing.TB, hostKeys ...ssh.Signer) string {
	tb.Helper()
	cfg := &ssh.ServerConfig{NoClientAuth: true}
	for _, k := range hostKeys {
		cfg.AddHostKey(k)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
				sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return // the client gave up, as FetchHostKey does
				}
				defer sc.Close()
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					_ = ch.Reject(ssh.Prohibited, "no sessions here")
				}
			})
		}
	})
	return l.Addr().String()
}
