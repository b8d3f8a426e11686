package config

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// network.egress is a mode now; the booleans of earlier files and
// environments still load, with no error.
func TestLoadOutboundPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string
		env     []string
		egress  Egress
		allow   []string
		deny    []string
		wantErr string
	}{
		{name: "default", egress: EgressNone},
		{name: "mode in the file", file: "network:\n  egress: allowlist\n", egress: EgressAllowlist},
		{name: "old boolean true in the file", file: "network:\n  egress: true\n", egress: EgressAll},
		{name: "old boolean false in the file", file: "network:\n  egress: false\n", egress: EgressNone},
		{name: "old yes in the file", file: "network:\n  egress: yes\n", egress: EgressAll},
		{name: "quoted mode", file: "network:\n  egress: \"All\"\n", egress: EgressAll},
		{name: "old boolean in the environment", env: []string{"CRONIUM_NETWORK_EGRESS=true"}, egress: EgressAll},
		{name: "old 0 in the environment", file: "network:\n  egress: all\n", env: []string{"CRONIUM_NETWORK_EGRESS=0"}, egress: EgressNone},
		{name: "mode in the environment", env: []string{"CRONIUM_NETWORK_EGRESS=allowlist"}, egress: EgressAllowlist},
		{name: "lists in the file", file: "network:\n  allow: [\"127.0.0.1/32\", \"api.example.com:443\"]\n  deny:\n    - 10.1.0.0/16\n",
			egress: EgressNone, allow: []string{"127.0.0.1/32", "api.example.com:443"}, deny: []string{"10.1.0.0/16"}},
		{name: "lists in the environment", env: []string{"CRONIUM_NETWORK_ALLOW=127.0.0.1/32, [::1]:8080", "CRONIUM_NETWORK_DENY=evil.example"},
			egress: EgressNone, allow: []string{"127.0.0.1/32", "[::1]:8080"}, deny: []string{"evil.example"}},
		{name: "bad mode in the file", file: "network:\n  egress: open\n", wantErr: `invalid egress "open": want none, allowlist or all`},
		{name: "bad mode in the environment", env: []string{"CRONIUM_NETWORK_EGRESS=open"}, wantErr: `CRONIUM_NETWORK_EGRESS: invalid egress "open"`},
		{name: "bad allow entry", env: []string{"CRONIUM_NETWORK_ALLOW=127.0.0.1/32,10.0.0.0/40"}, wantErr: `network.allow entry "10.0.0.0/40": invalid CIDR`},
		{name: "bad deny entry", file: "network:\n  deny: [\"api.example.com:https\"]\n", wantErr: `network.deny entry "api.example.com:https": port "https"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.yaml")
			if tc.file != "" {
				path = write(t, tc.file)
			}
			c, err := Load(path, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Network.Egress != tc.egress || !slices.Equal(c.Network.Allow, tc.allow) || !slices.Equal(c.Network.Deny, tc.deny) {
				t.Errorf("egress %q allow %q deny %q", c.Network.Egress, c.Network.Allow, c.Network.Deny)
			}
			if got := c.Network.Egress.ScriptRoute(); got != (tc.egress != EgressNone) {
				t.Errorf("ScriptRoute() = %t for %s", got, tc.egress)
			}
		})
	}
}

func TestLoadHTTP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string
		env     []string
		want    HTTP
		wantErr string
	}{
		{name: "defaults", want: HTTP{Egress: EgressAll, MaxBody: 4 * MiB, ConnectTimeout: Duration(10 * time.Second)}},
		{name: "file and environment", file: "http:\n  maxBody: 16MiB\n  egress: false\n", env: []string{"CRONIUM_HTTP_CONNECT_TIMEOUT=2s"},
			want: HTTP{Egress: EgressNone, MaxBody: 16 * MiB, ConnectTimeout: Duration(2 * time.Second)}},
		{name: "bad egress", env: []string{"CRONIUM_HTTP_EGRESS=some"}, wantErr: `CRONIUM_HTTP_EGRESS: invalid egress "some"`},
		{name: "body cap too small", env: []string{"CRONIUM_HTTP_MAX_BODY=100"}, wantErr: "http.maxBody 100: want between 1KiB and 256MiB"},
		{name: "body cap too large", file: "http:\n  maxBody: 1GiB\n", wantErr: "http.maxBody 1GiB"},
		{name: "no connect timeout", file: "http:\n  connectTimeout: 0\n", wantErr: "http.connectTimeout must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.yaml")
			if tc.file != "" {
				path = write(t, tc.file)
			}
			c, err := Load(path, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.HTTP != tc.want {
				t.Errorf("http %+v, %v; want %+v", c.HTTP, err, tc.want)
			}
		})
	}
}
