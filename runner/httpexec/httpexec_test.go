package httpexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/runner/netpolicy"
)

// connects counts the connects the policy let through. It also refuses
// every address off loopback, whatever the policy says: a test never sends
// a packet elsewhere, even with a broken policy.
type connects struct{ n atomic.Int32 }

func (c *connects) hook() netpolicy.Option {
	return netpolicy.WithConnectHook(func(_, address string) error {
		c.n.Add(1)
		if ap, err := netip.ParseAddrPort(address); err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("test: connect to %s blocked", address)
		}
		return nil
	})
}

// testPolicy is mode none with the allow and deny entries, the test's
// connects counted.
func testPolicy(t testing.TB, c *connects, allow, deny []string) *netpolicy.Policy {
	t.Helper()
	opts := []netpolicy.Option{netpolicy.WithHostAddrs(), netpolicy.WithJobPool(netip.MustParsePrefix("10.213.0.0/16"))}
	if c != nil {
		opts = append(opts, c.hook())
	}
	p, err := netpolicy.New(netpolicy.ModeNone, allow, deny, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// countingServer is a loopback test server that counts the connections it
// accepted.
func countingServer(t testing.TB, h http.Handler) (*httptest.Server, *atomic.Int32) {
	var accepted atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &accepted
}

func TestDo(t *testing.T) {
	srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("X-Method", r.Method)
			w.Write([]byte(r.Header.Get("Authorization") + "|" + string(body)))
		case "/fail":
			http.Error(w, "nope", http.StatusTeapot)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/redirect":
			http.Redirect(w, r, "/echo", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	}))
	r := New(WithPolicy(testPolicy(t, nil, []string{"127.0.0.1/32"}, nil)))
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		req     Request
		timeout time.Duration
		status  int
		body    string
		err     string
	}{
		{"post with headers", Request{Method: "post", URL: srv.URL + "/echo", Headers: [][2]string{{"Authorization", "Bearer x"}}, Body: `{"a":1}`}, time.Second, 200, `Bearer x|{"a":1}`, ""},
		{"error status is a result", Request{URL: srv.URL + "/fail"}, time.Second, 418, "nope\n", ""},
		{"redirect followed", Request{URL: srv.URL + "/redirect"}, time.Second, 200, "|", ""},
		{"timeout", Request{URL: srv.URL + "/slow"}, 50 * time.Millisecond, 0, "", "no response within 50ms"},
		{"bad url", Request{URL: "ftp://x/y"}, time.Second, 0, "", "invalid request URL"},
		{"file url", Request{URL: "file:///etc/passwd"}, time.Second, 0, "", "invalid request URL"},
		{"gopher url", Request{URL: "gopher://127.0.0.1:70/"}, time.Second, 0, "", "invalid request URL"},
		{"too many redirects", Request{URL: srv.URL + "/loop"}, time.Second, 0, "", "redirected to " + srv.URL + "/loop: refused: more than 10 redirects"},
		{"connection refused", Request{URL: "http://127.0.0.1:1/x"}, time.Second, 0, "", "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := r.Do(ctx, tc.req, tc.timeout)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || res.StatusCode != tc.status || string(res.Body) != tc.body || res.Size != int64(len(tc.body)) || res.Truncated {
				t.Errorf("got %d %q (%d bytes, truncated %t) %v", res.StatusCode, res.Body, res.Size, res.Truncated, err)
			}
		})
	}
}

