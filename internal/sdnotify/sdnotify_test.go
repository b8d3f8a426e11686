package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	for _, tt := range []struct{ name, socket string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", "@cronium-sdnotify-test-" + time.Now().Format("150405.000000000")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.socket
			if addr[0] == '@' {
				addr = "\x00" + addr[1:]
			}
			ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			n := New([]string{"PATH=/bin", "NOTIFY_SOCKET=" + tt.socket})
			if !n.Enabled() {
				t.Fatal("not enabled with NOTIFY_SOCKET set")
			}
			if err := n.Notify("READY=1", "STATUS=taking jobs"); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 256)
			_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, err := ln.Read(buf)
			if err != nil || string(buf[:k]) != "READY=1\nSTATUS=taking jobs" {
				t.Errorf("received %q, %v", buf[:k], err)
			}
		})
	}
	if n := New(nil); n.Enabled() || n.Notify("READY=1") != nil {
		t.Error("without NOTIFY_SOCKET: enabled, or an error")
	}
}
