package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// listenPrivate listens on a unix socket at path that is mode 0600 from the
// moment it is reachable: it is bound inside a fresh 0700 directory next to
// path, made 0600 there, and only then linked to path. A chmod after binding
// in place would leave a window in which the umask decides who may connect.
func listenPrivate(path string) (*net.UnixListener, os.FileInfo, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create the admin socket's directory: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".admin-")
	if err != nil {
		return nil, nil, fmt.Errorf("create the admin socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	name := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("create the admin socket: %w", err)
	}
	// The listener's own name goes with tmp; path is removed by Close.
	ln.SetUnlinkOnClose(false)
	fi, err := publish(name, path)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, fi, nil
}

// publish makes the socket at name reachable at path, replacing a stale
// socket there but never a live one. Link, unlike rename, fails when path
// exists, so two agents starting at once cannot both win.
func publish(name, path string) (os.FileInfo, error) {
	if err := os.Chmod(name, 0o600); err != nil {
		return nil, fmt.Errorf("restrict the admin socket: %w", err)
	}
	err := os.Link(name, path)
	if errors.Is(err, fs.ErrExist) {
		if err = removeStale(path); err == nil {
			err = os.Link(name, path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return fi, nil
}

// removeStale removes the socket at path if nothing answers on it: the one
// a killed agent left. Anything else at path is left alone.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket (remove it or set admin.socket elsewhere)", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return errors.New("another agent is serving it (stop that agent first, or give this one another admin.socket)")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("cannot tell whether another agent serves it: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the stale socket: %w", err)
	}
	return nil
}

// rootListener hands out only connections from root (or from the agent's
// own user), whatever the socket file's mode has become, and removes the
// socket when closed.
type rootListener struct {
	*net.UnixListener
	path  string
	file  os.FileInfo
	self  uint32
	log   *slog.Logger
	close sync.Once
}

func (l *rootListener) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		switch {
		case err != nil:
			l.log.Warn("admin socket: refused a connection whose user is unknown", "error", err)
		case uid != 0 && uid != l.self:
			l.log.Warn("admin socket: refused a connection that is not root's", "uid", uid)
		default:
			return c, nil
		}
		c.Close()
	}
}

// Close stops listening and removes the socket, unless path is no longer
// this listener's socket (someone replaced it): that one is not ours to remove.
func (l *rootListener) Close() error {
	err := l.UnixListener.Close()
	l.close.Do(func() {
		if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.file) {
			err = errors.Join(err, os.Remove(l.path))
		}
	})
	return err
}

func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return 0, fmt.Errorf("peer credentials: %w", cerr)
	}
	return cred.Uid, nil
}
