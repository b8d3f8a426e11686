// Package sdnotify tells systemd about the service's state (sd_notify(3)):
// READY=1 once the agent takes jobs, STATUS= lines for `systemctl
// status`, STOPPING=1 on the way out. Outside systemd (no NOTIFY_SOCKET)
// it does nothing.
package sdnotify

import (
	"fmt"
	"net"
	"strings"
)

// Notifier sends to the socket systemd named, or nowhere.
type Notifier struct{ socket string }

// New returns a notifier for the socket in NOTIFY_SOCKET (environ's, so
// tests can give theirs).
func New(environ []string) *Notifier {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
			return &Notifier{socket: v}
		}
	}
	return &Notifier{}
}

// Enabled says whether a socket was named.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Notify sends state lines ("READY=1", "STATUS=..."), one datagram.
func (n *Notifier) Notify(state ...string) error {
	if !n.Enabled() {
		return nil
	}
	addr := n.socket
	if strings.HasPrefix(addr, "@") {
		// An abstract socket: its name starts with a NUL byte.
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(state, "\n"))); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}
