package httpexec

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/internal/testenv"
)

// fakeDNS answers A queries from its table on 127.0.0.1 (UDP), NXDOMAIN for
// other names, and nothing for other types: the resolver of a test that
// needs a name to point somewhere.
type fakeDNS struct {
	conn    net.PacketConn
	queries atomic.Int32
}

func startFakeDNS(t *testing.T, records map[string]netip.Addr) *fakeDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDNS{conn: pc}
	t.Cleanup(func() { pc.Close() })
	go testenv.ServeDNS(pc, records, func() { f.queries.Add(1) })
	return f
}

// resolver asks only f.
func (f *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", f.conn.LocalAddr().String())
	}}
}

// A name in network.allow does not open what it resolves to when that is
// loopback (DNS rebinding); an address entry does. A denied name is refused
// before it is even looked up.
func TestDoChecksTheResolvedAddress(t *testing.T) {
	srv, accepted := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("loopback service")) }))
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	dns := startFakeDNS(t, map[string]netip.Addr{
		"api.rebind.test.": netip.MustParseAddr("127.0.0.1"),
		"evil.test.":       netip.MustParseAddr("127.0.0.1"),
	})
	for _, tc := range []struct {
		name        string
		allow, deny []string
		host        string
		body        string
		err         string
		lookups     bool
		accepted    int32
	}{
		{name: "allowed name resolving to loopback", allow: []string{"api.rebind.test"}, host: "api.rebind.test", lookups: true,
			err: fmt.Sprintf(`refused by the outbound policy: api.rebind.test resolved to 127.0.0.1:%d, which is loopback: network.allow entry "api.rebind.test" names the host, not this address (allow the address with network.allow: "127.0.0.1/32")`, port)},
		{name: "name not allowed", allow: []string{"other.test"}, host: "api.rebind.test", lookups: true,
			err: fmt.Sprintf("127.0.0.1:%d (api.rebind.test) is loopback", port)},
		{name: "allowed name and address", allow: []string{"api.rebind.test", "127.0.0.1/32"}, host: "api.rebind.test", lookups: true, body: "loopback service", accepted: 1},
		{name: "denied name, never looked up", allow: []string{"127.0.0.1/32"}, deny: []string{"evil.test"}, host: "evil.test",
			err: fmt.Sprintf(`refused by the outbound policy: evil.test:%d matches network.deny entry "evil.test"`, port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c connects
			dns.queries.Store(0)
			accepted.Store(0)
			r := New(WithPolicy(testPolicy(t, &c, tc.allow, tc.deny)), WithResolver(dns.resolver()))
			res, err := r.Do(context.Background(), Request{URL: fmt.Sprintf("http://%s:%d/", tc.host, port)}, 5*time.Second)
			if tc.err == "" {
				if err != nil || string(res.Body) != tc.body {
					t.Errorf("got %q, %v", res.Body, err)
				}
			} else if err == nil || !res.Refused || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err = %v (refused %t)\nwant %q", err, res.Refused, tc.err)
			}
			if got := dns.queries.Load() > 0; got != tc.lookups {
				t.Errorf("looked up: %t, want %t", got, tc.lookups)
			}
			if n := accepted.Load(); n != tc.accepted {
				t.Errorf("the server accepted %d connections, want %d", n, tc.accepted)
			}
		})
	}
}