// What the policy refuses is refused before anything is connected, with a
// message naming the rule; redirects are checked on every hop.
func TestDoUnderThePolicy(t *testing.T) {
	denied, deniedAccepted := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	srv, accepted := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("ok"))
		case "/to-denied":
			http.Redirect(w, r, denied.URL+"/x", http.StatusFound)
		case "/to-v6-loopback":
			http.Redirect(w, r, "http://[::1]:9/x", http.StatusFound)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/to-gopher":
			http.Redirect(w, r, "gopher://127.0.0.1:70/1", http.StatusFound)
		}
	}))
	srvPort := srv.Listener.Addr().(*net.TCPAddr).Port
	deniedHost := strings.TrimPrefix(denied.URL, "http://")
	allowSrv := []string{fmt.Sprintf("127.0.0.1:%d", srvPort)}
	for _, tc := range []struct {
		name        string
		allow, deny []string
		url         string
		headers     [][2]string
		body        string // on success
		err         string
		connects    int32 // connects the policy let through
		accepted    int32 // connections the test server (srv) accepted
	}{
		{name: "loopback refused by default", url: srv.URL + "/ok",
			err: fmt.Sprintf(`GET %s/ok: refused by the outbound policy: 127.0.0.1:%d is loopback (allow it with network.allow: "127.0.0.1/32")`, srv.URL, srvPort)},
		{name: "loopback allowed by an entry", allow: []string{"127.0.0.1/32"}, url: srv.URL + "/ok", body: "ok", connects: 1, accepted: 1},
		{name: "loopback allowed on its port", allow: allowSrv, url: srv.URL + "/ok", body: "ok", connects: 1, accepted: 1},
		{name: "metadata service", allow: []string{"127.0.0.1/32"}, url: "http://169.254.169.254/latest/meta-data/",
			err: "169.254.169.254:80 is link-local (the cloud metadata service)"},
		{name: "public address in mode none", allow: []string{"127.0.0.1/32"}, url: "http://203.0.113.7/",
			err: "203.0.113.7:80 is not in network.allow (network.egress is none)"},
		{name: "redirect to a loopback port not allowed", allow: allowSrv, url: srv.URL + "/to-denied", connects: 1, accepted: 1,
			err: fmt.Sprintf("GET %s/to-denied: redirected to %s/x: refused by the outbound policy: %s is loopback", srv.URL, denied.URL, deniedHost)},
		{name: "redirect to a denied port", allow: []string{"127.0.0.1/32"}, deny: []string{deniedHost}, url: srv.URL + "/to-denied", connects: 1, accepted: 1,
			err: fmt.Sprintf("redirected to %s/x: refused by the outbound policy: %s matches network.deny entry %q", denied.URL, deniedHost, deniedHost)},
		{name: "redirect to another loopback address", allow: []string{"127.0.0.1/32"}, url: srv.URL + "/to-v6-loopback", connects: 1, accepted: 1,
			err: `redirected to http://[::1]:9/x: refused by the outbound policy: [::1]:9 is loopback (allow it with network.allow: "::1/128")`},
		{name: "redirect to the metadata service", allow: []string{"127.0.0.1/32"}, url: srv.URL + "/to-metadata", connects: 1, accepted: 1,
			err: "redirected to http://169.254.169.254/latest/meta-data/: refused by the outbound policy: 169.254.169.254:80 is link-local"},
		{name: "redirect to file://", allow: []string{"127.0.0.1/32"}, url: srv.URL + "/to-file", connects: 1, accepted: 1,
			err: "redirected to file:///etc/passwd: refused: only http and https are followed"},
		{name: "redirect to gopher://", allow: []string{"127.0.0.1/32"}, url: srv.URL + "/to-gopher", connects: 1, accepted: 1,
			err: "redirected to gopher://127.0.0.1:70/1: refused: only http and https are followed"},
		{name: "CRLF in a header value", allow: []string{"127.0.0.1/32"}, url: srv.URL + "/ok", headers: [][2]string{{"X-Ok", "1"}, {"X-Evil", "a\r\nX-Injected: 1"}},
			err: `header "X-Evil" refused: a CR or LF in its name or value (or no name); nothing was sent`},
		{name: "LF in a header name", allow: []string{"127.0.0.1/32"}, url: srv.URL + "/ok", headers: [][2]string{{"X-Evil\nHost", "x"}},
			err: `header "X-Evil\nHost" refused`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c connects
			accepted.Store(0)
			deniedAccepted.Store(0)
			r := New(WithPolicy(testPolicy(t, &c, tc.allow, tc.deny)), WithConnectTimeout(time.Second))
			res, err := r.Do(context.Background(), Request{URL: tc.url, Headers: tc.headers}, 5*time.Second)
			if tc.err == "" {
				if err != nil || string(res.Body) != tc.body {
					t.Errorf("got %q, %v; want %q", res.Body, err, tc.body)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err = %v\nwant %q", err, tc.err)
				}
				if want := errors.Is(err, netpolicy.ErrRefused); res.Refused != want {
					t.Errorf("Refused %t for %v", res.Refused, err)
				}
			}
			if n := c.n.Load(); n != tc.connects {
				t.Errorf("%d connects attempted, want %d", n, tc.connects)
			}
			if n := accepted.Load(); n != tc.accepted {
				t.Errorf("the server accepted %d connections, want %d", n, tc.accepted)
			}
			if n := deniedAccepted.Load(); n != 0 {
				t.Errorf("the denied server accepted %d connections", n)
			}
		})
	}
}

func TestDoWithoutPolicyRefusesEverything(t *testing.T) {
	srv, accepted := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	res, err := New().Do(context.Background(), Request{URL: srv.URL}, time.Second)
	if !res.Refused || err == nil || !strings.Contains(err.Error(), "no outbound policy is configured") || accepted.Load() != 0 {
		t.Errorf("%+v %v, %d connections", res, err, accepted.Load())
	}
}
